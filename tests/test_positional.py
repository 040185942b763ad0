"""Positional encoding (week 10): sinusoidal layout, shift rotation, relative similarity; RoPE; bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.positional import (apply_rotary, encoding_gram, frequencies, rotary, rotary_scores, rotary_tables,
                              shift_rotation, sinusoidal_encoding)

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


# --- rotary position embedding (RoPE) ------------------------------------------------------------

B, H, T, K = 2, 3, 5, 8
THETA = BASE ** (-np.arange(0, K, 2) / K)     # float64, θ_i = base^(−2i/K)
rotary_jit = jax.jit(functools.partial(rotary, base=BASE))
scores_jit = jax.jit(functools.partial(rotary_scores, base=BASE))
tables_jit = jax.jit(functools.partial(rotary_tables, head_dim=K, base=BASE))
apply_jit = jax.jit(apply_rotary)


def _turn64(v, angle):
    """RoFormer's rotation in float64 NumPy: pair (2i, 2i+1) of the last axis of ``v`` turned by ``angle[..., i]``."""
    c, s = np.cos(angle), np.sin(angle)
    even, odd = v[..., 0::2], v[..., 1::2]
    out = np.empty_like(v)
    out[..., 0::2] = even * c - odd * s
    out[..., 1::2] = even * s + odd * c
    return out


def _rope64(x, p):
    """RoPE in float64: row t of ``x [..., T, K]`` turned by p_t θ_i."""
    return _turn64(np.asarray(x, np.float64), np.asarray(p, np.float64)[:, None] * THETA)


def _normal(*shape):
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


def test_rotary_matches_the_roformer_formula_on_heads():
    x, p = _normal(B, H, T, K), np.array([0, 3, 7, 100, 1000])
    got = rotary_jit(jnp.asarray(x), jnp.asarray(p))
    assert got.shape == (B, H, T, K) and got.dtype == jnp.float32
    # float32: angles up to 1000 rad rounded to about 1000·eps/2 each
    np.testing.assert_allclose(got, _rope64(x, p), atol=1000 * EPS32 * 4, rtol=0)


def test_tables_are_built_once_and_shared_by_every_head_and_batch_row():
    x, p = _normal(B, H, T, K), jnp.arange(T)
    cos, sin = tables_jit(p)
    assert cos.shape == sin.shape == (T, K // 2)
    np.testing.assert_allclose(cos, np.cos(np.arange(T)[:, None] * THETA), atol=8 * EPS32)
    shared = apply_jit(jnp.asarray(x), cos, sin)
    np.testing.assert_array_equal(shared, rotary_jit(jnp.asarray(x), p))
    one_head = jax.jit(jax.vmap(jax.vmap(lambda u: rotary(u, p, base=BASE))))(jnp.asarray(x))
    np.testing.assert_allclose(shared, one_head, rtol=0, atol=4 * EPS32)


def test_per_batch_positions_broadcast_over_heads():
    x = _normal(B, H, T, K)
    p = jnp.stack([jnp.arange(T), jnp.arange(T) + 11])              # [B, T]: e.g. left padding
    cos, sin = tables_jit(p)                                        # [B, T, K/2]
    got = apply_jit(jnp.asarray(x), cos[:, None], sin[:, None])     # [B, 1, T, K/2] against [B, H, T, K]
    for b in range(B):
        np.testing.assert_allclose(got[b], rotary_jit(jnp.asarray(x[b]), p[b]), rtol=0, atol=4 * EPS32)


def test_positions_may_be_traced_as_in_a_decoding_loop():
    x = jnp.asarray(_normal(B, H, 1, K))

    @jax.jit
    def step(start):
        cos, sin = rotary_tables(start + jnp.arange(1), head_dim=K, base=BASE)
        return apply_rotary(x, cos, sin)

    np.testing.assert_allclose(step(jnp.int32(6)), rotary_jit(x, jnp.array([6])), rtol=0, atol=4 * EPS32)


def test_rotary_keeps_the_dtype_of_x_and_computes_angles_in_float32():
    x = jnp.asarray(_normal(T, K)).astype(jnp.bfloat16)
    p = jnp.arange(T) * 100
    got = rotary_jit(x, p)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), _rope64(np.asarray(x, np.float32), p),
                               atol=2 ** -7 * 4, rtol=0)             # bfloat16: 8 bits of mantissa


def test_backward_pass_is_the_inverse_rotation():
    x, dy, p = (jnp.asarray(_normal(T, K)), jnp.asarray(_normal(T + 1, K)[1:]), jnp.array([0, 1, 5, 50, 500]))
    dx = jax.jit(jax.grad(lambda u: jnp.sum(rotary(u, p, base=BASE) * dy)))(x)
    np.testing.assert_allclose(dx, rotary_jit(dy, -p), rtol=0, atol=500 * EPS32 * 4)


# property tests: drawn values at one small [B, H, T, K] shape (one compile each); no subnormal
# floats, which XLA on CPU flushes to zero in any arithmetic (x·1 − y·0 included)
PB, PH, PT, PK = 2, 2, 3, 4
PTHETA = BASE ** (-np.arange(0, PK, 2) / PK)
vectors = arrays(np.float32, (PB, PH, PT, PK), elements=st.floats(-100, 100, width=32, allow_subnormal=False))
row_positions = arrays(np.int32, (PT,), elements=st.integers(0, 4096))



