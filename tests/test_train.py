"""Tests for experiments/train.py: config checks, the optimizer, the pure step, and the loop."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from experiments.data import TokenData
from experiments.train import (
    TrainConfig,
    decay_mask,
    make_eval_loss,
    make_optimizer,
    make_schedule,
    make_train_step,
    stack_micro_batches,
    train,
)
from model.gpt import GPT, GPTConfig

MODEL = GPTConfig.preset("tiny", context=16)
PERIOD = 12


@pytest.fixture(scope="module")
def data():
    """A repeating sequence 0..11: the next token is a function of the current one, so it is learnable."""
    seq = np.tile(np.arange(PERIOD), 200)
    return TokenData.from_arrays(train=seq, val=seq[: 20 * PERIOD], vocab_size=MODEL.vocab_size)


def _split(seed=0):
    return nnx.split(GPT(MODEL, rngs=nnx.Rngs(seed)), nnx.Param)


RUN = TrainConfig.preset("tiny", steps=30, warmup_steps=3, lr=1e-2, eval_every=10, log_every=1)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The same 30-step run twice: (result, metrics rows, out_dir) for each."""
    out = []
    for name in ("a", "b"):
        folder = tmp_path_factory.mktemp(name)
        result = train(MODEL, RUN, data, out_dir=folder, progress=False)
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        out.append((result, rows, folder))
    return out


def test_loss_decreases_on_learnable_sequence(runs):
    result, rows, _ = runs[0]
    losses = [r["loss"] for r in rows]
    assert len(losses) == RUN.steps
    assert losses[-1] < 0.5 * losses[0]
    assert result["val_loss"] < 0.5 * math.log(MODEL.vocab_size)


