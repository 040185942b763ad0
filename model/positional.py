r"""Sinusoidal positional encoding (week 10): the encoding, its shift rotation, and its Gram matrix.

Axis letters: T positions, D model width (even).  The encoding has no parameters,
so there is no NNX module here; ``base`` (10000 in the paper) is an argument,
never a constant of the code.

.. math:: \mathrm{PE}(p, 2i) = \sin(p\,\omega_i), \quad \mathrm{PE}(p, 2i+1) = \cos(p\,\omega_i),
          \quad \omega_i = \mathrm{base}^{-2i/D}
"""

from __future__ import annotations

import jax.numpy as jnp

from model.equation import implements
from model.validate import check_positive_int, check_rank

__all__ = ["frequencies", "sinusoidal_encoding", "shift_rotation", "encoding_gram"]


def _check_width_and_base(d_model, base) -> None:
    check_positive_int("d_model", d_model)
    if d_model % 2:
        raise ValueError(f"d_model: expected an even width D (sin/cos pairs), got {d_model}")
    if isinstance(base, (int, float)) and not (base > 0 and base != float("inf")):
        raise ValueError(f"base: expected a finite number > 0, got {base!r}")


def _as_real(name: str, a, dtype):
    """Positions or offsets as ``dtype``: integer or real input only (a bool or complex array is a mistake)."""
    a = jnp.asarray(a)
    if not (jnp.issubdtype(a.dtype, jnp.integer) or jnp.issubdtype(a.dtype, jnp.floating)):
        raise TypeError(f"{name}: expected integer (or real) positions, got dtype {a.dtype}")
    return a.astype(dtype)


def frequencies(*, d_model: int, base: float, dtype=jnp.float32):
    r"""The angular frequencies :math:`\omega_i = \mathrm{base}^{-2i/D}`, ``i = 0 .. D/2 - 1``, shape ``[D/2]``.

    They fall geometrically from 1 to :math:`\mathrm{base}^{-(D-2)/D}`: wavelengths from
    :math:`2\pi` to almost :math:`2\pi\,\mathrm{base}`.
    """
    _check_width_and_base(d_model, base)
    two_i = jnp.arange(0, d_model, 2, dtype=dtype)
    return jnp.power(jnp.asarray(base, dtype), -two_i / d_model)


def _angles(a, d_model, base, dtype):
    """``a[..., None] * omega``: shape ``[..., D/2]``, broadcast explicitly (no rank promotion)."""
    omega = frequencies(d_model=d_model, base=base, dtype=dtype)
    return a[..., None] * omega.reshape((1,) * a.ndim + omega.shape)


@implements("positional.sinusoidal")
def sinusoidal_encoding(p, *, d_model: int, base: float, dtype=jnp.float32):
    r"""Sinusoidal positional encoding, sine in even and cosine in odd columns.

    .. math:: \mathrm{PE}(p, 2i) = \sin\bigl(p / \mathrm{base}^{2i/D}\bigr), \qquad
              \mathrm{PE}(p, 2i+1) = \cos\bigl(p / \mathrm{base}^{2i/D}\bigr)

    Args:
        p: positions ``[..., T]``, integers (real values are accepted too: the formula is
            defined for any real position).
        d_model: D, even.
        base: the base of the geometric frequencies (10000 in the paper).
        dtype: the floating dtype of the result.

    Returns:
        the encodings ``[..., T, D]``.

    In float32 the angle :math:`p\,\omega_i` is rounded to a relative :math:`2^{-24}`, so an
    entry is off by about :math:`p \cdot 2^{-24}` at position ``p`` (``~6e-4`` at 10^4).

    Derivation: ``positional.sinusoidal``.

    References: Vaswani et al., "Attention Is All You Need", 2017, section 3.5.

    >>> import jax.numpy as jnp
    >>> sinusoidal_encoding(jnp.array([0]), d_model=4, base=10000.0).tolist()
    [[0.0, 1.0, 0.0, 1.0]]
    """
    _check_width_and_base(d_model, base)
    check_rank("p", p, min_rank=1, axes="[..., T]")
    p = _as_real("p", p, dtype)
    angle = _angles(p, d_model, base, dtype)                      # [..., T, D/2]
    pe = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1)    # [..., T, D/2, 2]: sin, cos interleaved
    return pe.reshape(p.shape + (d_model,))


