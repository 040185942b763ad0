"""Sampled checks of the sinusoidal positional encoding (week 10): rotation, Toeplitz Gram, norms."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.positional import encoding_gram, shift_rotation, sinusoidal_encoding

_EPS32 = float(np.finfo(np.float32).eps)
_D, _BASE = 64, 10000.0


@check("positional.shift_rotation", f"max |R(k) PE(p) - PE(p + k)| over 256 random p, k in [0, 512), D = {_D} (jit)")
def _shift_is_rotation(rng):
    p_max = k_max = 512
    p = jnp.asarray(rng.integers(0, p_max, 256), dtype=jnp.int32)
    k = jnp.asarray(rng.integers(0, k_max, 256), dtype=jnp.int32)
    pe = jax.jit(functools.partial(sinusoidal_encoding, d_model=_D, base=_BASE))
    rot = jax.jit(functools.partial(shift_rotation, d_model=_D, base=_BASE))
    with jax.default_matmul_precision("highest"):
        moved = jnp.einsum("nij,nj->ni", rot(k), pe(p))
    worst = float(jnp.max(jnp.abs(moved - pe(p + k))))
    # float32: an angle θ = pω (ω ≤ 1) is rounded to about θ·eps, and so is every entry
    # computed from it; PE(p + k) carries (p + k)·eps, R(k) PE(p) another (k + p)·eps.
    return worst, 2 * (p_max + k_max) * _EPS32 + 8 * _EPS32


@check("positional.relative", f"max spread of G = PE PEᵀ along a diagonal, relative to D/2, p = 0..127, D = {_D} (jit)")
def _gram_is_toeplitz(rng):
    t = 128
    offset = int(rng.integers(0, 1000))  # the same whatever the first position is
    p = jnp.arange(offset, offset + t, dtype=jnp.int32)
    with jax.default_matmul_precision("highest"):
        g = np.asarray(jax.jit(functools.partial(encoding_gram, d_model=_D, base=_BASE))(p), dtype=np.float64)
    spread = max(float(np.ptp(np.diagonal(g, o))) for o in range(-t + 1, t))
    # float32: each entry is a sum of D/2 products of encodings with angle errors of about
    # (offset + T)·eps each, relative to the diagonal value D/2.
    return spread / (_D / 2), 2 * (offset + t) * _EPS32


@check("positional.sinusoidal", f"max |‖PE(p)‖² - D/2| / (D/2) for p = 0, 7, 14, .., 10^4, D = {_D} (jit)")
def _every_encoding_has_length_sqrt_half_d(rng):
    p = jnp.arange(0, 10_001, 7, dtype=jnp.int32) + int(rng.integers(0, 7))
    pe = jax.jit(functools.partial(sinusoidal_encoding, d_model=_D, base=_BASE))(p)
    worst = float(jnp.max(jnp.abs(jnp.sum(pe * pe, axis=-1) - _D / 2)) / (_D / 2))
    # sin² + cos² of one rounded angle is 1 to a few eps at any position: no growth with p.
    return worst, 8 * _EPS32
