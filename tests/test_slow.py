"""Slower checks, run by `.ci/run` with `-m slow`: wider shape sweeps than the default suite compiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model.attention import causal_mask, sdpa

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("t", [1, 7, 64, 257])
@pytest.mark.parametrize("width", [1, 16, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_jax_attention_over_a_sweep_of_shapes(t, width, causal):
    rng = np.random.default_rng(t * 1000 + width)
    q, k, v = (jnp.asarray(rng.standard_normal((2, t, 3, width)), dtype=jnp.float32) for _ in range(3))
    theirs = jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla")
    swap = lambda x: jnp.swapaxes(x, 1, 2)  # noqa: E731  [B, T, H, K] <-> [B, H, T, K]
    ours = swap(jax.jit(sdpa)(swap(q), swap(k), swap(v), causal_mask(t, t) if causal else None))
    err = float(jnp.max(jnp.abs(ours - theirs)) / jnp.max(jnp.abs(theirs)))
    assert err <= 1e-5, err


def test_gradients_match_jax_attention_at_a_long_sequence():
    rng = np.random.default_rng(1)
    t = 512
    q, k, v = (jnp.asarray(rng.standard_normal((1, t, 2, 32)), dtype=jnp.float32) for _ in range(3))
    swap = lambda x: jnp.swapaxes(x, 1, 2)  # noqa: E731

    def ours(q, k, v):
        return jnp.sum(jnp.sin(swap(sdpa(swap(q), swap(k), swap(v), causal_mask(t, t)))))

    def theirs(q, k, v):
        return jnp.sum(jnp.sin(jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="xla")))

    g1 = jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(q, k, v)
    g2 = jax.jit(jax.grad(theirs, argnums=(0, 1, 2)))(q, k, v)
    for a, b in zip(g1, g2):
        assert float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) <= 1e-5
