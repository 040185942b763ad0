"""Similarity of vectors (week 5): the dot product and cosine similarity.

Axis letters: D the width of the vectors (the model width); any leading axes
``...`` are batch axes.  The leading axes of the two arguments broadcast against
each other explicitly (so one query ``[D]`` can be compared with every row of an
embedding table ``[V, D]``); the last axes must match.
"""

from __future__ import annotations

import jax.numpy as jnp

from model.equation import implements
from model.validate import check_rank

__all__ = ["dot", "cosine_similarity"]


def _broadcast_pair(a, b):
    """Validate ``a [..., D]`` and ``b [..., D]`` and broadcast them to one shape explicitly."""
    check_rank("a", a, min_rank=1, axes="[..., D]")
    check_rank("b", b, min_rank=1, axes="[..., D]")
    a_shape, b_shape = tuple(jnp.shape(a)), tuple(jnp.shape(b))
    if a_shape[-1] != b_shape[-1]:
        raise ValueError(
            f"a and b must have the same width D: expected b of shape [..., {a_shape[-1]}] to match "
            f"a {a_shape}, got b {b_shape}")
    try:
        lead = jnp.broadcast_shapes(a_shape[:-1], b_shape[:-1])
    except ValueError:
        raise ValueError(
            f"the leading axes of a and b must broadcast: got a {a_shape} and b {b_shape}") from None
    shape = (*lead, a_shape[-1])
    return jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)


@implements("similarity.dot")
def dot(a, b):
    r"""Dot product of vectors along the last axis, :math:`a \cdot b = \sum_{j=0}^{D-1} a_j b_j`.

    Symmetric and linear in each argument; :math:`|a \cdot b| \le \lVert a\rVert \lVert b\rVert`
    (Cauchy-Schwarz), and :math:`a \cdot b = \lVert a\rVert \lVert b\rVert \cos\theta`.
    The products are summed elementwise (not through a matrix multiply), so the result
    is float32-accurate on every backend whatever the default matmul precision.

    Args:
        a: vectors ``[..., D]``.
        b: vectors ``[..., D]``; leading axes broadcast against those of ``a``.

    Returns:
        dot products ``[...]`` (the broadcast leading axes).

    Derivation: ``similarity.dot``.

    >>> import jax.numpy as jnp
    >>> float(dot(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, -5.0, 6.0])))
    12.0
    """
    a, b = _broadcast_pair(a, b)
    return jnp.sum(a * b, axis=-1)


@implements("similarity.cosine")
def cosine_similarity(a, b):
    r"""Cosine similarity :math:`\cos(a, b) = \dfrac{a \cdot b}{\lVert a\rVert\,\lVert b\rVert}`.

    The cosine of the angle between ``a`` and ``b``: 1 for vectors pointing the same way,
    0 for orthogonal ones, −1 for opposite ones, unchanged when either vector is scaled by
    a positive number.  :math:`|\cos(a, b)| \le 1` (Cauchy-Schwarz).  In floating point the
    ratio of nearly parallel vectors can round a few ulps past ±1; it is clipped to
    :math:`[-1, 1]`, so ``arccos`` of the result is always defined.  (The clip changes only
    rounding error, where the true gradient is zero anyway: ±1 are the extremes of the cosine.)

    **Zero vectors**: the ratio is undefined when ``a`` or ``b`` is zero; this function
    returns 0 there (chosen with ``jnp.where``, so neither the value nor the gradient is NaN).

    Args:
        a: vectors ``[..., D]``.
        b: vectors ``[..., D]``; leading axes broadcast against those of ``a``.

    Returns:
        cosine similarities ``[...]`` in :math:`[-1, 1]`.

    Derivation: ``similarity.cosine``.

    References: Manning, Raghavan and Schütze, *Introduction to Information Retrieval*, 2008, §6.3.1.

    >>> import jax.numpy as jnp
    >>> round(float(cosine_similarity(jnp.array([1.0, 0.0]), jnp.array([3.0, 3.0]))), 6)  # cos 45°
    0.707107
    >>> float(cosine_similarity(jnp.zeros(2), jnp.array([1.0, 2.0])))
    0.0
    """
    a, b = _broadcast_pair(a, b)
    ab = jnp.sum(a * b, axis=-1)
    aa = jnp.sum(a * a, axis=-1)
    bb = jnp.sum(b * b, axis=-1)
    nonzero = (aa > 0) & (bb > 0)
    # sqrt of a safe value where a vector is zero: no division by zero, no infinite gradient
    norms = jnp.sqrt(jnp.where(nonzero, aa, 1.0)) * jnp.sqrt(jnp.where(nonzero, bb, 1.0))
    return jnp.where(nonzero, jnp.clip(ab / norms, -1.0, 1.0), 0.0)
