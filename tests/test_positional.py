"""Sinusoidal positional encoding (week 10): layout, shift rotation, relative similarity, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.positional import encoding_gram, frequencies, shift_rotation, sinusoidal_encoding

D, BASE = 16, 10000.0
EPS32 = float(np.finfo(np.float32).eps)
pe_jit = jax.jit(functools.partial(sinusoidal_encoding, d_model=D, base=BASE))
rot_jit = jax.jit(functools.partial(shift_rotation, d_model=D, base=BASE))
gram_jit = jax.jit(functools.partial(encoding_gram, d_model=D, base=BASE))
OMEGA = BASE ** (-np.arange(0, D, 2) / D)  # float64, for the references below


def _pe64(p):
    """The paper's formula in float64 NumPy: sin in even, cos in odd columns."""
    angle = np.asarray(p, np.float64)[..., None] * OMEGA
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(*np.shape(p), D)


def test_layout_matches_the_paper_formula():
    p = np.arange(0, 50)
    np.testing.assert_allclose(pe_jit(jnp.asarray(p)), _pe64(p), atol=50 * EPS32 * 4)
    assert pe_jit(jnp.asarray(p)).dtype == jnp.float32
    assert pe_jit(jnp.zeros((3, 7), jnp.int32)).shape == (3, 7, D)   # leading axes carried through
    np.testing.assert_allclose(frequencies(d_model=D, base=BASE), OMEGA, rtol=4 * EPS32)


positions = st.integers(0, 1000)


@settings(max_examples=25, deadline=None)
@given(p=positions, k=positions)
def test_shift_by_k_is_the_rotation_r_of_k(p, k):
    moved = rot_jit(jnp.int32(k)) @ pe_jit(jnp.asarray([p]))[0]
    # float32: entries computed from an angle θ ≤ p + k carry about θ·eps each
    tol = 2 * (p + k) * EPS32 + 8 * EPS32
    np.testing.assert_allclose(moved, pe_jit(jnp.asarray([p + k]))[0], atol=tol, rtol=0)


@settings(max_examples=25, deadline=None)
@given(a=positions, b=positions)
def test_rotations_are_orthogonal_and_compose(a, b):
    r_a, r_b = rot_jit(jnp.int32(a)), rot_jit(jnp.int32(b))
    np.testing.assert_allclose(r_a @ r_a.T, np.eye(D), atol=8 * EPS32)
    np.testing.assert_allclose(r_a @ r_b, rot_jit(jnp.int32(a + b)), atol=2 * (a + b) * EPS32 + 8 * EPS32)


def test_rotation_by_zero_is_the_identity_and_batches():
    np.testing.assert_array_equal(np.asarray(rot_jit(jnp.int32(0))), np.eye(D))
    many = rot_jit(jnp.arange(3))
    assert many.shape == (3, D, D)
    np.testing.assert_array_equal(many[2], rot_jit(jnp.int32(2)))


@settings(max_examples=25, deadline=None)
@given(p=positions, q=positions, c=positions)
def test_dot_product_depends_only_on_the_offset(p, q, c):
    g = np.asarray(gram_jit(jnp.asarray([p, q, p + c, q + c])), np.float64)
    closed = np.sum(np.cos((p - q) * OMEGA))
    tol = 2 * D * (max(p, q) + c) * EPS32 + 8 * EPS32   # D/2 products, each with angle errors θ·eps
    np.testing.assert_allclose([g[0, 1], g[2, 3]], [closed, closed], atol=tol, rtol=0)
    np.testing.assert_allclose(np.diag(g), D / 2, atol=D * EPS32)


def test_gram_of_consecutive_positions_is_toeplitz():
    g = np.asarray(gram_jit(jnp.arange(40)), np.float64)
    for offset in range(-39, 40):
        diag = np.diagonal(g, offset)
        np.testing.assert_allclose(diag, diag[0], atol=2 * 40 * EPS32 * D)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: sinusoidal_encoding(jnp.arange(3), d_model=7, base=BASE), ValueError,
     r"d_model: expected an even width D .*got 7"),
    (lambda: shift_rotation(1, d_model=5, base=BASE), ValueError, r"even width D .*got 5"),
    (lambda: encoding_gram(jnp.arange(3), d_model=0, base=BASE), ValueError, "positive integer, got 0"),
    (lambda: sinusoidal_encoding(jnp.int32(3), d_model=4, base=BASE), ValueError,
     r"p: expected shape \[\.\.\., T\] \(rank >= 1\), got shape \(\) \(rank 0\)"),
    (lambda: sinusoidal_encoding(jnp.ones(3, bool), d_model=4, base=BASE), TypeError, "integer.*got dtype bool"),
    (lambda: sinusoidal_encoding(jnp.arange(3), d_model=4, base=0.0), ValueError, r"base: expected .*> 0, got 0.0"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
