"""Generation: sampling rules, the cached loop against the uncached one, the context window, bad settings.

One small model (context 16) and one prompt shape keep the compiled loops to a handful:
with and without the cache, with and without top-k / top-p.  A run of 5 + 20 tokens
goes past the context, so the sliding window is exercised too.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from model.generate import (
    _generate_jit,
    check_sampling,
    filter_logits,
    forward_with_cache,
    generate,
    init_cache,
    next_token_probs,
    sample_next_token,
)
from model.gpt import GPT, GPTConfig

CONFIG = GPTConfig.tiny(context=16)
V, C = CONFIG.vocab_size, CONFIG.context
B, T0, N = 2, 5, 20  # T0 + N = 25 > C + 1: the last 8 tokens are predicted from a sliding window
PROMPT = np.random.default_rng(0).integers(0, V, (B, T0)).astype(np.int32)
RTOL = 1e-5  # float32


@functools.cache
def model() -> GPT:
    return GPT(CONFIG, rngs=nnx.Rngs(0))


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, tokens):
    return nnx.merge(graphdef, state)(tokens)


def forward(tokens):
    """The full forward pass ``model(tokens)``, jitted."""
    return _forward(*nnx.split(model()), jnp.asarray(tokens))


@functools.cache
def run(use_cache: bool, temperature=1.0, top_k=None, top_p=None, seed=0) -> np.ndarray:
    return generate(model(), PROMPT, N, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    use_cache=use_cache)


def next_logits(out: np.ndarray, j: int) -> np.ndarray:
    """The logits ``[B, V]`` of the full forward pass that predicts token ``j`` (at most the last C tokens)."""
    s = max(0, j - C)
    window = out[:, s:s + C]  # later tokens in the window are masked by causality
    return np.asarray(forward(window))[:, j - 1 - s]


SETTINGS = [
    {"temperature": 0.0},
    {"temperature": 0.8},
    {"top_k": 5},
    {"top_p": 0.9},
    {"temperature": 0.7, "top_k": 10, "top_p": 0.8},
]


# --- the cache ---------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _cached(graphdef, state, tokens, cache, start):
    return forward_with_cache(nnx.merge(graphdef, state), tokens, cache, start)


def test_prefill_and_decode_give_the_logits_of_the_full_forward():
    tokens = np.random.default_rng(1).integers(0, V, (B, C)).astype(np.int32)
    graphdef, state = nnx.split(model())
    cache = init_cache(model(), B)
    assert len(cache) == CONFIG.n_layers
    assert cache[0][0].shape == (B, CONFIG.n_heads, C, CONFIG.d_model // CONFIG.n_heads)
    prefill, cache = _cached(graphdef, state, jnp.asarray(tokens[:, :T0]), cache, jnp.int32(0))
    steps = [prefill]
    for p in range(T0, C):  # start is traced: one compiled step serves every position
        logits, cache = _cached(graphdef, state, jnp.asarray(tokens[:, p:p + 1]), cache, jnp.int32(p))
        steps.append(logits)
    cached = np.concatenate([np.asarray(s) for s in steps], axis=1)
    full = np.asarray(forward(tokens))
    assert cached.shape == full.shape == (B, C, V)
    np.testing.assert_allclose(cached, full, rtol=RTOL, atol=RTOL * np.abs(full).max())


# --- cached and uncached generation ------------------------------------------------------------


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_cached_and_uncached_generation_give_the_same_tokens(kw):
    cached, uncached = run(True, **kw), run(False, **kw)
    assert cached.shape == (B, T0 + N) and cached.dtype == np.int32
    np.testing.assert_array_equal(cached[:, :T0], PROMPT)
    np.testing.assert_array_equal(cached, uncached)
    assert ((cached >= 0) & (cached < V)).all()


def test_the_seed_fixes_the_draws():
    a, b = run(True, seed=0), run(True, seed=1)
    np.testing.assert_array_equal(a, run(True, seed=0))
    assert (a[:, T0:] != b[:, T0:]).any()
    assert (a[0, T0:] != a[1, T0:]).any()  # the rows are drawn independently


def test_settings_and_seeds_reuse_the_compiled_loop():
    run(True, temperature=0.7, top_k=10, top_p=0.8)
    size = _generate_jit._cache_size()
    generate(model(), PROMPT, N, temperature=1.3, top_k=3, seed=5)
    generate(model(), PROMPT, N, temperature=0.0, top_p=0.5, seed=6)
    assert _generate_jit._cache_size() == size


def test_greedy_takes_the_argmax_of_the_full_forward_at_every_step():
    out = run(True, temperature=0.0)
    for j in range(T0, T0 + N):
        np.testing.assert_array_equal(out[:, j], next_logits(out, j).argmax(-1))
    np.testing.assert_array_equal(out, run(True, temperature=0.0, seed=7))  # no randomness


def test_temperature_zero_equals_top_k_one_and_a_tiny_nucleus():
    greedy = run(True, temperature=0.0)
    np.testing.assert_array_equal(greedy, run(True, top_k=1, seed=3))
    np.testing.assert_array_equal(greedy, run(True, top_p=1e-6, seed=4))


def test_top_k_emits_only_the_k_most_probable_tokens():
    k = 3
    out = run(True, temperature=2.0, top_k=k)
    for j in range(T0, T0 + N):
        logits = next_logits(out, j)
        kth = np.sort(logits, axis=-1)[:, -k]
        assert (logits[np.arange(B), out[:, j]] >= kth).all(), f"token {j} is outside the top {k}"
    assert (out[:, T0:] != run(True, temperature=0.0)[:, T0:]).any()  # it did sample


def test_a_prompt_longer_than_the_context_warns_and_is_cut_to_its_last_tokens():
    long = np.random.default_rng(2).integers(0, V, (B, C + 4)).astype(np.int32)
    with pytest.warns(UserWarning, match=r"20 tokens.*context of 16.*4 dropped"):
        out = generate(model(), long, 3, seed=1)
    assert out.shape == (B, C + 4 + 3)
    np.testing.assert_array_equal(out[:, :C + 4], long)
    np.testing.assert_array_equal(out[:, C + 4:], generate(model(), long[:, 4:], 3, seed=1)[:, C:])


def test_a_single_sequence_and_no_new_tokens():
    out = generate(model(), PROMPT[0].tolist(), 0)  # the 1-D case of a generation is the docstring's example
    assert out.shape == (T0,) and out.dtype == np.int32
    np.testing.assert_array_equal(out, PROMPT[0])
    np.testing.assert_array_equal(generate(model(), PROMPT, 0), PROMPT)


# --- sampling, the pure functions --------------------------------------------------------------


@jax.jit
def _probs(z, temperature, top_k, top_p):
    return next_token_probs(z, temperature=temperature, top_k=top_k, top_p=top_p)


def probs(z, temperature=1.0, top_k=None, top_p=None) -> np.ndarray:
    """:func:`next_token_probs`, jitted with traced settings (one compile per shape; k = V, p = 1 keep all)."""
    z = jnp.asarray(z, jnp.float32)
    k = z.shape[-1] if top_k is None else top_k
    return np.asarray(_probs(z, float(temperature), k, 1.0 if top_p is None else float(top_p)), np.float64)


# distinct logits, 0.1 apart: no ties in the order (a tie may be broken either way)
logits_rows = st.lists(st.integers(-40, 40), min_size=8, max_size=8, unique=True)


@settings(max_examples=30)
@given(logits_rows, st.integers(1, 8), st.floats(0.05, 1.0), st.floats(0.2, 3.0))
def test_the_truncated_distribution(row, k, p, tau):
    z = np.array(row, np.float32) / 10
    q = probs(z, tau, k, p)
    assert math.isclose(q.sum(), 1.0, rel_tol=1e-5)
    kept = q > 0
    order = np.argsort(-z)
    # the kept set is a prefix of the tokens by decreasing logit, within the top k
    assert kept[order].tolist() == sorted(kept[order].tolist(), reverse=True)
    n = int(kept.sum())
    assert 1 <= n <= k
    # it is the smallest prefix holding mass >= p under the top-k distribution at temperature tau
    e = np.exp((z[order[:k]].astype(np.float64) - z[order[0]]) / tau)
    mass = np.cumsum(e / e.sum())
    assert mass[n - 1] >= p - 1e-5 or n == k
    assert n == 1 or mass[n - 2] < p + 1e-5
    # renormalised: proportional to exp(z / tau) on the kept set
    np.testing.assert_allclose(q[order[:n]], e[:n] / e[:n].sum(), rtol=1e-5)


Z = np.random.default_rng(3).normal(size=(B, V)).astype(np.float32)


def test_sampling_stays_in_the_top_k_and_follows_the_distribution():
    keys = jax.random.split(jax.random.key(0), 4000)
    draw = jax.jit(jax.vmap(lambda key: sample_next_token(key, jnp.asarray(Z[0]), temperature=1.5, top_k=4)))
    tokens = np.asarray(draw(keys))
    assert set(tokens.tolist()) == set(np.argsort(-Z[0])[:4].tolist())
    freq = np.bincount(tokens, minlength=V) / len(tokens)
    assert np.abs(freq - probs(Z, 1.5, 4)[0]).max() < 0.03  # 4000 draws: standard error below 0.008


def test_temperature_is_the_softmax_of_z_over_tau_and_tends_to_greedy():
    for tau in (0.5, 1.0, 2.0):
        e = np.exp((Z - Z.max(-1, keepdims=True)) / tau)
        np.testing.assert_allclose(probs(Z, tau), e / e.sum(-1, keepdims=True), rtol=1e-5)
    one_hot = np.eye(V)[Z.argmax(-1)]
    np.testing.assert_array_equal(probs(Z, 0.0), one_hot)
    np.testing.assert_allclose(probs(Z * 1e3, 1e-2), one_hot, atol=1e-6)  # gaps of ~1e3 / 1e-2


def test_temperature_zero_is_the_argmax_eagerly_too():
    z = jnp.array([[0.0, 2.0, 1.0], [3.0, 3.0, -1.0]])  # ties go to the first
    np.testing.assert_array_equal(sample_next_token(jax.random.key(1), z, temperature=0.0), [1, 0])
    np.testing.assert_array_equal(filter_logits(z, temperature=0.0), [[-np.inf, 2.0, -np.inf],
                                                                     [3.0, -np.inf, -np.inf]])


def test_a_tiny_nucleus_keeps_the_most_probable_token_and_p_one_keeps_all():
    np.testing.assert_array_equal(probs(Z, top_p=1e-9), probs(Z, 0.0))
    assert (probs(Z, top_p=1.0) > 0).all()
    np.testing.assert_allclose(probs(Z, top_k=V, top_p=1.0), jax.nn.softmax(Z), rtol=1e-5)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, match", [
    ({"temperature": -0.5}, "temperature"), ({"temperature": math.nan}, "temperature"),
    ({"temperature": math.inf}, "temperature"), ({"temperature": "hot"}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_k": 0}, r"top_k.*\[1, 65\].*got 0"), ({"top_k": V + 1}, "top_k"), ({"top_k": 2.5}, "top_k"),
    ({"top_k": True}, "top_k"),
    ({"top_p": 0.0}, r"top_p.*\(0, 1\].*got 0.0"), ({"top_p": 1.5}, "top_p"), ({"top_p": -0.1}, "top_p"),
    ({"top_p": math.nan}, "top_p"),
])
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        generate(model(), PROMPT, 2, **kw)
    with pytest.raises(ValueError, match=match):
        sample_next_token(jax.random.key(0), jnp.zeros((2, V)), **kw)
    with pytest.raises(ValueError, match=match):
        check_sampling(**kw, vocab_size=V)


@pytest.mark.parametrize("prompt, args, error, match", [
    ([], {}, ValueError, "at least one id"),
    (np.zeros((2, 0), np.int32), {}, ValueError, "at least one id"),
    (np.zeros((1, 2, 3), np.int32), {}, ValueError, r"\[B, T\] or \[T\]"),
    (np.array([1.0, 2.0]), {}, TypeError, "integer"),
    (np.array([[1, V]]), {}, ValueError, r"\[0, 65\).*got 65"),
    (np.array([[1, -1]]), {}, ValueError, "got -1"),
    (PROMPT, {"max_new_tokens": -1}, ValueError, "max_new_tokens"),
    (PROMPT, {"max_new_tokens": 2.0}, ValueError, "max_new_tokens"),
    (PROMPT, {"seed": "a"}, ValueError, "seed"),
    (PROMPT, {"seed": 2**32}, ValueError, r"seed.*\[0, 2\*\*32\)"),
    (PROMPT, {"seed": -1}, ValueError, "seed"),
    (PROMPT, {"use_cache": 1}, TypeError, "use_cache"),
])
def test_bad_prompts_and_arguments_raise(prompt, args, error, match):
    args = {"max_new_tokens": 2, **args}
    with pytest.raises(error, match=match):
        generate(model(), prompt, **args)


def test_generate_needs_a_gpt():
    with pytest.raises(TypeError, match="GPT"):
        generate(lambda tokens: tokens, PROMPT, 2)


def test_traced_settings_are_not_checked_but_work():
    eager = next_token_probs(jnp.asarray(Z), temperature=0.9, top_k=7, top_p=0.6)
    np.testing.assert_allclose(probs(Z, 0.9, 7, 0.6), eager, rtol=1e-5)


@pytest.mark.parametrize("positional", ["rotary", pytest.param("sinusoidal", marks=pytest.mark.slow)])
def test_other_position_schemes_cached_equals_uncached(positional):
    """Rotary (positions inside attention) and sinusoidal (computed rows) models: the cache gives the tokens and
    the prefill logits of the uncached path."""
    m = GPT(GPTConfig.tiny(context=16, positional=positional), rngs=nnx.Rngs(1))
    cached = generate(m, PROMPT, N, temperature=0.0, use_cache=True)
    uncached = generate(m, PROMPT, N, temperature=0.0, use_cache=False)
    np.testing.assert_array_equal(cached, uncached)
    logits, _ = jax.jit(lambda s, t: forward_with_cache(nnx.merge(nnx.graphdef(m), s), t,
                                                        init_cache(nnx.merge(nnx.graphdef(m), s), B), 0))(
        nnx.state(m), jnp.asarray(PROMPT))
    full = jax.jit(lambda s, t: nnx.merge(nnx.graphdef(m), s)(t))(nnx.state(m), jnp.asarray(PROMPT))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(full), rtol=RTOL, atol=1e-6)
