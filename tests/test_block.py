"""The pre-LN transformer block (week 11): module == function, composition, causality, bad input."""

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
    with pytest.raises(ValueError, match=r"activation: expected one of \('relu', 'gelu'\), got 'tanh'"):
        transformer_block(X, **P, n_heads=H, eps=EPS, activation="tanh")
