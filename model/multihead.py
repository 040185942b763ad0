"""Multi-head self-attention (week 8): split into heads, attend, concatenate, project.

Axis letters: T positions, D model width, H heads, K = D / H head width; any
leading axes ``...`` (batch ``B``) are carried through.  Head ``h`` owns the
columns ``hK .. (h+1)K - 1`` of :math:`W_Q, W_K, W_V` and the rows ``hK .. (h+1)K - 1``
of :math:`W_O`; :func:`split_heads` and :func:`merge_heads` move between the
``[..., T, D]`` layout and the per-head ``[..., H, T, K]`` layout by a reshape, and
the attention of every head is :func:`model.attention.sdpa`.

Hooks for a decoder (all optional, all off by default, so the registered equations are
unchanged): ``rope``, a callable applied to the per-head queries and keys
``[..., H, T, K]`` before the scores (rotary position embedding plugs in here); biases
that may be ``None`` (configurations without biases); and key/value-cache decoding,
:func:`multi_head_attention_cached` with a cache ``[..., H, S, K]`` of S positions from
:func:`empty_kv_cache`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from model.attention import sdpa
from model.equation import implements
from model.validate import add_bias, check_divisible, check_positive_int, check_rank, check_shape

__all__ = ["split_heads", "merge_heads", "output_projection", "multi_head_attention",
           "multi_head_attention_cached", "empty_kv_cache", "MultiHeadAttention", "param_count"]

_PARAMS = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")
_KERNEL_INIT = nnx.initializers.xavier_uniform()  # Glorot and Bengio, 2010
_BIAS_INIT = nnx.initializers.zeros_init()


def _check_heads(d_model: int, n_heads) -> int:
    """``n_heads`` is a positive int dividing ``d_model``; returns the head width K."""
    check_positive_int("n_heads", n_heads)
    check_divisible("d_model", d_model, "n_heads", n_heads)
    return d_model // n_heads


def split_heads(x, n_heads: int):
    r"""Split the width into heads: ``[..., T, D] -> [..., H, T, K]`` with ``K = D / H``.

    Entry ``[..., h, t, k]`` is ``x[..., t, h*K + k]``: head ``h`` gets the column block
    ``hK .. (h+1)K - 1``, so for a projection :math:`x W` head ``h`` holds :math:`x W^{(h)}`.

    Args:
        x: ``[..., T, D]``.
        n_heads: H, which must divide D.

    Returns:
        ``[..., H, T, K]``.

    >>> import jax.numpy as jnp
    >>> split_heads(jnp.arange(4.0).reshape(1, 4), 2).tolist()
    [[[0.0, 1.0]], [[2.0, 3.0]]]
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    *lead, t, d = jnp.shape(x)
    k = _check_heads(d, n_heads)
    return jnp.swapaxes(jnp.reshape(x, (*lead, t, n_heads, k)), -3, -2)


def merge_heads(heads):
    r"""Concatenate heads along the width: ``[..., H, T, K] -> [..., T, H*K]``.

    :math:`\operatorname{Concat}(\mathrm{head}_0, \dots, \mathrm{head}_{H-1})`: entry
    ``[..., t, h*K + k]`` is ``heads[..., h, t, k]``; the inverse of :func:`split_heads`.

    Args:
        heads: ``[..., H, T, K]``.

    Returns:
        ``[..., T, H*K]``.

    >>> import jax.numpy as jnp
    >>> merge_heads(jnp.array([[[0.0, 1.0]], [[2.0, 3.0]]])).tolist()
    [[0.0, 1.0, 2.0, 3.0]]
    """
    check_rank("heads", heads, min_rank=3, axes="[..., H, T, K]")
    *lead, n_heads, t, k = jnp.shape(heads)
    return jnp.reshape(jnp.swapaxes(heads, -3, -2), (*lead, t, n_heads * k))


