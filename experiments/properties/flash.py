"""Sampled checks of online softmax and blockwise attention (week 7) against the one-shot forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.properties import check
from model.attention import causal_mask, sdpa
from model.flash import flash_attention, online_softmax

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


def _relative(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), np.finfo(np.float64).tiny))


def _cases(rng):
    """(q, k, v, mask or None, causal, cotangent): T = 37 with tiles of 8 (padding in both axes).

    Causal with S = 45 > T (the queries are the last T of S positions; the tiles above the
    diagonal are skipped), and a random mask with a fully masked row and S = T.
    """
    b, h, t, s, width = 2, 2, 37, 45, 8
    q = jnp.asarray(rng.standard_normal((b, h, t, width)), jnp.float32)
    k, v = (jnp.asarray(rng.standard_normal((b, h, s, width)), jnp.float32) for _ in range(2))
    mask = rng.random((h, t, t)) < 0.4
    mask[:, 5] = False  # a query that sees nothing
    cot = jnp.asarray(rng.standard_normal((b, h, t, width)), jnp.float32)
    return [(q, k, v, None, True, cot), (q, k[..., :t, :], v[..., :t, :], jnp.asarray(mask), False, cot)]


def _outputs_and_grads(attend, cases):
    """For each case: the output and (dQ, dK, dV) of Σ c∘o, all in one jit-compiled call."""

    def run(cases):
        results = []
        for q, k, v, mask, causal, cot in cases:
            out, pull = jax.vjp(lambda q, k, v, m=mask, c=causal: attend(q, k, v, m, c), q, k, v)
            results.append((out, *pull(cot)))
        return results

    static = [c[4] for c in cases]
    arrays = [(q, k, v, m, cot) for q, k, v, m, _, cot in cases]
    fn = jax.jit(lambda arrays: run([(q, k, v, m, c, cot) for (q, k, v, m, cot), c in zip(arrays, static)]))
    return fn(arrays)


def _flash(q, k, v, mask, causal):
    return flash_attention(q, k, v, mask, block_size=8, causal=causal)


def _sdpa(q, k, v, mask, causal):
    return sdpa(q, k, v, causal_mask(q.shape[-2], k.shape[-2]) if causal else mask)


@check("flash.attention", "max relative error of the output and of jax.grad (dQ, dK, dV of Σ c∘o) vs "
                          "model.attention.sdpa: causal (T = 37, S = 45) and a random mask with a fully "
                          "masked row (S = T), tiles of 8")
def _equals_sdpa(rng):
    cases = _cases(rng)
    ours, theirs = _outputs_and_grads(_flash, cases), _outputs_and_grads(_sdpa, cases)
    worst = max(_relative(a, b) for mine, ref in zip(ours, theirs) for a, b in zip(mine, ref))
    return worst, 1e-5  # float32: the same sums in another order, a few more roundings in the gradients


@check("flash.attention", "large scores (|s| up to ~400, where e^s overflows float32 without the running max): "
                          "error vs float64 / max|v|, over the float32 bound 2 γ_K max Σ|q k|/√K + 1e-5")
def _large_scores(rng):
    t, width = 64, 16
    q = (rng.standard_normal((t, width)) * 100).astype(np.float32)
    k, v = (rng.standard_normal((t, width)).astype(np.float32) for _ in range(2))
    ours = np.asarray(jax.jit(lambda q, k, v: flash_attention(q, k, v, block_size=16, causal=True))(q, k, v))
    x = q.astype(np.float64) @ k.T.astype(np.float64) / np.sqrt(width)
    x = np.where(np.tril(np.ones((t, t), bool)), x, -np.inf)
    p = np.exp(x - x.max(-1, keepdims=True))
    expected = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    if not np.all(np.isfinite(ours)):
        return float("inf"), 1.0
    # the float32 scores are off by at most γ_K Σ|q_i k_i|/√K (γ_K = K u / (1 - K u)); a score error δ
    # moves the output by at most 2 max|δ| max|v|; 1e-5 covers the rounding of the sums.
    gamma = width * _U32 / (1 - width * _U32)
    bound = 2 * gamma * float(np.max(np.abs(q) @ np.abs(k).T)) / np.sqrt(width) + 1e-5
    return float(np.max(np.abs(ours - expected)) / np.max(np.abs(v))) / bound, 1.0


@check("flash.online_softmax", "max |online_softmax(s, v) − softmax(s) v| / max|v| with −∞ (masked) scores, "
                               "an all −∞ row (zeros) and block sizes 1, 3, 16")
def _masked_rows(rng):
    s = rng.standard_normal((6, 11)) * 5
    s[rng.random(s.shape) < 0.3] = -np.inf
    s[2] = -np.inf
    s[3, 0] = 0.0  # one key only
    v = rng.standard_normal((11, 4))
    p = np.exp(s - np.where(np.isfinite(s.max(-1, keepdims=True)), s.max(-1, keepdims=True), 0))
    total = p.sum(-1, keepdims=True)
    expected = p / np.where(total > 0, total, 1) @ v
    ours = np.asarray(jax.jit(lambda s, v: jnp.stack([online_softmax(s, v, block_size=b) for b in (1, 3, 16)]))(
        jnp.asarray(s, jnp.float32), jnp.asarray(v, jnp.float32)))
    if not np.all(np.isfinite(ours)):
        return float("inf"), 1e-5
    return float(np.max(np.abs(ours - expected[None])) / np.max(np.abs(v))), 1e-5  # float32 sums of 11 terms
