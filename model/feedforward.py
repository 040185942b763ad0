"""The position-wise feed-forward network (week 9): ReLU, GELU and GELU_tanh variants, and its NNX module.

Axis letters: T positions, D model width, F hidden width (usually ``F = 4D``); any
leading axes (batch ``B``) are carried through unchanged as ``...``.  The FFN acts
on every position separately with the same weights, so it commutes with any
permutation of the positions (derivation ``feedforward.position_wise``).

Activations: ``"relu"`` (the paper), ``"gelu"`` (exact erf form, BERT) and
``"gelu_tanh"`` (the tanh approximation in GPT-2's released code and weights).
Biases are optional: the FFN functions take ``b_1=None, b_2=None`` for a network
without them, and ``FeedForward(..., use_bias=False)`` holds no bias parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from model.equation import implements
from model.validate import add_bias, check_positive_int, check_rank, check_shape

__all__ = ["ACTIVATIONS", "FFN_BY_ACTIVATION", "GELU_TANH_CUBIC", "gelu", "gelu_tanh", "feed_forward",
           "feed_forward_gelu", "feed_forward_gelu_tanh", "param_count", "FeedForward"]


@implements("feedforward.gelu")
def gelu(x):
    r"""The Gaussian error linear unit, exact form: :math:`\operatorname{GELU}(x) = x\,\Phi(x)`.

    .. math:: \operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\Bigl(1 + \operatorname{erf}\bigl(x/\sqrt2\bigr)\Bigr),
              \qquad \operatorname{GELU}'(x) = \Phi(x) + x\,\varphi(x)

    :math:`\Phi` and :math:`\varphi` are the standard normal CDF and density.  This is
    the exact form, not the ``tanh`` approximation.  It is evaluated as
    :math:`\tfrac{x}{2}\operatorname{erfc}(-x/\sqrt2)`, the same number since
    :math:`\operatorname{erfc}(-u) = 1 + \operatorname{erf}(u)`, but without the
    cancellation of :math:`1 + \operatorname{erf}(u)` for large negative ``x``, so the
    left tail keeps its relative accuracy.

    Args:
        x: any shape ``[...]``; integer input is promoted to the default float type.

    Returns:
        ``GELU(x)``, same shape and (floating) dtype as ``x``.

    Derivation: ``feedforward.gelu``.

    References: Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016.

    >>> import jax.numpy as jnp
    >>> [round(v, 4) for v in gelu(jnp.array([-1.0, 0.0, 1.0])).tolist()]
    [-0.1587, 0.0, 0.8413]
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    sqrt_half = np.sqrt(0.5).astype(x.dtype)
    return 0.5 * x * jax.lax.erfc(-x * sqrt_half)


#: the cubic coefficient of the tanh approximation, as published with it (Hendrycks and Gimpel,
#: 2016; GPT-2's code); part of the definition of GELU_tanh, not a tunable setting
GELU_TANH_CUBIC = 0.044715


