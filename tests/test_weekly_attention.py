"""Week 6 experiment: QKᵀ and the attention weights of the shared GPT, and entropy against a factor on the scores."""

import functools
import json
from itertools import pairwise

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.weekly import attention
from experiments.weekly.shared import shared_gpt
from model.attention import causal_mask, softmax
from model.block import transformer_block
from model.gpt import embed
from model.positional import apply_rotary, rotary_tables

STEMS = ("attention_scores", "attention_weights", "attention_temperature")
RTOL, ATOL = 1e-5, 1e-6  # float32


@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("attention")


def test_writes_results_and_figures(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in STEMS for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert (m["name"], m["week"]) == (attention.NAME, attention.WEEK) == ("attention", 6)
    assert attention.LINE.startswith(m["line"]["text"]) and len(m["line"]["tokens"]) == m["setup"]["window_length"]
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]
    shares = m["observations"][0]["evidence"]
    shares = next(iter(shares.values()))
    assert all(0.0 <= v <= 1.0 for per_head in shares.values() for v in per_head)


def test_maps_are_causal_distributions(tiny_run):
    _, m = tiny_run
    n_layers, n_heads = m["setup"]["model"]["n_layers"], m["setup"]["model"]["n_heads"]
    t = len(m["line"]["tokens"])
    assert sorted(m["maps"]) == sorted({"0", str(n_layers - 1)})
    lower = np.tril(np.ones((t, t), dtype=bool))
    for layer in m["maps"].values():
        w, x = np.asarray(layer["weights"]), np.asarray(layer["scores"])
        assert w.shape == x.shape == (n_heads, t, t) and np.all(np.isfinite(x))
        assert np.all(w[:, ~lower] == 0) and np.all(w >= 0)
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=RTOL)
        # within a row the weights are ordered as the scores: softmax is monotone
        for h in range(n_heads):
            row_w, row_x = w[h, -1], x[h, -1]
            assert np.all(np.diff(row_w[np.argsort(row_x)]) >= -1e-7)


def test_entropy_falls_as_the_factor_grows(tiny_run):
    _, m = tiny_run
    e = m["entropy"]
    assert e["scales"] == list(attention.TINY_SCORE_SCALES)
    for curve in [e["line"], e["windows_mean"], *e["windows_per_layer"],
                  *(head for layer in e["windows_per_layer_head"] for head in layer)]:
        assert all(b < a for a, b in pairwise(curve)), curve
    assert max(e["line"] + e["windows_mean"]) < e["uniform"]
    t = m["setup"]["window_length"]
    assert e["uniform"] == pytest.approx(np.mean(np.log(np.arange(1, t + 1))), rel=1e-5)  # mean of log(t + 1)
    row = np.asarray(m["last_row"]["weights"])
    np.testing.assert_allclose(row.sum(axis=-1), 1.0, rtol=RTOL)
    assert np.max(row[-1]) > np.max(row[0])  # the largest c gives the most peaked row


def test_the_block_rebuilt_from_the_drawn_weights_is_the_block(tiny_run):
    out, m = tiny_run
    assert m["reproduction"]["max_relative_difference"] <= attention.REPRODUCTION_RTOL
    model, _, _ = shared_gpt(out.parent, tiny=True, progress=False)
    c = model.config
    tokens = jnp.asarray(m["line"]["tokens"])
    t = tokens.shape[0]
    mask = causal_mask(t, t)

    @jax.jit
    def layers(tokens):
        """Per layer: the block's output, the block rebuilt from the drawn weights, and those weights."""
        x, out = embed(tokens, model.wte[...], model.positions(t)), []
        for block in model.blocks:
            p = block.params()
            maps = attention.attention_maps(x, p, n_heads=c.n_heads, eps=c.eps, mask=mask)
            y = block(x, mask)
            out.append((y, attention.rebuild_block(x, maps["weights"], maps["v"], p, n_heads=c.n_heads, eps=c.eps,
                                                   activation=c.activation), maps["weights"]))
            x = y
        return out, model.hidden(tokens)

    out, hidden = layers(tokens)
    np.testing.assert_allclose(out[-1][0], hidden, rtol=RTOL, atol=ATOL)  # the blocks, as the model runs them
    for layer, (y, rebuilt, weights) in enumerate(out):
        np.testing.assert_allclose(rebuilt, y, rtol=RTOL, atol=ATOL)
        if str(layer) in m["maps"]:
            np.testing.assert_allclose(weights, m["maps"][str(layer)]["weights"], rtol=RTOL, atol=ATOL)


