"""Week 8 experiment: per-head patterns, head ablation by zeroing rows of W_O, one head vs several at equal size."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from experiments.weekly import attention, heads
from model.attention import causal_mask
from model.block import transformer_block
from model.gpt import GPT, GPTConfig

STEMS = ("heads_patterns", "heads_ablation", "heads_count_training")
RTOL, ATOL = 1e-5, 1e-6  # float32


# Trains several small models: run with the slower checks (`pytest -m slow`, as .ci/run does),
# which keeps the default suite under five minutes on two cores.
pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("heads")


def test_writes_results_and_figures(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in STEMS for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert (m["name"], m["week"]) == (heads.NAME, heads.WEEK) == ("heads", 8)
    c = m["setup"]["shared_model"]
    t = len(m["line"]["tokens"])
    patterns = np.asarray(m["patterns"])
    assert patterns.shape == (c["n_layers"], c["n_heads"], t, t)
    np.testing.assert_allclose(patterns.sum(axis=-1), 1.0, rtol=RTOL)


def test_ablation_deltas_are_finite_and_a_whole_layer_costs_more(tiny_run):
    _, m = tiny_run
    a, c = m["ablation"], m["setup"]["shared_model"]
    single, whole = np.asarray(a["delta_single"]), np.asarray(a["delta_layer"])
    assert single.shape == (c["n_layers"], c["n_heads"]) and whole.shape == (c["n_layers"],)
    assert np.all(np.isfinite(single)) and np.all(np.isfinite(whole)) and np.isfinite(a["base"])
    np.testing.assert_allclose(np.asarray(a["single"]) - a["base"], single, atol=1e-6)
    assert np.all(whole > single.max(axis=1))
    assert m["claims"][0]["holds"] and m["claims"][1]["holds"]


def test_one_head_and_several_have_equal_parameter_counts(tiny_run):
    _, m = tiny_run
    task = heads.HeadCountTask.tiny()
    p, d = m["parameters"], task.d_model
    assert set(p["attention_per_layer"].values()) == {4 * d * d + 4 * d}
    assert len(set(p["gpt_formula"].values()) | set(p["gpt_counted"].values())) == 1
    assert m["head_count"]["same_initial_weights"] is True
    runs = m["head_count"]["runs"]
    assert sorted(r["n_heads"] for r in runs) == sorted(task.head_counts)
    for r in runs:
        assert len(r["train_loss"]) == task.steps and np.all(np.isfinite(r["train_loss"]))
        assert [pt["step"] for pt in r["val_curve"]] == [0, *range(task.eval_every, task.steps + 1, task.eval_every)]
        assert r["val_curve"][-1]["val_loss"] < r["val_curve"][0]["val_loss"]  # it learns
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]
    difference = m["observations"][0]["evidence"]["difference per seed"]["4"]
    assert len(difference) == 1 and np.isfinite(difference[0])


@pytest.fixture(scope="module")
def four_heads():
    config = GPTConfig.tiny(n_heads=4, n_layers=2)
    graphdef, params = nnx.split(GPT(config, rngs=nnx.Rngs(0)), nnx.Param)
    return config, graphdef, params


def test_zeroing_rows_of_w_o_removes_exactly_that_head(four_heads):
    config, graphdef, params = four_heads
    layer, head, t = 1, 2, 6
    k = config.d_model // config.n_heads
    ablated = heads.zero_heads(params, [(layer, head)], n_heads=config.n_heads)
    # only that head's K rows of that layer's W_O changed, and the input is untouched
    before, after = jax.tree.leaves(params), jax.tree.leaves(ablated)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if not np.array_equal(a, b)]
    assert len(changed) == 1
    w_o = np.asarray(after[changed[0]])
    original = np.asarray(before[changed[0]])
    rows = np.s_[head * k:(head + 1) * k]
    assert np.all(w_o[rows] == 0) and np.any(original[rows] != 0)
    np.testing.assert_array_equal(np.delete(w_o, rows, axis=0), np.delete(original, rows, axis=0))

    # the ablated block equals the block with that head's output (its weights) set to zero
    x = jax.random.normal(jax.random.key(1), (t, config.d_model))
    mask = causal_mask(t, t)
    p = nnx.merge(graphdef, params).blocks[layer].params()
    q = nnx.merge(graphdef, ablated).blocks[layer].params()

    @jax.jit
    def compare(x, p, q):
        kw = {"n_heads": config.n_heads, "eps": config.eps}
        maps = attention.attention_maps(x, p, **kw, mask=mask)
        silenced = attention.rebuild_block(x, maps["weights"].at[head].set(0.0), maps["v"], p, **kw)
        return (transformer_block(x, **q, **kw, mask=mask), transformer_block(x, **p, **kw, mask=mask),
                silenced)

    zeroed_rows, intact, silenced = compare(x, p, q)
    np.testing.assert_allclose(zeroed_rows, silenced, rtol=RTOL, atol=ATOL)
    assert not np.allclose(intact, silenced, rtol=RTOL, atol=ATOL)


def test_zero_heads_rejects_bad_pairs(four_heads):
    _, _, params = four_heads
    with pytest.raises(ValueError, match=r"head in \[0, H\)"):
        heads.zero_heads(params, [(0, 4)], n_heads=4)
    with pytest.raises(ValueError, match="layers \\[5\\]"):
        heads.zero_heads(params, [(5, 0)], n_heads=4)
    with pytest.raises(ValueError, match="pairs"):
        heads.zero_heads(params, [0], n_heads=4)
    with pytest.raises(ValueError, match="n_heads"):
        heads.zero_heads(params, [(0, 0)], n_heads=0)
    assert jax.tree.all(jax.tree.map(np.array_equal, heads.zero_heads(params, [], n_heads=4), params))


def test_head_count_task_checks_its_fields():
    with pytest.raises(ValueError, match="head_counts"):
        heads.HeadCountTask(**{**heads.HeadCountTask.tiny().to_dict(), "head_counts": (1, 3)})
    with pytest.raises(ValueError, match="steps"):
        heads.HeadCountTask(**{**heads.HeadCountTask.tiny().to_dict(), "steps": 0})
    task = heads.HeadCountTask.default()
    assert len({task.model_config(h, 70).d_model for h in task.head_counts}) == 1


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        heads.run(tmp_path / "heads", scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "heads" / "results.json").exists()
