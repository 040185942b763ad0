"""Sampled checks of the residual connection (week 11): the chain rule through a stack of residual layers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.residual import residual_feed_forward

_L, _D, _F = 4, 6, 12


@check("residual.connection",
       f"max relative |J_stack - (I + J_L)...(I + J_1)| for {_L} stacked residual FFN layers, D = {_D} (jacfwd)")
def _stack_jacobian_is_product(rng):
    def normal(*shape):
        return jnp.asarray(rng.standard_normal(shape) / math.sqrt(shape[0]), dtype=jnp.float32)

    layers = [(normal(_D, _F), normal(_F), normal(_F, _D), normal(_D)) for _ in range(_L)]
    x = jnp.asarray(rng.standard_normal(_D), dtype=jnp.float32)

    def stack(x):
        for w in layers:
            x = residual_feed_forward(x, *w)
        return x

    layer_jac = jax.jit(jax.jacfwd(residual_feed_forward))
    with jax.default_matmul_precision("highest"):
        whole = np.asarray(jax.jit(jax.jacfwd(stack))(x), dtype=np.float64)
        product, h = np.eye(_D), x
        for w in layers:
            product = np.asarray(layer_jac(h, *w), dtype=np.float64) @ product  # (I + J_l) times the rest
            h = residual_feed_forward(h, *w)
    err = float(np.max(np.abs(whole - product)) / np.max(np.abs(product)))
    return err, 1e-5  # float32: a few roundings per layer
