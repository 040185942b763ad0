"""The week-9 experiment: FFN units as key–value memories, ReLU vs GELU sparsity, the F/D ablation (tiny run)."""

import json

import numpy as np
import pytest
from flax import nnx

from experiments.weekly import ffn
from model.gpt import GPT, GPTConfig

STEMS = ("ffn_memory", "ffn_sparsity", "ffn_width")


@pytest.fixture(scope="module")
def results(tiny_experiment):
    return tiny_experiment("ffn")


def test_writes_results_and_figures(results):
    out, m = results
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    assert (m["name"], m["week"]) == (ffn.NAME, ffn.WEEK) == ("ffn", 9)
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in STEMS for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert (out.parent / "shared-gpt-tiny" / "results.json").is_file()


def test_hidden_layer_is_the_models_own(results):
    _, m = results
    c = m["consistency"]
    assert c["ffn_error"] <= c["rtol"] and c["stream_error"] <= c["rtol"]


def test_memory_table(results):
    _, m = results
    mem, setup = m["memory"], ffn.FFNSetup.tiny()
    assert len(mem["units"]) == setup.memory_units
    scores = [u["score"] for u in mem["units"]]
    assert scores == sorted(scores, reverse=True) and len({u["unit"] for u in mem["units"]}) == len(scores)
    for u in mem["units"]:
        acts = [c["activation"] for c in u["contexts"]]
        assert len(acts) == setup.memory_top and acts == sorted(acts, reverse=True)
        assert u["score"] == pytest.approx(np.mean(acts), rel=1e-5)      # the mean of its top-k activations
        for c in u["contexts"]:
            assert 1 <= len(c["context"]) <= setup.context_chars and len(c["next"]) == 1
            assert c["truncated"] == (c["position"] + 1 > setup.context_chars)
        assert len(u["value_top_chars"]) == setup.value_top
        assert u["value_top_logits"] == sorted(u["value_top_logits"], reverse=True)
        assert 0.0 <= u["agreement"] <= 1.0 and 0.0 <= u["firing_fraction"] <= 1.0


def test_relu_has_exact_zeros_and_gelu_does_not(results):
    _, m = results
    s = m["sparsity"]
    relu, gelu = s["relu"]["trained"], s["gelu"]["trained"]
    assert relu["exact_zero"] - gelu["exact_zero"] >= ffn.ZERO_GAP
    assert gelu["exact_zero"] <= ffn.GELU_ZERO_AT_MOST and s["gelu"]["init"]["exact_zero"] <= ffn.GELU_ZERO_AT_MOST
    assert relu["min"] >= 0.0 > gelu["min"] >= -0.17                   # GELU's minimum is about -0.17
    for act in ffn.ACTIVATIONS_COMPARED:
        for when in ("init", "trained"):
            f = s[act][when]
            near = [f["near_zero"][str(tau)] for tau in ffn.THRESHOLDS]
            assert 0.0 <= f["exact_zero"] <= near[0] and near == sorted(near) and near[-1] <= 1.0
            h = s[act][f"histogram_{when}"]
            setup = ffn.FFNSetup.tiny()
            assert sum(h["counts"]) == h["total"] == s["positions"] * setup.n_layers * 4 * setup.d_model
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]


def test_parameter_count_is_linear_in_f(results):
    _, m = results
    w = m["width"]
    d, n_layers = w["d_model"], w["n_layers"]
    assert w["ffn_params"] == [2 * d * f + f + d for f in w["d_ff"]]      # N = 2DF + F + D
    base = w["gpt_params"][0] - n_layers * w["ffn_params"][0]
    assert w["gpt_params"] == [base + n_layers * p for p in w["ffn_params"]]
    assert w["ratios"] == sorted(ffn.FFNSetup.tiny().ratios) and all(np.isfinite(w["val_loss"]))
    assert all(len(curve) == ffn.FFNSetup.tiny().steps for curve in w["train_loss"].values())


def test_sparsity_and_top_contexts_on_known_arrays():
    s = ffn.sparsity(np.array([[[0.0, 0.0, 0.5]], [[0.0, 2.0, -0.001]]]), thresholds=(1e-2,))
    assert s["exact_zero"] == pytest.approx(0.5) and s["near_zero"] == {"0.01": pytest.approx(4 / 6)}
    assert [b["exact_zero"] for b in s["per_block"]] == pytest.approx([2 / 3, 1 / 3])
    assert s["dead_units"] == pytest.approx([2 / 3, 1 / 3])
    h = np.zeros((2, 3, 4))
    h[1, 2, 3], h[0, 0, 3], h[0, 1, 0] = 9.0, 7.0, 1.0
    units, scores, where = ffn.top_contexts(h, 2, 2)
    assert units.tolist() == [3, 0] and scores.tolist() == [8.0, 0.5]
    assert where[0].tolist() == [[1, 2], [0, 0]]


def test_hidden_activations_checks_tokens():
    model = GPT(GPTConfig.tiny(), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[0, V\)"):
        ffn.hidden_activations(model, np.array([[1, 2, 65]]))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        ffn.hidden_activations(model, np.array([1, 2, 3]))


def test_setup_checks_its_fields():
    with pytest.raises(ValueError, match="ratios"):
        ffn.FFNSetup(**{**ffn.FFNSetup.tiny().to_dict(), "ratios": (1, 2)})
    with pytest.raises(ValueError, match="steps"):
        ffn.FFNSetup(**{**ffn.FFNSetup.tiny().to_dict(), "ratios": (4,), "steps": 0})


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        ffn.run(tmp_path / "ffn", scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "ffn" / "results.json").exists()