@settings(max_examples=25, deadline=None)
@given(x=vectors, p=row_positions)
def test_rotation_keeps_every_length(x, p):
    y = np.asarray(rotary_jit(jnp.asarray(x), jnp.asarray(p)), np.float64)
    before, after = np.linalg.norm(x.astype(np.float64), axis=-1), np.linalg.norm(y, axis=-1)
    # cos² + sin² of a rounded angle is 1 to a few eps: no growth with the position
    np.testing.assert_allclose(after, before, rtol=8 * EPS32, atol=1e-30)


@settings(max_examples=25, deadline=None)
@given(x=vectors)
def test_position_zero_is_the_identity(x):
    np.testing.assert_array_equal(np.asarray(rotary_jit(jnp.asarray(x), jnp.zeros(PT, jnp.int32))), x)


@settings(max_examples=25, deadline=None)
@given(q=vectors, k=vectors, p=row_positions, s=row_positions, c=st.integers(0, 4096))
def test_scores_depend_on_the_offset_only(q, k, p, s, c):
    g = np.asarray(scores_jit(jnp.asarray(q), jnp.asarray(p), jnp.asarray(k), jnp.asarray(s)), np.float64)
    g_c = np.asarray(scores_jit(jnp.asarray(q), jnp.asarray(p + c), jnp.asarray(k), jnp.asarray(s + c)),
                     np.float64)
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    # the relative form <q_t, R(s_u − p_t) k_u> in float64
    offset = (s[None, :] - p[:, None]).astype(np.float64)                         # [T, S]
    k_each = np.broadcast_to(k64[:, :, None, :, :], (PB, PH, PT, PT, PK))         # [B, H, T, S, K]
    turned = _turn64(k_each, offset[:, :, None] * PTHETA)                         # k_u turned by (s_u − p_t) θ
    relative = np.einsum("bhtk,bhtsk->bhts", q64, turned)
    scale = np.linalg.norm(q64, axis=-1)[..., :, None] * np.linalg.norm(k64, axis=-1)[..., None, :] + 1e-30
    # float32: each rotated vector is off by about P·eps/2 of its length (P ≤ 8192, the largest
    # angle), the dot product of K terms adds K·eps (experiments/properties/positional.py)
    tol = (2 * 8192 + PK + 16) * EPS32
    assert np.max(np.abs(g_c - g) / scale) <= tol
    assert np.max(np.abs(g - relative) / scale) <= tol


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: rotary(jnp.ones((T, 7)), jnp.arange(T), base=BASE), ValueError,
     r"x: the head width K = x.shape\[-1\]: expected an even positive head width K .*got 7"),
    (lambda: rotary(jnp.ones((K,)), jnp.arange(T), base=BASE), ValueError,
     r"x: expected shape \[\.\.\., T, K\] \(rank >= 2\), got shape \(8,\)"),
    (lambda: rotary(jnp.ones((T, K), jnp.int32), jnp.arange(T), base=BASE), TypeError,
     "x: expected a floating array.*got dtype int32"),
    (lambda: rotary(jnp.ones((T, K)), jnp.arange(T + 1), base=BASE), ValueError,
     r"cos: expected T = 5 positions along axis -2 \(x has shape \(5, 8\)\), got \(6, 4\)"),
    (lambda: rotary(jnp.ones((T, K)), jnp.arange(T), base=-1.0), ValueError, r"base: expected .*> 0, got -1.0"),
    (lambda: rotary_tables(jnp.arange(T), head_dim=6 - 1, base=BASE), ValueError,
     "head_dim: expected an even positive head width K .*got 5"),
    (lambda: rotary_tables(jnp.int32(3), head_dim=K, base=BASE), ValueError,
     r"p: expected shape \[\.\.\., T\] \(rank >= 1\), got shape \(\) \(rank 0\)"),
    (lambda: apply_rotary(jnp.ones((T, K)), jnp.ones((T, K)), jnp.ones((T, K))), ValueError,
     r"cos: expected shape \[\.\.\., T, K/2\] with K/2 = 4 \(x has shape \(5, 8\)\), got \(5, 8\)"),
    (lambda: apply_rotary(jnp.ones((T, K)), jnp.ones((T, K // 2)), jnp.ones((T - 1, K // 2))), ValueError,
     r"cos, sin: expected the same shape \[\.\.\., T, K/2\], got cos \(5, 4\) and sin \(4, 4\)"),
    (lambda: apply_rotary(jnp.ones((B, H, T, K)), jnp.ones((B, T, K // 2)), jnp.ones((B, T, K // 2))), ValueError,
     r"cos: expected leading axes \(2,\) that broadcast against those of x \(2, 3\) .*got shape \(2, 5, 4\)"),
    (lambda: apply_rotary(jnp.ones((T, K)), jnp.ones((1, T, K // 2)), jnp.ones((1, T, K // 2))), ValueError,
     r"cos: expected at most the rank of x \(5, 8\) \(rank 2\), got \(1, 5, 4\)"),
    (lambda: rotary_scores(jnp.ones((T, K)), jnp.arange(T), jnp.ones((T, K + 2)), jnp.arange(T), base=BASE),
     ValueError, r"k: expected shape \[\.\.\., S, K\] = \[S, 8\] .*got \(5, 10\)"),
])
def test_bad_rotary_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
