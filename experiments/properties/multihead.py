"""Sampled checks of multi-head attention (week 8)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.properties import check
from model.attention import causal_mask, sdpa
from model.multihead import (MultiHeadAttention, merge_heads, multi_head_attention, output_projection,
                             param_count, split_heads)
from model.validate import add_bias

_NAMES = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")
B, T, D, H = 2, 5, 12, 3  # one set of shapes for the checks below: one compile each

_mha = jax.jit(multi_head_attention, static_argnames="n_heads")


def _params(rng, d: int = D) -> dict:
    return {n: jnp.asarray(rng.standard_normal((d, d) if n.startswith("w") else (d,)) / np.sqrt(d),
                           dtype=jnp.float32) for n in _NAMES}


def _inputs(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), dtype=jnp.float32)


def _relative(actual, expected) -> float:
    return float(jnp.max(jnp.abs(actual - expected)) / jnp.max(jnp.abs(expected)))


@check("multihead.attention", f"max |d y_t / d x_s| for s > t, causal mask, by jax.jacfwd (T = {T}, D = {D}, H = {H})")
def _causal(rng):
    p, x = _params(rng), _inputs(rng, T, D)
    jac = jax.jit(jax.jacfwd(lambda x: multi_head_attention(x, **p, n_heads=H, mask=causal_mask(T, T))))(x)
    dep = np.abs(np.asarray(jac)).max(axis=(1, 3))  # [t, s]: how much output row t moves with input row s
    future = np.arange(T)[None, :] > np.arange(T)[:, None]
    return float(dep[future].max()), 0.0  # exactly zero: future keys get weight exactly 0


@functools.partial(jax.jit, static_argnames="n_heads")
def _head_by_head(x, p, mask, *, n_heads):
    """Σ_h sdpa(x W_Q^(h) + b_Q^(h), x W_K^(h) + b_K^(h), x W_V^(h) + b_V^(h)) W_O^(h) + b_O, one head at a time."""
    k = x.shape[-1] // n_heads
    out = jnp.broadcast_to(p["b_o"], x.shape)
    for h in range(n_heads):
        cols = slice(h * k, (h + 1) * k)
        q, kk, v = (add_bias(jnp.einsum("...td,dk->...tk", x, p[f"w_{n}"][:, cols]), p[f"b_{n}"][cols]) for n in "qkv")
        out = out + jnp.einsum("...tk,kd->...td", sdpa(q, kk, v, mask), p["w_o"][cols, :])
    return out


@check("multihead.attention", f"MHA vs Σ_h sdpa(x W_Q^(h) + b_Q^(h), …) W_O^(h) + b_O computed head by head "
                              f"(B = {B}, T = {T}, D = {D}, H = {H}, causal), relative error")
def _sum_over_heads(rng):
    p, x = _params(rng), _inputs(rng, B, T, D)
    mask = causal_mask(T, T)
    ours = _mha(x, **p, n_heads=H, mask=mask)
    return _relative(ours, _head_by_head(x, p, mask, n_heads=H)), 1e-5  # float32, another summation order


@check("multihead.attention", "max |MHA(P x) − P MHA(x)| relative, P a random permutation of the positions, no mask")
def _permutation_equivariant(rng):
    p, x = _params(rng), _inputs(rng, B, T, D)
    perm = rng.permutation(T)
    return _relative(_mha(x[:, perm], **p, n_heads=H), _mha(x, **p, n_heads=H)[:, perm]), 1e-5


@check("multihead.concat_identity", "merge_heads(split_heads(x)) == x and split_heads(merge_heads(y)) == y exactly")
def _split_merge_inverse(rng):
    x, y = _inputs(rng, B, T, D), _inputs(rng, B, H, T, D // H)

    @jax.jit
    def errors(x, y):
        back, forth = merge_heads(split_heads(x, H)), split_heads(merge_heads(y), H)
        return jnp.maximum(jnp.max(jnp.abs(back - x)), jnp.max(jnp.abs(forth - y)))

    return float(errors(x, y)), 0.0  # a transpose and a reshape: exact


@check("multihead.concat_identity", "Σ_h o_h W_O^(h) + b_O vs Concat(o_0, …) W_O + b_O as one matmul "
                                    "(B = 2, T = 16, D = 64, H = 8), relative error")
def _sum_equals_matmul(rng):
    d, h = 64, 8
    o, w_o, b_o = _inputs(rng, 2, 16, d), _inputs(rng, d, d) / np.sqrt(d), _inputs(rng, d)

    @jax.jit
    def both(o, w_o, b_o):
        return output_projection(o, w_o, b_o, n_heads=h), add_bias(jnp.einsum("btd,de->bte", o, w_o), b_o)

    return _relative(*both(o, w_o, b_o)), 1e-5


@check("multihead.param_count", "max |param_count(D, H) − (4D² + 4D)| over (D, H) in (8, 1), (8, 2), (12, 3), "
                                "(64, 8), (512, 8), and − the parameters of a module built at D = 4, H = 2")
def _counts_the_real_module(rng):
    worst = max(abs(param_count(d, h) - (4 * d * d + 4 * d)) for d, h in ((8, 1), (8, 2), (12, 3), (64, 8), (512, 8)))
    module = MultiHeadAttention(4, 2, rngs=nnx.Rngs(int(rng.integers(2**31))))
    real = sum(int(p.size) for p in jax.tree.leaves(nnx.state(module, nnx.Param)))
    return float(max(worst, abs(param_count(4, 2) - real))), 0.0
