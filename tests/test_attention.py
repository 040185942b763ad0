"""Attention (weeks 6-7): agreement with JAX's own attention, invariants, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.attention import causal_mask, scaled_scores, scores, sdpa, softmax

B, T, H, K = 2, 5, 3, 4
_rng = np.random.default_rng(0)
Q, KEY, VAL = (jnp.asarray(_rng.standard_normal((B, H, T, K)), dtype=jnp.float32) for _ in range(3))

sdpa_jit = jax.jit(sdpa)
softmax_jit = jax.jit(softmax)


def _to_jax_layout(x):  # ours [B, H, T, K] -> jax.nn's [B, T, H, K]
    return jnp.swapaxes(x, 1, 2)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_jax_nn_dot_product_attention(causal):
    mask = causal_mask(T, T) if causal else None
    ours = sdpa_jit(Q, KEY, VAL, mask)
    theirs = jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla"))(
        *map(_to_jax_layout, (Q, KEY, VAL)))
    err = float(jnp.max(jnp.abs(ours - _to_jax_layout(theirs))) / jnp.max(jnp.abs(theirs)))
    assert err <= 1e-5, err  # float32 at highest precision


def test_batched_call_equals_vmap_over_the_batch():
    mask = causal_mask(T, T)
    one = jax.vmap(jax.vmap(lambda q, k, v: sdpa(q, k, v, mask)))(Q, KEY, VAL)
    np.testing.assert_allclose(sdpa_jit(Q, KEY, VAL, mask), one, rtol=1e-6, atol=1e-6)


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    mask = jnp.ones((T, T), bool).at[2].set(False)
    out = sdpa_jit(Q, KEY, VAL, mask)
    assert bool(jnp.all(out[:, :, 2] == 0))
    grads = jax.jit(jax.grad(lambda q, k, v: jnp.sum(sdpa(q, k, v, mask) ** 2), argnums=(0, 1, 2)))(Q, KEY, VAL)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_causal_mask_with_more_keys_than_queries_lets_the_last_query_see_everything():
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


rows = arrays(np.float32, (4, 6), elements=st.floats(-30, 30, width=32))


@settings(max_examples=25, deadline=None)
@given(rows, st.floats(-50, 50, width=32))
def test_softmax_rows_sum_to_one_and_ignore_a_shift(x, c):
    s = softmax_jit(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(s).sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(softmax_jit(jnp.asarray(x) + c), s, atol=1e-5)
    assert bool(jnp.all(s >= 0))


@settings(max_examples=25, deadline=None)
@given(rows)
def test_attention_weights_are_convex_so_outputs_stay_in_the_value_range(x):
    q = jnp.asarray(x[:, :4])
    v = x[:, 2:6]
    out = np.asarray(sdpa_jit(q, q, jnp.asarray(v)))
    assert np.all(out <= v.max(0) + 1e-4) and np.all(out >= v.min(0) - 1e-4)


def test_scores_and_scaled_scores_shapes():
    assert scores(Q, KEY).shape == (B, H, T, T)
    np.testing.assert_allclose(scaled_scores(Q, KEY), scores(Q, KEY) / 2.0, rtol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    ((jnp.ones((3, 4)), jnp.ones((3, 5)), jnp.ones((3, 4))), r"same width K.*\[\.\.\., S, 4\].*\(3, 5\)"),
    ((jnp.ones((4,)), jnp.ones((3, 4)), jnp.ones((3, 4))), r"q: expected shape \[\.\.\., T, K\].*got shape \(4,\)"),
    ((jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.ones((2, 4))), r"v must have one row per key.*\(3,\).*\(2, 4\)"),
    ((jnp.ones((2, 3, 4)), jnp.ones((5, 3, 4)), jnp.ones((5, 3, 4))), r"same leading axes"),
])
def test_bad_shapes_raise_value_errors_naming_expected_and_actual(args, message):
    with pytest.raises(ValueError, match=message):
        sdpa(*args)


def test_mask_of_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"mask: expected shape \[\.\.\., T, S\] = \[\.\.\., 3, 3\].*got \(3, 4\)"):
        sdpa(jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.ones((3, 4), bool))
    with pytest.raises(TypeError, match="boolean"):
        sdpa(jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.ones((3, 4)), jnp.ones((3, 3)))


def test_bad_sizes_and_temperatures():
    with pytest.raises(ValueError, match="at least n_queries = 3"):
        causal_mask(3, 2)
    with pytest.raises(ValueError, match="positive integer"):
        causal_mask(0, 2)
    with pytest.raises(ValueError, match="temperature > 0"):
        softmax(jnp.ones(3), tau=0.0)