@implements("feedforward.gelu_tanh")
def gelu_tanh(x):
    r"""The tanh approximation of GELU, as in GPT-2's released code and weights.

    .. math:: \operatorname{GELU}_{\tanh}(x) = \frac{x}{2}\Bigl(1 + \tanh\bigl(u(x)\bigr)\Bigr)
              = x\,\sigma\bigl(2u(x)\bigr), \qquad u(x) = \sqrt{2/\pi}\,\bigl(x + 0.044715\,x^3\bigr)

    :math:`\sigma` is the logistic function; the two forms are equal because
    :math:`\tfrac12(1 + \tanh w) = \sigma(2w)`.  It is evaluated in the second form: for
    large negative ``x`` the first rounds :math:`1 + \tanh u` to 0 (or to a few ulps of 1)
    in float32, while :math:`\sigma(2u)` keeps its relative accuracy in the left tail.
    It differs from the exact :func:`gelu` by at most :math:`4.73\cdot10^{-4}`
    (at :math:`|x| \approx 2.70`; measured, see the derivation).

    Args:
        x: any shape ``[...]``; integer input is promoted to the default float type.

    Returns:
        ``GELU_tanh(x)``, same shape and (floating) dtype as ``x``.

    Derivation: ``feedforward.gelu_tanh``.

    References: Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016, section 2;
    Radford et al., GPT-2, 2019 (the ``gelu`` of the released code).

    >>> import jax.numpy as jnp
    >>> [round(v, 4) for v in gelu_tanh(jnp.array([-1.0, 0.0, 1.0])).tolist()]
    [-0.1588, 0.0, 0.8412]
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    two_sqrt_2_over_pi = np.asarray(2.0 * np.sqrt(2.0 / np.pi), dtype=x.dtype)
    cubic = np.asarray(GELU_TANH_CUBIC, dtype=x.dtype)
    return x * jax.nn.sigmoid(two_sqrt_2_over_pi * (x + cubic * x * x * x))


#: the activations the FFN accepts, by name
ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "gelu": gelu, "gelu_tanh": gelu_tanh}


def _check_ffn(x, w_1, b_1, w_2, b_2) -> None:
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(x)[-1]
    w_1_shape = tuple(jnp.shape(w_1))
    if len(w_1_shape) != 2 or w_1_shape[0] != d:
        raise ValueError(
            f"w_1: expected shape [D, F] = [{d}, F] (D = {d} is the width of x {tuple(jnp.shape(x))}), "
            f"got {w_1_shape}")
    f = w_1_shape[1]
    if b_1 is not None:
        check_shape("b_1", b_1, (f,), axes="[F]")
    check_shape("w_2", w_2, (f, d), axes="[F, D]")
    if b_2 is not None:
        check_shape("b_2", b_2, (d,), axes="[D]")


def _maybe_bias(y, b):
    """``y + b`` (explicitly broadcast over the leading axes), or ``y`` when ``b`` is ``None``."""
    return y if b is None else add_bias(y, b)


def _ffn(x, w_1, b_1, w_2, b_2, activation: Callable):
    """``activation(x W_1 + b_1) W_2 + b_2`` after checking the shapes: the body of every FFN.

    A bias that is ``None`` is left out (a zero bias that is not stored).
    """
    _check_ffn(x, w_1, b_1, w_2, b_2)
    h_TF = _maybe_bias(jnp.einsum("...td,df->...tf", x, w_1), b_1)
    return _maybe_bias(jnp.einsum("...tf,fd->...td", activation(h_TF), w_2), b_2)


@implements("feedforward.relu", "feedforward.position_wise")
def feed_forward(x, w_1, b_1, w_2, b_2):
    r"""The position-wise feed-forward network with ReLU, :math:`\max(0, x W_1 + b_1) W_2 + b_2`.

    .. math:: \operatorname{FFN}(x) = \max(0,\; x W_1 + \mathbf 1 b_1)\, W_2 + \mathbf 1 b_2

    Row ``t`` of the output depends on row ``t`` of ``x`` only: the same two-layer
    network is applied at every position, so ``FFN(P x) = P FFN(x)`` for any
    permutation ``P`` of the positions.

    Args:
        x: inputs ``[..., T, D]``.
        w_1: first layer ``[D, F]``.
        b_1: first bias ``[F]``, or ``None`` for none.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``, or ``None`` for none.

    Returns:
        outputs ``[..., T, D]``.

    Derivations: ``feedforward.relu`` (the equation and its gradients, with
    ReLU'(0) = 0 as in ``jax.nn.relu``) and ``feedforward.position_wise`` (the
    equation row by row, and its permutation equivariance).

    References: Vaswani et al., "Attention Is All You Need", 2017, section 3.3, eq. (2).

    >>> import jax.numpy as jnp
    >>> eye = jnp.eye(2)
    >>> feed_forward(jnp.array([[1.0, -2.0]]), eye, jnp.zeros(2), eye, jnp.ones(2)).tolist()
    [[2.0, 1.0]]
    """
    return _ffn(x, w_1, b_1, w_2, b_2, jax.nn.relu)


@implements("feedforward.gelu_ffn")
def feed_forward_gelu(x, w_1, b_1, w_2, b_2):
    r"""The position-wise feed-forward network with the exact GELU, :math:`\operatorname{GELU}(x W_1 + b_1) W_2 + b_2`.

    .. math:: \operatorname{FFN}_{\mathrm{GELU}}(x) = \operatorname{GELU}(x W_1 + \mathbf 1 b_1)\, W_2 + \mathbf 1 b_2

    The activation is :func:`gelu` (the erf form, as in BERT and GPT-2's paper
    definition), applied entrywise to the hidden layer ``[..., T, F]``.

    Args:
        x: inputs ``[..., T, D]``.
        w_1: first layer ``[D, F]``.
        b_1: first bias ``[F]``, or ``None`` for none.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``, or ``None`` for none.

    Returns:
        outputs ``[..., T, D]``.

    Derivation: ``feedforward.gelu_ffn``.

    References: Hendrycks and Gimpel, 2016; Devlin et al., "BERT", 2019, section 3.
    """
    return _ffn(x, w_1, b_1, w_2, b_2, gelu)


@implements("feedforward.gelu_tanh_ffn")
def feed_forward_gelu_tanh(x, w_1, b_1, w_2, b_2):
    r"""The position-wise feed-forward network of GPT-2, :math:`\operatorname{GELU}_{\tanh}(x W_1 + b_1) W_2 + b_2`.

    .. math:: \operatorname{FFN}_{\mathrm{GELU}_{\tanh}}(x)
              = \operatorname{GELU}_{\tanh}(x W_1 + \mathbf 1 b_1)\, W_2 + \mathbf 1 b_2

    The activation is :func:`gelu_tanh`, the tanh approximation that GPT-2's weights
    were trained with, applied entrywise to the hidden layer ``[..., T, F]``.

    Args:
        x: inputs ``[..., T, D]``.
        w_1: first layer ``[D, F]``.
        b_1: first bias ``[F]``, or ``None`` for none.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``, or ``None`` for none.

    Returns:
        outputs ``[..., T, D]``.

    Derivation: ``feedforward.gelu_tanh_ffn``.

    References: Hendrycks and Gimpel, 2016; Radford et al., GPT-2, 2019.
    """
    return _ffn(x, w_1, b_1, w_2, b_2, gelu_tanh)


#: the FFN function for each activation name
FFN_BY_ACTIVATION: dict[str, Callable] = {"relu": feed_forward, "gelu": feed_forward_gelu,
                                          "gelu_tanh": feed_forward_gelu_tanh}


class FeedForward(nnx.Module):
    r"""The parameters of a position-wise FFN; calling it runs the FFN function of its activation.

    Holds ``w_1 [D, F]``, ``b_1 [F]``, ``w_2 [F, D]``, ``b_2 [D]`` (LeCun-normal
    weights, zero biases), named as the pure functions name them.  With
    ``use_bias=False`` there are no bias parameters at all (``b_1`` and ``b_2`` are
    ``None``, and the parameter count drops by ``F + D``); the FFN is then called with
    ``b_1=None, b_2=None``.

    Args:
        d_model: D.
        d_ff: F, the hidden width (usually 4D).
        activation: ``"relu"`` (:func:`feed_forward`), ``"gelu"`` (exact erf form,
            :func:`feed_forward_gelu`) or ``"gelu_tanh"`` (:func:`feed_forward_gelu_tanh`).
        use_bias: whether the two layers have biases.
        rngs: the random streams; ``rngs.params`` initialises the weights.
        param_dtype: dtype of the parameters.

    Example:

    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> ffn = FeedForward(4, 16, activation="gelu", rngs=nnx.Rngs(0))
    >>> ffn(jnp.ones((2, 3, 4))).shape
    (2, 3, 4)
    """

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", use_bias: bool = True,
                 rngs: nnx.Rngs, param_dtype=jnp.float32):
        check_positive_int("d_model", d_model)
        check_positive_int("d_ff", d_ff)
        if activation not in FFN_BY_ACTIVATION:
            raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {activation!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected a bool, got {type(use_bias).__name__} {use_bias!r}")
        self.activation = activation
        self.use_bias = use_bias
        init = nnx.initializers.lecun_normal()
        self.w_1 = nnx.Param(init(rngs.params(), (d_model, d_ff), param_dtype))
        self.w_2 = nnx.Param(init(rngs.params(), (d_ff, d_model), param_dtype))
        if use_bias:
            self.b_1 = nnx.Param(jnp.zeros((d_ff,), param_dtype))
            self.b_2 = nnx.Param(jnp.zeros((d_model,), param_dtype))
        else:
            self.b_1 = nnx.data(None)
            self.b_2 = nnx.data(None)

    def __call__(self, x):
        """``FFN(x)`` for ``x [..., T, D]``, with this module's activation and parameters."""
        b_1 = None if self.b_1 is None else self.b_1[...]
        b_2 = None if self.b_2 is None else self.b_2[...]
        return FFN_BY_ACTIVATION[self.activation](x, self.w_1[...], b_1, self.w_2[...], b_2)


@implements("feedforward.param_count")
def param_count(d_model: int, d_ff: int, *, use_bias: bool = True) -> int:
    r"""The number of parameters of :class:`FeedForward`, :math:`N = 2DF + F + D`.

    Counted from the module itself, built abstractly with ``nnx.eval_shape`` (no
    arrays are allocated), so the count cannot drift from the code.  Without biases
    it is :math:`2DF`.

    Args:
        d_model: D.
        d_ff: F.
        use_bias: count a module with biases (the registered statement) or without.

    Returns:
        N, a Python int.

    Derivation: ``feedforward.param_count``.

    >>> param_count(512, 2048), param_count(512, 2048, use_bias=False)
    (2099712, 2097152)
    """
    check_positive_int("d_model", d_model)
    check_positive_int("d_ff", d_ff)
    abstract = nnx.eval_shape(lambda: FeedForward(d_model, d_ff, use_bias=use_bias, rngs=nnx.Rngs(0)))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
