"""Attention as similarity (week 6) and scaled dot-product attention (week 7).

Axis letters: T query positions, S key/value positions, K head width; any leading
axes (batch ``B``, heads ``H``) are carried through unchanged as ``...``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from model.equation import implements
from model.validate import check_positive_int, check_rank

__all__ = ["scores", "scaled_scores", "softmax", "sdpa", "causal_mask"]


def _check_qk(q, k) -> None:
    check_rank("q", q, min_rank=2, axes="[..., T, K]")
    check_rank("k", k, min_rank=2, axes="[..., S, K]")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same width K: expected k of shape [..., S, {q.shape[-1]}] "
            f"to match q {tuple(q.shape)}, got k {tuple(k.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(
            f"q and k must have the same leading axes: expected k of shape {tuple(q.shape[:-2])} + [S, K], "
            f"got q {tuple(q.shape)} and k {tuple(k.shape)}")


@implements("attention.scores")
def scores(q, k):
    r"""Attention scores as pairwise dot products, :math:`X = Q K^\top`.

    Entry :math:`X_{ts} = q_t \cdot k_s` is the similarity of query ``t`` and key ``s``.

    Args:
        q: queries ``[..., T, K]``.
        k: keys ``[..., S, K]``.

    Returns:
        scores ``[..., T, S]``.

    Derivation: ``attention.scores``.

    >>> import jax.numpy as jnp
    >>> scores(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 2.0]])).tolist()
    [[1.0, 0.0]]
    """
    _check_qk(q, k)
    return jnp.einsum("...tk,...sk->...ts", q, k)


@implements("attention.scaled_scores")
def scaled_scores(q, k):
    r"""Scaled scores :math:`Q K^\top / \sqrt{K}`, whose entries have unit variance.

    For independent zero-mean unit-variance entries, :math:`\operatorname{Var}(q \cdot k) = K`;
    dividing by :math:`\sqrt K` makes it 1, so the softmax does not saturate as ``K`` grows.

    Args:
        q: queries ``[..., T, K]``.
        k: keys ``[..., S, K]``.

    Returns:
        scaled scores ``[..., T, S]``.

    Derivation: ``attention.scaled_scores``.
    """
    return scores(q, k) / math.sqrt(q.shape[-1])


@implements("attention.softmax")
def softmax(x, tau=1.0, mask=None):
    r"""Row-wise softmax with temperature, computed stably, with an optional mask.

    .. math:: \operatorname{softmax}(x / \tau)_j = \frac{e^{x_j / \tau}}{\sum_l e^{x_l / \tau}}

    The row maximum is subtracted before ``exp`` (the result is unchanged: softmax
    is invariant to adding a constant to a row).  Where ``mask`` is ``False`` the
    weight is exactly 0, as if the score were :math:`-\infty`; a row with no
    ``True`` entry gives all zeros, never NaN.

    Args:
        x: scores ``[..., S]``.
        tau: temperature :math:`\tau > 0`.
        mask: optional boolean array broadcastable to ``x``; ``True`` keeps an entry.

    Returns:
        weights ``[..., S]``, each unmasked row summing to 1.

    Derivation: ``attention.softmax``.

    >>> import jax.numpy as jnp
    >>> softmax(jnp.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    check_rank("x", x, min_rank=1, axes="[..., S]")
    if isinstance(tau, (int, float)) and not tau > 0:
        raise ValueError(f"tau: expected a temperature > 0, got {tau!r}")
    x = x / tau
    if mask is not None:
        mask = jnp.broadcast_to(mask, x.shape)
        x = jnp.where(mask, x, -jnp.inf)
    peak = jnp.max(x, axis=-1, keepdims=True)
    peak = jax.lax.stop_gradient(jnp.where(jnp.isfinite(peak), peak, 0.0))
    e = jnp.exp(x - peak)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


@implements("attention.sdpa", "attention.backward")
def sdpa(q, k, v, mask=None):
    r"""Scaled dot-product attention, :math:`\operatorname{softmax}(Q K^\top / \sqrt{K}) V`.

    With a mask :math:`M`, the weights are :math:`M \circ e^{X} / \text{row sums}`: masked
    keys get weight 0 (a fully masked row gives a zero output row).

    Args:
        q: queries ``[..., T, K]``.
        k: keys ``[..., S, K]``.
        v: values ``[..., S, K]`` (their width may differ from K).
        mask: optional boolean ``[..., T, S]`` (leading axes may be 1 or absent); ``True`` attends.

    Returns:
        outputs ``[..., T, K]``.

    Derivations: ``attention.sdpa`` (the forward equation) and ``attention.backward``
    (its gradients dQ, dK, dV).

    References: Vaswani et al., "Attention Is All You Need", 2017, eq. (1).
    """
    _check_qk(q, k)
    check_rank("v", v, min_rank=2, axes="[..., S, K]")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must have one row per key: expected v of shape {tuple(k.shape[:-1])} + [K], got {tuple(v.shape)}")
    x = scaled_scores(q, k)
    if mask is not None:
        mshape, xshape = tuple(jnp.shape(mask)), tuple(x.shape)
        ok = len(mshape) >= 2 and mshape[-2:] == xshape[-2:] and len(mshape) <= len(xshape)
        if ok:
            try:
                jnp.broadcast_shapes(mshape, xshape)
            except ValueError:
                ok = False
        if not ok:
            raise ValueError(
                f"mask: expected shape [..., T, S] = [..., {xshape[-2]}, {xshape[-1]}] broadcastable "
                f"to the scores {xshape}, got {mshape}")
        if jnp.result_type(mask) != jnp.bool_:
            raise TypeError(f"mask: expected a boolean array, got dtype {jnp.result_type(mask)}")
    p = softmax(x, mask=mask)
    return jnp.einsum("...ts,...sk->...tk", p, v)


@implements("attention.causal_mask")
def causal_mask(n_queries: int, n_keys: int):
    r"""Causal mask :math:`M_{ts} = [\, s \le t + S - T \,]`: query ``t`` sees keys up to its own position.

    With ``S = T`` this is the lower triangle.  With ``S > T`` (the queries are the
    last ``T`` of ``S`` positions, as when decoding with a cache) the last query sees every key.

    Args:
        n_queries: T.
        n_keys: S, at least T.

    Returns:
        boolean ``[T, S]``.

    Derivation: ``attention.causal_mask``.

    >>> causal_mask(2, 2).tolist()
    [[True, False], [True, True]]
    """
    check_positive_int("n_queries", n_queries)
    check_positive_int("n_keys", n_keys)
    if n_keys < n_queries:
        raise ValueError(f"n_keys: expected at least n_queries = {n_queries} keys, got {n_keys}")
    t = jnp.arange(n_queries)[:, None]
    s = jnp.arange(n_keys)[None, :]
    return s <= t + (n_keys - n_queries)
