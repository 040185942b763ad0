"""Tests for checkpoints: an exact resume, atomic saves, unreadable checkpoints, Ctrl-C, config mismatches.

One straight run and one run paused half-way are trained once per module; tests
that resume copy the paused folder first, so every test starts from the same files.
"""

import dataclasses
import json
import shutil
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments.checkpoint import Checkpoints, CheckpointWarning, all_finite, config_differences
from experiments.data import TokenData
from experiments.train import TrainConfig, TrainingInterrupted, resume, train
from model.gpt import GPTConfig

MODEL = GPTConfig.preset("tiny", context=16)
PERIOD = 12
# the optimizer settings of tests/test_train.py's run (steps 30, warmup 3, lr 1e-2): one compiled step serves both
RUN = TrainConfig.preset("tiny", steps=30, warmup_steps=3, lr=1e-2, eval_every=10, log_every=1,
                         checkpoint_every=10, keep_checkpoints=2)
PAUSE = 15
KEYS = ("step", "loss", "lr", "grad_norm", "val_loss")  # every logged value but the timing


@pytest.fixture(scope="module")
def data():
    seq = np.tile(np.arange(PERIOD), 200)
    return TokenData.from_arrays(train=seq, val=seq[: 20 * PERIOD], vocab_size=MODEL.vocab_size)


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _values(rows):
    return [[r.get(k) for k in KEYS] for r in rows]


def _assert_same_params(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """RUN from step 0 to 30 without a pause: (result, metrics rows, folder)."""
    folder = tmp_path_factory.mktemp("straight")
    with jax.default_matmul_precision("highest"):  # as in the tests (conftest.py): one compilation for all
        result = train(MODEL, RUN, data, out_dir=folder, progress=False, figures=False)
    return result, _rows(folder), folder


@pytest.fixture(scope="module")
def paused(data, tmp_path_factory):
    """RUN stopped after step 15 (checkpoints 10 and 15); tests copy it, never change it."""
    folder = tmp_path_factory.mktemp("paused")
    with jax.default_matmul_precision("highest"):
        result = train(MODEL, RUN, data, out_dir=folder, progress=False, stop_at=PAUSE, figures=False)
    assert (result["steps"], result["complete"]) == (PAUSE, False)
    return folder


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "run")


def _steps(folder):
    return Checkpoints(folder / "checkpoints", keep=RUN.keep_checkpoints).steps()


def test_stop_then_resume_is_bit_identical_to_a_straight_run(straight, paused, data, tmp_path):
    """Steps 1-15, then 16-30 in a new call from the checkpoint: every logged value and parameter equal."""
    result_a, rows_a, _ = straight
    run = _copy(paused, tmp_path)
    assert _steps(run) == [10, PAUSE]
    assert [r["step"] for r in _rows(run)] == list(range(1, PAUSE + 1))
    result_b = resume(run, data, progress=False, figures=False)
    assert (result_b["resumed_from"], result_b["steps"], result_b["complete"]) == (PAUSE, RUN.steps, True)
    assert _values(_rows(run)) == _values(rows_a)
    _assert_same_params(result_a["params"], result_b["params"])
    assert (result_b["train_loss"], result_b["val_loss"]) == (result_a["train_loss"], result_a["val_loss"])
    assert _steps(run) == [20, 30]  # keep_checkpoints = 2
    saved = json.loads((run / "results.json").read_text())
    assert saved["resumed_from"] == PAUSE and saved["elapsed_s"] > saved["session_s"] > 0


def test_checkpoint_holds_configs_step_and_keeps_the_newest(straight):
    _, _, folder = straight
    with Checkpoints(folder / "checkpoints", keep=RUN.keep_checkpoints) as ckpts:
        assert ckpts.steps() == [20, 30]
        meta = ckpts.read_meta(30)
    assert (meta["step"], meta["model"], meta["train"]) == (30, MODEL.to_dict(), RUN.to_dict())
    assert meta["elapsed_s"] > 0


