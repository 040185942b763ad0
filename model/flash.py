r"""Online softmax and blockwise attention, FlashAttention style (week 7).

Axis letters: T query positions, S key/value positions, K head width; any leading
axes (batch ``B``, heads ``H``) are carried through as ``...``, as in
:func:`model.attention.sdpa`, so :func:`flash_attention` is a drop-in for it.

Softmax needs a whole row of scores for its denominator, but the row can be read one
block of keys at a time.  Each query keeps a running maximum :math:`m`, a running sum
:math:`\ell` and an accumulator :math:`o`; a block of scores :math:`y` and values
:math:`w` updates them as

.. math::
    m' = \max(m, \max_s y_s), \quad
    \ell' = e^{m - m'} \ell + \sum_s e^{y_s - m'}, \quad
    o' = e^{m - m'} o + \sum_s e^{y_s - m'} w_s,

and the output is :math:`o / \ell` (derivation ``flash.online_softmax``).
:func:`flash_attention` applies this to tiles of ``block_size`` queries by
``block_size`` keys, computing each tile's scores :math:`Q_i K_j^\top / \sqrt K` on the
fly, so the ``T x S`` score matrix never exists: the forward pass holds ``O(T K)``
numbers besides a ``block_size x block_size`` tile per leading index.  Its backward
pass (a ``jax.custom_vjp``) keeps only the output and the log-sum-exp per query and
recomputes each tile's weights, so the backward pass is ``O(T K)`` as well.

Masked scores are :math:`-\infty` (weight exactly 0); a query that sees no key at all
gets a zero output row and zero gradients, never NaN, as in :func:`model.attention.sdpa`.

Sequences whose length is not a multiple of ``block_size`` are padded inside (keys
with :math:`-\infty` scores, queries that are dropped from the output), so any
``T`` and ``S`` work; ``block_size`` larger than both lengths is clamped to the longer one.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from model.equation import implements
from model.validate import check_positive_int, check_rank

__all__ = ["flash_attention", "online_softmax", "tiles"]


def _update(m, ell, acc, s, v):
    """One block of the online softmax: scores ``s [..., T, b]`` (masked = -inf), values ``v [..., b, K]``.

    ``m`` and ``ell`` are ``[..., T]``, ``acc`` is ``[..., T, K]``; returns the updated three.
    The running maximum carries no gradient: the result does not depend on it.
    """
    m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(s, axis=-1)))
    m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # a row that has seen no key yet
    p = jnp.exp(s - m_safe[..., None])
    rescale = jnp.exp(m - m_safe)
    ell = rescale * ell + jnp.sum(p, axis=-1)
    acc = rescale[..., None] * acc + jnp.einsum("...ts,...sk->...tk", p, v.astype(p.dtype))
    return m_new, ell, acc


def _accumulator_dtype(*arrays):
    """float32 at least: the running sums are accumulated in it (bfloat16 inputs included)."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _pad_axis(x, axis: int, to: int, value):
    extra = to - x.shape[axis]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, extra)
    return jnp.pad(x, widths, constant_values=value)


