"""Sampled checks of the GPT (week 12): the whole model is causal, the tied head is the embedding, the count."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from flax import nnx

import derivations
from experiments.properties import check
from model.gpt import GPT, GPTConfig, count_parameters, embed, param_count

B, T = 2, 16  # one batch shape for the model checks below: one compile each
_CONFIG = GPTConfig.tiny()


@functools.partial(jax.jit, static_argnums=0)
def _logits(graphdef, state, tokens):
    """The model as a pure function of (graphdef, state, tokens): the jit boundary of training."""
    return nnx.merge(graphdef, state)(tokens)


def _model(rng, config: GPTConfig = _CONFIG) -> GPT:
    return GPT(config, rngs=nnx.Rngs(int(rng.integers(2**31))))


@check("gpt.logits", f"whole GPT (tiny preset, jit, B = {B}, T = {T}): max |Δ logits[:, :t+1]| when every token "
                     "after t is replaced, over t = 0 .. T-2")
def _causal(rng):
    graphdef, state = nnx.split(_model(rng))
    tokens = rng.integers(0, _CONFIG.vocab_size, (B, T))
    base = np.asarray(_logits(graphdef, state, jnp.asarray(tokens, jnp.int32)))
    worst = 0.0
    for t in range(T - 1):
        changed = tokens.copy()
        later = changed[:, t + 1:]
        changed[:, t + 1:] = (later + rng.integers(1, _CONFIG.vocab_size, later.shape)) % _CONFIG.vocab_size
        out = np.asarray(_logits(graphdef, state, jnp.asarray(changed, jnp.int32)))
        worst = max(worst, float(np.abs(out[:, :t + 1] - base[:, :t + 1]).max()))
    return worst, 0.0  # exact: future keys get weight exactly 0, so they add exact zeros


@check("gpt.logits", "tied head (tiny preset, jit): W_E[v] += W_E[w] for a token v not in the input; max over the "
                     "other columns of |Δ logits| + max |Δ logits[:, :, v] − logits[:, :, w]| (z_v = u·W_E[v], "
                     "so Δz_v = u·W_E[w] = z_w)")
def _tied_head_is_the_embedding(rng):
    model = _model(rng)
    v, w = (int(i) for i in rng.choice(_CONFIG.vocab_size, 2, replace=False))
    tokens = jnp.asarray((np.arange(B * T).reshape(B, T) % (_CONFIG.vocab_size - 1) + v + 1) % _CONFIG.vocab_size,
                         jnp.int32)  # every token but v, so the embedding of the input does not change
    before = _logits(*nnx.split(model), tokens)
    model.wte[...] = model.wte[...].at[v].add(model.wte[...][w])
    delta = np.asarray(_logits(*nnx.split(model), tokens) - before)
    column = np.abs(delta[..., v] - np.asarray(before)[..., w]).max()
    return float(np.abs(np.delete(delta, v, axis=-1)).max() + column), 1e-6  # float32 logits of size ~0.1


@check("gpt.embedding", "under jit, where ids cannot be checked: an id outside [0, V) gives a NaN row, never a "
                        "clamped one; count of non-NaN entries in bad rows + max |error| of the good rows")
def _out_of_range_is_nan(rng):
    v, d, t = 7, 4, 6
    wte = jnp.asarray(rng.standard_normal((v, d)), jnp.float32)
    wpe = jnp.asarray(rng.standard_normal((t, d)), jnp.float32)
    ids = rng.integers(0, v, t)
    bad = np.array([1, 4])
    ids[bad] = (v, -1)
    x = np.asarray(jax.jit(embed)(jnp.asarray(ids, jnp.int32), wte, wpe))
    good = np.setdiff1d(np.arange(t), bad)
    expected = np.asarray(wte)[ids[good]] + np.asarray(wpe)[good]
    return float(np.sum(~np.isnan(x[bad]))) + float(np.abs(x[good] - expected).max()), 0.0


@check("gpt.param_count", "max |param_count − formula| over the eight (tie_embeddings, learned_positions, biases) "
                          "choices at three shapes, and |param_count − the parameters of a GPT built concretely| (tiny, untied)")
def _every_flag_and_the_real_module(rng):
    d = derivations.get("gpt.param_count")
    syms = {str(s): s for s in d.statement.rhs.free_symbols}
    worst = 0
    for (v, t, dm, h, f, n_layers), tie, learned, bias in itertools.product(
            ((11, 5, 8, 2, 12, 3), (65, 32, 32, 2, 128, 2), (97, 7, 6, 3, 10, 1)), (0, 1), (0, 1), (0, 1)):
        formula = d.statement.rhs.subs({syms["V"]: v, syms["T"]: t, syms["D"]: dm, syms["F"]: f, syms["L"]: n_layers,
                                        syms["tie_embeddings"]: tie, syms["learned_positions"]: learned,
                                        syms["biases"]: bias})
        counted = param_count(v, t, dm, h, f, n_layers, tie_embeddings=tie, learned_positions=learned,
                              biases=bias)
        worst = max(worst, abs(counted - int(sp.Integer(formula))))
    c = dataclasses.replace(_CONFIG, tie_embeddings=False)
    real = count_parameters(_model(rng, c))
    worst = max(worst, abs(real - param_count(c.vocab_size, c.context, c.d_model, c.n_heads, c.d_ff, c.n_layers,
                                              tie_embeddings=False)))
    return float(worst), 0.0
