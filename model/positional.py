r"""Positional encoding (week 10): sinusoidal encodings and rotary position embedding (RoPE).

Axis letters: T query positions, S key positions, D model width (even), H heads,
K head width (even).  Neither has parameters, so there is no NNX module here;
``base`` (10000 in both papers) is an argument, never a constant of the code.

Sinusoidal encoding, added to the token embeddings:

.. math:: \mathrm{PE}(p, 2i) = \sin(p\,\omega_i), \quad \mathrm{PE}(p, 2i+1) = \cos(p\,\omega_i),
          \quad \omega_i = \mathrm{base}^{-2i/D}

RoPE, applied to the queries and keys of every head: the column pair ``(2i, 2i+1)``
of a head vector at position ``p`` is turned by the angle :math:`p\,\theta_i`,
:math:`\theta_i = \mathrm{base}^{-2i/K}`.  For attention, build the tables once per
forward pass with :func:`rotary_tables` and apply them to ``q`` and ``k`` of shape
``[B, H, T, K]`` with :func:`apply_rotary`; :func:`rotary` does both for one array.
"""

from __future__ import annotations

import jax.numpy as jnp

from model.equation import implements
from model.validate import check_positive_int, check_rank

__all__ = ["frequencies", "sinusoidal_encoding", "shift_rotation", "encoding_gram", "rotary_tables",
           "apply_rotary", "rotary", "rotary_scores"]


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


# --- rotary position embedding (RoPE) ---------------------------------------------------------


def _check_head_width(name: str, k) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2:
        raise ValueError(f"{name}: expected an even positive head width K (the columns pair up), got {k!r}")


def rotary_tables(p, *, head_dim: int, base: float, dtype=jnp.float32):
    r"""The cosines and sines of the RoPE angles :math:`p\,\theta_i`, :math:`\theta_i = \mathrm{base}^{-2i/K}`.

    Computed once per forward pass and shared by the queries and keys of every head and
    layer (:func:`apply_rotary`).  The angles are :func:`frequencies` with ``d_model = K``.

    Args:
        p: positions ``[..., T]``, integers (or real); they may be traced (e.g.
            ``start + arange(T)`` in a jitted decoding loop).
        head_dim: K, even.
        base: the base of the geometric frequencies (10000 in RoFormer).
        dtype: the floating dtype of the tables (float32 by default, also for bfloat16
            models: the angle is then rounded once, to float32).

    Returns:
        ``(cos, sin)``, each ``[..., T, K/2]``.

    In float32 an angle :math:`p\,\theta_i` is rounded to a relative :math:`2^{-24}`, so the
    tables are off by about :math:`p \cdot 2^{-24}` at position ``p``.

    >>> import jax.numpy as jnp
    >>> cos, sin = rotary_tables(jnp.arange(3), head_dim=4, base=10000.0)
    >>> cos.shape, [round(v, 4) for v in sin[1].tolist()]
    ((3, 2), [0.8415, 0.01])
    """
    _check_head_width("head_dim", head_dim)
    _check_width_and_base(head_dim, base)
    check_rank("p", p, min_rank=1, axes="[..., T]")
    p = _as_real("p", p, dtype)
    angle = _angles(p, head_dim, base, dtype)                     # [..., T, K/2]
    return jnp.cos(angle), jnp.sin(angle)


