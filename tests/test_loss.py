"""The language-modelling loss (week 1): agreement with optax, gradient, invariants, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.loss import cross_entropy, perplexity

B, T, V = 2, 6, 7
_rng = np.random.default_rng(0)
LOGITS = jnp.asarray(_rng.standard_normal((B, T, V)) * 3, dtype=jnp.float32)
TARGETS = jnp.asarray(_rng.integers(0, V, (B, T)), dtype=jnp.int32)
ce = jax.jit(cross_entropy)
ppl = jax.jit(perplexity)


def test_matches_optax_averaged_over_positions():
    theirs = optax.softmax_cross_entropy_with_integer_labels(LOGITS, TARGETS).mean(-1)
    np.testing.assert_allclose(ce(LOGITS, TARGETS), theirs, rtol=1e-6, atol=1e-6)
    assert ce(LOGITS, TARGETS).shape == (B,)
    assert ce(LOGITS[0], TARGETS[0]).shape == ()


def test_gradient_is_softmax_minus_onehot_over_t():
    grad = jax.jit(jax.grad(lambda z: cross_entropy(z, TARGETS[0])))(LOGITS[0])
    want = (jax.nn.softmax(LOGITS[0], axis=-1) - jax.nn.one_hot(TARGETS[0], V)) / T
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)


def test_perplexity_is_exp_of_the_loss():
    np.testing.assert_allclose(ppl(LOGITS, TARGETS), np.exp(np.asarray(ce(LOGITS, TARGETS))), rtol=1e-6)


def test_huge_logits_stay_finite():
    z = LOGITS * 1e6
    assert bool(jnp.all(jnp.isfinite(ce(z, TARGETS))))
    assert bool(jnp.all(jnp.isfinite(jax.jit(jax.grad(lambda z: cross_entropy(z, TARGETS).sum()))(z))))


# --- invariants: drawn values, fixed shapes ---------------------------------------------------------

logit_rows = arrays(np.float32, (T, V), elements=st.floats(-30, 30, width=32))
target_rows = arrays(np.int32, (T,), elements=st.integers(0, V - 1))


@settings(max_examples=25, deadline=None)
@given(logit_rows, target_rows)
def test_loss_is_never_negative(z, y):
    assert float(ce(jnp.asarray(z), jnp.asarray(y))) >= 0.0


@settings(max_examples=25, deadline=None)
@given(st.floats(-1000, 1000, width=32), target_rows)
def test_uniform_logits_give_log_v_and_perplexity_v(c, y):
    z = jnp.full((T, V), c, dtype=jnp.float32)
    np.testing.assert_allclose(float(ce(z, jnp.asarray(y))), math.log(V), rtol=1e-6)
    np.testing.assert_allclose(float(ppl(z, jnp.asarray(y))), V, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(logit_rows, target_rows, st.floats(-100, 100, width=32))
def test_adding_a_constant_to_a_row_of_logits_changes_nothing(z, y, c):
    z, y = jnp.asarray(z), jnp.asarray(y)
    np.testing.assert_allclose(float(ce(z + c, y)), float(ce(z, y)), rtol=1e-5, atol=1e-5)


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [V, -1, 1000])
def test_out_of_range_targets_are_rejected_before_jit(bad):
    y = TARGETS.at[1, 2].set(bad)
    with pytest.raises(ValueError, match=rf"targets: expected token ids in \[0, V\) = \[0, {V}\), got {bad}"):
        cross_entropy(LOGITS, y)
    with pytest.raises(ValueError, match=rf"got {bad}"):
        perplexity(LOGITS, y)


def test_out_of_range_targets_give_nan_under_jit_never_a_clamped_loss():
    y = TARGETS.at[1, 2].set(V)
    loss = np.asarray(ce(LOGITS, y))
    assert np.isnan(loss[1]) and np.isfinite(loss[0])


def test_shape_mismatch_wrong_rank_and_float_targets_are_rejected():
    with pytest.raises(ValueError, match=r"targets: expected shape \[\.\.\., T\] = \(2, 6\) .* got \(2, 5\)"):
        cross_entropy(LOGITS, TARGETS[:, :5])
    with pytest.raises(ValueError, match=r"targets: expected shape \[\.\.\., T\] = \(2, 6\) .* got \(6,\)"):
        cross_entropy(LOGITS, TARGETS[0])
    with pytest.raises(ValueError, match=r"logits: expected shape \[\.\.\., T, V\] \(rank >= 2\)"):
        cross_entropy(LOGITS[0, 0], TARGETS[0, 0])
    with pytest.raises(TypeError, match="targets: expected integer token ids, got dtype float32"):
        cross_entropy(LOGITS, TARGETS.astype(jnp.float32))