def test_same_seed_bit_identical(runs):
    (ra, rows_a, _), (rb, rows_b, _) = runs
    keys = ("step", "loss", "lr", "grad_norm", "val_loss")
    assert [[r.get(k) for k in keys] for r in rows_a] == [[r.get(k) for k in keys] for r in rows_b]
    assert (ra["train_loss"], ra["val_loss"]) == (rb["train_loss"], rb["val_loss"])
    for a, b in zip(jax.tree.leaves(ra["params"]), jax.tree.leaves(rb["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_metrics_jsonl_and_config(runs):
    result, rows, folder = runs[0]
    assert [r["step"] for r in rows] == list(range(1, RUN.steps + 1))
    for r in rows:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(r)
        assert r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) and r["grad_norm"] > 0
        assert ("val_loss" in r) == (r["step"] % RUN.eval_every == 0)
    config = json.loads((folder / "config.json").read_text())
    assert GPTConfig.from_dict(config["model"]) == MODEL
    assert TrainConfig(**config["train"]) == RUN
    assert set(result) >= {"train_loss", "val_loss", "steps", "tokens_per_s"}
    # the lr of step s is the schedule at s - 1, the number of updates done before it
    schedule = make_schedule(RUN)
    np.testing.assert_allclose([r["lr"] for r in rows], [float(schedule(r["step"] - 1)) for r in rows],
                               rtol=1e-6)


def test_grad_accum_matches_concatenated_batch(data):
    """A=2 micro-batches of B=2 and A=1 of B=4 on the same 4 sequences: same loss, norm and parameters.

    Tolerance: float32 rounding of the summation order, rtol 1e-5 / atol 1e-6.

    The first step of the real optimizer is nearly sign(g) (Adam), which magnifies rounding in
    near-zero gradients, so the parameters are compared after a plain SGD step (lr 1, as ``scale_by_schedule``), i.e. the
    gradients themselves; loss and grad_norm come from the same step.
    """
    x, y = data.batch("train", 4, MODEL.context, seed=0, step=0)
    results = []
    for accum in (2, 1):
        tc = TrainConfig.preset("tiny", batch_size=4 // accum, grad_accum=accum, warmup_steps=0)
        graphdef, params = _split()
        opt = optax.scale_by_schedule(lambda count: -1.0)  # SGD with lr 1; keeps a step count
        step = make_train_step(graphdef, tc, opt)
        params, _, metrics = step(params, opt.init(params), stack_micro_batches(x, y, accum))
        results.append((params, metrics))
    (p2, m2), (p1, m1) = results
    for k in ("loss", "grad_norm"):
        np.testing.assert_allclose(float(m2[k]), float(m1[k]), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(p2), jax.tree.leaves(p1)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_decay_mask_is_exactly_matrices():
    _, params = _split()
    mask = decay_mask(params)
    flat_p = jax.tree_util.tree_flatten_with_path(params)[0]
    flat_m = jax.tree.leaves(mask)
    assert len(flat_p) == len(flat_m)
    decayed = {jax.tree_util.keystr(path) for (path, p), m in zip(flat_p, flat_m) if m}
    expected = {jax.tree_util.keystr(path) for path, p in flat_p if p.ndim >= 2}
    assert decayed == expected
    assert any("wte" in k for k in decayed) and not any("gamma" in k or "b_" in k for k in decayed)


def test_weight_decay_leaves_vectors_alone():
    """With zero gradients only the decay moves parameters: matrices shrink, vectors stay."""
    tc = TrainConfig.preset("tiny", warmup_steps=0, weight_decay=0.5)
    _, params = _split()
    opt = make_optimizer(tc)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(opt.update)(zeros, opt.init(params), params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
        if p.ndim >= 2:
            np.testing.assert_allclose(np.asarray(u), -tc.lr * tc.weight_decay * np.asarray(p), rtol=1e-5)
        else:
            assert not np.any(np.asarray(u))


def test_schedule_points():
    tc = TrainConfig.preset("tiny", steps=50, warmup_steps=10, lr=2e-3, min_lr=2e-4)
    s = make_schedule(tc)
    assert float(s(0)) == 0.0
    np.testing.assert_allclose(float(s(5)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(10)), 2e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(30)), 2e-4 + 0.5 * (2e-3 - 2e-4), rtol=1e-5)
    np.testing.assert_allclose(float(s(50)), 2e-4, rtol=1e-6)


def test_nan_loss_stops_naming_step(data, tmp_path):
    tc = TrainConfig.preset("tiny", steps=10, warmup_steps=0, lr=1e30, grad_clip=1e30, eval_every=10)
    with pytest.raises(ValueError, match=r"step \d+: the training loss is (nan|inf|-inf)"):
        train(MODEL, tc, data, out_dir=tmp_path, progress=False)


def test_eval_loss_nan_params(data):
    graphdef, params = _split()
    params = jax.tree.map(lambda p: p * jnp.nan, params)
    x, y = data.batch("val", 2, MODEL.context, seed=0, step=0)
    assert np.isnan(float(make_eval_loss(graphdef)(params, x, y)))


@pytest.mark.parametrize("field, value", [
    ("steps", 0), ("batch_size", -1), ("grad_accum", 1.5), ("lr", 0.0), ("lr", math.nan),
    ("min_lr", 1.0), ("warmup_steps", 40), ("warmup_steps", -1), ("weight_decay", -0.1),
    ("beta1", 1.0), ("beta2", -0.1), ("grad_clip", 0.0), ("eval_every", 0), ("seed", -1), ("log_every", True),
])
def test_bad_config_is_value_error(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig.preset("tiny", **{field: value})


def test_bad_inputs(data, tmp_path):
    with pytest.raises(ValueError, match="unknown train preset"):
        TrainConfig.preset("huge")
    with pytest.raises(ValueError, match="vocab_size"):
        train(dataclasses.replace(MODEL, vocab_size=8), TrainConfig.tiny(), data, out_dir=tmp_path, progress=False)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(MODEL, {"steps": 3}, data, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="multiple of grad_accum"):
        stack_micro_batches(np.zeros((3, 4), np.int32), np.zeros((3, 4), np.int32), 2)


def test_presets():
    s = TrainConfig.preset("shakespeare-char")
    assert (s.batch_size, s.lr, s.min_lr, s.warmup_steps, s.steps, s.weight_decay, s.beta2, s.grad_clip,
            s.eval_every) == (12, 1e-3, 1e-4, 100, 2000, 0.1, 0.99, 1.0, 250)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 3  # type: ignore[misc]


def test_progress_shows_loss(data, tmp_path, capsys):
    """With ``progress=True`` the loss is shown: on a tqdm bar (stderr) or as printed lines (stdout)."""
    train(MODEL, RUN, data, out_dir=tmp_path, progress=True)  # RUN's step is already compiled
    captured = capsys.readouterr()
    assert "loss" in captured.out + captured.err
