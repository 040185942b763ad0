"""Residual connections (week 11): y = x + F(x), its Jacobian I + dF/dx, any leading axes, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.feedforward import feed_forward
from model.residual import residual, residual_feed_forward

B, T, D, F = 2, 3, 4, 6
_rng = np.random.default_rng(0)


def _normal(*shape, scale=1.0):
    return jnp.asarray(_rng.standard_normal(shape) * scale, dtype=jnp.float32)


W = (_normal(D, F, scale=0.5), _normal(F), _normal(F, D, scale=0.5), _normal(D))
X = _normal(B, T, D)
rff = jax.jit(residual_feed_forward)
jac_rff = jax.jit(jax.jacfwd(residual_feed_forward))
jac_ffn = jax.jit(jax.jacfwd(lambda u, *w: feed_forward(u[None], *w)[0]))


def test_residual_adds_the_sublayer_output_to_its_input():
    out = jax.jit(lambda x: residual(x, jnp.tanh))(X)
    np.testing.assert_allclose(out, X + jnp.tanh(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(D,), (T, D), (B, T, D)])
def test_residual_feed_forward_is_x_plus_the_ffn_for_any_leading_axes(shape):
    x = X.reshape(-1, D)[: int(np.prod(shape[:-1], dtype=int))].reshape(shape)
    want = x + feed_forward(x.reshape(-1, 1, D), *W).reshape(shape)
    np.testing.assert_allclose(rff(x, *W), want, rtol=1e-6, atol=1e-6)


def test_zero_sublayer_gives_the_identity_and_the_identity_jacobian():
    zeros = (W[0], W[1], jnp.zeros((F, D)), jnp.zeros(D))
    np.testing.assert_array_equal(rff(X, *zeros), X)
    jac = jac_rff(X[0, 0], *zeros)
    np.testing.assert_array_equal(jac, np.eye(D))


rows = arrays(np.float32, (D,), elements=st.floats(-5, 5, width=32))


@settings(max_examples=25, deadline=None)
@given(rows)
def test_jacobian_is_identity_plus_the_sublayer_jacobian(x):
    x = jnp.asarray(x)
    jac = jac_rff(x, *W)
    jac_f = jac_ffn(x, *W)
    np.testing.assert_allclose(jac - np.eye(D), jac_f, rtol=1e-5, atol=1e-6)
    h = np.asarray(x @ W[0] + W[1])
    stated = np.eye(D) + np.asarray(W[2]).T @ np.diag((h > 0).astype(np.float32)) @ np.asarray(W[0]).T
    np.testing.assert_allclose(jac, stated, rtol=1e-5, atol=1e-5)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"sublayer output: expected the shape of its input \(2, 3, 4\), got \(2, 3\)"):
        residual(X, lambda u: u.sum(-1))
    with pytest.raises(ValueError, match=r"x: expected shape \[\.\.\., D\]"):
        residual_feed_forward(jnp.float32(1.0), *W)
    with pytest.raises(ValueError, match="w_1: expected shape"):
        residual_feed_forward(X, W[0][:3], *W[1:])