def _block_params(d: int, f: int, *, seed: int, biases: bool) -> dict:
    """Random parameters of one block by name (NumPy draws: nothing to compile); biases ``None`` without them."""
    rng = np.random.default_rng(seed)
    shapes = {"gamma_1": (d,), "beta_1": (d,), "w_q": (d, d), "b_q": (d,), "w_k": (d, d), "b_k": (d,),
              "w_v": (d, d), "b_v": (d,), "w_o": (d, d), "b_o": (d,), "gamma_2": (d,), "beta_2": (d,),
              "w_1": (d, f), "b_1": (f,), "w_2": (f, d), "b_2": (d,)}
    return {name: (None if name.startswith("b") and not biases
                   else jnp.asarray(rng.normal(0.0, 0.3, shape) + (name.startswith("gamma")), jnp.float32))
            for name, shape in shapes.items()}


def test_rebuild_without_biases_with_rotary_positions_and_a_batch():
    d, h, t, eps = 16, 4, 5, 1e-5
    p = _block_params(d, 32, seed=1, biases=False)
    assert p["b_q"] is None and p["beta_1"] is None
    cos, sin = rotary_tables(jnp.arange(t), head_dim=d // h, base=10000.0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, t, d)), jnp.float32)
    mask = causal_mask(t, t)

    @jax.jit
    def compare(x, p, cos, sin):
        rope = functools.partial(apply_rotary, cos=cos, sin=sin)
        maps = attention.attention_maps(x, p, n_heads=h, eps=eps, mask=mask, rope=rope)
        hot = attention.attention_maps(x, p, n_heads=h, eps=eps, mask=mask, rope=rope, tau=0.5)
        rebuilt = attention.rebuild_block(x, maps["weights"], maps["v"], p, n_heads=h, eps=eps)
        block = transformer_block(x, **p, n_heads=h, eps=eps, mask=mask, rope=rope)
        return maps, hot["weights"], softmax(2.0 * maps["scaled"], mask=mask[None]), rebuilt, block

    maps, hot, doubled, rebuilt, block = compare(x, p, cos, sin)
    assert maps["q"].shape == maps["k"].shape == (2, h, t, d // h) and maps["weights"].shape == (2, h, t, t)
    np.testing.assert_allclose(maps["scaled"], maps["scores"] / np.sqrt(d // h), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(rebuilt, block, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(hot, doubled, rtol=RTOL, atol=ATOL)  # tau = 1/c is scores times c


def test_bad_inputs_raise():
    p = _block_params(8, 16, seed=0, biases=True)
    x = jnp.ones((3, 8))
    # shapes only (jax.eval_shape): the checks run while tracing, nothing is compiled
    with pytest.raises(ValueError, match="missing"):
        jax.eval_shape(lambda: attention.attention_maps(x, {k: v for k, v in p.items() if k != "w_q"}, n_heads=2,
                                                        eps=1e-5))
    with pytest.raises(TypeError, match="mapping"):
        attention.attention_maps(x, list(p.values()), n_heads=2, eps=1e-5)
    maps = jax.eval_shape(lambda: attention.attention_maps(x, p, n_heads=2, eps=1e-5))
    weights, v = jnp.zeros((1, *maps["weights"].shape[1:])), jnp.zeros(maps["v"].shape)
    with pytest.raises(ValueError, match="weights and v"):
        jax.eval_shape(lambda: attention.rebuild_block(x, weights, v, p, n_heads=2, eps=1e-5))
    with pytest.raises(ValueError, match="scales"):
        attention.analyse(None, np.zeros((1, 3), np.int32), (1.0, 0.0))


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        attention.run(tmp_path / "attention", scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "attention" / "results.json").exists()