def test_ctrl_c_in_a_hook_checkpoints_that_step_and_resumes_exactly(straight, data, tmp_path):
    def hook(step, scalars):
        assert set(scalars) == {"loss", "lr", "grad_norm"}
        if step == 7:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        train(MODEL, RUN, data, out_dir=run, progress=False, on_step=hook)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.step, info.value.checkpoint) == (7, run / "checkpoints" / "7")
    assert "resume(" in str(info.value)
    assert _steps(run) == [7]
    assert [r["step"] for r in _rows(run)] == list(range(1, 8))
    assert (run / "loss.png").stat().st_size > 0 and (run / "loss.svg").stat().st_size > 0
    assert not (run / "results.json").exists()

    result = resume(run, data, progress=False, figures=False)
    _assert_same_params(straight[0]["params"], result["params"])
    assert _values(_rows(run)) == _values(straight[1])


def test_real_sigint_waits_for_the_step_to_finish(data, tmp_path):
    """A SIGINT delivered during a step is held until the step is done, then checkpointed."""
    before = signal.getsignal(signal.SIGINT)

    def hook(step, scalars):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as info:
        train(MODEL, RUN, data, out_dir=tmp_path, progress=False, on_step=hook, figures=False)
    assert info.value.step == 3 and _steps(tmp_path) == [3]
    assert signal.getsignal(signal.SIGINT) is before


def test_leftover_temporary_folder_is_not_a_checkpoint(paused, data, tmp_path):
    """A save cut short leaves ``<step>.orbax-checkpoint-tmp-*``; resuming ignores it and starts from 15."""
    run = _copy(paused, tmp_path)
    partial = run / "checkpoints" / "20.orbax-checkpoint-tmp-1234567890"
    shutil.copytree(run / "checkpoints" / "15", partial)
    shutil.rmtree(partial / "state")
    (partial / "commit_success.txt").unlink(missing_ok=True)
    assert _steps(run) == [10, 15]
    result = resume(run, data, progress=False, stop_at=PAUSE + 1, figures=False)
    assert (result["resumed_from"], result["steps"]) == (PAUSE, PAUSE + 1)
    assert not partial.exists()  # orbax removes leftover temporary folders before its next save


def test_failed_save_is_never_listed(tmp_path, monkeypatch):
    """orbax renames the temporary folder to ``<step>`` only after writing everything (atomic rename)."""
    params, opt_state = {"w": np.arange(4, dtype=np.float32)}, {"count": np.array(1, np.int32)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, (params, opt_state))
    with Checkpoints(tmp_path, keep=3) as ckpts:
        ckpts.save(1, params, opt_state, model={}, train={}, elapsed_s=1.0)

        async def fail(self):
            raise OSError("no space left on device")

        monkeypatch.setattr(ocp.path.atomicity.AtomicRenameTemporaryPath, "finalize", fail)
        with pytest.raises(OSError, match="no space"):
            ckpts.save(2, {"w": params["w"] + 1}, opt_state, model={}, train={}, elapsed_s=2.0)
        monkeypatch.undo()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert "2" not in names and any(n.startswith("2.orbax-checkpoint-tmp") for n in names)
        assert ckpts.steps() == [1]
        restored = ckpts.restore(*abstract)
    assert restored.step == 1
    np.testing.assert_array_equal(restored.params["w"], params["w"])


def _damage(folder, step):
    """Truncate every array file of a checkpoint to zero bytes."""
    files = [p for p in (folder / "checkpoints" / str(step) / "state").rglob("*") if p.is_file()]
    assert files
    for p in files:
        p.write_bytes(b"")


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(straight, paused, data, tmp_path):
    run = _copy(paused, tmp_path)
    _damage(run, PAUSE)
    with pytest.warns(CheckpointWarning, match="checkpoints/15 could not be read"):
        result = resume(run, data, progress=False, stop_at=11, figures=False)
    assert (result["resumed_from"], result["steps"]) == (10, 11)
    assert (run / "checkpoints" / "15.unreadable").is_dir()
    assert _steps(run) == [10, 11]
    assert _values(_rows(run)) == _values(straight[1][:11])  # lines after step 10 dropped, 11 appended


def test_no_readable_checkpoint_is_a_clear_error(paused, data, tmp_path):
    run = _copy(paused, tmp_path)
    _damage(run, 10)
    _damage(run, PAUSE)
    with pytest.warns(CheckpointWarning), pytest.raises(ValueError, match=r"no readable checkpoint.*step 15.*step 10"):
        resume(run, data, progress=False, figures=False)