@implements("flash.online_softmax")
def online_softmax(s, v, *, block_size: int):
    r"""Softmax-weighted sum :math:`\operatorname{softmax}(s)\, v`, reading the keys a block at a time.

    .. math::
        m' = \max(m, \max_{s \in j} y_s), \quad
        \ell' = e^{m - m'} \ell + \sum_{s \in j} e^{y_s - m'}, \quad
        o' = e^{m - m'} o + \sum_{s \in j} e^{y_s - m'} v_s, \qquad
        \text{result} = o / \ell

    over the key blocks :math:`j` of ``block_size`` keys (``lax.scan``); it equals
    :math:`\operatorname{softmax}(s) v` exactly, because the factor :math:`e^{-m}` cancels.
    Scores may be :math:`-\infty` (masked); a row of only :math:`-\infty` gives zeros.

    Args:
        s: scores ``[..., T, S]``.
        v: values ``[..., S, K]`` with the same leading axes.
        block_size: keys per block (a static int); S need not be a multiple of it.

    Returns:
        ``[..., T, K]``.

    Derivation: ``flash.online_softmax``.

    References: Milakov and Gimelshein, "Online normalizer calculation for softmax", 2018.

    >>> import jax.numpy as jnp
    >>> online_softmax(jnp.array([[0.0, 0.0, 0.0]]), jnp.array([[3.0], [0.0], [0.0]]), block_size=2).tolist()
    [[1.0]]
    """
    check_rank("s", s, min_rank=2, axes="[..., T, S]")
    check_rank("v", v, min_rank=2, axes="[..., S, K]")
    if v.shape[:-1] != s.shape[:-2] + s.shape[-1:]:
        raise ValueError(f"v must have one row per score column: expected v of shape "
                         f"{tuple(s.shape[:-2]) + (s.shape[-1],)} + [K] to match s {tuple(s.shape)}, "
                         f"got v {tuple(v.shape)}")
    check_positive_int("block_size", block_size)
    n_keys = s.shape[-1]
    if n_keys == 0:
        raise ValueError(f"s: expected at least one score per row, got shape {tuple(s.shape)}")
    b = min(block_size, n_keys)
    n_blocks = -(-n_keys // b)
    dtype = _accumulator_dtype(s, v)
    s = _pad_axis(s.astype(dtype), -1, n_blocks * b, -jnp.inf)
    v = _pad_axis(v, -2, n_blocks * b, 0)
    s_blocks = jnp.moveaxis(jnp.reshape(s, (*s.shape[:-1], n_blocks, b)), -2, 0)  # [n, ..., T, b]
    v_blocks = jnp.moveaxis(jnp.reshape(v, (*v.shape[:-2], n_blocks, b, v.shape[-1])), -3, 0)  # [n, ..., b, K]
    lead_t = s.shape[:-1]
    init = (jnp.full(lead_t, -jnp.inf, dtype), jnp.zeros(lead_t, dtype), jnp.zeros((*lead_t, v.shape[-1]), dtype))

    def step(carry, block):
        return _update(*carry, *block), None

    (_, ell, acc), _ = jax.lax.scan(step, init, (s_blocks, v_blocks))
    out = acc / jnp.where(ell > 0, ell, 1.0)[..., None]
    return out.astype(jnp.result_type(s, v))


# --- blockwise attention ------------------------------------------------------------------------


def tiles(n_queries: int, n_keys: int, block_size: int, *, causal: bool) -> np.ndarray:
    """The (query block, key block) tiles that attention visits, ``[n_tiles, 2]`` ints, row-major.

    Every tile of the ``ceil(T/b) x ceil(S/b)`` grid, except, when ``causal``, the tiles
    whose every key comes after every query of the block (with the queries the last T
    of S positions, query ``t`` sees keys ``s <= t + S - T``): those weights are all 0.

    >>> tiles(4, 4, 2, causal=True).tolist()
    [[0, 0], [1, 0], [1, 1]]
    """
    b = block_size
    rows = []
    for i in range(-(-n_queries // b)):
        last_query = min((i + 1) * b, n_queries) - 1
        for j in range(-(-n_keys // b)):
            if not causal or j * b <= last_query + n_keys - n_queries:
                rows.append((i, j))
    return np.asarray(rows, dtype=np.int32).reshape(-1, 2)


def _tile_keep(i, j, b, n_queries, n_keys, causal, mask):
    """Boolean ``[..., b, b]`` (or ``[b, b]``) of the keys each query of tile (i, j) may see."""
    t = i * b + jnp.arange(b)[:, None]
    s = j * b + jnp.arange(b)[None, :]
    keep = s < n_keys  # padded keys
    if causal:
        keep = keep & (s <= t + (n_keys - n_queries))
    if mask is not None:
        block = jax.lax.dynamic_slice_in_dim(jax.lax.dynamic_slice_in_dim(mask, i * b, b, axis=-2), j * b, b, axis=-1)
        keep = jnp.broadcast_to(keep, block.shape) & block
    return keep


def _masked_scores(qi, kj, keep, dtype):
    x = jnp.einsum("...tk,...sk->...ts", qi, kj, preferred_element_type=dtype) / math.sqrt(qi.shape[-1])
    return jnp.where(jnp.broadcast_to(keep, x.shape), x, -jnp.inf)


def _block(x, index, b, axis):
    return jax.lax.dynamic_slice_in_dim(x, index * b, b, axis=axis)


def _put(x, value, index, b, axis):
    return jax.lax.dynamic_update_slice_in_dim(x, value, index * b, axis=axis)


def _forward(q, k, v, mask, b, causal, n_queries, n_keys):
    """Output ``[..., Tp, K]`` and log-sum-exp ``[..., Tp]`` of padded inputs, tile by tile."""
    dtype = _accumulator_dtype(q, k, v)
    lead_t = q.shape[:-1]
    init = (jnp.full(lead_t, -jnp.inf, dtype), jnp.zeros(lead_t, dtype), jnp.zeros((*lead_t, v.shape[-1]), dtype))

    def step(carry, ij):
        m, ell, acc = carry
        i, j = ij[0], ij[1]
        keep = _tile_keep(i, j, b, n_queries, n_keys, causal, mask)
        x = _masked_scores(_block(q, i, b, -2), _block(k, j, b, -2), keep, dtype)
        mi, li, ai = _update(_block(m, i, b, -1), _block(ell, i, b, -1), _block(acc, i, b, -2), x,
                             _block(v, j, b, -2))
        return (_put(m, mi, i, b, -1), _put(ell, li, i, b, -1), _put(acc, ai, i, b, -2)), None

    grid = jnp.asarray(tiles(n_queries, n_keys, b, causal=causal))
    (m, ell, acc), _ = jax.lax.scan(step, init, grid)
    seen = ell > 0
    out = acc / jnp.where(seen, ell, 1.0)[..., None]
    lse = jnp.where(seen, m + jnp.log(jnp.where(seen, ell, 1.0)), 0.0)  # 0 where no key is seen: unused
    return out.astype(jnp.result_type(q, k, v)), lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def _flash(q, k, v, mask, b, causal, n_queries, n_keys):
    return _forward(q, k, v, mask, b, causal, n_queries, n_keys)[0]


def _flash_fwd(q, k, v, mask, b, causal, n_queries, n_keys):
    out, lse = _forward(q, k, v, mask, b, causal, n_queries, n_keys)
    return out, (q, k, v, mask, out, lse)


def _flash_bwd(b, causal, n_queries, n_keys, residuals, d_out):
    r"""Tile by tile: :math:`P = e^{X - \mathrm{lse}}`, :math:`dV \mathrel{+}= P^\top dO`,
    :math:`dS = P \circ (dO V^\top - D)` with :math:`D = \operatorname{rowsum}(dO \circ O)`,
    :math:`dQ \mathrel{+}= dS\, K / \sqrt K`, :math:`dK \mathrel{+}= dS^\top Q / \sqrt K`."""
    q, k, v, mask, out, lse = residuals
    dtype = _accumulator_dtype(q, k, v)
    d_out = d_out.astype(dtype)
    big_d = jnp.sum(d_out * out.astype(dtype), axis=-1)  # [..., Tp]
    scale = 1.0 / math.sqrt(q.shape[-1])
    init = (jnp.zeros(q.shape, dtype), jnp.zeros(k.shape, dtype), jnp.zeros(v.shape, dtype))

    def step(carry, ij):
        dq, dk, dv = carry
        i, j = ij[0], ij[1]
        keep = _tile_keep(i, j, b, n_queries, n_keys, causal, mask)
        qi, kj, vj, doi = _block(q, i, b, -2), _block(k, j, b, -2), _block(v, j, b, -2), _block(d_out, i, b, -2)
        p = jnp.exp(_masked_scores(qi, kj, keep, dtype) - _block(lse, i, b, -1)[..., None])
        dv_j = _block(dv, j, b, -2) + jnp.einsum("...ts,...tk->...sk", p, doi)
        dp = jnp.einsum("...tk,...sk->...ts", doi, vj, preferred_element_type=dtype)
        ds = p * (dp - _block(big_d, i, b, -1)[..., None])
        dq_i = _block(dq, i, b, -2) + jnp.einsum("...ts,...sk->...tk", ds, kj.astype(dtype)) * scale
        dk_j = _block(dk, j, b, -2) + jnp.einsum("...ts,...tk->...sk", ds, qi.astype(dtype)) * scale
        return (_put(dq, dq_i, i, b, -2), _put(dk, dk_j, j, b, -2), _put(dv, dv_j, j, b, -2)), None

    grid = jnp.asarray(tiles(n_queries, n_keys, b, causal=causal))
    (dq, dk, dv), _ = jax.lax.scan(step, init, grid)
    return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _check_inputs(q, k, v, mask, causal):
    check_rank("q", q, min_rank=2, axes="[..., T, K]")
    check_rank("k", k, min_rank=2, axes="[..., S, K]")
    check_rank("v", v, min_rank=2, axes="[..., S, K]")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same width K: expected k of shape [..., S, {q.shape[-1]}] "
                         f"to match q {tuple(q.shape)}, got k {tuple(k.shape)}")
    if q.shape[:-2] != k.shape[:-2]:
        raise ValueError(f"q and k must have the same leading axes: expected k of shape "
                         f"{tuple(q.shape[:-2])} + [S, K], got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if v.shape[:-1] != k.shape[:-1]:
        raise ValueError(f"v must have one row per key: expected v of shape {tuple(k.shape[:-1])} + [K], "
                         f"got {tuple(v.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal: expected a Python bool, got {causal!r}")
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    if n_queries == 0 or n_keys == 0:
        raise ValueError(f"expected at least one query and one key, got T = {n_queries}, S = {n_keys}")
    if causal and n_keys < n_queries:
        raise ValueError(f"causal attention: expected at least as many keys as queries, T = {n_queries}, "
                         f"got S = {n_keys} keys")
    if mask is not None:
        scores = (*q.shape[:-2], n_queries, n_keys)
        m = tuple(jnp.shape(mask))
        ok = len(m) >= 2 and m[-2:] == scores[-2:] and len(m) <= len(scores)
        if ok:
            try:
                jnp.broadcast_shapes(m, scores)
            except ValueError:
                ok = False
        if not ok:
            raise ValueError(f"mask: expected shape [..., T, S] = [..., {n_queries}, {n_keys}] broadcastable "
                             f"to the scores {scores}, got {m}")
        if jnp.result_type(mask) != jnp.bool_:
            raise TypeError(f"mask: expected a boolean array, got dtype {jnp.result_type(mask)}")


@implements("flash.attention")
def flash_attention(q, k, v, mask=None, *, block_size: int = 128, causal: bool = False):
    r"""Scaled dot-product attention :math:`\operatorname{softmax}(Q K^\top / \sqrt{K}, M)\, V`, tile by tile.

    The same function as :func:`model.attention.sdpa`, computed without the ``T x S``
    score matrix: a ``lax.scan`` visits the tiles of ``block_size`` queries by
    ``block_size`` keys (:func:`tiles`; with ``causal`` the tiles above the diagonal are
    skipped) and updates each query's running maximum, sum and accumulator
    (:func:`online_softmax`'s recurrence).  The backward pass (``jax.custom_vjp``) stores
    only :math:`O` and :math:`\mathrm{lse} = m + \log \ell` per query and, tile by tile,

    .. math::
        P = e^{X - \mathrm{lse}},\ dV \mathrel{+}= P^\top dO,\
        dS = P \circ (dO\, V^\top - D),\ D = \operatorname{rowsum}(dO \circ O),\
        dQ \mathrel{+}= dS\, K / \sqrt K,\ dK \mathrel{+}= dS^\top Q / \sqrt K.

    Memory is :math:`O(T K + S K)` plus one tile per leading index, forward and backward.

    Args:
        q: queries ``[..., T, K]``.
        k: keys ``[..., S, K]``.
        v: values ``[..., S, K]`` (their width may differ from K).
        mask: optional boolean ``[..., T, S]`` (leading axes may be 1 or absent); ``True``
            attends.  It is an input of ``T x S`` booleans: ``causal=True`` masks without one.
        block_size: queries and keys per tile (a static int); T and S need not be multiples
            of it (they are padded inside); clamped to ``max(T, S)``.
        causal: query ``t`` sees keys ``s <= t + S - T`` only (the queries are the last T of
            S positions, as :func:`model.attention.causal_mask`); needs ``S >= T``.

    Returns:
        outputs ``[..., T, K]``; a query that sees no key gets zeros.

    Derivations: ``flash.attention`` (forward and gradients); the recurrence is
    ``flash.online_softmax``.

    References: Dao et al., "FlashAttention", NeurIPS 2022, algorithm 1; Dao,
    "FlashAttention-2", 2023, algorithm 2 (the backward pass with D = rowsum(dO ∘ O)).

    >>> import jax.numpy as jnp
    >>> x = jnp.eye(3)
    >>> flash_attention(x, x, x, block_size=2, causal=True)[0].tolist()
    [1.0, 0.0, 0.0]
    """
    _check_inputs(q, k, v, mask, causal)
    check_positive_int("block_size", block_size)
    n_queries, n_keys = q.shape[-2], k.shape[-2]
    b = min(block_size, max(n_queries, n_keys))
    t_pad, s_pad = -(-n_queries // b) * b, -(-n_keys // b) * b
    q_p = _pad_axis(q, -2, t_pad, 0)
    k_p = _pad_axis(k, -2, s_pad, 0)
    v_p = _pad_axis(v, -2, s_pad, 0)
    if mask is not None:
        mask = jnp.reshape(mask, (1,) * (q.ndim - jnp.ndim(mask)) + tuple(jnp.shape(mask)))
        mask = _pad_axis(_pad_axis(mask, -2, t_pad, False), -1, s_pad, False)
    out = _flash(q_p, k_p, v_p, mask, b, causal, n_queries, n_keys)
    return out[..., :n_queries, :]