@implements("multihead.concat_identity")
def output_projection(o, w_o, b_o, *, n_heads: int):
    r"""The output projection of multi-head attention, computed head by head.

    .. math:: y = \operatorname{Concat}(o_0, \dots, o_{H-1})\, W_O + b_O
                = \sum_{h=0}^{H-1} o_h W_O^{(h)} + b_O

    where :math:`o_h` is the column block ``hK .. (h+1)K - 1`` of ``o`` (head ``h``'s output)
    and :math:`W_O^{(h)}` the same rows of :math:`W_O`.  The right-hand form is what is
    computed: one contraction over heads and head width, ``"...thk,hke->...te"``.  Each
    head writes into the output through its own rows of :math:`W_O`.

    Args:
        o: the concatenated head outputs ``[..., T, D]`` (:func:`merge_heads`).
        w_o: ``[D, D]``.
        b_o: ``[D]``, or ``None`` for no bias (:math:`b_O = 0`).
        n_heads: H, which must divide D.

    Returns:
        ``[..., T, D]``.

    Derivation: ``multihead.concat_identity``.

    References: Vaswani et al., "Attention Is All You Need", 2017, §3.2.2; Elhage et al.,
    "A Mathematical Framework for Transformer Circuits", 2021.
    """
    check_rank("o", o, min_rank=2, axes="[..., T, D]")
    *lead, t, d = jnp.shape(o)
    k = _check_heads(d, n_heads)
    check_shape("w_o", w_o, (d, d), axes="[D, D]")
    if b_o is not None:
        check_shape("b_o", b_o, (d,), axes="[D]")
    o_THK = jnp.reshape(o, (*lead, t, n_heads, k))
    w_HKD = jnp.reshape(w_o, (n_heads, k, d))
    return _maybe_bias(jnp.einsum("...thk,hke->...te", o_THK, w_HKD), b_o)


def _maybe_bias(y, b):
    """``y + b`` (explicitly broadcast), or ``y`` when ``b`` is ``None``."""
    return y if b is None else add_bias(y, b)


def _check_mask(mask, x_shape: tuple[int, ...]) -> None:
    t = x_shape[-2]
    m = tuple(jnp.shape(mask))
    ok = len(m) >= 2 and m[-2:] == (t, t) and len(m) <= len(x_shape)
    if ok:
        try:
            jnp.broadcast_shapes(m[:-2], x_shape[:-2])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"mask: expected shape [..., T, T] = [..., {t}, {t}] with leading axes broadcastable "
            f"to those of x {x_shape}, got {m}")


def _check_params(x, n_heads: int, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o) -> int:
    """Shapes of ``x [..., T, D]`` and the projections (biases may be ``None``); returns D."""
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(x)[-1]
    _check_heads(d, n_heads)
    params = dict(zip(_PARAMS, (w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o), strict=True))
    for name, p in params.items():
        if name.startswith("w_"):
            check_shape(name, p, (d, d), axes="[D, D]")
        elif p is not None:
            check_shape(name, p, (d,), axes="[D]")
    return d


def _check_callable(name: str, f) -> None:
    if f is not None and not callable(f):
        raise TypeError(f"{name}: expected a callable or None, got {type(f).__name__}")


def _project(x, w, b, n_heads: int):
    """One projection ``x W + b`` split into heads: ``[..., T, D] -> [..., H, T, K]``."""
    return split_heads(_maybe_bias(jnp.einsum("...td,de->...te", x, w), b), n_heads)


def _rotate(name: str, rope: Callable | None, u):
    """``rope(u)`` for per-head queries or keys ``[..., H, T, K]`` (``u`` itself when ``rope`` is None)."""
    if rope is None:
        return u
    r = rope(u)
    if tuple(jnp.shape(r)) != tuple(jnp.shape(u)):
        raise ValueError(f"rope: expected it to return the shape of the {name} it was given "
                         f"[..., H, T, K] = {tuple(jnp.shape(u))}, got {tuple(jnp.shape(r))}")
    return r


