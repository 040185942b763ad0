"""Sampled checks of layer normalisation (week 11): zero mean, unit variance and invariances in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.normalization import layer_norm

_N, _D = 256, 64


@check("normalization.layer_norm",
       f"max over {_N} rows (offsets up to 10, scales 0.5-10) of |mean| and |variance - 1| with gamma = 1, "
       f"beta = 0, eps = 0 (D = {_D}, jit)")
def _zero_mean_unit_variance(rng):
    offset = rng.uniform(-10, 10, (_N, 1))
    scale = np.exp(rng.uniform(np.log(0.5), np.log(10), (_N, 1)))
    x = jnp.asarray(offset + scale * rng.standard_normal((_N, _D)), dtype=jnp.float32)
    y = np.asarray(jax.jit(layer_norm, static_argnames="eps")(x, jnp.ones(_D), jnp.zeros(_D), eps=0.0), np.float64)
    worst = max(float(np.abs(y.mean(-1)).max()), float(np.abs(y.var(-1) - 1).max()))
    # float32: the centred values carry a relative error of about |offset| / scale * 6e-8 <= 1.2e-6
    return worst, 1e-5


@check("normalization.layer_norm",
       f"max |LN(a x + c) - LN(x)| over {_N} rows, a in [0.5, 2], c in [-3, 3], eps = 0 (D = {_D}, jit)")
def _invariances(rng):
    x = jnp.asarray(rng.standard_normal((_N, _D)), dtype=jnp.float32)
    a = jnp.asarray(rng.uniform(0.5, 2, (_N, 1)), dtype=jnp.float32)
    c = jnp.asarray(rng.uniform(-3, 3, (_N, 1)), dtype=jnp.float32)
    gamma = jnp.asarray(rng.standard_normal(_D), dtype=jnp.float32)
    beta = jnp.asarray(rng.standard_normal(_D), dtype=jnp.float32)
    ln = jax.jit(layer_norm, static_argnames="eps")
    y, z = ln(x, gamma, beta, eps=0.0), ln(a * x + c, gamma, beta, eps=0.0)
    return float(jnp.max(jnp.abs(y - z)) / jnp.max(jnp.abs(y))), 1e-5  # float32 roundings of a x + c
