"""Multi-head self-attention (week 8): split into heads, attend, concatenate, project.

Axis letters: T positions, D model width, H heads, K = D / H head width; any
leading axes ``...`` (batch ``B``) are carried through.  Head ``h`` owns the
columns ``hK .. (h+1)K - 1`` of :math:`W_Q, W_K, W_V` and the rows ``hK .. (h+1)K - 1``
of :math:`W_O`; :func:`split_heads` and :func:`merge_heads` move between the
``[..., T, D]`` layout and the per-head ``[..., H, T, K]`` layout by a reshape, and
the attention of every head is :func:`model.attention.sdpa`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from model.attention import sdpa
from model.equation import implements
from model.validate import add_bias, check_divisible, check_positive_int, check_rank, check_shape

__all__ = ["split_heads", "merge_heads", "output_projection", "multi_head_attention",
           "MultiHeadAttention", "param_count"]

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
        b_o: ``[D]``.
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
    check_shape("b_o", b_o, (d,), axes="[D]")
    o_THK = jnp.reshape(o, (*lead, t, n_heads, k))
    w_HKD = jnp.reshape(w_o, (n_heads, k, d))
    return add_bias(jnp.einsum("...thk,hke->...te", o_THK, w_HKD), b_o)


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


@implements("multihead.attention")
def multi_head_attention(x, w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o, *, n_heads: int, mask=None):
    r"""Multi-head self-attention.

    .. math::
        \operatorname{MHA}(x) = \operatorname{Concat}_{h=0}^{H-1}(\mathrm{head}_h)\, W_O + b_O, \qquad
        \mathrm{head}_h = \operatorname{softmax}\!\left(\frac{q_h k_h^\top}{\sqrt K}, M\right) v_h

    with :math:`q_h = x W_Q^{(h)} + b_Q^{(h)}`, :math:`k_h = x W_K^{(h)} + b_K^{(h)}`,
    :math:`v_h = x W_V^{(h)} + b_V^{(h)}`, where :math:`W^{(h)}` (:math:`b^{(h)}`) are the
    columns (entries) ``hK .. (h+1)K - 1`` and :math:`K = D/H`.  The projections are computed
    for all heads at once and split by :func:`split_heads`; every head attends through
    :func:`model.attention.sdpa`; :func:`merge_heads` concatenates them and
    :func:`output_projection` applies :math:`W_O, b_O`.

    Names map to the paper's: ``w_q`` :math:`W^Q`, ``w_k`` :math:`W^K`, ``w_v`` :math:`W^V`
    (the per-head :math:`W_i^Q` side by side), ``w_o`` :math:`W^O`.

    Args:
        x: inputs ``[..., T, D]``.
        w_q, w_k, w_v, w_o: ``[D, D]``.
        b_q, b_k, b_v, b_o: ``[D]``.
        n_heads: H, which must divide D.
        mask: optional boolean ``[..., T, T]`` (leading axes broadcast against those of ``x``),
            the same for every head; ``True`` attends.  A fully masked row gives the output
            ``b_O`` at that position (the heads output zeros), never NaN.

    Returns:
        ``[..., T, D]``.

    Derivation: ``multihead.attention``.

    References: Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.2.
    """
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(x)[-1]
    _check_heads(d, n_heads)
    params = dict(zip(_PARAMS, (w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o), strict=True))
    for name, p in params.items():
        if name.startswith("w_"):
            check_shape(name, p, (d, d), axes="[D, D]")
        else:
            check_shape(name, p, (d,), axes="[D]")
    if mask is not None:
        _check_mask(mask, tuple(jnp.shape(x)))
        mask = jnp.expand_dims(mask, -3)  # [..., 1, T, T]: the same mask for every head

    def project(w, b):
        return split_heads(add_bias(jnp.einsum("...td,de->...te", x, w), b), n_heads)

    heads = sdpa(project(w_q, b_q), project(w_k, b_k), project(w_v, b_v), mask=mask)  # [..., H, T, K]
    return output_projection(merge_heads(heads), w_o, b_o, n_heads=n_heads)


class MultiHeadAttention(nnx.Module):
    """Multi-head self-attention: holds ``w_q, b_q, w_k, b_k, w_v, b_v, w_o, b_o``.

    Calling it applies :func:`multi_head_attention` with these parameters.  The
    weights are initialised Glorot-uniform (``xavier_uniform``) and the biases to zero.

    Args:
        d_model: D.
        n_heads: H, which must divide D.
        rngs: the random streams; ``rngs.params`` initialises the weights.
        kernel_init: initializer of the ``[D, D]`` weights.
        bias_init: initializer of the ``[D]`` biases.
        param_dtype: dtype of the parameters.
    """

    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs,
                 kernel_init=_KERNEL_INIT, bias_init=_BIAS_INIT,
                 param_dtype=jnp.float32):
        check_positive_int("d_model", d_model)
        _check_heads(d_model, n_heads)
        self.d_model, self.n_heads = d_model, n_heads

        def weight():
            return nnx.Param(kernel_init(rngs.params(), (d_model, d_model), param_dtype))

        def bias():
            return nnx.Param(bias_init(rngs.params(), (d_model,), param_dtype))

        self.w_q, self.b_q = weight(), bias()
        self.w_k, self.b_k = weight(), bias()
        self.w_v, self.b_v = weight(), bias()
        self.w_o, self.b_o = weight(), bias()

    def __call__(self, x, mask=None):
        """``[..., T, D] -> [..., T, D]``; ``mask`` as in :func:`multi_head_attention`."""
        return multi_head_attention(x, self.w_q[...], self.b_q[...], self.w_k[...], self.b_k[...],
                                    self.w_v[...], self.b_v[...], self.w_o[...], self.b_o[...],
                                    n_heads=self.n_heads, mask=mask)


@implements("multihead.param_count")
def param_count(d_model: int, n_heads: int) -> int:
    r"""The number of parameters of :class:`MultiHeadAttention`: :math:`N = 4D^2 + 4D`.

    Counted on the module itself, built abstractly with ``nnx.eval_shape`` (shapes
    only, nothing allocated), so the formula is checked against the real module.
    The count does not depend on ``n_heads``.

    Args:
        d_model: D.
        n_heads: H, which must divide D.

    Returns:
        the number of scalar parameters.

    Derivation: ``multihead.param_count``.

    >>> param_count(512, 8) == 4 * 512**2 + 4 * 512
    True
    """
    module = nnx.eval_shape(lambda: MultiHeadAttention(d_model, n_heads, rngs=nnx.Rngs(0)))
    return sum(int(p.size) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
