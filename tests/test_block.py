"""The pre-LN transformer block (week 11): module == function, composition, causality, bad input;
the rotary and dropout hooks, the block without biases, and decoding with a key/value cache."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.attention import causal_mask
from model.block import (
    TransformerBlock,
    attention_sublayer,
    ffn_sublayer,
    transformer_block,
    transformer_block_cached,
)
from model.feedforward import feed_forward
from model.multihead import multi_head_attention
from model.normalization import layer_norm

B, T, D, H, F = 2, 5, 8, 2, 16
EPS = 1e-5
_rng = np.random.default_rng(0)


def _normal(*shape, scale=1.0):
    return jnp.asarray(_rng.standard_normal(shape) * scale, dtype=jnp.float32)


P = {
    "gamma_1": 1 + _normal(D, scale=0.1), "beta_1": _normal(D, scale=0.1),
    "w_q": _normal(D, D, scale=0.4), "b_q": _normal(D, scale=0.1),
    "w_k": _normal(D, D, scale=0.4), "b_k": _normal(D, scale=0.1),
    "w_v": _normal(D, D, scale=0.4), "b_v": _normal(D, scale=0.1),
    "w_o": _normal(D, D, scale=0.4), "b_o": _normal(D, scale=0.1),
    "gamma_2": 1 + _normal(D, scale=0.1), "beta_2": _normal(D, scale=0.1),
    "w_1": _normal(D, F, scale=0.4), "b_1": _normal(F, scale=0.1),
    "w_2": _normal(F, D, scale=0.3), "b_2": _normal(D, scale=0.1),
}
X = _normal(B, T, D)
MASK = causal_mask(T, T)
block = jax.jit(functools.partial(transformer_block, n_heads=H, eps=EPS))


def _module_call(graphdef, state, x, mask):
    return nnx.merge(graphdef, state)(x, mask)


@pytest.mark.parametrize("causal", [False, True])
def test_module_equals_the_pure_function_with_its_parameters(causal):
    m = TransformerBlock(D, H, F, eps=EPS, rngs=nnx.Rngs(0))
    # non-trivial LayerNorm parameters and biases, so that every parameter path is compared
    for mod, name in ((m.ln1, "gamma"), (m.ln1, "beta"), (m.ln2, "gamma"), (m.ln2, "beta"),
                      (m.attn, "b_q"), (m.attn, "b_o"), (m.ffn, "b_1"), (m.ffn, "b_2")):
        getattr(mod, name)[...] = _normal(*getattr(mod, name)[...].shape, scale=0.1)
    mask = MASK if causal else None
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X, mask)
    a, f = m.attn, m.ffn
    params = {"gamma_1": m.ln1.gamma[...], "beta_1": m.ln1.beta[...],
                  "w_q": a.w_q[...], "b_q": a.b_q[...], "w_k": a.w_k[...], "b_k": a.b_k[...],
                  "w_v": a.w_v[...], "b_v": a.b_v[...], "w_o": a.w_o[...], "b_o": a.b_o[...],
                  "gamma_2": m.ln2.gamma[...], "beta_2": m.ln2.beta[...],
                  "w_1": f.w_1[...], "b_1": f.b_1[...], "w_2": f.w_2[...], "b_2": f.b_2[...]}
    np.testing.assert_allclose(ours, block(X, **params, mask=mask), rtol=1e-6, atol=1e-6)
    assert ours.shape == (B, T, D)


def test_block_is_the_composition_of_the_verified_parts():
    p = P
    z = layer_norm(X, p["gamma_1"], p["beta_1"], eps=EPS)
    h = X + multi_head_attention(z, p["w_q"], p["b_q"], p["w_k"], p["b_k"], p["w_v"], p["b_v"], p["w_o"], p["b_o"],
                                 n_heads=H, mask=MASK)
    y = h + feed_forward(layer_norm(h, p["gamma_2"], p["beta_2"], eps=EPS), p["w_1"], p["b_1"], p["w_2"], p["b_2"])
    np.testing.assert_allclose(block(X, **p, mask=MASK), y, rtol=1e-5, atol=1e-5)
    attn = {k: p[k] for k in ("gamma_1", "beta_1", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}
    ffn = {k: p[k] for k in ("gamma_2", "beta_2", "w_1", "b_1", "w_2", "b_2")}
    h2 = attention_sublayer(X, **attn, n_heads=H, eps=EPS, mask=MASK)
    np.testing.assert_allclose(h2, h, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ffn_sublayer(h2, **ffn, eps=EPS), y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_causal_block_output_at_t_has_zero_gradient_from_later_inputs(jit):
    def f(x):
        return transformer_block(x, **P, n_heads=H, eps=EPS, mask=MASK)

    jac = jax.jacfwd(jax.jit(f) if jit else f)(X[0])  # [t, d, s, e]
    dep = np.abs(np.asarray(jac)).max(axis=(1, 3))
    future = np.arange(T)[None, :] > np.arange(T)[:, None]
    assert dep[future].max() == 0.0
    assert dep[~future].min() > 0.0  # and every position does see itself and the past


# --- drawn values, fixed shapes ---------------------------------------------------------------------

sequences = arrays(np.float32, (T, D), elements=st.floats(-3, 3, width=32))


@settings(max_examples=25, deadline=None)
@given(sequences, sequences, st.integers(0, T - 1))
def test_changing_later_inputs_leaves_earlier_outputs_unchanged(x, other, t):
    x2 = np.array(x)
    x2[t + 1:] = other[t + 1:]
    y, y2 = block(jnp.asarray(x), **P, mask=MASK), block(jnp.asarray(x2), **P, mask=MASK)
    np.testing.assert_allclose(y[: t + 1], y2[: t + 1], rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(sequences, st.permutations(range(T)))
def test_without_a_mask_permuting_positions_permutes_the_outputs(x, perm):
    perm = np.asarray(perm)
    y = np.asarray(block(jnp.asarray(x), **P, mask=None))
    y_perm = np.asarray(block(jnp.asarray(x[perm]), **P, mask=None))
    np.testing.assert_allclose(y_perm, y[perm], rtol=1e-5, atol=1e-5)


# --- bad input -------------------------------------------------------------------------------------

def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., T, D\]"):
        transformer_block(X[0, 0], **P, n_heads=H, eps=EPS)
    with pytest.raises(ValueError, match=r"gamma: expected shape \[D\] = \(8,\), got \(4,\)"):
        transformer_block(X, **{**P, "gamma_2": P["gamma_2"][:4]}, n_heads=H, eps=EPS)
    with pytest.raises(ValueError, match="mask"):
        transformer_block(X, **P, n_heads=H, eps=EPS, mask=causal_mask(T - 1, T - 1))
    with pytest.raises(ValueError, match="3"):
        transformer_block(X, **P, n_heads=3, eps=EPS)
    with pytest.raises(ValueError, match="3"):
        TransformerBlock(D, 3, F, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="d_ff: expected a positive integer"):
        TransformerBlock(D, H, 0, rngs=nnx.Rngs(0))


def test_gelu_block_uses_the_verified_gelu_ffn_and_its_module_agrees():
    from model.feedforward import feed_forward_gelu

    h = attention_sublayer(X, **{k: P[k] for k in ("gamma_1", "beta_1", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v",
                                                   "w_o", "b_o")}, n_heads=H, eps=EPS, mask=MASK)
    y = h + feed_forward_gelu(layer_norm(h, P["gamma_2"], P["beta_2"], eps=EPS), P["w_1"], P["b_1"], P["w_2"], P["b_2"])
    gelu_block = jax.jit(functools.partial(transformer_block, n_heads=H, eps=EPS, activation="gelu"))
    np.testing.assert_allclose(gelu_block(X, **P, mask=MASK), y, rtol=1e-5, atol=1e-5)
    m = TransformerBlock(D, H, F, eps=EPS, activation="gelu", rngs=nnx.Rngs(1))
    assert m.ffn.activation == "gelu"
    with pytest.raises(ValueError, match=r"activation: expected one of \('relu', 'gelu'.*\), got 'tanh'"):
        transformer_block(X, **P, n_heads=H, eps=EPS, activation="tanh")


# --- the rotary and dropout hooks --------------------------------------------------------------------

K = D // H
OMEGA = jnp.asarray([1.0, 0.3], dtype=jnp.float32)  # K / 2 angular frequencies of the test rotation


def rotation_at(positions):
    """A position-dependent rotation of consecutive pairs of the K head dims (a rope-like test callable).

    Pair ``j`` of the row at position ``p`` is turned by the angle ``p * OMEGA[j]``.
    """
    angle = positions[:, None].astype(jnp.float32) * OMEGA[None, :]  # [T, K/2]
    cos, sin = jnp.cos(angle), jnp.sin(angle)

    def rope(u):  # [..., H, T, K]
        u1, u2 = u[..., 0::2], u[..., 1::2]
        c, s = jnp.broadcast_to(cos, u1.shape), jnp.broadcast_to(sin, u1.shape)
        return jnp.stack([u1 * c - u2 * s, u1 * s + u2 * c], axis=-1).reshape(u.shape)

    return rope


ROPE = rotation_at(jnp.arange(T))
DROP_1 = jnp.asarray(_rng.random((B, T, D)) > 0.3, dtype=jnp.float32) / 0.7  # fixed "dropout" masks, rescaled
DROP_2 = jnp.asarray(_rng.random((B, T, D)) > 0.3, dtype=jnp.float32) / 0.7
ATTN = ("gamma_1", "beta_1", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")
FFN = ("gamma_2", "beta_2", "w_1", "b_1", "w_2", "b_2")


def _reference(x, p, *, rope=None, drop_1=None, drop_2=None):
    """x + δ₁(MHA(LN₁(x))), then h + δ₂(FFN(LN₂(h))), composed by hand from the verified parts."""
    a = multi_head_attention(layer_norm(x, p["gamma_1"], p["beta_1"], eps=EPS), *(p[n] for n in ATTN[2:]),
                             n_heads=H, mask=MASK, rope=rope)
    h = x + (a if drop_1 is None else drop_1 * a)
    f = feed_forward(layer_norm(h, p["gamma_2"], p["beta_2"], eps=EPS), p["w_1"], p["b_1"], p["w_2"], p["b_2"])
    return h + (f if drop_2 is None else drop_2 * f)


def test_rope_and_dropout_are_threaded_through_the_block_as_a_hand_composed_reference():
    # one callable for both branches, then a pair (attention, FFN)
    got_one = jax.jit(lambda x: transformer_block(x, **P, n_heads=H, eps=EPS, mask=MASK, rope=ROPE,
                                                  dropout=lambda u: DROP_1 * u))(X)
    np.testing.assert_allclose(got_one, _reference(X, P, rope=ROPE, drop_1=DROP_1, drop_2=DROP_1),
                               rtol=1e-5, atol=1e-5)
    got_pair = jax.jit(lambda x: transformer_block(x, **P, n_heads=H, eps=EPS, mask=MASK, rope=ROPE,
                                                   dropout=(lambda u: DROP_1 * u, lambda u: DROP_2 * u)))(X)
    want = _reference(X, P, rope=ROPE, drop_1=DROP_1, drop_2=DROP_2)
    np.testing.assert_allclose(got_pair, want, rtol=1e-5, atol=1e-5)
    assert float(jnp.max(jnp.abs(want - _reference(X, P)))) > 1e-2  # the hooks do change the output
    only_ffn = jax.jit(lambda x: transformer_block(x, **P, n_heads=H, eps=EPS, mask=MASK,
                                                   dropout=(None, lambda u: DROP_2 * u)))(X)
    np.testing.assert_allclose(only_ffn, _reference(X, P, drop_2=DROP_2), rtol=1e-5, atol=1e-5)
    # each sublayer on its own
    h = jax.jit(lambda x: attention_sublayer(x, **{n: P[n] for n in ATTN}, n_heads=H, eps=EPS, mask=MASK,
                                             rope=ROPE, dropout=lambda u: DROP_1 * u))(X)
    y = jax.jit(lambda h: ffn_sublayer(h, **{n: P[n] for n in FFN}, eps=EPS, dropout=lambda u: DROP_2 * u))(h)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_the_module_passes_rope_and_dropout_through():
    m = TransformerBlock(D, H, F, eps=EPS, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(m)

    def call(state, x):
        return nnx.merge(graphdef, state)(x, MASK, rope=ROPE, dropout=(lambda u: DROP_1 * u, lambda u: DROP_2 * u))

    want = _reference(X, m.params(), rope=ROPE, drop_1=DROP_1, drop_2=DROP_2)
    np.testing.assert_allclose(jax.jit(call)(state, X), want, rtol=1e-5, atol=1e-5)


def test_a_dropout_drawing_from_an_rngs_stream_gives_each_branch_its_own_mask():
    draws = []

    @jax.jit
    def run(x, key):
        rngs = nnx.Rngs(dropout=key)

        def dropout(u):
            keep = jax.random.bernoulli(rngs.dropout(), 0.5, u.shape)
            draws.append(keep)
            return jnp.where(keep, u / 0.5, 0.0)

        y = transformer_block(x, **P, n_heads=H, eps=EPS, mask=MASK, dropout=dropout)
        return y, draws[0], draws[1]

    y, keep_1, keep_2 = run(X, jax.random.key(0))
    assert bool(jnp.any(keep_1 != keep_2))
    want = _reference(X, P, drop_1=keep_1 / 0.5, drop_2=keep_2 / 0.5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_bad_hooks_are_rejected():
    with pytest.raises(TypeError, match=r"dropout: expected a callable or None, got float"):
        transformer_block(X, **P, n_heads=H, eps=EPS, dropout=0.1)
    with pytest.raises(ValueError, match=r"dropout: expected a callable or a pair \(attention, FFN\), "
                                         r"got a tuple of 3"):
        transformer_block(X, **P, n_heads=H, eps=EPS, dropout=(None, None, None))
    with pytest.raises(ValueError, match=r"sublayer output: expected the shape of its input \(2, 5, 8\), "
                                         r"got \(2, 5, 4\)"):
        transformer_block(X, **P, n_heads=H, eps=EPS, dropout=lambda u: u[..., :4])
    with pytest.raises(TypeError, match=r"rope: expected a callable or None"):
        transformer_block(X, **P, n_heads=H, eps=EPS, rope="rotary")


# --- without biases ------------------------------------------------------------------------------------

NO_BIAS = {n: (None if n.startswith(("b", "beta")) else v) for n, v in P.items()}


def test_block_without_biases_has_no_bias_parameters_and_equals_the_pure_function():
    m = TransformerBlock(D, H, F, eps=EPS, use_bias=False, activation="gelu", rngs=nnx.Rngs(0))
    state = nnx.state(m, nnx.Param)
    names = sorted(f"{sub}/{name}" for sub, params in nnx.to_pure_dict(state).items() for name in params)
    assert names == ["attn/w_k", "attn/w_o", "attn/w_q", "attn/w_v", "ffn/w_1", "ffn/w_2", "ln1/gamma", "ln2/gamma"]
    assert sum(p.size for p in jax.tree.leaves(state)) == 4 * D * D + 2 * D * F + 2 * D
    with_bias = TransformerBlock(D, H, F, eps=EPS, rngs=nnx.Rngs(0))
    assert sum(p.size for p in jax.tree.leaves(nnx.state(with_bias, nnx.Param))) == 4 * D * D + 2 * D * F + F + 9 * D
    params = m.params()
    assert all(params[n] is None for n in NO_BIAS if NO_BIAS[n] is None)
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X, MASK)
    pure = jax.jit(functools.partial(transformer_block, n_heads=H, eps=EPS, activation="gelu"))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(pure(X, **params, mask=MASK)))
    zeros = {n: (jnp.zeros(jnp.shape(P[n])) if v is None else params[n]) for n, v in NO_BIAS.items()}
    np.testing.assert_allclose(ours, pure(X, **zeros, mask=MASK), rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="use_bias: expected True or False, got 1"):
        TransformerBlock(D, H, F, use_bias=1, rngs=nnx.Rngs(0))


# --- decoding with a key/value cache -------------------------------------------------------------------

S = T + 2  # the cache is longer than the sequence: positions >= start + n are masked


@functools.partial(jax.jit, static_argnames=("rotary",))
def _decode_step(params, x, cache_k, cache_v, start, *, rotary: bool):
    """``transformer_block_cached`` at ``start`` (traced), with the test rotation built for the new positions."""
    rope = rotation_at(start + jnp.arange(x.shape[-2])) if rotary else None
    return transformer_block_cached(x, **params, cache_k=cache_k, cache_v=cache_v, start=start, n_heads=H, eps=EPS,
                                    rope=rope)


@functools.partial(jax.jit, static_argnames=("rotary",))
def _full_causal(params, x, *, rotary: bool):
    return transformer_block(x, **params, n_heads=H, eps=EPS, mask=MASK, rope=ROPE if rotary else None)


@pytest.mark.parametrize("rotary", [False, True], ids=["no-rope", "rope"])
@pytest.mark.parametrize("n_prefill", [1, 3])
def test_prefill_then_one_token_at_a_time_equals_the_causal_block_on_the_whole_sequence(n_prefill, rotary):
    full = _full_causal(P, X, rotary=rotary)
    garbage = jnp.asarray(_rng.standard_normal((B, H, S, K)) * 50, dtype=jnp.float32)  # never attended to
    y, ck, cv = _decode_step(P, X[:, :n_prefill], garbage, garbage, jnp.int32(0), rotary=rotary)
    ys = [y]
    for t in range(n_prefill, T):
        y, ck, cv = _decode_step(P, X[:, t:t + 1], ck, cv, jnp.int32(t), rotary=rotary)
        ys.append(y)
    got = jnp.concatenate(ys, axis=1)
    err = float(jnp.max(jnp.abs(got - full)) / jnp.max(jnp.abs(full)))
    assert err <= 1e-5, err  # float32, highest matmul precision
    np.testing.assert_array_equal(np.asarray(ck[:, :, T:]), np.asarray(garbage[:, :, T:]))


def test_module_decode_equals_the_pure_function_and_init_cache_fits_the_block():
    m = TransformerBlock(D, H, F, eps=EPS, use_bias=False, rngs=nnx.Rngs(2))
    ck, cv = m.init_cache(B, S)
    assert ck.shape == cv.shape == (B, H, S, K) and ck.dtype == cv.dtype == jnp.float32
    assert m.init_cache((), S, dtype=jnp.bfloat16)[0].dtype == jnp.bfloat16
    graphdef, state = nnx.split(m)

    @jax.jit
    def prefill_then_step(state, x, ck, cv):
        block = nnx.merge(graphdef, state)
        rope = rotation_at(jnp.arange(T - 1))
        y, ck, cv = block.decode(x[:, :T - 1], ck, cv, 0, rope=rope)
        y_last, ck, cv = block.decode(x[:, T - 1:], ck, cv, jnp.int32(T - 1), rope=rotation_at(jnp.arange(T - 1, T)))
        return jnp.concatenate([y, y_last], axis=1)

    got = prefill_then_step(state, X, ck, cv)
    want = jax.jit(lambda x: transformer_block(x, **m.params(), n_heads=H, eps=EPS, mask=MASK, rope=ROPE))(X)
    err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
    assert err <= 1e-5, err


def test_cached_decoding_rejects_bad_input():
    ck, cv = jnp.zeros((B, H, S, K)), jnp.zeros((B, H, S, K))
    with pytest.raises(ValueError, match=r"start: expected 0 <= start <= S - T = 7 - 5 = 2"):
        transformer_block_cached(X, **P, cache_k=ck, cache_v=cv, start=3, n_heads=H, eps=EPS)
    with pytest.raises(ValueError, match=r"cache_k: expected shape \[\.\.\., H, S, K\]"):
        transformer_block_cached(X, **P, cache_k=ck[0], cache_v=cv[0], start=0, n_heads=H, eps=EPS)
    with pytest.raises(ValueError, match=r"activation: expected one of"):
        transformer_block_cached(X, **P, cache_k=ck, cache_v=cv, start=0, n_heads=H, eps=EPS, activation="tanh")
