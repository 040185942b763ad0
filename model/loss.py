"""The language-modelling objective (week 1): next-token cross-entropy and perplexity.

Axis letters: T positions, V vocabulary; any leading axes (batch ``B``) are
carried through unchanged as ``...``.

Out-of-range targets.  A JAX gather clamps an index outside ``[0, V)`` to the
nearest valid one, which would silently score the wrong token.  Both functions
therefore (1) check concrete targets (not traced, i.e. called outside ``jax.jit``)
and raise a ``ValueError`` naming the bad value and ``V``, and (2) under
``jax.jit``, where values cannot be checked before tracing, return NaN for every
sequence that contains an out-of-range target, so the error shows in the loss
instead of hiding in it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from model.equation import implements
from model.validate import check_rank

__all__ = ["cross_entropy", "perplexity"]


def _check(logits, targets) -> int:
    """Validate shapes, dtype and (when concrete) the range of the targets; return V."""
    check_rank("logits", logits, min_rank=2, axes="[..., T, V]")
    lshape, tshape = tuple(jnp.shape(logits)), tuple(jnp.shape(targets))
    if tshape != lshape[:-1]:
        raise ValueError(
            f"targets: expected shape [..., T] = {lshape[:-1]} to match logits {lshape}, got {tshape}")
    if not jnp.issubdtype(jnp.result_type(targets), jnp.integer):
        raise TypeError(f"targets: expected integer token ids, got dtype {jnp.result_type(targets)}")
    v = lshape[-1]
    if not isinstance(targets, jax.core.Tracer) and np.size(targets):
        ids = np.asarray(targets)
        bad = ids[(ids < 0) | (ids >= v)]
        if bad.size:
            raise ValueError(f"targets: expected token ids in [0, V) = [0, {v}), got {int(bad.flat[0])}")
    return v


@implements("loss.cross_entropy")
def cross_entropy(logits, targets):
    r"""Next-token cross-entropy averaged over positions.

    .. math::
        L = \frac1T \sum_t -\log \operatorname{softmax}(z_t)_{y_t}
          = \frac1T \sum_t \Bigl(\log \sum_v e^{z_{tv}} - z_{t y_t}\Bigr)

    computed as logsumexp minus the target logit, with the row maximum subtracted
    first (stable for any logits).  The gradient with respect to the logits is
    :math:`(\operatorname{softmax}(z) - \operatorname{onehot}(y)) / T`.

    Args:
        logits: :math:`z`, ``[..., T, V]``.
        targets: :math:`y`, integer token ids ``[..., T]`` in ``[0, V)``.

    Returns:
        the loss per sequence, ``[...]`` (a scalar for ``[T, V]`` logits); average it
        over the batch axes for a training loss.

    Raises:
        ValueError: shapes that do not match, or (concrete) targets outside ``[0, V)``;
            under ``jax.jit`` a sequence with such a target gives NaN instead (see the module docstring).
        TypeError: targets that are not integers.

    Derivation: ``loss.cross_entropy``.

    >>> import jax.numpy as jnp
    >>> round(float(cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))), 6)  # log 4
    1.386294
    """
    v = _check(logits, targets)
    peak = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shifted = logits - peak
    lse_T = jnp.log(jnp.sum(jnp.exp(shifted), axis=-1))
    valid_T = (targets >= 0) & (targets < v)
    safe_T = jnp.where(valid_T, targets, 0)
    picked_T = jnp.take_along_axis(shifted, safe_T[..., None], axis=-1)[..., 0]
    nll_T = jnp.where(valid_T, lse_T - picked_T, jnp.nan)
    return jnp.mean(nll_T, axis=-1)


@implements("loss.perplexity")
def perplexity(logits, targets):
    r"""Perplexity, the exponential of the mean next-token cross-entropy: :math:`\exp(L)`.

    It is 1 for certain, correct predictions and ``V`` for uniform logits.

    Args:
        logits: ``[..., T, V]``.
        targets: integer token ids ``[..., T]`` in ``[0, V)``.

    Returns:
        the perplexity per sequence, ``[...]``.

    Derivation: ``loss.perplexity``.

    >>> import jax.numpy as jnp
    >>> round(float(perplexity(jnp.zeros((3, 5)), jnp.array([0, 1, 4]))), 4)
    5.0
    """
    return jnp.exp(cross_entropy(logits, targets))
