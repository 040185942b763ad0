"""Layer normalisation (week 11): module == function, invariances, agreement with flax, bad input, no bias."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.normalization import LayerNorm, layer_norm

B, T, D = 2, 3, 8
EPS = 1e-5
_rng = np.random.default_rng(0)


def _normal(*shape):
    return jnp.asarray(_rng.standard_normal(shape), dtype=jnp.float32)


X, GAMMA, BETA = _normal(B, T, D), _normal(D), _normal(D)
ln = jax.jit(layer_norm, static_argnames="eps")


def _module_call(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


def test_module_equals_the_pure_function_with_its_parameters():
    m = LayerNorm(D, eps=EPS, rngs=nnx.Rngs(0))
    assert np.all(np.asarray(m.gamma[...]) == 1) and np.all(np.asarray(m.beta[...]) == 0)
    m.gamma[...], m.beta[...] = GAMMA, BETA  # non-trivial parameters, so both are compared
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X)
    np.testing.assert_allclose(ours, ln(X, GAMMA, BETA, eps=EPS), rtol=1e-6, atol=1e-6)


def test_matches_flax_layer_norm():
    theirs = nnx.LayerNorm(D, epsilon=EPS, rngs=nnx.Rngs(0))
    theirs.scale[...], theirs.bias[...] = GAMMA, BETA
    np.testing.assert_allclose(ln(X, GAMMA, BETA, eps=EPS), jax.jit(theirs)(X), rtol=1e-5, atol=1e-5)


def test_matches_float64_numpy_and_uses_the_biased_variance():
    x = np.asarray(X, np.float64)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)  # ddof=0: divided by D
    want = np.asarray(GAMMA, np.float64) * (x - mu) / np.sqrt(var + EPS) + np.asarray(BETA, np.float64)
    np.testing.assert_allclose(ln(X, GAMMA, BETA, eps=EPS), want, rtol=1e-5, atol=1e-5)


def test_batch_axes_are_carried_through():
    one_row = jax.vmap(jax.vmap(lambda r: layer_norm(r, GAMMA, BETA, eps=EPS)))(X)
    np.testing.assert_allclose(ln(X, GAMMA, BETA, eps=EPS), one_row, rtol=1e-6, atol=1e-6)
    assert ln(X[0, 0], GAMMA, BETA, eps=EPS).shape == (D,)


# --- invariances: drawn values, fixed shapes -------------------------------------------------------

rows = arrays(np.float32, (4, D), elements=st.floats(-10, 10, width=32))


def _spread(x) -> bool:
    return float(np.std(np.asarray(x, np.float64), axis=-1).min()) > 0.5


@settings(max_examples=25, deadline=None)
@given(rows)
def test_zero_mean_and_unit_variance_before_the_affine_map(x):
    assume(_spread(x))
    y = np.asarray(ln(jnp.asarray(x), jnp.ones(D), jnp.zeros(D), eps=0.0), np.float64)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(rows, st.floats(-100, 100, width=32))
def test_adding_a_constant_to_the_input_changes_nothing(x, c):
    assume(_spread(x))
    x = jnp.asarray(x)
    # float32: x + c rounds each entry by up to |x + c| * 6e-8, relative to a spread of at least 0.5
    np.testing.assert_allclose(ln(x + c, GAMMA, BETA, eps=EPS), ln(x, GAMMA, BETA, eps=EPS), rtol=0, atol=5e-5)


@settings(max_examples=25, deadline=None)
@given(rows, st.floats(0.0625, 64, width=32))
def test_positive_scaling_of_the_input_changes_nothing_when_eps_is_zero(x, a):
    assume(_spread(x))
    x = jnp.asarray(x)
    np.testing.assert_allclose(ln(a * x, GAMMA, BETA, eps=0.0), ln(x, GAMMA, BETA, eps=0.0), rtol=0, atol=2e-5)


def test_jacobian_of_a_row_projects_out_the_mean_and_the_row_itself():
    x = X[0, 0]
    jac = np.asarray(jax.jit(jax.jacfwd(lambda r: layer_norm(r, jnp.ones(D), jnp.zeros(D), eps=EPS)))(x))
    x_hat = np.asarray(ln(x, jnp.ones(D), jnp.zeros(D), eps=EPS), np.float64)
    np.testing.assert_allclose(jac @ np.ones(D), 0, atol=1e-5)  # shifting x along 1 changes nothing
    np.testing.assert_allclose(x_hat @ jac, 0, atol=1e-4)  # no output moves along x_hat (scale)


# --- bad input -------------------------------------------------------------------------------------

def test_wrong_gamma_or_beta_shape_is_rejected():
    with pytest.raises(ValueError, match=r"gamma: expected shape \[D\] = \(8,\), got \(4,\)"):
        layer_norm(X, GAMMA[:4], BETA, eps=EPS)
    with pytest.raises(ValueError, match=r"beta: expected shape \[D\] = \(8,\), got \(1, 8\)"):
        layer_norm(X, GAMMA, BETA[None], eps=EPS)


def test_scalar_input_and_negative_eps_are_rejected():
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., D\]"):
        layer_norm(jnp.float32(1.0), GAMMA, BETA, eps=EPS)
    with pytest.raises(ValueError, match="eps: expected a number >= 0"):
        layer_norm(X, GAMMA, BETA, eps=-1e-5)
    with pytest.raises(ValueError, match="eps: expected a number >= 0"):
        LayerNorm(D, eps=-1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="d_model: expected a positive integer"):
        LayerNorm(0, rngs=nnx.Rngs(0))


# --- without a bias -----------------------------------------------------------------------------------

def test_without_beta_it_is_the_gain_only_and_the_module_holds_gamma_only():
    np.testing.assert_array_equal(np.asarray(ln(X, GAMMA, None, eps=EPS)),
                                  np.asarray(ln(X, GAMMA, jnp.zeros(D), eps=EPS)))
    m = LayerNorm(D, eps=EPS, use_bias=False, rngs=nnx.Rngs(0))
    state = nnx.state(m, nnx.Param)
    assert list(state.keys()) == ["gamma"] and sum(p.size for p in jax.tree.leaves(state)) == D
    assert not hasattr(m, "beta")
    m.gamma[...] = GAMMA
    graphdef, state = nnx.split(m)
    ours = jax.jit(functools.partial(_module_call, graphdef))(state, X)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(ln(X, GAMMA, None, eps=EPS)))
    with pytest.raises(TypeError, match="use_bias: expected True or False, got 'no'"):
        LayerNorm(D, use_bias="no", rngs=nnx.Rngs(0))
