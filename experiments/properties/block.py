"""Sampled checks of the pre-LN transformer block (week 11): causality and the position-wise FFN sublayer."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.attention import causal_mask
from model.block import ffn_sublayer, transformer_block

_T, _D, _H, _F = 5, 8, 2, 16
_EPS = 1e-5  # the LayerNorm epsilon of the models


def _params(rng):
    def normal(*shape):
        return jnp.asarray(rng.standard_normal(shape) / math.sqrt(shape[0]), dtype=jnp.float32)

    def near_one(n):
        return jnp.asarray(1.0 + 0.1 * rng.standard_normal(n), dtype=jnp.float32)

    def small(n):
        return jnp.asarray(0.1 * rng.standard_normal(n), dtype=jnp.float32)

    return {
        "gamma_1": near_one(_D), "beta_1": small(_D),
        "w_q": normal(_D, _D), "b_q": small(_D), "w_k": normal(_D, _D), "b_k": small(_D),
        "w_v": normal(_D, _D), "b_v": small(_D), "w_o": normal(_D, _D), "b_o": small(_D),
        "gamma_2": near_one(_D), "beta_2": small(_D),
        "w_1": normal(_D, _F), "b_1": small(_F), "w_2": normal(_F, _D), "b_2": small(_D)}


def _dependence(jac) -> np.ndarray:
    """``jac[t, d, s, e] = d y[t, d] / d x[s, e]`` -> ``[t, s]``: the largest |entry| per pair of positions."""
    return np.abs(np.asarray(jac, dtype=np.float64)).max(axis=(1, 3))


@check("block.pre_ln",
       f"max |d y_t / d x_s| for s > t of the causal pre-LN block, by jax.jacfwd of the jit-compiled block (T = {_T})")
def _block_is_causal(rng):
    p = _params(rng)
    x = jnp.asarray(rng.standard_normal((_T, _D)), dtype=jnp.float32)
    mask = causal_mask(_T, _T)

    def block(x):
        return transformer_block(x, **p, n_heads=_H, eps=_EPS, mask=mask)

    with jax.default_matmul_precision("highest"):
        dep = _dependence(jax.jacfwd(jax.jit(block))(x))
    future = np.arange(_T)[None, :] > np.arange(_T)[:, None]  # [t, s]: s after t
    if not dep[~future].max() > 0:  # the check would be empty if nothing depended on anything
        return float("inf"), 0.0
    return float(dep[future].max()), 0.0  # exactly zero: masked weights are exact zeros


@check("block.ffn_sublayer",
       f"max |d y_t / d x_s| for s != t of the FFN sublayer, by jax.jacfwd (T = {_T}): position-wise")
def _ffn_sublayer_is_position_wise(rng):
    p = _params(rng)
    x = jnp.asarray(rng.standard_normal((_T, _D)), dtype=jnp.float32)

    def sub(x):
        return ffn_sublayer(x, p["gamma_2"], p["beta_2"], p["w_1"], p["b_1"], p["w_2"], p["b_2"], eps=_EPS)

    with jax.default_matmul_precision("highest"):
        dep = _dependence(jax.jacfwd(jax.jit(sub))(x))
    return float(dep[~np.eye(_T, dtype=bool)].max()), 0.0  # exactly zero: no op mixes positions
