"""Sampled checks of the feed-forward network (week 9): position-wise, GELU's left tail, GELU_tanh against GELU."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.feedforward import GELU_TANH_CUBIC, feed_forward, gelu, gelu_tanh

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


# Measured once in float64 (NumPy, math.erf) on a grid of step 1e-5 over [-10, 10]; the
# difference is even and smooth, so a finer grid moves these in the 12th digit only:
#   max |GELU_tanh(x) - GELU(x)|           = 4.73236e-4, at |x| = 2.6989
#   max |½(1 + tanh u(x)) - Φ(x)|          = 1.78933e-4 (the cubic 0.044715 minimises this;
#                                            (4 - π)/(6π), the Taylor value, gives 3.13e-4)
_GELU_TANH_MAX_DEVIATION = 4.73236e-4
_GATE_MAX_DEVIATION = 1.78933e-4


def _exact_gelu64(x64):
    return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x64])


@check("feedforward.gelu_tanh",
       f"| max|GELU_tanh(x) - GELU(x)| - {_GELU_TANH_MAX_DEVIATION:.6g} |, x on a grid of step 1e-4 over "
       "[-10, 10] (jit, float32 against float64 erf)")
def _deviation_from_exact_gelu(rng):
    offset = float(rng.uniform(0.0, 1e-4))  # a different grid each seed, the same density
    x = (np.linspace(-10.0, 10.0, 200_001) + offset).astype(np.float32)
    got = np.asarray(jax.jit(gelu_tanh)(jnp.asarray(x)), dtype=np.float64)
    deviation = float(np.max(np.abs(got - _exact_gelu64(x.astype(np.float64)))))
    # Two-sided: the implementation must be the tanh form (an exact GELU gives 0, not 4.73e-4)
    # and no further from GELU than stated.  Slack: the float32 rounding of GELU_tanh near the
    # maximum, |x| ≈ 2.7 (a few eps times 2.7; measured 5e-7 over the whole grid), plus the
    # grid step 1e-4, which near the smooth maximum lowers it by far less.
    return abs(deviation - _GELU_TANH_MAX_DEVIATION), 16 * 2.7 * _EPS32


@check("feedforward.gelu_tanh",
       f"| max|GELU_tanh(x)/x - Φ(x)| - {_GATE_MAX_DEVIATION:.6g} |, the gate against the normal CDF, "
       "|x| in [0.25, 10] (jit)")
def _gate_deviation_from_normal_cdf(rng):
    offset = float(rng.uniform(0.0, 1e-4))
    x = (np.linspace(-10.0, 10.0, 200_001) + offset).astype(np.float32)
    x = x[np.abs(x) >= 0.25]
    x64 = x.astype(np.float64)
    gate = np.asarray(jax.jit(gelu_tanh)(jnp.asarray(x)), dtype=np.float64) / x64
    cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x64])
    # the gate is at most 1, rounded to a few eps; the division by x adds one rounding
    return abs(float(np.max(np.abs(gate - cdf))) - _GATE_MAX_DEVIATION), 16 * _EPS32


@check("feedforward.gelu_tanh", "max relative error of GELU_tanh(x), x in [-9, -3], against float64 x σ(2u(x)) (jit)")
def _tanh_form_left_tail_keeps_relative_accuracy(rng):
    x = np.sort(rng.uniform(-9.0, -3.0, 512)).astype(np.float32)
    got = np.asarray(jax.jit(gelu_tanh)(jnp.asarray(x)), dtype=np.float64)
    x64 = x.astype(np.float64)
    u = math.sqrt(2.0 / math.pi) * (x64 + GELU_TANH_CUBIC * x64 ** 3)
    want = x64 / (1.0 + np.exp(-2.0 * u))
    worst = float(np.max(np.abs(got - want) / np.abs(want)))
    # In the tail σ(2u) ≈ e^{2u}, so its relative error is the absolute error of 2u: u is
    # rounded to a few eps relative (x³, two products, a sum), i.e. about 2|u|·3 eps; the
    # sigmoid and the product with x add a few eps.  (1 + tanh u would round to 0: error 1.)
    return worst, (6.0 * float(np.max(np.abs(u))) + 16.0) * _EPS32
