"""Multi-head attention (week 8): the module, agreement with JAX's attention, invariants, bad input;
the rotary hook, attention without biases, and decoding with a key/value cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.attention import causal_mask
from model.multihead import (
    MultiHeadAttention,
    empty_kv_cache,
    merge_heads,
    multi_head_attention,
    multi_head_attention_cached,
    output_projection,
    param_count,
    split_heads,
)

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


# --- the rotary hook --------------------------------------------------------------------------------

def _orthogonal(seed: int, n: int) -> jnp.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return jnp.asarray(q * np.sign(np.diag(r))[None, :], dtype=jnp.float32)


@jax.jit
def _mha_rotated(x, rotation):
    """MHA whose ``rope`` multiplies every query and key row by the same ``[K, K]`` matrix."""
    return multi_head_attention(x, **P, n_heads=H, rope=lambda u: jnp.einsum("...k,kl->...l", u, rotation))


def test_identity_rope_equals_no_rope_and_rope_sees_the_per_head_queries_and_keys():
    seen = []

    def identity(u):
        seen.append(tuple(u.shape))
        return u

    mask = causal_mask(T, T)
    with_rope = jax.jit(lambda x: multi_head_attention(x, **P, n_heads=H, mask=mask, rope=identity))(X)
    np.testing.assert_array_equal(np.asarray(with_rope), np.asarray(mha_jit(X, **P, n_heads=H, mask=mask)))
    assert seen == [(B, H, T, K), (B, H, T, K)]  # once for the queries, once for the keys


def test_rope_acts_on_queries_and_keys_only_as_a_hand_composed_reference():
    # scaling queries and keys by c is scaling W_Q, b_Q, W_K, b_K by c (the values are untouched)
    c = 1.7
    got = jax.jit(lambda x: multi_head_attention(x, **P, n_heads=H, rope=lambda u: c * u))(X)
    scaled = {**P, **{n: c * P[n] for n in ("w_q", "b_q", "w_k", "b_k")}}
    assert _relative(got, mha_jit(X, **scaled, n_heads=H)) <= 1e-5
    assert _relative(got, mha_jit(X, **P, n_heads=H)) > 1e-3  # and it does change the output


@settings(max_examples=25, deadline=None)
@given(positions, st.integers(0, 2**31 - 1))
def test_the_same_orthogonal_rotation_of_queries_and_keys_leaves_the_output_unchanged(x, seed):
    x = jnp.asarray(x)
    rotated = _mha_rotated(x, _orthogonal(seed, K))
    np.testing.assert_allclose(rotated, mha_jit(x, **P, n_heads=H), rtol=1e-5, atol=1e-5)


def test_module_passes_rope_through():
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(0))
    rotation = _orthogonal(3, K) * 2.0  # not orthogonal any more: the output changes

    def rope(u):
        return jnp.einsum("...k,kl->...l", u, rotation)

    got = nnx.jit(lambda m, x: m(x, rope=rope))(module, X)
    want = jax.jit(lambda x: multi_head_attention(x, **module.params(), n_heads=H, rope=rope))(X)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_bad_rope_is_rejected():
    with pytest.raises(ValueError, match=r"rope: expected it to return the shape of the queries it was given "
                                         r"\[\.\.\., H, T, K\] = \(2, 3, 5, 4\), got \(2, 3, 5, 3\)"):
        multi_head_attention(X, **P, n_heads=H, rope=lambda u: u[..., :3])
    with pytest.raises(TypeError, match=r"rope: expected a callable or None, got int"):
        multi_head_attention(X, **P, n_heads=H, rope=3)


# --- without biases ---------------------------------------------------------------------------------

NO_BIAS = {n: (None if n.startswith("b") else P[n]) for n in NAMES}


def test_module_without_biases_holds_only_the_weights_and_equals_the_pure_function():
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(0), use_bias=False)
    state = nnx.state(module, nnx.Param)
    assert sorted(state.keys()) == ["w_k", "w_o", "w_q", "w_v"]
    assert sum(p.size for p in jax.tree.leaves(state)) == 4 * D * D == param_count(D, H, use_bias=False)
    for name in ("w_q", "w_k", "w_v", "w_o"):
        getattr(module, name)[...] = P[name]
    mask = causal_mask(T, T)
    got = nnx.jit(lambda m, x: m(x, mask))(module, X)
    want = jax.jit(lambda x: multi_head_attention(x, **NO_BIAS, n_heads=H, mask=mask))(X)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    zeros = {n: (jnp.zeros(D) if n.startswith("b") else P[n]) for n in NAMES}
    assert _relative(want, mha_jit(X, **zeros, n_heads=H, mask=mask)) <= 1e-6
    # a fully masked row gives zeros (b_O = 0), not NaN
    empty_row = jax.jit(lambda x: multi_head_attention(x, **NO_BIAS, n_heads=H, mask=mask.at[2].set(False)))(X)
    np.testing.assert_array_equal(np.asarray(empty_row[:, 2]), np.zeros((B, D), np.float32))
    with pytest.raises(TypeError, match="use_bias: expected True or False, got 0"):
        MultiHeadAttention(D, H, rngs=nnx.Rngs(0), use_bias=0)


def test_output_projection_without_a_bias():
    got = jax.jit(output_projection, static_argnames="n_heads")(X, P["w_o"], None, n_heads=H)
    assert _relative(got, jnp.einsum("btd,de->bte", X, P["w_o"])) <= 1e-6


# --- decoding with a key/value cache -----------------------------------------------------------------

S = T + 3  # the cache is longer than the sequence: positions >= start + n must be masked
_cached = jax.jit(multi_head_attention_cached, static_argnames=("n_heads", "rope"))


def _decode_all(params, x, n_prefill, cache):
    """Prefill ``n_prefill`` positions, then one position per call (``start`` traced): the outputs ``[B, T, D]``."""
    ck, cv = cache
    y, ck, cv = _cached(x[:, :n_prefill], **params, cache_k=ck, cache_v=cv, start=0, n_heads=H)
    ys = [y]
    for t in range(n_prefill, T):
        y, ck, cv = _cached(x[:, t:t + 1], **params, cache_k=ck, cache_v=cv, start=jnp.int32(t), n_heads=H)
        ys.append(y)
    return jnp.concatenate(ys, axis=1), ck, cv


@pytest.mark.parametrize("params", [P, NO_BIAS], ids=["bias", "no-bias"])
def test_prefill_then_one_step_at_a_time_equals_causal_attention_over_the_whole_sequence(params):
    full = jax.jit(lambda x: multi_head_attention(x, **params, n_heads=H, mask=causal_mask(T, T)))(X)
    # finite garbage in the unused cache positions: it must get weight exactly 0
    garbage = jnp.asarray(_rng.standard_normal((B, H, S, K)) * 100, dtype=jnp.float32)
    got, ck, _ = _decode_all(params, X, 2, (garbage, garbage))
    assert _relative(got, full) <= 1e-5
    # the cache holds the keys and values of the T positions, the rest is untouched
    keys = split_heads(jnp.einsum("btd,de->bte", X, params["w_k"])
                       + (0 if params["b_k"] is None else params["b_k"][None, None, :]), H)
    np.testing.assert_allclose(ck[:, :, :T], keys, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(ck[:, :, T:]), np.asarray(garbage[:, :, T:]))


def test_empty_cache_and_module_decode():
    module = MultiHeadAttention(D, H, rngs=nnx.Rngs(0))
    ck, cv = module.init_cache(B, S)
    assert ck.shape == cv.shape == (B, H, S, K) and ck.dtype == jnp.float32 and not bool(jnp.any(ck))
    assert empty_kv_cache((), n_heads=H, head_width=K, length=S, dtype=jnp.bfloat16)[0].shape == (H, S, K)
    got = nnx.jit(lambda m, x, ck, cv: m.decode(x, ck, cv, 0))(module, X, ck, cv)
    want = _cached(X, **module.params(), cache_k=ck, cache_v=cv, start=0, n_heads=H)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match=r"batch_shape: expected positive integers, got \(2, 0\)"):
        empty_kv_cache((2, 0), n_heads=H, head_width=K, length=S)


def test_cache_and_start_are_checked():
    ck, cv = empty_kv_cache(B, n_heads=H, head_width=K, length=S)
    with pytest.raises(ValueError, match=r"start: expected 0 <= start <= S - T = 8 - 5 = 3 .*got 4"):
        multi_head_attention_cached(X, **P, cache_k=ck, cache_v=cv, start=4, n_heads=H)
    with pytest.raises(ValueError, match=r"start: expected 0 <= start <= S - T .*got -1"):
        multi_head_attention_cached(X, **P, cache_k=ck, cache_v=cv, start=jnp.int32(-1), n_heads=H)
    with pytest.raises(TypeError, match=r"start: expected an integer position, got dtype float32"):
        multi_head_attention_cached(X, **P, cache_k=ck, cache_v=cv, start=jnp.float32(0), n_heads=H)
    with pytest.raises(ValueError, match=r"start: expected a scalar position, got shape \(1,\)"):
        multi_head_attention_cached(X, **P, cache_k=ck, cache_v=cv, start=jnp.zeros(1, jnp.int32), n_heads=H)
    with pytest.raises(ValueError, match=r"cache_k: expected shape \[\.\.\., H, S, K\] = \(2, 3\) \+ \(S, 4\).*"
                                         r"got \(2, 2, 8, 4\)"):
        multi_head_attention_cached(X, **P, cache_k=ck[:, :2], cache_v=cv, start=0, n_heads=H)
    with pytest.raises(ValueError, match=r"cache_v: expected shape .* = \(2, 3, 8, 4\), got \(2, 3, 7, 4\)"):
        multi_head_attention_cached(X, **P, cache_k=ck, cache_v=cv[:, :, 1:], start=0, n_heads=H)
    short = empty_kv_cache(B, n_heads=H, head_width=K, length=T - 1)
    with pytest.raises(ValueError, match=r"x: expected at most S = 4 new positions .*got T = 5"):
        multi_head_attention_cached(X, **P, cache_k=short[0], cache_v=short[1], start=0, n_heads=H)
    # a traced start out of range cannot raise: the output is NaN rather than a misplaced write
    y, _, _ = _cached(X, **P, cache_k=ck, cache_v=cv, start=jnp.int32(4), n_heads=H)
    assert bool(jnp.all(jnp.isnan(y)))
