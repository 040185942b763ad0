"""The feed-forward network (week 9): module == function, biases optional, position-wise invariants, GELU and
GELU_tanh, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.feedforward import (FFN_BY_ACTIVATION, GELU_TANH_CUBIC, FeedForward, feed_forward, feed_forward_gelu,
                               feed_forward_gelu_tanh, gelu, gelu_tanh, param_count)

B, T, D, F = 2, 5, 4, 8
_rng = np.random.default_rng(0)


def _normal(*shape, scale=1.0):
    return jnp.asarray(_rng.standard_normal(shape) * scale, dtype=jnp.float32)


W_1, B_1, W_2, B_2 = _normal(D, F, scale=0.5), _normal(F), _normal(F, D, scale=0.5), _normal(D)
X = _normal(B, T, D)
FUNCTIONS = {"relu": jax.jit(feed_forward), "gelu": jax.jit(feed_forward_gelu),
             "gelu_tanh": jax.jit(feed_forward_gelu_tanh)}
gelu_jit = jax.jit(gelu)
gelu_tanh_jit = jax.jit(gelu_tanh)


def _module_call(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_module_equals_the_pure_function_with_its_parameters(activation):
    m = FeedForward(D, F, activation=activation, rngs=nnx.Rngs(0))
    m.b_1[...] = _normal(F)  # non-zero biases, so that the bias path is compared too
    m.b_2[...] = _normal(D)
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X)
    pure = FUNCTIONS[activation](X, m.w_1[...], m.b_1[...], m.w_2[...], m.b_2[...])
    np.testing.assert_allclose(ours, pure, rtol=1e-6, atol=1e-6)
    assert ours.shape == (B, T, D)


@pytest.mark.parametrize("activation", ["relu", "gelu_tanh"])
def test_module_without_biases_equals_the_pure_function_without_biases(activation):
    m = FeedForward(D, F, activation=activation, use_bias=False, rngs=nnx.Rngs(0))
    assert m.b_1 is None and m.b_2 is None
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X)
    pure = FUNCTIONS[activation](X, m.w_1[...], None, m.w_2[...], None)
    np.testing.assert_allclose(ours, pure, rtol=1e-6, atol=1e-6)
    # no bias is a zero bias that is not stored
    zeros = FUNCTIONS[activation](X, m.w_1[...], jnp.zeros(F), m.w_2[...], jnp.zeros(D))
    np.testing.assert_allclose(pure, zeros, rtol=1e-6, atol=1e-6)


def test_param_count_equals_the_parameters_of_a_built_module():
    m = FeedForward(D, F, rngs=nnx.Rngs(0))
    built = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(m, nnx.Param)))
    assert param_count(D, F) == built == 2 * D * F + F + D
    assert {"w_1", "b_1", "w_2", "b_2"} <= set(vars(m))


def test_without_biases_the_module_holds_no_bias_parameters():
    m = FeedForward(D, F, use_bias=False, rngs=nnx.Rngs(0))
    params = nnx.state(m, nnx.Param)
    assert sorted(path for path, _ in nnx.to_flat_state(params)) == [("w_1",), ("w_2",)]
    built = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert param_count(D, F, use_bias=False) == built == 2 * D * F == param_count(D, F) - F - D


def test_one_bias_may_be_left_out():
    h = jnp.einsum("btd,df->btf", X, W_1)
    want = jnp.einsum("btf,fd->btd", jax.nn.relu(h), W_2) + B_2[None, None]
    np.testing.assert_allclose(feed_forward(X, W_1, None, W_2, B_2), want, rtol=1e-5, atol=1e-5)


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation():
    x = jnp.linspace(-6.0, 6.0, 1201, dtype=jnp.float32)
    np.testing.assert_allclose(gelu_jit(x), jax.nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.abs(gelu_jit(x) - jax.nn.gelu(x, approximate=True)))) > 1e-4


def test_each_ffn_uses_its_activation():
    h = jnp.einsum("btd,df->btf", X, W_1) + B_1[None, None]
    assert set(FFN_BY_ACTIVATION) == set(FUNCTIONS)
    for name, act in (("relu", jax.nn.relu), ("gelu", lambda a: jax.nn.gelu(a, approximate=False)),
                      ("gelu_tanh", lambda a: jax.nn.gelu(a, approximate=True))):
        want = jnp.einsum("btf,fd->btd", act(h), W_2) + B_2[None, None]
        np.testing.assert_allclose(FUNCTIONS[name](X, W_1, B_1, W_2, B_2), want, rtol=1e-5, atol=1e-5)


# --- position-wise: drawn values, fixed shapes (one compile each) -----------------------------

sequences = arrays(np.float32, (T, D), elements=st.floats(-10, 10, width=32))


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
@settings(max_examples=25, deadline=None)
@given(x=sequences, perm=st.permutations(range(T)))
def test_permuting_positions_permutes_the_outputs(activation, x, perm):
    ffn = FUNCTIONS[activation]
    perm = np.asarray(perm)
    y = np.asarray(ffn(jnp.asarray(x), W_1, B_1, W_2, B_2))
    y_perm = np.asarray(ffn(jnp.asarray(x[perm]), W_1, B_1, W_2, B_2))
    np.testing.assert_allclose(y_perm, y[perm], rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(x=sequences, t=st.integers(0, T - 1), other=arrays(np.float32, (D,), elements=st.floats(-10, 10, width=32)))
def test_an_output_row_depends_on_its_own_position_only(x, t, other):
    ffn = FUNCTIONS["relu"]
    y = np.asarray(ffn(jnp.asarray(x), W_1, B_1, W_2, B_2))
    changed = x.copy()
    changed[t] = other  # change one position: every other output row stays exactly as it was
    y2 = np.asarray(ffn(jnp.asarray(changed), W_1, B_1, W_2, B_2))
    keep = np.arange(T) != t
    np.testing.assert_array_equal(y2[keep], y[keep])
    alone = np.asarray(ffn(jnp.asarray(changed[t : t + 1]), W_1, B_1, W_2, B_2))
    np.testing.assert_allclose(y2[t : t + 1], alone, rtol=1e-5, atol=1e-5)


def test_batched_call_equals_vmap_over_batch_and_positions():
    ffn = FUNCTIONS["gelu"]
    rows = jax.jit(jax.vmap(jax.vmap(lambda x_d: feed_forward_gelu(x_d[None], W_1, B_1, W_2, B_2)[0])))(X)
    np.testing.assert_allclose(ffn(X, W_1, B_1, W_2, B_2), rows, rtol=1e-5, atol=1e-5)


# --- GELU ----------------------------------------------------------------------------------------

values = arrays(np.float32, (64,), elements=st.floats(-30, 30, width=32))


@settings(max_examples=25, deadline=None)
@given(values)
def test_gelu_minus_its_mirror_image_is_the_identity(x):
    odd = np.asarray(gelu_jit(jnp.asarray(x)), np.float64) - np.asarray(gelu_jit(jnp.asarray(-x)), np.float64)
    # float32: each GELU is rounded to about eps·|x|
    np.testing.assert_allclose(odd, x.astype(np.float64), rtol=4e-7, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(values)
def test_gelu_lies_between_its_minimum_and_relu(x):
    g = np.asarray(gelu_jit(jnp.asarray(x)))
    assert np.all(g <= np.maximum(x, 0) + 1e-6)      # GELU − ReLU = −|x| Φ(−|x|) ≤ 0
    assert np.all(g >= -0.17)                         # the minimum, ≈ −0.16997 at x ≈ −0.7518


def test_gelu_derivative_is_phi_plus_x_density():
    x = jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float32)
    grad = jax.jit(jax.vmap(jax.grad(gelu)))(x)
    phi = jnp.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)
    cdf = 0.5 * jax.scipy.special.erfc(-x / np.sqrt(2))
    np.testing.assert_allclose(grad, cdf + x * phi, rtol=1e-5, atol=1e-6)


def test_gelu_promotes_integers():
    assert gelu(jnp.arange(3)).dtype == jnp.float32
    assert gelu_tanh(jnp.arange(3)).dtype == jnp.float32


# --- GELU_tanh -------------------------------------------------------------------------------------

def _gelu_tanh64(x):
    """The published formula in float64, in its sigmoid form x σ(2u) (the tanh form loses the left tail)."""
    x = np.asarray(x, np.float64)
    u = np.sqrt(2 / np.pi) * (x + GELU_TANH_CUBIC * x ** 3)
    return x / (1 + np.exp(-2 * u))


def test_gelu_tanh_is_the_published_tanh_formula():
    x = jnp.linspace(-6.0, 6.0, 1201, dtype=jnp.float32)
    np.testing.assert_allclose(gelu_tanh_jit(x), _gelu_tanh64(x), rtol=2e-6, atol=1e-7)
    # jax.nn.gelu evaluates the tanh form, which rounds 1 + tanh u in float32 (absolute error
    # up to a few eps for x < -3): the same function, to that rounding
    np.testing.assert_allclose(gelu_tanh_jit(x), jax.nn.gelu(x, approximate=True), rtol=2e-6, atol=8 * 1.2e-7)
    assert float(jnp.max(jnp.abs(gelu_tanh_jit(x) - gelu_jit(x)))) > 4e-4   # not the erf form


def test_gelu_tanh_keeps_the_left_tail_where_the_tanh_form_rounds_to_zero():
    x = jnp.linspace(-9.0, -4.0, 64, dtype=jnp.float32)
    want = _gelu_tanh64(x)
    np.testing.assert_allclose(gelu_tanh_jit(x), want, rtol=1e-4, atol=0)
    assert np.all(np.asarray(gelu_tanh_jit(x)) < 0)                # never rounded to 0 here
    naive = 0.5 * x * (1 + jnp.tanh(np.sqrt(2 / np.pi) * (x + GELU_TANH_CUBIC * x ** 3)))
    assert float(np.max(np.abs(np.asarray(naive) - want) / np.abs(want))) > 0.5


def test_gelu_tanh_derivative_is_the_stated_formula():
    x = jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float32)
    grad = jax.jit(jax.vmap(jax.grad(gelu_tanh)))(x)
    x64 = np.asarray(x, np.float64)
    t = np.tanh(np.sqrt(2 / np.pi) * (x64 + GELU_TANH_CUBIC * x64 ** 3))
    stated = (1 + t) / 2 + x64 / 2 * (1 - t ** 2) * np.sqrt(2 / np.pi) * (1 + 3 * GELU_TANH_CUBIC * x64 ** 2)
    np.testing.assert_allclose(grad, stated, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(values)
def test_gelu_tanh_has_odd_part_x_and_stays_within_its_bound_of_gelu(x):
    x32 = jnp.asarray(x)
    g, g_mirror = (np.asarray(gelu_tanh_jit(v), np.float64) for v in (x32, -x32))
    np.testing.assert_allclose(g - g_mirror, x.astype(np.float64), rtol=4e-7, atol=1e-7)
    # the measured max |GELU_tanh − GELU| is 4.7324e-4 (experiments/properties/feedforward.py),
    # plus float32 rounding of both (a few eps of |GELU| ≤ 30 here)
    assert np.all(np.abs(g - np.asarray(gelu_jit(x32), np.float64)) <= 4.7324e-4 + 16 * 30 * 1.2e-7)


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    ((jnp.ones((D,)), W_1, B_1, W_2, B_2), r"x: expected shape \[\.\.\., T, D\] \(rank >= 2\), got shape \(4,\)"),
    ((jnp.ones((T, D + 1)), W_1, B_1, W_2, B_2), r"w_1: expected shape \[D, F\] = \[5, F\].*got \(4, 8\)"),
    ((X, W_1[None], B_1, W_2, B_2), r"w_1: expected shape \[D, F\] = \[4, F\].*got \(1, 4, 8\)"),
    ((X, W_1, B_1[:-1], W_2, B_2), r"b_1: expected shape \[F\] = \(8,\), got \(7,\)"),
    ((X, W_1, B_1, W_2.T, B_2), r"w_2: expected shape \[F, D\] = \(8, 4\), got \(4, 8\)"),
    ((X, W_1, B_1, W_2, B_2[None]), r"b_2: expected shape \[D\] = \(4,\), got \(1, 4\)"),
])
@pytest.mark.parametrize("fn", [feed_forward, feed_forward_gelu, feed_forward_gelu_tanh])
def test_bad_shapes_raise_value_errors_naming_expected_and_actual(fn, args, message):
    with pytest.raises(ValueError, match=message):
        fn(*args)


def test_bad_module_arguments():
    with pytest.raises(ValueError, match=r"activation: expected one of \('relu', 'gelu', 'gelu_tanh'\), got 'swish'"):
        FeedForward(D, F, activation="swish", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="use_bias: expected a bool, got int 0"):
        FeedForward(D, F, use_bias=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="d_ff: expected a positive integer, got 0"):
        FeedForward(D, 0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="d_model: expected a positive integer"):
        param_count(4.0, 16)
