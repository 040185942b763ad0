"""Tests for ``tfd bench`` (experiments/bench.py) and its PyTorch reference (experiments/bench_torch.py).

Benchmarks are scripts: nothing here times anything against a threshold.  These tests
check that the PyTorch reference is the same model as ours (same parameter count, same
logits from the same weights) and that a quick bench run writes well-formed results.
"""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import bench_torch
from experiments.bench import bench, format_report
from model.gpt import GPT, GPTConfig

torch_missing = bench_torch.available()
needs_torch = pytest.mark.skipif(torch_missing is not None, reason=str(torch_missing))


@needs_torch
@pytest.mark.parametrize("overrides", [
    {}, pytest.param({"bias": False, "activation": "gelu_tanh"}, marks=pytest.mark.slow),
    pytest.param({"tie_embeddings": False, "activation": "gelu"}, marks=pytest.mark.slow)],
    ids=["tiny", "no-bias-gelu-tanh", "untied-gelu"])
def test_pytorch_reference_computes_our_logits_from_our_weights(overrides):
    """Tolerance 2e-5 absolute on logits of size ~1: float32, different summation orders."""
    import torch

    config = GPTConfig.tiny(**overrides)
    gpt = GPT(config, rngs=nnx.Rngs(0))
    params = nnx.state(gpt, nnx.Param)
    ref = bench_torch.build(config, seed=0)
    assert sum(p.numel() for p in ref.parameters()) == sum(np.size(p) for p in jax.tree.leaves(params))
    bench_torch.load_params(ref, params)
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (2, config.context))
    with jax.default_matmul_precision("highest"):
        ours = np.asarray(gpt(tokens))
    with torch.no_grad():
        theirs = ref(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(theirs, ours, atol=2e-5)


def test_pytorch_reference_refuses_positions_it_does_not_have():
    if torch_missing is not None:
        pytest.skip(torch_missing)
    with pytest.raises(ValueError, match="learned or no positions; got positional='rotary'"):
        bench_torch.build(GPTConfig.tiny(positional="rotary"))


@pytest.mark.slow
def test_quick_bench_writes_well_formed_results(tmp_path):
    results = bench(tmp_path / "bench", presets=("tiny",), quick=True, progress=False)
    saved = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert saved["device"]["backend"] == jax.default_backend()
    (step,) = saved["train_step"]
    assert step["preset"] == "tiny" and step["parameters"] == 28576
    assert step["ours"]["tokens_per_s"] > 0 and np.isfinite(step["ours"]["final_loss"])
    if torch_missing is None:
        assert step["ratio"] == pytest.approx(step["pytorch"]["seconds_per_step"] / step["ours"]["seconds_per_step"])
        assert step["pytorch"]["tokens_per_s"] > 0
    else:
        assert step["ratio"] is None and "pip install" in step["pytorch"]["skipped"]
    (comp,) = saved["compile"]
    assert comp["compile_s"] > 0 and comp["memory"]["peak_bytes"] > 0 and comp["flops_per_token"] == 184512
    assert 0 < comp["mfu"] < 1.5
    assert saved["attention"]["rows"], "the attention comparison ran"
    table = format_report(results)
    assert "tiny" in table and "MFU" in table


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown GPT preset 'huge'"):
        bench(tmp_path, presets=("huge",), progress=False)
    with pytest.raises(ValueError, match="rounds: expected a positive integer, got 0"):
        bench(tmp_path, rounds=0, progress=False)
    assert not (tmp_path / "results.json").exists()