@pytest.mark.parametrize("model_change, train_change, expected", [
    ({"d_model": 64}, {}, r"model\.d_model: checkpoint 32, given 64"),
    ({}, {"lr": 2e-2}, r"train\.lr: checkpoint 0\.01, given 0\.02"),
    ({"n_layers": 3}, {"seed": 1}, r"model\.n_layers: checkpoint 2, given 3; train\.seed: checkpoint 0, given 1"),
    ({}, {"steps": 40}, r"train\.steps: checkpoint 30, given 40.*schedule decays over steps"),
])
def test_resume_with_other_configs_names_the_fields(paused, data, tmp_path, model_change, train_change, expected):
    run = _copy(paused, tmp_path)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match=expected):
        train(dataclasses.replace(MODEL, **model_change), dataclasses.replace(RUN, **train_change), data,
              out_dir=run, progress=False, resume=True)
    assert (run / "metrics.jsonl").read_text() == before and _steps(run) == [10, PAUSE]


def test_resume_needs_a_run(data, tmp_path):
    with pytest.raises(ValueError, match="config.json not found"):
        resume(tmp_path, data, progress=False)
    with pytest.raises(ValueError, match="no checkpoint in"):
        train(MODEL, RUN, data, out_dir=tmp_path, progress=False, resume=True)


def test_fresh_run_refuses_a_folder_with_checkpoints(paused, data, tmp_path):
    run = _copy(paused, tmp_path)
    with pytest.raises(ValueError, match=r"already holds the checkpoints of steps \[10, 15\].*overwrite=True"):
        train(MODEL, RUN, data, out_dir=run, progress=False)
    result = train(MODEL, RUN, data, out_dir=run, progress=False, overwrite=True, stop_at=1, figures=False)
    assert result["steps"] == 1 and _steps(run) == [1]
    assert [r["step"] for r in _rows(run)] == [1]


def _tiny_state(w):
    """A parameter tree and an optimizer state small enough to save in a few milliseconds."""
    return {"w": np.asarray(w, np.float32)}, {"count": np.array(1, np.int32)}


def test_save_refuses_a_non_finite_state(tmp_path):
    with Checkpoints(tmp_path, keep=2) as ckpts:
        ckpts.save(1, *_tiny_state([1.0, 2.0]), model={}, train={}, elapsed_s=0.0)
        with pytest.raises(ValueError, match=r"step 2: refusing to checkpoint .* newest checkpoint stays step 1"):
            ckpts.save(2, *_tiny_state([1.0, np.inf]), model={}, train={}, elapsed_s=0.0)
        with pytest.raises(ValueError, match="already exists"):
            ckpts.save(1, *_tiny_state([1.0, 2.0]), model={}, train={}, elapsed_s=0.0)
        assert ckpts.steps() == [1]


def test_other_arrays_or_format_are_refused_not_set_aside(tmp_path):
    """A checkpoint of another model or format is a clear error and stays where it is (it is not damaged)."""
    with Checkpoints(tmp_path, keep=3) as ckpts:
        ckpts.save(1, *_tiny_state([1.0, 2.0]), model={}, train={}, elapsed_s=0.0)
        wrong = jax.tree.map(ocp.utils.to_shape_dtype_struct, _tiny_state([1.0, 2.0, 3.0]))
        with pytest.raises(ValueError, match=r"other arrays .*params/w: checkpoint \(\(2,\), 'float32'\), "
                                             r"expected \(\(3,\), 'float32'\)"):
            ckpts.restore(*wrong)
        ckpts.manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(_tiny_state([1.0, 2.0])[0]),
                                                      meta=ocp.args.JsonSave({"format": 99, "step": 2})))
        with pytest.raises(ValueError, match="expected a checkpoint of format 1 for step 2.*got format 99"):
            ckpts.restore(*wrong)
        assert ckpts.steps() == [1, 2]


def test_helpers():
    assert all_finite({"a": np.zeros(2), "n": np.int32(3)}) and not all_finite([np.array([np.nan])])
    assert config_differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [
        "b: checkpoint 2, given 3", "c: checkpoint '<missing>', given 4"]
    with pytest.raises(ValueError, match="keep"):
        Checkpoints("unused", keep=0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"stop_at": 0}, ValueError, "stop_at"),
    ({"stop_at": 31}, ValueError, r"stop_at: expected a step in \[1, steps\] = \[1, 30\]"),
    ({"flops_per_token": -1.0}, ValueError, "flops_per_token"),
    ({"on_step": 3}, TypeError, "on_step"),
])
def test_bad_arguments(data, tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        train(MODEL, RUN, data, out_dir=tmp_path, progress=False, **kwargs)
