"""The position-wise feed-forward network (week 9): ReLU and GELU variants, and its NNX module.

Axis letters: T positions, D model width, F hidden width (usually ``F = 4D``); any
leading axes (batch ``B``) are carried through unchanged as ``...``.  The FFN acts
on every position separately with the same weights, so it commutes with any
permutation of the positions (derivation ``feedforward.position_wise``).
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

__all__ = ["ACTIVATIONS", "FFN_BY_ACTIVATION", "gelu", "feed_forward", "feed_forward_gelu", "param_count",
           "FeedForward"]


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


#: the activations the FFN accepts, by name
ACTIVATIONS: dict[str, Callable] = {"relu": jax.nn.relu, "gelu": gelu}


def _check_ffn(x, w_1, b_1, w_2, b_2) -> None:
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    d = jnp.shape(x)[-1]
    w_1_shape = tuple(jnp.shape(w_1))
    if len(w_1_shape) != 2 or w_1_shape[0] != d:
        raise ValueError(
            f"w_1: expected shape [D, F] = [{d}, F] (D = {d} is the width of x {tuple(jnp.shape(x))}), "
            f"got {w_1_shape}")
    f = w_1_shape[1]
    check_shape("b_1", b_1, (f,), axes="[F]")
    check_shape("w_2", w_2, (f, d), axes="[F, D]")
    check_shape("b_2", b_2, (d,), axes="[D]")


def _ffn(x, w_1, b_1, w_2, b_2, activation: Callable):
    """``activation(x W_1 + b_1) W_2 + b_2`` after checking the shapes: the body of both FFNs."""
    _check_ffn(x, w_1, b_1, w_2, b_2)
    h_TF = add_bias(jnp.einsum("...td,df->...tf", x, w_1), b_1)
    return add_bias(jnp.einsum("...tf,fd->...td", activation(h_TF), w_2), b_2)


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
        b_1: first bias ``[F]``.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``.

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
        b_1: first bias ``[F]``.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``.

    Returns:
        outputs ``[..., T, D]``.

    Derivation: ``feedforward.gelu_ffn``.

    References: Hendrycks and Gimpel, 2016; Devlin et al., "BERT", 2019, section 3.
    """
    return _ffn(x, w_1, b_1, w_2, b_2, gelu)


#: the FFN function for each activation name
FFN_BY_ACTIVATION: dict[str, Callable] = {"relu": feed_forward, "gelu": feed_forward_gelu}


class FeedForward(nnx.Module):
    r"""The parameters of a position-wise FFN; calling it runs :func:`feed_forward` or :func:`feed_forward_gelu`.

    Holds ``w_1 [D, F]``, ``b_1 [F]``, ``w_2 [F, D]``, ``b_2 [D]`` (LeCun-normal
    weights, zero biases), named as the pure functions name them.

    Args:
        d_model: D.
        d_ff: F, the hidden width (usually 4D).
        activation: ``"relu"`` or ``"gelu"`` (exact erf form).
        rngs: the random streams; ``rngs.params`` initialises the weights.
        param_dtype: dtype of the parameters.

    Example:

    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> ffn = FeedForward(4, 16, activation="gelu", rngs=nnx.Rngs(0))
    >>> ffn(jnp.ones((2, 3, 4))).shape
    (2, 3, 4)
    """

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", rngs: nnx.Rngs,
                 param_dtype=jnp.float32):
        check_positive_int("d_model", d_model)
        check_positive_int("d_ff", d_ff)
        if activation not in FFN_BY_ACTIVATION:
            raise ValueError(f"activation: expected one of {tuple(FFN_BY_ACTIVATION)}, got {activation!r}")
        self.activation = activation
        init = nnx.initializers.lecun_normal()
        self.w_1 = nnx.Param(init(rngs.params(), (d_model, d_ff), param_dtype))
        self.b_1 = nnx.Param(jnp.zeros((d_ff,), param_dtype))
        self.w_2 = nnx.Param(init(rngs.params(), (d_ff, d_model), param_dtype))
        self.b_2 = nnx.Param(jnp.zeros((d_model,), param_dtype))

    def __call__(self, x):
        """``FFN(x)`` for ``x [..., T, D]``, with this module's activation and parameters."""
        return FFN_BY_ACTIVATION[self.activation](x, self.w_1[...], self.b_1[...], self.w_2[...], self.b_2[...])


@implements("feedforward.param_count")
def param_count(d_model: int, d_ff: int) -> int:
    r"""The number of parameters of :class:`FeedForward`, :math:`N = 2DF + F + D`.

    Counted from the module itself, built abstractly with ``nnx.eval_shape`` (no
    arrays are allocated), so the count cannot drift from the code.

    Args:
        d_model: D.
        d_ff: F.

    Returns:
        N, a Python int.

    Derivation: ``feedforward.param_count``.

    >>> param_count(512, 2048)
    2099712
    """
    check_positive_int("d_model", d_model)
    check_positive_int("d_ff", d_ff)
    abstract = nnx.eval_shape(lambda: FeedForward(d_model, d_ff, rngs=nnx.Rngs(0)))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
