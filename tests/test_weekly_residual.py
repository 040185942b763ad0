"""The week-11 experiment: gradient norms through depth with and without residuals, pre-LN and post-LN (tiny run)."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.weekly import residual
from model.attention import causal_mask
from model.bert import post_ln_layer
from model.block import attention_sublayer, ffn_sublayer, transformer_block
from model.gpt import embed, lm_logits
from model.loss import cross_entropy

STEMS = ("residual_gradients", "residual_gradient_ratio", "residual_loss")
SETUP = residual.ResidualSetup.tiny()
KW = {"n_heads": SETUP.n_heads, "eps": SETUP.eps, "activation": SETUP.activation}


# Trains several small models: run with the slower checks (`pytest -m slow`, as .ci/run does),
# which keeps the default suite under five minutes on two cores.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def results(tiny_experiment):
    return tiny_experiment("residual")


@pytest.fixture(scope="module")
def layer_params():
    """The first layer of the tiny stacks (TransformerBlock's own draw) and an embedded batch ``[2, T, D]``."""
    params = residual.init_params(SETUP, 70, 2, 0)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 70, (2, SETUP.context)), jnp.int32)
    x = embed(tokens, params["wte"], params["wpe"]) * 50.0             # entries of order 1
    return jax.tree.map(lambda leaf: leaf[0], params["layers"]), x


def test_writes_results_and_figures(results):
    out, m = results
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    assert (m["name"], m["week"]) == (residual.NAME, residual.WEEK) == ("residual", 11)
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in STEMS for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert m["depths"] == list(residual.TINY_DEPTHS)


def test_every_stack_is_measured_at_every_depth(results):
    _, m = results
    assert len(m["runs"]) == len(residual.VARIANTS) * len(m["depths"])
    for r in m["runs"]:
        for when in ("init", "trained"):
            for kind in ("param", "stream"):
                norms = r[when][kind]
                assert len(norms) == r["depth"] and all(np.isfinite(norms)) and min(norms) > 0
        assert len(r["train_loss"]) == SETUP.steps and all(np.isfinite(r["train_loss"]))
        assert r["init"]["loss"] == pytest.approx(np.log(m["setup"]["vocab_size"]), rel=0.05)  # about uniform
        assert np.isfinite(r["val_loss"])


def test_claims_hold_on_the_tiny_run(results):
    _, m = results
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]
    r = m["ratio"]["trained"]
    for variant in ("pre_ln_no_residual", "post_ln_no_residual"):
        assert abs(np.log(r["pre_ln"][-1])) < abs(np.log(r[variant][-1]))


def test_composed_post_ln_is_berts_layer_without_a_mask(layer_params):
    p, x = layer_params
    composed = jax.jit(functools.partial(residual.post_ln_causal, **KW))(x, **p)
    bert = jax.jit(functools.partial(post_ln_layer, **KW))(x, **p)
    np.testing.assert_allclose(composed, bert, rtol=1e-5, atol=1e-5)


def test_stacks_without_residuals_are_the_sublayers_minus_their_skips(layer_params):
    p, x = layer_params
    attention = {k: p[k] for k in ("gamma_1", "beta_1", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}
    ffn = {k: p[k] for k in ("gamma_2", "beta_2", "w_1", "b_1", "w_2", "b_2")}
    eps, act, h = SETUP.eps, SETUP.activation, SETUP.n_heads
    mask = causal_mask(x.shape[-2], x.shape[-2])
    a = attention_sublayer(x, **attention, n_heads=h, eps=eps, mask=mask) - x      # MHA(LN_1(x))
    expected = ffn_sublayer(a, **ffn, eps=eps, activation=act) - a                 # FFN(LN_2(a))
    got = residual.pre_ln_no_residual(x, **p, **KW, mask=mask)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert residual.layer_function("pre_ln") is transformer_block
    # a causal layer: output row t does not depend on input rows after t
    for variant in residual.VARIANTS:
        f = functools.partial(residual.layer_function(variant), **p, **KW, mask=mask)
        bumped = x.at[:, -1, :].add(1.0)
        np.testing.assert_allclose(f(bumped)[:, :-1], f(x)[:, :-1], rtol=1e-5, atol=1e-5)


def test_measure_matches_a_plain_loop_over_the_layers():
    """The scanned, switched stack at depth 2 (of 8 stacked layers) equals a Python loop over its first 2 layers."""
    params = residual.init_params(SETUP, 70, max(SETUP.depths), 0)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 70, (SETUP.batch_size, SETUP.context)).astype(np.int32)
    y = rng.integers(0, 70, (SETUP.batch_size, SETUP.context)).astype(np.int32)
    variant, depth = "post_ln", 2
    got = residual.measure(variant, SETUP, params, depth, [(x, y)])

    def loss(layers):
        h = embed(jnp.asarray(x), params["wte"], params["wpe"])
        mask = causal_mask(SETUP.context, SETUP.context)
        for p in layers:
            h = residual.layer_function(variant)(h, **p, **KW, mask=mask)
        logits = lm_logits(h, params["ln_f_gamma"], params["ln_f_beta"], params["wte"].T, eps=SETUP.eps)
        return jnp.mean(cross_entropy(logits, jnp.asarray(y)))

    layers = [jax.tree.map(lambda leaf, i=i: leaf[i], params["layers"]) for i in range(depth)]
    value, grads = jax.jit(jax.value_and_grad(loss))(layers)
    norms = [float(jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(layer)))) for layer in grads]
    assert got["loss"] == pytest.approx(float(value), rel=1e-5)
    np.testing.assert_allclose(got["param"], norms, rtol=1e-4)
    assert len(got["stream"]) == depth


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="variant"):
        residual.layer_function("no_ln")
    with pytest.raises(ValueError, match="depths"):
        residual.ResidualSetup(**{**SETUP.to_dict(), "depths": (1, 4)})
    with pytest.raises(ValueError, match="activation"):
        residual.ResidualSetup(**{**SETUP.to_dict(), "depths": (2,), "activation": "tanh"})


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        residual.run(tmp_path, scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "results.json").exists()