@implements("multihead.attention")
def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, *, n_heads: int, mask=None,
                         rope: Callable | None = None):
    r"""Multi-head self-attention.

    .. math::
        \operatorname{MHA}(x) = \operatorname{Concat}_{h=0}^{H-1}(\mathrm{head}_h)\, W_O + b_O, \qquad
        \mathrm{head}_h = \operatorname{softmax}\!\left(\frac{R(q_h)\, R(k_h)^\top}{\sqrt K}, M\right) v_h

    with :math:`q_h = x W_Q^{(h)} + b_Q^{(h)}`, :math:`k_h = x W_K^{(h)} + b_K^{(h)}`,
    :math:`v_h = x W_V^{(h)} + b_V^{(h)}`, where :math:`W^{(h)}` (:math:`b^{(h)}`) are the
    columns (entries) ``hK .. (h+1)K - 1`` and :math:`K = D/H`.  :math:`R` is ``rope``, the
    identity by default (the registered statement).  The projections are computed for all
    heads at once and split by :func:`split_heads`; every head attends through
    :func:`model.attention.sdpa`; :func:`merge_heads` concatenates them and
    :func:`output_projection` applies :math:`W_O, b_O`.

    Names map to the paper's: ``w_q`` :math:`W^Q`, ``w_k`` :math:`W^K`, ``w_v`` :math:`W^V`
    (the per-head :math:`W_i^Q` side by side), ``w_o`` :math:`W^O`.

    Args:
        x: inputs ``[..., T, D]``.
        w_q, w_k, w_v, w_o: ``[D, D]``.
        b_q, b_k, b_v, b_o: ``[D]``; each may be ``None`` for no bias (a zero bias, not stored).
        n_heads: H, which must divide D.
        mask: optional boolean ``[..., T, T]`` (leading axes broadcast against those of ``x``),
            the same for every head; ``True`` attends.  A fully masked row gives the output
            ``b_O`` at that position (the heads output zeros; 0 without ``b_O``), never NaN.
        rope: optional callable :math:`R` applied to the per-head queries and to the per-head
            keys, each ``[..., H, T, K]``, after the projections and the head split and before
            the scores; it must return the shape it is given.  Rotary position embedding
            plugs in here (a rotation of each key position by its position's angle); ``None``
            is the identity.  The values are not rotated.

    Returns:
        ``[..., T, D]``.

    Raises:
        ValueError: shapes (named, expected and actual), including a ``rope`` that changes the shape.
        TypeError: ``rope`` that is not callable.

    Derivation: ``multihead.attention``.

    References: Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.2; Su et al.,
    "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021 (where ``rope`` acts).
    """
    _check_params(x, n_heads, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o)
    _check_callable("rope", rope)
    if mask is not None:
        _check_mask(mask, tuple(jnp.shape(x)))
        mask = jnp.expand_dims(mask, -3)  # [..., 1, T, T]: the same mask for every head

    q_HTK = _rotate("queries", rope, _project(x, w_q, b_q, n_heads))
    k_HTK = _rotate("keys", rope, _project(x, w_k, b_k, n_heads))
    heads = sdpa(q_HTK, k_HTK, _project(x, w_v, b_v, n_heads), mask=mask)  # [..., H, T, K]
    return output_projection(merge_heads(heads), w_o, b_o, n_heads=n_heads)


def empty_kv_cache(batch_shape, *, n_heads: int, head_width: int, length: int, dtype=jnp.float32):
    r"""An empty (all-zero) key/value cache: ``(cache_k, cache_v)``, each ``[..., H, S, K]``.

    Args:
        batch_shape: the leading axes ``...`` of the tokens (``B``): an int or a tuple of ints
            (``()`` for one unbatched sequence).
        n_heads: H.
        head_width: K = D / H.
        length: S, the number of cache positions (the longest sequence it can hold).
        dtype: dtype of the cache.

    Returns:
        ``(cache_k, cache_v)``, zeros of shape ``[*batch_shape, H, S, K]``.

    >>> k, v = empty_kv_cache(2, n_heads=3, head_width=4, length=16)
    >>> k.shape, v.dtype
    ((2, 3, 16, 4), dtype('float32'))
    """
    lead = (batch_shape,) if isinstance(batch_shape, int) else tuple(batch_shape)
    for i, b in enumerate(lead):
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise ValueError(f"batch_shape: expected positive integers, got {batch_shape!r} (entry {i})")
    check_positive_int("n_heads", n_heads)
    check_positive_int("head_width", head_width)
    check_positive_int("length", length)
    shape = (*lead, n_heads, length, head_width)
    return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


def _check_start(start, t: int, s: int):
    """``start`` as an int32 scalar; a concrete value must satisfy ``0 <= start <= S - T``."""
    if isinstance(start, bool):
        raise TypeError(f"start: expected an integer position, got {start!r}")
    dtype = jnp.result_type(start)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"start: expected an integer position, got dtype {dtype}")
    if jnp.shape(start) != ():
        raise ValueError(f"start: expected a scalar position, got shape {tuple(jnp.shape(start))}")
    if not isinstance(start, jax.core.Tracer):
        value = int(start)
        if not 0 <= value <= s - t:
            raise ValueError(f"start: expected 0 <= start <= S - T = {s} - {t} = {s - t} (T = {t} new "
                             f"positions in a cache of S = {s}), got {value}")
    return jnp.asarray(start, jnp.int32)