@implements("positional.shift_rotation")
def shift_rotation(k, *, d_model: int, base: float, dtype=jnp.float32):
    r"""The rotation :math:`R(k)` with :math:`\mathrm{PE}(p + k) = R(k)\,\mathrm{PE}(p)` for every ``p``.

    .. math:: R(k) = \operatorname{diag}_i \begin{pmatrix} \cos k\omega_i & \sin k\omega_i \\
              -\sin k\omega_i & \cos k\omega_i \end{pmatrix}, \qquad \omega_i = \mathrm{base}^{-2i/D}

    Block-diagonal with one 2x2 rotation per frequency; it depends on the offset ``k``
    only, not on ``p``: shifting a position is a linear map of its encoding.
    With encodings as rows (``[T, D]``), ``PE(p + k) = PE(p) R(k)ᵀ``.

    Args:
        k: offsets, a scalar or ``[...]``, integers (or real).
        d_model: D, even.
        base: the base of the frequencies, as in :func:`sinusoidal_encoding`.
        dtype: the floating dtype of the result.

    Returns:
        ``R(k)`` of shape ``[..., D, D]``.

    Derivation: ``positional.shift_rotation``.

    >>> import jax.numpy as jnp
    >>> pe = lambda p: sinusoidal_encoding(jnp.array([p]), d_model=8, base=10000.0)[0]
    >>> bool(jnp.allclose(shift_rotation(3, d_model=8, base=10000.0) @ pe(5), pe(8), atol=1e-6))
    True
    """
    _check_width_and_base(d_model, base)
    k = _as_real("k", k, dtype)
    angle = _angles(k, d_model, base, dtype)                       # [..., D/2]
    c, s = jnp.cos(angle), jnp.sin(angle)
    blocks = jnp.stack([jnp.stack([c, s], axis=-1), jnp.stack([-s, c], axis=-1)], axis=-2)  # [..., D/2, 2, 2]
    half = d_model // 2
    eye = jnp.eye(half, dtype=dtype).reshape((1,) * k.ndim + (half, 1, half, 1))
    r = blocks[..., :, :, None, :] * eye                           # [..., D/2, 2, D/2, 2], block (i, j) zero off i = j
    return r.reshape(k.shape + (d_model, d_model))


@implements("positional.relative")
def encoding_gram(p, *, d_model: int, base: float, dtype=jnp.float32):
    r"""The Gram matrix of the encodings, :math:`G = \mathrm{PE}\,\mathrm{PE}^\top`.

    .. math:: G_{st} = \mathrm{PE}(p_s) \cdot \mathrm{PE}(p_t)
              = \sum_{i=0}^{D/2-1} \cos\bigl((p_s - p_t)\,\omega_i\bigr)

    The dot product of two encodings depends on the offset :math:`p_s - p_t` only, so for
    ``p = 0 .. T-1`` the matrix is constant along its diagonals (Toeplitz) and
    ``G_{tt} = D/2``.  Plotting a row against ``p_s - p_t`` shows how similarity decays with distance.

    Args:
        p: positions ``[..., T]``.
        d_model: D, even.
        base: the base of the frequencies.
        dtype: the floating dtype of the encodings.

    Returns:
        ``G`` of shape ``[..., T, T]``.

    Derivation: ``positional.relative``.

    >>> import jax.numpy as jnp
    >>> g = encoding_gram(jnp.arange(4), d_model=8, base=10000.0)
    >>> round(float(g[0, 0]), 5), bool(jnp.allclose(g[0, 1], g[2, 3], atol=1e-6))
    (4.0, True)
    """
    pe = sinusoidal_encoding(p, d_model=d_model, base=base, dtype=dtype)
    return jnp.einsum("...td,...sd->...ts", pe, pe)
