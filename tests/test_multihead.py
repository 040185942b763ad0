"""Multi-head attention (week 8): the module, agreement with JAX's attention, invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.attention import causal_mask
from model.multihead import (MultiHeadAttention, merge_heads, multi_head_attention, output_projection,
                             param_count, split_heads)

B, T, D, H = 2, 5, 12, 3
K = D // H
NAMES = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")
_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.standard_normal((B, T, D)), dtype=jnp.float32)
# random biases too (the module initialises them to zero, which would hide a bias bug)
P = {n: jnp.asarray(_rng.standard_normal((D, D) if n.startswith("w") else (D,)) / np.sqrt(D), dtype=jnp.float32)
     for n in NAMES}

mha_jit = jax.jit(multi_head_attention, static_argnames="n_heads")


def _relative(actual, expected) -> float:
    return float(jnp.max(jnp.abs(actual - expected)) / jnp.max(jnp.abs(expected)))


@pytest.mark.parametrize("causal", [False, True])
def test_module_equals_the_pure_function_with_its_parameters(causal):
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(0))
    mask = causal_mask(T, T) if causal else None
    for name in NAMES:  # replace the zero biases so that every parameter matters
        getattr(module, name)[...] = P[name]
    got = nnx.jit(lambda m, x: m(x, mask))(module, X)
    want = mha_jit(X, *(getattr(module, n)[...] for n in NAMES), n_heads=H, mask=mask)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_module_holds_the_named_parameters_and_initialises_biases_to_zero():
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(1))
    state = nnx.state(module, nnx.Param)
    assert sorted(state.keys()) == sorted(NAMES)
    for name in NAMES:
        value = getattr(module, name)[...]
        assert value.shape == ((D, D) if name.startswith("w") else (D,))
        if name.startswith("b"):
            assert not bool(jnp.any(value))


@pytest.mark.parametrize("causal", [False, True])
def test_matches_jax_nn_dot_product_attention_on_the_projected_heads(causal):
    with jax.default_matmul_precision("highest"):
        ours = mha_jit(X, **P, n_heads=H, mask=causal_mask(T, T) if causal else None)

        @jax.jit
        def theirs(x):
            def heads(w, b):  # [B, T, D] -> jax.nn's layout [B, T, N, H] (N heads of width H=K)
                return (jnp.einsum("btd,de->bte", x, P[w]) + P[b][None, None, :]).reshape(B, T, H, K)

            o = jax.nn.dot_product_attention(heads("w_q", "b_q"), heads("w_k", "b_k"), heads("w_v", "b_v"),
                                             is_causal=causal, implementation="xla")
            return jnp.einsum("btd,de->bte", o.reshape(B, T, D), P["w_o"]) + P["b_o"][None, None, :]

        err = _relative(ours, theirs(X))
    assert err <= 1e-5, err  # float32 at highest precision


def test_one_head_is_single_head_attention_of_the_projections():
    from model.attention import sdpa

    def proj(w, b):
        return jnp.einsum("btd,de->bte", X, P[w]) + P[b][None, None, :]

    one = sdpa(proj("w_q", "b_q"), proj("w_k", "b_k"), proj("w_v", "b_v"))
    expected = jnp.einsum("btd,de->bte", one, P["w_o"]) + P["b_o"][None, None, :]
    assert _relative(mha_jit(X, **P, n_heads=1), expected) <= 1e-5


def test_batch_axes_equal_a_vmap_and_fully_masked_rows_give_b_o():
    mask = causal_mask(T, T).at[3].set(False)
    batched = mha_jit(X, **P, n_heads=H, mask=mask)
    one = jax.vmap(lambda x: multi_head_attention(x, **P, n_heads=H, mask=mask))(X)
    np.testing.assert_allclose(batched, one, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(batched[:, 3], jnp.broadcast_to(P["b_o"], (B, D)), atol=1e-6)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(multi_head_attention(x, **P, n_heads=H, mask=mask) ** 2)))(X)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_split_and_merge_heads_are_inverse_and_merge_is_concatenation():
    heads = split_heads(X, H)
    assert heads.shape == (B, H, T, K)
    np.testing.assert_array_equal(heads[:, 1], X[:, :, K:2 * K])  # head h = column block h
    np.testing.assert_array_equal(merge_heads(heads), X)
    np.testing.assert_array_equal(merge_heads(heads), jnp.concatenate([heads[:, h] for h in range(H)], axis=-1))


def test_output_projection_is_concat_times_w_o():
    o = X
    expected = jnp.einsum("btd,de->bte", o, P["w_o"]) + P["b_o"][None, None, :]
    by_heads = sum(jnp.einsum("btk,kd->btd", o[..., h * K:(h + 1) * K], P["w_o"][h * K:(h + 1) * K])
                   for h in range(H)) + P["b_o"][None, None, :]
    got = jax.jit(output_projection, static_argnames="n_heads")(o, P["w_o"], P["b_o"], n_heads=H)
    assert _relative(got, expected) <= 1e-6 and _relative(got, by_heads) <= 1e-6


def test_param_count_is_4d2_plus_4d_and_counts_the_module():
    for d, h in ((12, 1), (12, 3), (12, 4), (512, 8)):
        assert param_count(d, h) == 4 * d * d + 4 * d
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(0))
    assert param_count(D, H) == sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


positions = arrays(np.float32, (T, D), elements=st.floats(-3, 3, width=32))


@settings(max_examples=25, deadline=None)
@given(positions, st.permutations(range(T)))
def test_permuting_the_positions_permutes_the_output_rows(x, perm):
    perm = np.asarray(perm)
    x = jnp.asarray(x)
    out = mha_jit(x, **P, n_heads=H)
    np.testing.assert_allclose(mha_jit(x[perm], **P, n_heads=H), out[perm], rtol=1e-5, atol=1e-5)


def test_bad_input_raises_value_errors_naming_expected_and_actual():
    with pytest.raises(ValueError, match=r"d_model = 12 must be divisible by n_heads = 5"):
        multi_head_attention(X, **P, n_heads=5)
    with pytest.raises(ValueError, match=r"n_heads: expected a positive integer, got 0"):
        multi_head_attention(X, **P, n_heads=0)
    bad = {**P, "w_k": jnp.ones((D, D - 1))}
    with pytest.raises(ValueError, match=r"w_k: expected shape \[D, D\] = \(12, 12\), got \(12, 11\)"):
        multi_head_attention(X, **bad, n_heads=H)
    bad = {**P, "b_o": jnp.ones((1, D))}
    with pytest.raises(ValueError, match=r"b_o: expected shape \[D\] = \(12,\), got \(1, 12\)"):
        multi_head_attention(X, **bad, n_heads=H)
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., T, D\] \(rank >= 2\), got shape \(12,\)"):
        multi_head_attention(X[0, 0], **P, n_heads=H)
    with pytest.raises(ValueError, match=r"mask: expected shape \[\.\.\., T, T\] = \[\.\.\., 5, 5\].*got \(5, 4\)"):
        multi_head_attention(X, **P, n_heads=H, mask=jnp.ones((T, T - 1), bool))
    with pytest.raises(ValueError, match=r"d_model = 12 must be divisible by n_heads = 5"):
        MultiHeadAttention(D, 5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"heads: expected shape \[\.\.\., H, T, K\] \(rank >= 3\)"):
        merge_heads(X[0])