def _check_tables(x_shape: tuple[int, ...], cos, sin) -> None:
    """``cos`` and ``sin`` are ``[..., T, K/2]`` and broadcast against ``x [..., T, K]`` (its last axis halved)."""
    c, s = tuple(jnp.shape(cos)), tuple(jnp.shape(sin))
    if c != s:
        raise ValueError(f"cos, sin: expected the same shape [..., T, K/2], got cos {c} and sin {s}")
    half, t = x_shape[-1] // 2, x_shape[-2]
    if len(c) < 2 or c[-1] != half:
        raise ValueError(f"cos: expected shape [..., T, K/2] with K/2 = {half} (x has shape {x_shape}), got {c}")
    if c[-2] not in (1, t):
        raise ValueError(f"cos: expected T = {t} positions along axis -2 (x has shape {x_shape}), got {c}")
    if len(c) > len(x_shape):
        raise ValueError(f"cos: expected at most the rank of x {x_shape} (rank {len(x_shape)}), got {c}")
    try:
        jnp.broadcast_shapes(c[:-2], x_shape[:-2])
    except ValueError:
        raise ValueError(f"cos: expected leading axes {c[:-2]} that broadcast against those of x "
                         f"{x_shape[:-2]} (x has shape {x_shape}); got shape {c}") from None


