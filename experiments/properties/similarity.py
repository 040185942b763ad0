"""Sampled checks of the similarity functions (week 5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.similarity import cosine_similarity, dot

#: float32 machine epsilon (2^-23)
_EPS32 = float(np.finfo(np.float32).eps)
N, WIDTH = 3072, 16  # one set of shapes for the checks below: one compile each


def _pairs(rng):
    """``N`` pairs of vectors of lengths from 1e-3 to 1e3: random, nearly parallel, and opposite."""
    a = rng.standard_normal((N, WIDTH)) * 10.0 ** rng.uniform(-3, 3, (N, 1))
    b = rng.standard_normal((N, WIDTH)) * 10.0 ** rng.uniform(-3, 3, (N, 1))
    third = N // 3
    k = 10.0 ** rng.uniform(-3, 3, (third, 1))
    b[:third] = k * (a[:third] + 1e-6 * np.abs(a[:third]).max(-1, keepdims=True) * rng.standard_normal((third, WIDTH)))
    b[third:2 * third] = -k * a[third:2 * third]
    return jnp.asarray(a, dtype=jnp.float32), jnp.asarray(b, dtype=jnp.float32)


@jax.jit
def _dot_checks(a, b, c, alpha, beta):
    symmetry = jnp.max(jnp.abs(dot(a, b) - dot(b, a)))
    lhs = dot(alpha[:, None] * a + beta[:, None] * c, b)
    rhs = alpha * dot(a, b) + beta * dot(c, b)
    norm = lambda u: jnp.sqrt(jnp.sum(u * u, axis=-1))  # noqa: E731
    scale = (jnp.abs(alpha) * norm(a) + jnp.abs(beta) * norm(c)) * norm(b)
    return symmetry, jnp.max(jnp.abs(lhs - rhs) / scale)


def _dot_sample(rng):
    a, b = _pairs(rng)
    c = jnp.asarray(rng.standard_normal((N, WIDTH)), dtype=jnp.float32)
    alpha, beta = (jnp.asarray(rng.uniform(-3, 3, N), dtype=jnp.float32) for _ in range(2))
    return _dot_checks(a, b, c, alpha, beta)


@check("similarity.dot", f"max |a·b − b·a| over {N} pairs (D = {WIDTH})")
def _symmetric(rng):
    return float(_dot_sample(rng)[0]), 0.0  # exact: a_j b_j = b_j a_j, summed in the same order


@check("similarity.dot", f"max |(αa + βc)·b − (α a·b + β c·b)| / ((|α|‖a‖ + |β|‖c‖)‖b‖) over {N} samples")
def _bilinear(rng):
    # a few sums of D float32 products: the rounding error stays below a few D * eps times the scale
    return float(_dot_sample(rng)[1]), 4 * WIDTH * _EPS32


_cos = jax.jit(cosine_similarity)


@check("similarity.cosine", f"max |cos(a, b)| − 1 over {N} pairs (random, nearly parallel, opposite; D = {WIDTH})")
def _bounded(rng):
    a, b = _pairs(rng)
    return float(jnp.max(jnp.abs(_cos(a, b)))) - 1.0, 0.0  # |cos| <= 1 exactly, rounding included


@check("similarity.cosine", f"max |cos32(a, b) − cos(a, b) in float64| over the same {N} pairs")
def _accurate(rng):
    a, b = _pairs(rng)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    exact = np.sum(a64 * b64, -1) / (np.linalg.norm(a64, axis=-1) * np.linalg.norm(b64, axis=-1))
    # a ratio of float32 sums of D products: a few ulps of 1
    return float(np.max(np.abs(np.asarray(_cos(a, b), np.float64) - exact))), 8 * _EPS32


@check("similarity.cosine", f"max |cos(k₁a, k₂b) − cos(a, b)| for k₁, k₂ in [1e-3, 1e3] over {N} pairs, jit-compiled")
def _scale_invariant(rng):
    a, b = _pairs(rng)
    k1, k2 = (jnp.asarray(10.0 ** rng.uniform(-3, 3, (N, 1)), dtype=jnp.float32) for _ in range(2))
    # scaling rounds every entry once (relative 2^-24); the cosine moves by a few ulps of 1
    return float(jnp.max(jnp.abs(_cos(k1 * a, k2 * b) - _cos(a, b)))), 8 * _EPS32
