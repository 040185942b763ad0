"""Layer normalisation (week 11).

Axis letters: D model width; any leading axes (batch ``B``, positions ``T``) are
carried through unchanged as ``...``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from model.equation import implements
from model.validate import check_positive_int, check_rank, check_shape

__all__ = ["LayerNorm", "layer_norm"]


@implements("normalization.layer_norm")
def layer_norm(x, gamma, beta, *, eps):
    r"""Layer normalisation over the last axis, with gain and bias.

    .. math::
        \operatorname{LN}(x)_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_j,
        \qquad \mu = \frac1D \sum_l x_l, \quad \sigma^2 = \frac1D \sum_l (x_l - \mu)^2

    The variance is the biased one (divided by ``D``), as in the paper and in
    ``torch.nn.LayerNorm``.  With ``eps = 0`` a constant row has zero variance and
    gives NaN; keep ``eps > 0`` in models.

    Args:
        x: inputs ``[..., D]``.
        gamma: gain :math:`\gamma` ``[D]``.
        beta: bias :math:`\beta` ``[D]``, or ``None`` for no bias (:math:`\beta = 0`, LayerNorm
            without a shift, as in GPT configurations with ``bias=False``).
        eps: :math:`\epsilon \ge 0` added to the variance (a model setting, typically ``1e-5``).

    Returns:
        ``[..., D]``, each row normalised.

    Derivation: ``normalization.layer_norm``.

    References: Ba, Kiros and Hinton, "Layer Normalization", 2016, eq. (4).

    >>> import jax.numpy as jnp
    >>> layer_norm(jnp.array([1.0, 3.0]), jnp.ones(2), jnp.zeros(2), eps=0.0).tolist()
    [-1.0, 1.0]
    """
    check_rank("x", x, min_rank=1, axes="[..., D]")
    d = jnp.shape(x)[-1]
    check_shape("gamma", gamma, (d,), axes="[D]")
    if beta is not None:
        check_shape("beta", beta, (d,), axes="[D]")
    if isinstance(eps, (int, float)) and not eps >= 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    mu = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mu
    var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
    x_hat = centred * jax.lax.rsqrt(var + eps)
    shape = jnp.shape(x)
    y = x_hat * jnp.broadcast_to(gamma, shape)
    return y if beta is None else y + jnp.broadcast_to(beta, shape)


class LayerNorm(nnx.Module):
    """Holds the gain ``gamma`` (ones) and bias ``beta`` (zeros) of :func:`layer_norm`.

    With ``use_bias=False`` it holds ``gamma`` only (no ``beta`` attribute at all, D
    parameters) and passes ``beta=None``.

    Args:
        d_model: D.
        eps: added to the variance.
        use_bias: whether it holds the bias ``beta``.
        rngs: random streams (the initial values are constant, but every module is built alike).
    """

    def __init__(self, d_model: int, *, eps: float = 1e-5, use_bias: bool = True, rngs: nnx.Rngs):
        check_positive_int("d_model", d_model)
        if not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias: expected True or False, got {use_bias!r}")
        self.eps = float(eps)
        self.use_bias = use_bias
        self.gamma = nnx.Param(nnx.initializers.ones_init()(rngs.params(), (d_model,), jnp.float32))
        if use_bias:
            self.beta = nnx.Param(nnx.initializers.zeros_init()(rngs.params(), (d_model,), jnp.float32))

    def params(self) -> dict:
        """The arguments ``gamma, beta`` of :func:`layer_norm` (``beta`` is ``None`` without a bias)."""
        return {"gamma": self.gamma[...], "beta": self.beta[...] if hasattr(self, "beta") else None}

    def __call__(self, x):
        """:func:`layer_norm` of ``x`` ``[..., D]`` with this module's ``gamma`` and ``beta``."""
        return layer_norm(x, **self.params(), eps=self.eps)