def apply_rotary(x, cos, sin):
    r"""Rotate the column pairs of ``x`` by the angles of the tables: RoPE with precomputed tables.

    .. math:: \begin{pmatrix} x'_{2i} \\ x'_{2i+1} \end{pmatrix}
              = \begin{pmatrix} \cos p\theta_i & -\sin p\theta_i \\ \sin p\theta_i & \cos p\theta_i \end{pmatrix}
                \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix}

    ``cos`` and ``sin`` come from :func:`rotary_tables`; their leading axes broadcast
    against those of ``x`` (aligned from the right, explicitly: no rank promotion), so
    one ``[T, K/2]`` table serves ``q`` and ``k`` of shape ``[B, H, T, K]``, and per-batch
    positions ``[B, T, K/2]`` serve ``[B, H, T, K]`` as ``cos[:, None]``.  The pairs are
    adjacent columns (the RoFormer layout), not the two halves of the head.

    Args:
        x: ``[..., T, K]``, floating, K even.
        cos, sin: ``[..., T, K/2]`` each (T may be 1, for one position shared by all rows).

    Returns:
        the rotated ``x``, ``[..., T, K]``, in the dtype of ``x`` (computed in the wider of
        the two dtypes, then cast back).

    Raises:
        ValueError: odd K, mismatched tables (named, expected and actual shapes).
        TypeError: a non-floating ``x``.

    This is the arithmetic of :func:`rotary` (derivation ``positional.rotary``) with the
    tables passed in.

    >>> import jax.numpy as jnp
    >>> cos, sin = rotary_tables(jnp.array([1]), head_dim=2, base=10000.0)
    >>> [round(v, 4) for v in apply_rotary(jnp.array([[1.0, 0.0]]), cos, sin)[0].tolist()]
    [0.5403, 0.8415]
    """
    check_rank("x", x, min_rank=2, axes="[..., T, K]")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x: expected a floating array [..., T, K], got dtype {x.dtype}")
    shape = tuple(x.shape)
    _check_head_width("x: the head width K = x.shape[-1]", shape[-1])
    _check_tables(shape, cos, sin)
    wide = jnp.promote_types(x.dtype, jnp.result_type(cos))
    half_shape = shape[:-1] + (shape[-1] // 2,)
    c = jnp.broadcast_to(jnp.asarray(cos, wide), half_shape)
    s = jnp.broadcast_to(jnp.asarray(sin, wide), half_shape)
    pairs = x.astype(wide).reshape(half_shape + (2,))            # [..., T, K/2, 2]: (x_2i, x_2i+1)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * c - odd * s, even * s + odd * c], axis=-1)
    return rotated.reshape(shape).astype(x.dtype)


@implements("positional.rotary")
def rotary(x, p, *, base: float):
    r"""Rotary position embedding: turn column pair ``(2i, 2i+1)`` of row ``t`` by the angle :math:`p_t\,\theta_i`.

    .. math:: x'_{t,2i} = x_{t,2i} \cos p_t\theta_i - x_{t,2i+1} \sin p_t\theta_i, \qquad
              x'_{t,2i+1} = x_{t,2i} \sin p_t\theta_i + x_{t,2i+1} \cos p_t\theta_i, \qquad
              \theta_i = \mathrm{base}^{-2i/K}

    A rotation per pair: lengths are kept, position 0 is the identity, and the score of
    a rotated query and key depends on their offset only (``positional.rotary_relative``).
    It is :func:`rotary_tables` then :func:`apply_rotary`; inside attention, build the
    tables once and call :func:`apply_rotary` on ``q`` and ``k``.

    Args:
        x: head vectors ``[..., T, K]``, floating, K even (e.g. ``[B, H, T, K]``).
        p: their positions ``[T]`` (or ``[..., T]`` broadcasting against the leading axes of
            ``x``), integers (or real).
        base: the base of the frequencies (10000 in RoFormer).

    Returns:
        ``[..., T, K]``, in the dtype of ``x``; the angles are float32 (or wider, with a wider ``x``).

    Derivation: ``positional.rotary``.

    References: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, §3.4.

    >>> import jax.numpy as jnp
    >>> x = jnp.ones((3, 4))
    >>> bool(jnp.array_equal(rotary(x, jnp.zeros(3, jnp.int32), base=10000.0), x))
    True
    """
    check_rank("x", x, min_rank=2, axes="[..., T, K]")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x: expected a floating array [..., T, K], got dtype {x.dtype}")
    k = x.shape[-1]
    _check_head_width("x: the head width K = x.shape[-1]", k)
    cos, sin = rotary_tables(p, head_dim=k, base=base, dtype=jnp.promote_types(x.dtype, jnp.float32))
    return apply_rotary(x, cos, sin)


@implements("positional.rotary_relative")
def rotary_scores(q, p, k, s, *, base: float):
    r"""Scores of RoPE-rotated queries and keys: :math:`g_{tu} = \langle R(p_t)\,q_t,\; R(s_u)\,k_u \rangle`.

    .. math:: g_{tu} = \langle R(p_t)\,q_t,\; R(s_u)\,k_u \rangle = \langle q_t,\; R(s_u - p_t)\,k_u \rangle

    computed as attention computes it (rotate with :func:`rotary`, then dot products),
    while the derivation states the right side: the score depends on the offset
    :math:`s_u - p_t` only.  Attention divides these by :math:`\sqrt K` before the softmax.

    Args:
        q: queries ``[..., T, K]``.
        p: their positions ``[T]``.
        k: keys ``[..., S, K]`` (the same leading axes and K as ``q``).
        s: their positions ``[S]``.
        base: the base of the frequencies.

    Returns:
        ``g`` of shape ``[..., T, S]``.

    Derivation: ``positional.rotary_relative``.

    References: Su et al., 2021, §3.4.2, equations (14)-(16).

    >>> import jax.numpy as jnp
    >>> q, k = jnp.array([[1.0, 2.0, 0.5, -1.0]]), jnp.array([[0.3, -0.7, 2.0, 1.0]])
    >>> a = rotary_scores(q, jnp.array([3]), k, jnp.array([5]), base=10000.0)
    >>> b = rotary_scores(q, jnp.array([103]), k, jnp.array([105]), base=10000.0)
    >>> bool(jnp.allclose(a, b, atol=1e-4))
    True
    """
    check_rank("q", q, min_rank=2, axes="[..., T, K]")
    check_rank("k", k, min_rank=2, axes="[..., S, K]")
    q_shape, k_shape = tuple(jnp.shape(q)), tuple(jnp.shape(k))
    if q_shape[:-2] != k_shape[:-2] or q_shape[-1] != k_shape[-1]:
        raise ValueError(f"k: expected shape [..., S, K] = [{', '.join(map(str, q_shape[:-2] + ('S',)))}, "
                         f"{q_shape[-1]}] (the leading axes and K of q {q_shape}), got {k_shape}")
    return jnp.einsum("...tk,...sk->...ts", rotary(q, p, base=base), rotary(k, s, base=base))
