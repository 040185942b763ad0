"""Sampled checks of the BERT encoder (week 12) and its sentence embeddings (week 5).

Padding: a padded key is invisible to the post-LN layer (its real rows do not depend on
what the padded rows hold; tests/test_bert.py compares a padded sentence with the same
sentence alone on the pretrained model), and the layer's output rows are normalised.  The sentence embedding has unit length.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.bert import l2_normalize, post_ln_layer

_T, _REAL, _D, _H, _F = 6, 4, 8, 2, 16
_EPS = 1e-12  # BERT's LayerNorm epsilon


def _params(rng, *, unit_out: bool = False):
    def normal(*shape):
        return jnp.asarray(rng.standard_normal(shape) / math.sqrt(shape[0]), dtype=jnp.float32)

    def near_one(n):
        return jnp.ones(n, jnp.float32) if unit_out else jnp.asarray(1.0 + 0.1 * rng.standard_normal(n), jnp.float32)

    def small(n):
        return jnp.asarray(0.1 * rng.standard_normal(n), dtype=jnp.float32)

    return {
        "gamma_1": near_one(_D), "beta_1": small(_D),
        "w_q": normal(_D, _D), "b_q": small(_D), "w_k": normal(_D, _D), "b_k": small(_D),
        "w_v": normal(_D, _D), "b_v": small(_D), "w_o": normal(_D, _D), "b_o": small(_D),
        "gamma_2": near_one(_D), "beta_2": jnp.zeros(_D, jnp.float32) if unit_out else small(_D),
        "w_1": normal(_D, _F), "b_1": small(_F), "w_2": normal(_F, _D), "b_2": small(_D)}


def _mask() -> jnp.ndarray:
    return jnp.asarray(np.arange(_T) < _REAL)


#: one compiled layer for every check below (the parameters are arguments, so it compiles once)
_LAYER = jax.jit(lambda x, mask, p: post_ln_layer(x, **p, n_heads=_H, eps=_EPS, mask=mask))


@check("bert.post_ln",
       f"max |y_a − y_b| at the {_REAL} real rows of two inputs that differ only in their {_T - _REAL} padded rows")
def _padding_is_invisible(rng):
    p = _params(rng)
    real = rng.standard_normal((_REAL, _D))
    x = np.stack([np.concatenate([real, rng.standard_normal((_T - _REAL, _D))]),
                  np.concatenate([real, 100.0 * rng.standard_normal((_T - _REAL, _D))])])
    mask = jnp.stack([_mask(), _mask()])
    with jax.default_matmul_precision("highest"):
        y = np.asarray(_LAYER(jnp.asarray(x, jnp.float32), mask, p), dtype=np.float64)
    if not np.abs(y[0, _REAL:] - y[1, _REAL:]).max() > 0:  # the padded rows themselves must differ
        return float("inf"), 0.0
    return float(np.abs(y[0, :_REAL] - y[1, :_REAL]).max()), 0.0  # exactly zero: masked weights are exact zeros


@check("bert.post_ln", "max over rows of |mean| and |variance − 1| of the layer's output, with γ₂ = 1, β₂ = 0")
def _output_rows_are_normalised(rng):
    p = _params(rng, unit_out=True)
    x = jnp.asarray(3.0 * rng.standard_normal((2, _T, _D)), dtype=jnp.float32)
    with jax.default_matmul_precision("highest"):
        y = np.asarray(_LAYER(x, jnp.stack([_mask(), jnp.ones(_T, bool)]), p), np.float64)
    return float(max(np.abs(y.mean(axis=-1)).max(), np.abs(y.var(axis=-1) - 1.0).max())), 1e-5


@check("bert.normalize", "max |‖e‖ − 1| over 64 sampled vectors of width 384, and ‖e‖ = 0 for p = 0")
def _unit_length(rng):
    p = jnp.asarray(rng.standard_normal((64, 384)) * rng.uniform(1e-3, 1e3, (64, 1)), dtype=jnp.float32)
    e = jax.jit(lambda p: l2_normalize(p, min_norm=1e-12))(p)
    zero = jax.jit(lambda p: l2_normalize(p, min_norm=1e-12))(jnp.zeros(384, jnp.float32))
    norms = np.linalg.norm(np.asarray(e, np.float64), axis=-1)
    if not np.all(np.isfinite(np.asarray(zero))) or np.abs(np.asarray(zero)).max() != 0.0:
        return float("inf"), 1e-6
    return float(np.abs(norms - 1.0).max()), 1e-6
