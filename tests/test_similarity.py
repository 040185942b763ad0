"""Similarity (week 5): dot product and cosine similarity, their invariants and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.similarity import cosine_similarity, dot

N, D = 4, 8  # one fixed batch of vector pairs per example: one compile per function
cos_jit = jax.jit(cosine_similarity)
dot_jit = jax.jit(dot)

vectors = arrays(np.float32, (N, D), elements=st.floats(-100, 100, width=32, allow_subnormal=False))
scales = arrays(np.float32, (N, 1), elements=st.floats(0.0078125, 128.0, width=32))  # 2^-7 .. 2^7


@settings(max_examples=25, deadline=None)
@given(vectors, vectors)
def test_cosine_is_bounded_by_one_and_symmetric(a, b):
    c = np.asarray(cos_jit(jnp.asarray(a), jnp.asarray(b)))
    assert np.all(np.abs(c) <= 1.0), c
    np.testing.assert_array_equal(c, np.asarray(cos_jit(jnp.asarray(b), jnp.asarray(a))))


@settings(max_examples=25, deadline=None)
@given(vectors, vectors, scales, scales)
def test_cosine_is_invariant_to_positive_scaling(a, b, k1, k2):
    assume(np.all(np.linalg.norm(a, axis=-1) > 1e-3) and np.all(np.linalg.norm(b, axis=-1) > 1e-3))
    c = cos_jit(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(cos_jit(jnp.asarray(k1 * a), jnp.asarray(k2 * b)), c, atol=2e-6)
    np.testing.assert_allclose(cos_jit(jnp.asarray(-a), jnp.asarray(b)), -c, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(vectors, vectors, vectors, st.floats(-3, 3, width=32), st.floats(-3, 3, width=32))
def test_dot_is_symmetric_and_bilinear(a, b, c, alpha, beta):
    a, b, c = jnp.asarray(a), jnp.asarray(b), jnp.asarray(c)
    np.testing.assert_array_equal(dot_jit(a, b), dot_jit(b, a))
    lhs = dot_jit(alpha * a + beta * c, b)
    rhs = alpha * dot_jit(a, b) + beta * dot_jit(c, b)
    scale = (abs(alpha) * jnp.linalg.norm(a, axis=-1) + abs(beta) * jnp.linalg.norm(c, axis=-1)) * jnp.linalg.norm(
        b, axis=-1)
    assert bool(jnp.all(jnp.abs(lhs - rhs) <= 1e-5 * scale + 1e-30))


def test_known_values_and_the_angle():
    e1, e2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    assert float(cos_jit(e1, e2)) == 0.0
    assert float(cos_jit(e1, -3 * e1)) == -1.0
    theta = 0.3
    u = jnp.array([np.cos(theta), np.sin(theta)], dtype=jnp.float32)
    np.testing.assert_allclose(float(cos_jit(e1, 5 * u)), np.cos(theta), rtol=1e-6)
    assert float(dot_jit(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, -5.0, 6.0]))) == 12.0


def test_zero_vectors_give_zero_and_finite_gradients():
    z, b = jnp.zeros((2, D)), jnp.ones((2, D))
    assert cos_jit(z, b).tolist() == [0.0, 0.0]
    assert cos_jit(b, z).tolist() == [0.0, 0.0]
    assert cos_jit(z, z).tolist() == [0.0, 0.0]
    grads = jax.jit(jax.grad(lambda a, b: jnp.sum(cosine_similarity(a, b)), argnums=(0, 1)))(z, b)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_leading_axes_broadcast_one_query_against_a_table():
    rng = np.random.default_rng(0)
    table = jnp.asarray(rng.standard_normal((6, D)), dtype=jnp.float32)
    query = table[2]
    c = cos_jit(query, table)
    assert c.shape == (6,)
    assert int(jnp.argmax(c)) == 2 and float(c[2]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(dot_jit(query, table), table @ query, rtol=1e-6)


@pytest.mark.parametrize("fn", [dot, cosine_similarity])
def test_bad_input_raises_value_errors_naming_expected_and_actual(fn):
    with pytest.raises(ValueError, match=r"same width D: expected b of shape \[\.\.\., 3\].*got b \(4,\)"):
        fn(jnp.ones(3), jnp.ones(4))
    with pytest.raises(ValueError, match=r"a: expected shape \[\.\.\., D\] \(rank >= 1\), got shape \(\) \(rank 0\)"):
        fn(jnp.float32(1.0), jnp.ones(3))
    with pytest.raises(ValueError, match=r"b: expected shape \[\.\.\., D\] \(rank >= 1\), got shape \(\)"):
        fn(jnp.ones(3), 2.0)
    with pytest.raises(ValueError, match=r"leading axes of a and b must broadcast: got a \(2, 3\) and b \(4, 3\)"):
        fn(jnp.ones((2, 3)), jnp.ones((4, 3)))
