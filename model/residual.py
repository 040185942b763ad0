"""Residual connections (week 11).

Axis letters: T positions, D model width, F feed-forward hidden width; any leading
axes are carried through unchanged as ``...``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from model.equation import implements
from model.feedforward import feed_forward
from model.validate import check_rank

__all__ = ["residual", "residual_feed_forward"]


def residual(x, sublayer: Callable):
    r"""A residual connection around ``sublayer``: :math:`y = x + F(x)`.

    Its Jacobian is :math:`I + \partial F / \partial x`, so the gradient of a loss at
    ``y`` reaches ``x`` unchanged along the identity path, whatever ``F`` does.
    This is a higher-order function; the equation is checked through
    :func:`residual_feed_forward`, which puts the ReLU FFN in the place of ``F``.

    Args:
        x: inputs, any shape.
        sublayer: a pure function :math:`F` whose output has the shape and dtype of ``x``.

    Returns:
        :math:`x + F(x)`, shaped like ``x``.

    Raises:
        ValueError: when ``sublayer(x)`` does not have the shape of ``x`` (no broadcasting).

    References: He et al., "Deep Residual Learning for Image Recognition", 2016, eq. (1).

    >>> import jax.numpy as jnp
    >>> residual(jnp.array([1.0, 2.0]), lambda u: 10 * u).tolist()
    [11.0, 22.0]
    """
    fx = sublayer(x)
    if jnp.shape(fx) != jnp.shape(x):
        raise ValueError(
            f"sublayer output: expected the shape of its input {tuple(jnp.shape(x))}, got {tuple(jnp.shape(fx))}")
    return x + fx


@implements("residual.connection")
def residual_feed_forward(x, w_1, b_1, w_2, b_2):
    r"""A residual connection around the ReLU feed-forward network.

    .. math:: y = x + \max(0,\; x W_1 + b_1)\, W_2 + b_2,
              \qquad \frac{\partial y}{\partial x} = I + W_2^\top \operatorname{diag}\bigl(H(x W_1 + b_1)\bigr) W_1^\top

    for one position ``x`` (a row; the Jacobian's rows are the outputs, ``H`` the unit
    step with ``H(0) = 0``).  The FFN is position-wise, so ``x`` may be a single
    position ``[D]`` or any stack of positions ``[..., T, D]``.

    Args:
        x: inputs ``[..., D]``.
        w_1: first layer ``[D, F]``.
        b_1: first bias ``[F]``.
        w_2: second layer ``[F, D]``.
        b_2: second bias ``[D]``.

    Returns:
        ``[..., D]``.

    Derivation: ``residual.connection``.

    References: He et al., 2016; Vaswani et al., "Attention Is All You Need", 2017, section 3.1.
    """
    check_rank("x", x, min_rank=1, axes="[..., D]")

    def ffn_at_each_position(u):  # feed_forward wants [..., T, D]: give every position its own T = 1
        return feed_forward(u[..., None, :], w_1, b_1, w_2, b_2)[..., 0, :]

    return residual(x, ffn_at_each_position)

