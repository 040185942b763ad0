"""Week 2 experiment: published transformers through gpt.param_count and cost.train_flops, with corrections."""

import json

import pytest

from derivations.gpt import GPT2_SIZES
from experiments.weekly import comparison

#: the released LLaMA-2 7B checkpoint (meta-llama/Llama-2-7b-hf): the sum of its tensor sizes
LLAMA_2_7B = 6_738_415_616


@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("comparison")


def _row(m, name):
    return next(r for r in m["rows"] if r["name"] == name)


def test_writes_results_table_and_figure(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    assert sorted(m["figures"]) == ["comparison_flops.png", "comparison_flops.svg"]
    for name in [*m["figures"], m["table"]]:
        assert (out / name).stat().st_size > 0
    table = (out / "table.md").read_text(encoding="utf-8")
    for r in m["rows"]:
        assert f"| {r['label']} |" in table and f"{r['corrected']['parameters']:,}" in table
    assert (m["name"], m["week"]) == ("comparison", 2)
    assert [r["name"] for r in m["rows"]] == ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-175b",
                                              "llama-2-7b", "llama-2-70b", "bert-base"]


def test_gpt2_sizes_match_the_released_checkpoints_exactly(tiny_run):
    _, m = tiny_run
    for name, (d, n_layers, released) in GPT2_SIZES.items():
        r = _row(m, name)
        assert (r["shapes"]["D"], r["shapes"]["L"]) == (d, n_layers)
        assert r["formula"]["parameters"] == r["corrected"]["parameters"] == released
        assert r["reference"]["value"] == released and r["reference"]["exact"]
        assert r["difference"]["formula"] == 0
    # the registered step of cost.train_flops: GPT-2 small costs 854,438,400 FLOPs per token
    assert _row(m, "gpt2")["formula"]["train_flops_per_token"] == 854_438_400


def test_llama_2_7b_corrected_for_swiglu_matches(tiny_run):
    _, m = tiny_run
    r = _row(m, "llama-2-7b")
    s = r["shapes"]
    assert abs(r["corrected"]["parameters"] - LLAMA_2_7B) <= 1e-3 * LLAMA_2_7B
    assert abs(r["difference"]["formula_relative"]) > 0.1          # uncorrected, a 2-matrix FFN is far off
    swiglu = next(c for c in r["corrections"] if c["key"] == "swiglu")
    assert swiglu["parameters"] == s["L"] * s["D"] * s["F"] and swiglu["flops_per_token"] == 6 * swiglu["parameters"]
    assert r["corrected"]["train_flops_per_token"] == r["formula"]["train_flops_per_token"] + 6 * swiglu["parameters"]


def test_grouped_query_attention_shrinks_w_k_and_w_v(tiny_run):
    _, m = tiny_run
    r = _row(m, "llama-2-70b")
    s = r["shapes"]
    gqa = next(c for c in r["corrections"] if c["key"] == "gqa")
    kv_width = s["H_kv"] * s["D"] // s["H"]
    assert gqa["parameters"] == -2 * s["L"] * s["D"] * (s["D"] - kv_width) < 0
    assert abs(r["difference"]["corrected_relative"]) < 1e-3


def test_bert_and_gpt3_differences_are_computed(tiny_run):
    _, m = tiny_run
    bert = _row(m, "bert-base")
    d = bert["shapes"]["D"]
    by_key = {c["key"]: c["parameters"] for c in bert["corrections"]}
    assert by_key == {"token_types": 2 * d, "pooler": d * d + d, "post_ln": 0}
    assert abs(bert["difference"]["corrected_relative"]) < abs(bert["difference"]["formula_relative"])
    assert any(p["text"] == "110M" for p in bert["published"])
    gpt3 = _row(m, "gpt3-175b")
    assert gpt3["reference"]["text"] == "175.0B" and not gpt3["reference"]["exact"]
    assert abs(gpt3["difference"]["formula_relative"]) < 0.01


def test_every_row_is_explained_and_sourced(tiny_run):
    _, m = tiny_run
    for r in m["rows"]:
        assert len(r["explanation"]) > 80 and "{" not in r["explanation"], r["name"]
        assert r["shapes_source"] and r["published"]
        for p in r["published"]:
            assert p["source"] and p["text"] and p["value"] > 0
        for c in r["corrections"]:
            assert c["what"]
    assert {"gpt.param_count", "cost.train_flops"} == set(m["statements"])


def test_flops_grow_with_parameters_near_6n(tiny_run):
    _, m = tiny_run
    for r in m["rows"]:
        assert 1.0 < r["corrected"]["flops_over_6n"] < 1.2, r["name"]


@pytest.mark.parametrize("scale", [0, 2.0, None])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        comparison.run(tmp_path, scale=scale, progress=False)
    assert not (tmp_path / "results.json").exists()
