"""Sampled checks of the feed-forward network (week 9): position-wise, and GELU's left tail."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.feedforward import feed_forward, gelu

_EPS32 = float(np.finfo(np.float32).eps)
_B, _T, _D, _F = 2, 16, 8, 32


def _weights(rng):
    def normal(*shape):
        return jnp.asarray(rng.standard_normal(shape) / math.sqrt(shape[0]), dtype=jnp.float32)

    return normal(_D, _F), normal(_F), normal(_F, _D), normal(_D)


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@check("feedforward.position_wise",
       f"max relative |FFN(P x) - P FFN(x)| over 8 random permutations P of T = {_T} positions (jit)")
def _permutations_commute(rng):
    w_1, b_1, w_2, b_2 = _weights(rng)
    x = jnp.asarray(rng.standard_normal((_B, _T, _D)), dtype=jnp.float32)
    ffn = jax.jit(feed_forward)
    with jax.default_matmul_precision("highest"):
        y = ffn(x, w_1, b_1, w_2, b_2)
        worst = 0.0
        for _ in range(8):
            perm = jnp.asarray(rng.permutation(_T))
            worst = max(worst, _relative(ffn(x[:, perm], w_1, b_1, w_2, b_2), y[:, perm]))
    # Row t of both sides is the same dot products of the same numbers; only a different
    # tiling of the matmul could change the rounding: float32, 1e-5 relative (TOLERANCE).
    return worst, 1e-5


@check("feedforward.position_wise", f"max relative |FFN(x) - vmap over positions of FFN(x_t)|, T = {_T} (jit)")
def _whole_sequence_is_vmap_over_positions(rng):
    w_1, b_1, w_2, b_2 = _weights(rng)
    x = jnp.asarray(rng.standard_normal((_T, _D)), dtype=jnp.float32)

    def one_position(x_d):  # a single position as a sequence of length 1
        return feed_forward(x_d[None, :], w_1, b_1, w_2, b_2)[0]

    with jax.default_matmul_precision("highest"):
        whole = jax.jit(feed_forward)(x, w_1, b_1, w_2, b_2)
        rows = jax.jit(jax.vmap(one_position))(x)
    return _relative(rows, whole), 1e-5  # float32: same arithmetic per row, as above


@check("feedforward.gelu", "max relative error of GELU(x), x in [-9, -3], against float64 math.erfc (jit)")
def _left_tail_keeps_relative_accuracy(rng):
    x = np.sort(rng.uniform(-9.0, -3.0, 512)).astype(np.float32)
    got = np.asarray(jax.jit(gelu)(jnp.asarray(x)), dtype=np.float64)
    x64 = x.astype(np.float64)
    want = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in x64])
    worst = float(np.max(np.abs(got - want) / np.abs(want)))
    # In the tail log Φ(x) has slope about |x|, so rounding x/√2 (eps/2 relative) moves
    # GELU by about x²/2 · eps relative; erfc itself adds a few eps.  The naive form
    # x/2 (1 + erf(x/√2)) loses everything here (1 + erf rounds to 0): relative error 1.
    return worst, (float(np.max(x64 ** 2)) + 16.0) * _EPS32