def multi_head_attention_cached(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, cache_k, cache_v, start, *,
                                n_heads: int, rope: Callable | None = None):
    r"""Causal multi-head attention of new positions against a key/value cache (decoding).

    ``x`` holds the T new positions ``start .. start+T-1``.  Their keys and values (keys
    after ``rope``) are written into the cache at ``[start, start+T)``, then each new
    query attends to the cache positions up to its own:

    .. math::
        C_K[\mathrm{start}+i] = R(x_i W_K + b_K), \quad C_V[\mathrm{start}+i] = x_i W_V + b_V, \qquad
        \mathrm{head}_{h,i} = \sum_{s \le \mathrm{start}+i}
            \operatorname{softmax}_s\!\left(\frac{R(q_{h,i}) \cdot C_K[h, s]}{\sqrt K}\right) C_V[h, s]

    and :math:`y = \operatorname{Concat}_h(\mathrm{head}_h) W_O + b_O` as in
    :func:`multi_head_attention`.  With the cache holding the keys and values of positions
    ``0 .. start-1`` (written by earlier calls), row ``i`` equals row ``start+i`` of
    :func:`multi_head_attention` on the whole sequence with the causal mask
    (:func:`model.attention.causal_mask`).  Cache positions ``>= start+T`` get weight exactly
    0, whatever (finite) they hold; no row is ever fully masked (a query sees at least itself).

    ``start`` may be traced (a jitted decoding loop): the write is a
    ``lax.dynamic_update_slice`` and the mask :math:`s \le \mathrm{start} + i` is built from
    iotas, so one compilation serves every step of the same T.

    Args:
        x: the new positions ``[..., T, D]``.
        w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o: as :func:`multi_head_attention` (biases may be ``None``).
        cache_k, cache_v: the caches ``[..., H, S, K]`` (the leading axes those of ``x``; S cache
            positions; :func:`empty_kv_cache`).  New keys and values are cast to their dtype.
        start: the position of ``x[..., 0, :]``, an integer scalar (Python int or int32 array,
            possibly traced), with ``0 <= start <= S - T``.  A concrete value outside is rejected;
            a traced one cannot be checked, and then the output is NaN (never a silently
            misplaced write that looks plausible).
        n_heads: H.
        rope: optional callable applied to the new queries and the new keys ``[..., H, T, K]``,
            built by the caller for positions ``start .. start+T-1``; ``None`` is the identity.

    Returns:
        ``(y, cache_k, cache_v)``: ``y`` ``[..., T, D]`` and the updated caches ``[..., H, S, K]``.

    Raises:
        ValueError: shapes (named, expected and actual) or a concrete ``start`` out of range.
        TypeError: a non-integer ``start`` or a ``rope`` that is not callable.

    Derivation: the equation is ``multihead.attention`` with the causal mask, row by row; it is
    not registered separately (tests/test_multihead.py compares the two).
    """
    d = _check_params(x, n_heads, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o)
    _check_callable("rope", rope)
    *lead, t, _ = jnp.shape(x)
    k = d // n_heads
    ck_shape = tuple(jnp.shape(cache_k))
    if len(ck_shape) != len(lead) + 3 or ck_shape[:len(lead)] != tuple(lead) or ck_shape[-3] != n_heads \
            or ck_shape[-1] != k:
        raise ValueError(f"cache_k: expected shape [..., H, S, K] = {(*lead, n_heads)} + (S, {k}) (the leading "
                         f"axes of x {tuple(jnp.shape(x))}, H = {n_heads}, K = D / H = {k}), got {ck_shape}")
    s = ck_shape[-2]
    check_shape("cache_v", cache_v, ck_shape, axes="[..., H, S, K] (that of cache_k)")
    if t > s:
        raise ValueError(f"x: expected at most S = {s} new positions (the cache length), got T = {t} "
                         f"(shape {tuple(jnp.shape(x))})")
    start = _check_start(start, t, s)

    q_HTK = _rotate("queries", rope, _project(x, w_q, b_q, n_heads))
    k_HTK = _rotate("keys", rope, _project(x, w_k, b_k, n_heads))
    v_HTK = _project(x, w_v, b_v, n_heads)
    zero = jnp.zeros((), jnp.int32)
    at = (zero,) * (len(lead) + 1) + (start, zero)  # [..., H, S, K] at (0, .., 0, start, 0)
    cache_k = jax.lax.dynamic_update_slice(cache_k, k_HTK.astype(cache_k.dtype), at)
    cache_v = jax.lax.dynamic_update_slice(cache_v, v_HTK.astype(cache_v.dtype), at)

    query_pos = start + jax.lax.broadcasted_iota(jnp.int32, (t, s), 0)  # [T, S]: start + i
    key_pos = jax.lax.broadcasted_iota(jnp.int32, (t, s), 1)            # [T, S]: s
    mask_TS = key_pos <= query_pos
    heads = sdpa(q_HTK, cache_k.astype(q_HTK.dtype), cache_v.astype(q_HTK.dtype), mask=mask_TS)  # [..., H, T, K]
    y = output_projection(merge_heads(heads), w_o, b_o, n_heads=n_heads)
    in_range = (start >= 0) & (start <= s - t)
    return jnp.where(in_range, y, jnp.nan), cache_k, cache_v


