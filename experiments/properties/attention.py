"""Sampled checks of the attention functions (weeks 6-7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.attention import causal_mask, scaled_scores, sdpa, softmax


@check("attention.softmax", "max |row sum - 1| over 256 random rows")
def _rows_sum_to_one(rng):
    x = jnp.asarray(rng.standard_normal((256, 16)) * 10, dtype=jnp.float32)
    sums = jax.jit(softmax)(x).sum(-1)
    return float(jnp.max(jnp.abs(sums - 1.0))), 1e-5  # float32: 16 terms of ~1e-7 rounding


@check("attention.scaled_scores", "|sample variance of scaled scores - 1| / standard error, K = 16 and 256")
def _unit_variance(rng):
    worst = 0.0
    n = 20_000  # independent (q, k) pairs: one query and one key per batch entry
    for width in (16, 256):
        q = jnp.asarray(rng.standard_normal((n, 1, width)), dtype=jnp.float32)
        k = jnp.asarray(rng.standard_normal((n, 1, width)), dtype=jnp.float32)
        s = np.asarray(jax.jit(scaled_scores)(q, k), dtype=np.float64).ravel()
        # q.k/sqrt(K) has variance 1 and fourth moment 3 + 6/K, so the sample variance of n
        # draws has standard error sqrt((2 + 6/K)/n).
        stderr = np.sqrt((2 + 6 / width) / n)
        worst = max(worst, abs(float(s.var()) - 1.0) / stderr)
    return worst, 5.0  # 5 standard errors: a false alarm about once in 10^6 runs


@check("attention.causal_mask", "max |d o_t / d (q, k, v)_s| for s > t, by jax.jacfwd (T = S = 5)")
def _no_dependence_on_future(rng):
    t = 5
    q, k, v = (jnp.asarray(rng.standard_normal((t, 3)), dtype=jnp.float32) for _ in range(3))
    future = np.arange(t)[None, :] > np.arange(t)[:, None]  # [t, s]: s after t
    worst = 0.0
    for argnum in range(3):
        jac = jax.jit(jax.jacfwd(lambda q, k, v: sdpa(q, k, v, causal_mask(t, t)), argnums=argnum))(q, k, v)
        # jac[t, c, s, c']: d o[t, c] / d input[s, c']
        dep = np.abs(np.asarray(jac)).max(axis=(1, 3))
        worst = max(worst, float(dep[future].max()))
    return worst, 0.0  # exactly zero: the weights of future keys are exact zeros
