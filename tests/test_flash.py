"""Online softmax and blockwise attention (week 7): agreement with sdpa, block-size independence, memory, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from derivations.check import prove
from derivations.flash import recurrence
from derivations.registry import Step
from derivations.symbolic import explicit
from model.attention import causal_mask, sdpa
from model.flash import flash_attention, online_softmax, tiles

B, H, T, K = 2, 3, 13, 4
_rng = np.random.default_rng(0)
Q, KEY, VAL = (jnp.asarray(_rng.standard_normal((B, H, T, K)), dtype=jnp.float32) for _ in range(3))
BLOCKS = (1, 5, 32)  # 5: T = 13 is padded to 15; 32 > T: clamped to one tile


@functools.cache
def _flash(block_size: int, causal: bool):
    return jax.jit(functools.partial(flash_attention, block_size=block_size, causal=causal))


def _with_vjp(attend):
    """``(q, k, v, c, mask) -> (output, (dQ, dK, dV) of Σ c∘o)``, one jit-compiled call."""
    def run(q, k, v, c, mask):
        out, pull = jax.vjp(lambda q, k, v: attend(q, k, v, mask), q, k, v)
        return out, pull(c)
    return jax.jit(run)


@functools.cache
def _flash_vjp(block_size: int, causal: bool):
    return _with_vjp(functools.partial(flash_attention, block_size=block_size, causal=causal))


_sdpa_vjp = _with_vjp(sdpa)


def _relative(a, b) -> float:
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("block_size", BLOCKS)
@pytest.mark.parametrize("causal", [False, True])
def test_values_and_gradients_equal_sdpa(block_size, causal):
    c = jnp.cos(Q)
    out, grads = _flash_vjp(block_size, causal)(Q, KEY, VAL, c, None)
    ref_out, ref_grads = _sdpa_vjp(Q, KEY, VAL, c, causal_mask(T, T) if causal else None)
    for a, b in zip((out, *grads), (ref_out, *ref_grads)):
        assert _relative(a, b) <= 1e-5  # float32 at highest precision, the same sums in another order


def test_more_keys_than_queries_and_a_mask_with_a_fully_masked_row():
    s = 21
    k, v = (jnp.asarray(_rng.standard_normal((B, H, s, K)), dtype=jnp.float32) for _ in range(2))
    mask = jnp.asarray(_rng.random((H, T, s)) < 0.5).at[:, 2].set(False)
    c = jnp.ones_like(Q)
    for causal, m in ((True, None), (False, mask)):
        out, grads = _flash_vjp(5, causal)(Q, k, v, c, m)
        ref_out, ref_grads = _sdpa_vjp(Q, k, v, c, causal_mask(T, s) if causal else m)
        for a, b in zip((out, *grads), (ref_out, *ref_grads)):
            assert _relative(a, b) <= 1e-5
    assert bool(jnp.all(out[:, :, 2] == 0))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert bool(jnp.all(grads[0][:, :, 2] == 0))  # a query that sees nothing has no gradient


def test_unbatched_inputs_and_bfloat16():
    q, k, v = Q[0, 0], KEY[0, 0], VAL[0, 0]
    expected = sdpa(q, k, v, causal_mask(T, T))
    assert _relative(_flash(5, True)(q, k, v), expected) <= 1e-5
    out = _flash(5, True)(*(x.astype(jnp.bfloat16) for x in (q, k, v)))
    assert out.dtype == jnp.bfloat16
    assert _relative(out.astype(jnp.float32), expected) <= 2e-2  # bfloat16 inputs, float32 accumulation


_values = arrays(np.float32, (3, T, K), elements=st.floats(-8, 8, width=32))


@settings(max_examples=25, deadline=None)
@given(_values)
def test_block_size_does_not_change_the_result(qkv):
    q, k, v = (jnp.asarray(x) for x in qkv)
    outs = [_flash(b, True)(q, k, v) for b in BLOCKS]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0], rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(arrays(np.float32, (4, 9), elements=st.floats(-50, 50, width=32)), st.sampled_from((1, 2, 4, 9)))
def test_online_softmax_equals_softmax_times_v(s, block_size):
    v = jnp.asarray(_rng.standard_normal((9, 3)), dtype=jnp.float32)
    expected = jax.nn.softmax(jnp.asarray(s), axis=-1) @ v
    got = jax.jit(online_softmax, static_argnames="block_size")(jnp.asarray(s), v, block_size=block_size)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_online_softmax_survives_scores_whose_exponential_overflows():
    s = jnp.array([[1000.0, 999.0, -jnp.inf], [-jnp.inf, -jnp.inf, -jnp.inf]])
    v = jnp.array([[1.0], [0.0], [5.0]])
    out, grad = jax.jit(jax.value_and_grad(lambda s: online_softmax(s, v, block_size=2)[0, 0]))(s)
    e = 1 / (1 + np.exp(-1.0))  # weights e^0 and e^-1 over their sum
    np.testing.assert_allclose(out, e, rtol=1e-6)
    np.testing.assert_allclose(grad, [[e * (1 - e), -e * (1 - e), 0.0], [0.0, 0.0, 0.0]], rtol=1e-5, atol=1e-7)


def test_tiles_skip_what_the_causal_mask_hides():
    assert len(tiles(8, 8, 2, causal=False)) == 16
    assert len(tiles(8, 8, 2, causal=True)) == 4 * 5 // 2  # the lower triangle of 4 x 4 tiles
    assert tiles(2, 4, 2, causal=True).tolist() == [[0, 0], [0, 1]]  # the last queries see every key
    assert tiles(3, 3, 2, causal=True).tolist() == [[0, 0], [1, 0], [1, 1]]


def _temp_bytes(fn, t):
    shape = jax.ShapeDtypeStruct((1, 2, t, 16), jnp.float32)
    grad = jax.jit(jax.grad(lambda q, k, v: jnp.sum(fn(q, k, v)), argnums=(0, 1, 2)))
    return grad.lower(shape, shape, shape).compile().memory_analysis().temp_size_in_bytes


def test_forward_and_backward_memory_grows_linearly_in_t():
    flash = functools.partial(flash_attention, block_size=32, causal=True)
    naive = lambda q, k, v: sdpa(q, k, v, causal_mask(q.shape[-2], q.shape[-2]))
    flash_growth = _temp_bytes(flash, 1024) / _temp_bytes(flash, 256)
    naive_growth = _temp_bytes(naive, 1024) / _temp_bytes(naive, 256)
    assert flash_growth <= 4.5, flash_growth  # O(T K): 4 for 4x the length
    assert naive_growth >= 12, naive_growth  # O(T²): 16


def test_the_running_sum_needs_its_rescale():
    m, m_new, total = sp.symbols("m m' L", real=True)
    j, n = sp.Symbol("j", integer=True), sp.Symbol("n", integer=True, positive=True)
    y = sp.IndexedBase("y")
    block = sp.Sum(sp.exp(y[j] - m_new), (j, 0, n - 1))
    target = sp.exp(-m_new) * (total + sp.Sum(sp.exp(y[j]), (j, 0, n - 1)))
    rescaled = sp.exp(m - m_new) * sp.exp(-m) * total + block
    assert prove(Step(claim="rescaled", eq=sp.Eq(rescaled, target, evaluate=False))).holds
    assert not prove(Step(claim="not rescaled", eq=sp.Eq(sp.exp(-m) * total + block, target, evaluate=False))).holds


def test_the_recurrence_helper_gives_the_softmax():
    x, v = explicit(sp.MatrixSymbol("x", 1, 2), {}), explicit(sp.MatrixSymbol("v", 2, 1), {})
    ell, o = recurrence(x, v, (1, 1), sp.symbols("m_1 m_2", real=True))
    values = {x[0, 0]: 0.3, x[0, 1]: -1.2, v[0, 0]: 2.0, v[1, 0]: -1.0, sp.Symbol("m_1", real=True): 5.0,
              sp.Symbol("m_2", real=True): -4.0}
    expected = (np.exp(0.3) * 2.0 - np.exp(-1.2)) / (np.exp(0.3) + np.exp(-1.2))
    assert abs(float((o[0, 0] / ell).subs(values)) - expected) < 1e-12


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((Q[0, 0, 0], KEY, VAL), {}, ValueError, r"q: expected shape \[\.\.\., T, K\]"),
    ((Q, KEY[..., :3], VAL), {}, ValueError, "same width K"),
    ((Q, KEY[0], VAL[0]), {}, ValueError, "same leading axes"),
    ((Q, KEY, VAL[..., :5, :]), {}, ValueError, "one row per key"),
    ((Q, KEY[..., :5, :], VAL[..., :5, :]), {"causal": True}, ValueError, "at least as many keys"),
    ((Q, KEY, VAL), {"block_size": 0}, ValueError, "block_size: expected a positive integer"),
    ((Q, KEY[..., :0, :], VAL[..., :0, :]), {}, ValueError, "at least one query and one key"),
    ((Q, KEY, VAL), {"causal": 1}, TypeError, "causal: expected a Python bool"),
    ((Q, KEY, VAL, jnp.ones((T, T + 1), bool)), {}, ValueError, r"mask: expected shape \[\.\.\., T, S\]"),
    ((Q, KEY, VAL, jnp.ones((T, T))), {}, TypeError, "mask: expected a boolean array"),
])
def test_bad_input_raises(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        flash_attention(*args, **{"block_size": 4, **kwargs})


def test_online_softmax_bad_input_raises():
    with pytest.raises(ValueError, match="one row per score column"):
        online_softmax(jnp.ones((2, 3)), jnp.ones((4, 2)), block_size=2)
    with pytest.raises(ValueError, match="block_size"):
        online_softmax(jnp.ones((2, 3)), jnp.ones((3, 2)), block_size=-1)
    with pytest.raises(ValueError, match="at least one score per row"):
        online_softmax(jnp.ones((2, 0)), jnp.ones((0, 2)), block_size=2)