class MultiHeadAttention(nnx.Module):
    """Multi-head self-attention: holds ``w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o``.

    Calling it applies :func:`multi_head_attention` with these parameters.  The
    weights are initialised Glorot-uniform (``xavier_uniform``) and the biases to zero.
    With ``use_bias=False`` it holds only ``w_q, w_k, w_v, w_o`` (no bias attributes at
    all, :math:`4D^2` parameters) and passes ``None`` for the biases.

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        rngs: the random streams; ``rngs.params`` initialises the weights.
        kernel_init: initializer of the ``[D, D]`` weights.
        bias_init: initializer of the ``[D]`` biases.
        param_dtype: dtype of the parameters.
        use_bias: whether the four projections have biases.
    """

    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs,
                 kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT,
                 param_dtype=jnp.float32, use_bias: bool = True):
        check_positive_int("d_model", d_model)
        _check_heads(d_model, n_heads)
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected True or False, got {use_bias!r}")
        self.d_model, self.n_heads, self.use_bias = d_model, n_heads, use_bias

        def weight():
            return nnx.Param(kernel_init(rngs.params(), (d_model, d_model), param_dtype))

        def bias():
            return nnx.Param(bias_init(rngs.params(), (d_model,), param_dtype))

        for name in ("q", "k", "v", "o"):
            setattr(self, f"w_{name}", weight())
            if use_bias:
                setattr(self, f"b_{name}", bias())

    def params(self) -> dict:
        """The arguments ``w_q, b_q, .., w_o, b_o`` of :func:`multi_head_attention` (biases ``None`` when absent)."""
        return {name: (getattr(self, name)[...] if hasattr(self, name) else None) for name in _PARAMS}

    def __call__(self, x, mask=None, *, rope: Callable | None = None):
        """``[..., T, D] -> [..., T, D]``; ``mask`` and ``rope`` as in :func:`multi_head_attention`."""
        return multi_head_attention(x, **self.params(), n_heads=self.n_heads, mask=mask, rope=rope)

    def init_cache(self, batch_shape, length: int, *, dtype=None):
        """An empty cache ``(cache_k, cache_v)`` ``[..., H, S, K]`` with S = ``length`` (:func:`empty_kv_cache`).

        ``dtype`` defaults to that of the parameters.
        """
        return empty_kv_cache(batch_shape, n_heads=self.n_heads, head_width=self.d_model // self.n_heads,
                              length=length, dtype=self.w_k[...].dtype if dtype is None else dtype)

    def decode(self, x, cache_k, cache_v, start, *, rope: Callable | None = None):
        """:func:`multi_head_attention_cached` with these parameters: ``(y [..., T, D], cache_k, cache_v)``."""
        return multi_head_attention_cached(x, **self.params(), cache_k=cache_k, cache_v=cache_v, start=start,
                                           n_heads=self.n_heads, rope=rope)


@implements("multihead.param_count")
def param_count(d_model: int, n_heads: int, *, use_bias: bool = True) -> int:
    r"""The number of parameters of :class:`MultiHeadAttention`: :math:`N = 4D^2 + 4D`.

    Counted on the module itself, built abstractly with ``nnx.eval_shape`` (shapes
    only, nothing allocated), so the formula is checked against the real module.
    The count does not depend on ``n_heads``.  Without biases it is :math:`4D^2`.

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        use_bias: count a module with biases (the registered formula) or without.

    Returns:
        the number of scalar parameters.

    Derivation: ``multihead.param_count``.

    >>> param_count(512, 8) == 4 * 512**2 + 4 * 512
    True
    >>> param_count(512, 8, use_bias=False) == 4 * 512**2
    True
    """
    module = nnx.eval_shape(lambda: MultiHeadAttention(d_model, n_heads, rngs=nnx.Rngs(0), use_bias=use_bias))
    return sum(int(p.size) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
