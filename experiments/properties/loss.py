"""Sampled checks of the language-modelling loss (week 1): stability, the uniform value, perplexity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.loss import cross_entropy, perplexity

_B, _T, _V = 4, 32, 50


def _reference(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """float64 NumPy: logsumexp(z) - z_y, averaged over positions."""
    z = logits.astype(np.float64)
    peak = z.max(-1, keepdims=True)
    lse = np.log(np.exp(z - peak).sum(-1)) + peak[..., 0]
    picked = np.take_along_axis(z, targets[..., None], -1)[..., 0]
    return (lse - picked).mean(-1)


@check("loss.cross_entropy",
       f"max relative error against float64 for logits of scale 1 to 1e4 ([{_B}, {_T}, {_V}], jit): no overflow")
def _stable_for_large_logits(rng):
    targets = rng.integers(0, _V, (_B, _T))
    ce = jax.jit(cross_entropy)
    worst = 0.0
    for scale in (1.0, 1e2, 1e4):
        logits = (scale * rng.standard_normal((_B, _T, _V))).astype(np.float32)
        got = np.asarray(ce(jnp.asarray(logits), jnp.asarray(targets, dtype=jnp.int32)), np.float64)
        if not np.all(np.isfinite(got)) or np.any(got < 0):
            return float("inf"), 1e-5
        want = _reference(logits, targets)
        worst = max(worst, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
    return worst, 1e-5  # float32: the few roundings of one logsumexp


@check("loss.cross_entropy", f"under jit an out-of-range target gives NaN, never a silently clamped loss (V = {_V})")
def _out_of_range_is_nan_under_jit(rng):
    logits = jnp.asarray(rng.standard_normal((2, _T, _V)), dtype=jnp.float32)
    targets = jnp.asarray(rng.integers(0, _V, (2, _T)), dtype=jnp.int32).at[0, 3].set(_V).at[1, 5].set(-1)
    loss = np.asarray(jax.jit(cross_entropy)(logits, targets))
    return float(np.sum(~np.isnan(loss))), 0.0  # both sequences must be NaN


@check("loss.perplexity", f"max |perplexity / V - 1| for uniform logits of random level ([{_B}, {_T}, {_V}], jit)")
def _uniform_perplexity_is_v(rng):
    level = rng.uniform(-50, 50, (_B, 1, 1))
    logits = jnp.asarray(np.broadcast_to(level, (_B, _T, _V)), dtype=jnp.float32)
    targets = jnp.asarray(rng.integers(0, _V, (_B, _T)), dtype=jnp.int32)
    ppl = np.asarray(jax.jit(perplexity)(logits, targets), np.float64)
    return float(np.max(np.abs(ppl / _V - 1))), 1e-5  # float32 log V and exp
