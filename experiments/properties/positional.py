"""Sampled checks of positional encoding (week 10): sinusoidal rotation, Toeplitz Gram, norms; RoPE lengths and shifts."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.positional import encoding_gram, rotary, rotary_scores, shift_rotation, sinusoidal_encoding

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


# --- rotary position embedding ----------------------------------------------------------------------

_B, _H, _T, _S, _K = 2, 2, 16, 16, 64


@check("positional.rotary", f"max |‖RoPE(x, p)_t‖ - ‖x_t‖| / ‖x_t‖ over p in [0, 10^5), [B, H, T, K] = "
                            f"[{_B}, {_H}, {_T}, {_K}] (jit)")
def _rotation_keeps_lengths(rng):
    x = rng.standard_normal((_B, _H, _T, _K)).astype(np.float32)
    p = jnp.asarray(rng.integers(0, 100_000, _T), dtype=jnp.int32)
    y = np.asarray(jax.jit(functools.partial(rotary, base=_BASE))(jnp.asarray(x), p), dtype=np.float64)
    x64 = x.astype(np.float64)
    before, after = np.linalg.norm(x64, axis=-1), np.linalg.norm(y, axis=-1)
    # cos² + sin² of one rounded angle is 1 to a few eps whatever the position: the rounding
    # of a large angle moves the rotation, not the length.  Each rotated entry adds a few eps.
    return float(np.max(np.abs(after - before) / before)), 8 * _EPS32


@check("positional.rotary_relative",
       f"max |g(p + c, s + c) - g(p, s)| / (‖q_t‖ ‖k_u‖) over p, s in [0, 512), c in [0, 4096), "
       f"[B, H, T, S, K] = [{_B}, {_H}, {_T}, {_S}, {_K}] (jit)")
def _shifting_both_positions_keeps_the_scores(rng):
    pos_max, shift_max = 512, 4096
    q = jnp.asarray(rng.standard_normal((_B, _H, _T, _K)), dtype=jnp.float32)
    k = jnp.asarray(rng.standard_normal((_B, _H, _S, _K)), dtype=jnp.float32)
    p = rng.integers(0, pos_max, _T)
    s = rng.integers(0, pos_max, _S)
    c = int(rng.integers(0, shift_max))
    scores = jax.jit(functools.partial(rotary_scores, base=_BASE))
    with jax.default_matmul_precision("highest"):
        g = np.asarray(scores(q, jnp.asarray(p, jnp.int32), k, jnp.asarray(s, jnp.int32)), np.float64)
        g_c = np.asarray(scores(q, jnp.asarray(p + c, jnp.int32), k, jnp.asarray(s + c, jnp.int32)), np.float64)
    scale = (np.linalg.norm(np.asarray(q, np.float64), axis=-1)[..., :, None]
             * np.linalg.norm(np.asarray(k, np.float64), axis=-1)[..., None, :])
    # float32: an angle P θ is rounded to about P·eps/2, so each rotated vector moves by about
    # P·eps/2 of its length (P ≤ pos_max + shift_max); q and k, in both scores, make four such
    # errors.  The dot product of K terms adds about K·eps (worst case) of ‖q‖ ‖k‖.
    return float(np.max(np.abs(g_c - g) / scale)), (2 * (pos_max + shift_max) + _K + 16) * _EPS32
