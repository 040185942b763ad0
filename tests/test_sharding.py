"""Tests for experiments/sharding.py: a step on 8 devices (dp, fsdp) equals the step on one; checkpoints cross over.

JAX fixes its devices when it starts, so the 8-device checks run in a child
process (tests/sharding_worker.py) with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
and ``JAX_PLATFORMS=cpu``: eight simulated CPU devices, the same SPMD partitioner
as on eight GPUs.  That process also runs the single-device reference (on its
first device) from the same state and batches, so the two differ only in where
the arrays live.  This process (one device in the default run) writes the start
state as a single-device checkpoint and restores the 8-device run's checkpoint.

Tolerances (float32).  The sharded step adds the same per-sequence terms in
another order (each device's partial sums, then the all-reduce / reduce-scatter):
the loss agrees to 1e-6 relative (measured: 0 to 1.2e-7), and after 3 AdamW updates
at lr 3e-3 every parameter to 1e-5 absolute (measured: 7e-9 from the mid-run state,
9e-7 after 6 steps of train() from initialisation, where Adam's first updates are
about ±lr whatever a gradient's size, so rounding in a tiny gradient shows most),
each Adam moment to 1e-5 of its leaf's largest entry (measured: 2e-7; an entry near
zero is the difference of larger numbers, so its own relative error is no guide).
A checkpoint round trip is exact.

Marked slow (10 to 30 s each on two cores): dp with gradient accumulation, the 8-device
checkpoint read by a fresh one-device process, train() with parallel="fsdp"
stopped and resumed, and a multi-host run of 2 processes x 4 devices on this
machine (jax.distributed over localhost, gloo collectives).
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from experiments import sharding
from experiments.checkpoint import Checkpoints
from experiments.train import TrainConfig, make_optimizer
from model.gpt import GPTConfig, abstract_gpt

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "sharding_worker.py"
N_DEVICES = 8
MODEL, TRAIN = GPTConfig.tiny(), TrainConfig.tiny()  # batch_size 8: one sequence per device
START = 10  # the step of the mid-run state the runs start from (past the 5 warmup steps: lr near its peak)
STEPS = 3
GRAD_SCALE = 1e-2  # the size of the gradients the start state's Adam moments have seen
LOSS_RTOL = 1e-6
PARAM_ATOL = 1e-5
MOMENT_RTOL = 1e-5
WORKER_TIMEOUT_S = 300


def _child_env(devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    ours = ("--xla_force_host_platform_device_count", "--xla_backend_optimization_level")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(ours)]
    # LLVM's optimisation level 0 halves the compile time; both the reference and the sharded step get it
    flags += [f"--xla_force_host_platform_device_count={devices}", "--xla_backend_optimization_level=0"]
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def _run(task: str, spec: dict, out: Path, *, devices: int = N_DEVICES) -> dict:
    """Run a task of tests/sharding_worker.py on ``devices`` CPU devices; its report."""
    spec = {**spec, "out": str(out)}
    done = subprocess.run([sys.executable, str(WORKER), task, json.dumps(spec)], check=False, cwd=out.parent,
                          env=_child_env(devices), capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"sharding_worker.py {task} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads((out / "report.json").read_text())


def _abstract():
    _, abstract_params = nnx.split(abstract_gpt(MODEL), nnx.Param)
    return abstract_params, jax.eval_shape(make_optimizer(TRAIN).init, abstract_params)


def _mid_run_state(seed: int = 0):
    """A GPT-shaped state as if ``START`` steps in: random weights (LayerNorm gains near 1) and Adam moments.

    The moments are consistent (``nu >= mu**2``): a state with ``mu`` far above ``sqrt(nu)``
    would make updates hundreds of times lr, which amplify rounding beyond any tolerance.

    Drawn with NumPy (no compilation), then committed to one device as a run's arrays are.
    """
    rng = np.random.default_rng(seed)
    abstract_params, abstract_opt_state = _abstract()

    def param(path, x):
        w = rng.normal(0.0, MODEL.init_std, x.shape)
        return (w + 1.0 if "gamma" in jax.tree_util.keystr(path) else w).astype(x.dtype)

    draws = {}  # parameter -> two gradient-sized draws, so that nu >= mu^2 as Adam's moments always are

    def moment(path, x):
        name = jax.tree_util.keystr(path)
        if name.endswith(".count"):
            return np.asarray(START, x.dtype)
        which, param = name.split(".", 1)[1].split("[", 1)
        g, h = draws.setdefault(param, (rng.normal(0.0, GRAD_SCALE, x.shape), rng.normal(0.0, GRAD_SCALE, x.shape)))
        return (g if which == "mu" else g * g + h * h).astype(x.dtype)

    state = (jax.tree_util.tree_map_with_path(param, abstract_params),
             jax.tree_util.tree_map_with_path(moment, abstract_opt_state))
    return jax.device_put(state, jax.devices()[0])


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory):
    """The mid-run state saved by this process, on one device."""
    folder = tmp_path_factory.mktemp("start") / "checkpoints"
    with Checkpoints(folder, keep=1) as ckpts:
        ckpts.save(START, *_mid_run_state(), model=MODEL.to_dict(), train=TRAIN.to_dict(), elapsed_s=0.0)
    return folder


def _steps_spec(start_checkpoint, modes, **train):
    return {"init": str(start_checkpoint), "modes": modes, "steps": STEPS, "seed": 0, "train": train}


@pytest.fixture(scope="module")
def fsdp_run(start_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp") / "out"
    return _run("steps", _steps_spec(start_checkpoint, ["none", "fsdp"]), out), out


def _load(path: Path) -> dict:
    with np.load(path) as f:
        return dict(f)


def _assert_same_state(reference: dict, other: dict) -> dict[str, float]:
    """Parameters to PARAM_ATOL, Adam moments to MOMENT_RTOL, counts exactly; the largest differences."""
    assert reference.keys() == other.keys()
    worst = {"params": 0.0, "moments": 0.0}
    for name, a in reference.items():
        b = other[name]
        if name.endswith(".count"):
            assert a == b, name
        elif name.startswith("[0]"):
            np.testing.assert_allclose(b, a, rtol=0, atol=PARAM_ATOL, err_msg=name)
            worst["params"] = max(worst["params"], float(np.max(np.abs(a - b))))
        else:  # relative to the leaf's largest entry: an entry near zero is a difference of larger ones
            scale = float(np.max(np.abs(a)))
            np.testing.assert_allclose(b, a, rtol=0, atol=MOMENT_RTOL * scale, err_msg=name)
            worst["moments"] = max(worst["moments"], float(np.max(np.abs(a - b))) / scale)
    return worst


def _assert_same_losses(report, mode):
    ref, got = report["modes"]["none"], report["modes"][mode]
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(got["grad_norms"], ref["grad_norms"], rtol=1e-5)
    assert len(got["losses"]) == STEPS


# --- 8 devices --------------------------------------------------------------------------------------


def test_fsdp_steps_equal_the_single_device_steps(fsdp_run):
    report, out = fsdp_run
    assert report["devices"] == N_DEVICES and report["start_step"] == START
    _assert_same_losses(report, "fsdp")
    _assert_same_state(_load(out / "none.npz"), _load(out / "fsdp.npz"))


def test_fsdp_splits_every_parameter_and_moment_eighth_per_device(fsdp_run):
    report, _ = fsdp_run
    fsdp = report["modes"]["fsdp"]
    assert fsdp["shardings_kept"] == [True] * STEPS  # GSPMD returns the state in the shardings it came in
    for layout in (fsdp["layout_before"], fsdp["layout_after"]):
        for name, leaf in layout.items():
            shape = leaf["shape"]
            if name.endswith(".count"):
                assert leaf["replicated"] and leaf["shard_shapes"] == [[]], name
                continue
            # every leaf of the tiny GPT has an axis divisible by 8: the largest such one is split
            axis = max(range(len(shape)), key=lambda a: (shape[a] % N_DEVICES == 0, shape[a], -a))
            expected = [s // N_DEVICES if a == axis else s for a, s in enumerate(shape)]
            assert leaf["shard_shapes"] == [expected], name
            assert (leaf["devices"], leaf["distinct_slices"], leaf["replicated"]) == (N_DEVICES, N_DEVICES, False)
    described = fsdp["describe"]
    params = {k: v for k, v in fsdp["layout_before"].items() if k.startswith("[0]")}
    moments = {k: v for k, v in fsdp["layout_before"].items() if k.startswith("[1]")}
    assert described["params_bytes_per_device"] == sum(v["shard_bytes_device0"] for v in params.values())
    assert described["opt_state_bytes_per_device"] == sum(v["shard_bytes_device0"] for v in moments.values())
    assert described["params_bytes_per_device"] * N_DEVICES == described["params_bytes"]
    assert (described["params_leaves"], described["params_leaves_sharded"]) == (36, 36)
    assert (described["opt_state_leaves"], described["opt_state_leaves_sharded"]) == (74, 72)  # 2 counts


def test_single_device_checkpoint_restores_into_shards(fsdp_run):
    fsdp = fsdp_run[0]["modes"]["fsdp"]
    assert fsdp["restored_into_shards_equal"] and fsdp["restored_into_shards_same_sharding"]


def test_checkpoint_saved_by_8_devices_restores_on_one(fsdp_run):
    _, out = fsdp_run
    abstract_params, abstract_opt_state = _abstract()
    with Checkpoints(out / "checkpoints", keep=1) as ckpts:
        restored = ckpts.restore(abstract_params, abstract_opt_state)
    assert restored.step == START + STEPS
    state = (restored.params, restored.opt_state)
    assert {len(x.sharding.device_set) for x in jax.tree.leaves(state)} == {1}
    saved = _load(out / "fsdp.npz")
    flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}
    assert flat.keys() == saved.keys()
    for name, x in flat.items():
        np.testing.assert_array_equal(x, saved[name], err_msg=name)


@pytest.mark.slow
def test_dp_steps_with_accumulation_equal_the_single_device_steps(start_checkpoint, tmp_path):
    """dp, 2 micro-batches per step: the state stays whole on every device and the steps match."""
    report = _run("steps", _steps_spec(start_checkpoint, ["none", "dp"], grad_accum=2), tmp_path / "out")
    _assert_same_losses(report, "dp")
    _assert_same_state(_load(tmp_path / "out" / "none.npz"), _load(tmp_path / "out" / "dp.npz"))
    dp = report["modes"]["dp"]
    assert dp["shardings_kept"] == [True] * STEPS
    for name, leaf in {**dp["layout_before"], **dp["layout_after"]}.items():
        assert leaf["replicated"] and leaf["devices"] == N_DEVICES and leaf["shard_shapes"] == [leaf["shape"]], name
    assert dp["describe"]["params_bytes_per_device"] == dp["describe"]["params_bytes"]


@pytest.mark.slow
def test_sharded_checkpoint_restores_in_a_one_device_process(fsdp_run, tmp_path):
    """The 8-device checkpoint read by a fresh process with one device, unsharded and as 'dp' there."""
    _, out = fsdp_run
    report = _run("restore", {"checkpoints": str(out / "checkpoints"), "mode": "dp"}, tmp_path / "out", devices=1)
    assert (report["devices"], report["step"], report["plain_devices"], report["placed_equal"]) == (
        1, START + STEPS, [1], True)
    restored, saved = _load(tmp_path / "out" / "restored.npz"), _load(out / "fsdp.npz")
    for name, x in saved.items():
        np.testing.assert_array_equal(restored[name], x, err_msg=name)


@pytest.mark.slow
def test_train_with_fsdp_matches_one_device_and_resumes(tmp_path):
    """train() on 8 devices with parallel='fsdp', stopped at step 3 and resumed, ends where parallel='none' does."""
    spec = {"modes": ["none", "fsdp"], "period": 12, "stop_at": 3, "train": {"steps": 6, "log_every": 1}}
    report = _run("train", spec, tmp_path / "out")
    none, fsdp = report["none"], report["fsdp"]
    assert (fsdp["half_steps"], fsdp["resumed_from"], fsdp["steps"]) == (3, 3, 6)
    assert (none["half_steps"], none["resumed_from"], none["steps"]) == (3, 3, 6)
    assert len(fsdp["losses"]) == len(none["losses"]) > 0  # the logged steps, before and after the resume
    np.testing.assert_allclose(fsdp["losses"], none["losses"], rtol=LOSS_RTOL)
    np.testing.assert_allclose([fsdp["train_loss"], fsdp["val_loss"]], [none["train_loss"], none["val_loss"]],
                               rtol=LOSS_RTOL)
    a, b = _load(tmp_path / "out" / "train_none.npz"), _load(tmp_path / "out" / "train_fsdp.npz")
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=PARAM_ATOL, err_msg=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_four_devices_train_as_one_process_of_eight(start_checkpoint, fsdp_run, tmp_path):
    """A multi-host run on one machine: initialize_distributed, a mesh over both processes' devices, fsdp steps.

    Each process restores the single-device checkpoint (straight into its shards, and
    whole then place_state), runs the steps of fsdp_run, and the two save one checkpoint
    together; it restores here on one device to fsdp_run's single-device result.
    """
    n_processes, out = 2, tmp_path / "out"
    spec = {"init": str(start_checkpoint), "steps": STEPS, "seed": 0, "out": str(out), "num_processes": n_processes,
            "coordinator_address": f"127.0.0.1:{_free_port()}"}
    env = _child_env(N_DEVICES // n_processes)
    children = [subprocess.Popen([sys.executable, str(WORKER), "multihost", json.dumps({**spec, "process_id": i})],
                                 cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for i in range(n_processes)]
    try:
        errors = [child.communicate(timeout=WORKER_TIMEOUT_S)[1] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    for child, err in zip(children, errors, strict=True):
        if child.returncode != 0:
            pytest.fail(f"sharding_worker.py multihost failed ({child.returncode}):\n{err[-4000:]}")
    reference = fsdp_run[0]["modes"]["none"]["losses"]
    for i in range(n_processes):
        report = json.loads((out / f"report{i}.json").read_text())
        assert (report["process_index"], report["process_count"]) == (i, n_processes)
        assert (report["devices"], report["local_devices"]) == (N_DEVICES, N_DEVICES // n_processes)
        assert report["restored_slices_equal"] and report["placed_kept"] and not report["fully_addressable"]
        # an evaluation batch works placed over the devices and as a NumPy array each process holds whole
        np.testing.assert_allclose(report["eval_numpy"], report["eval_placed"], rtol=LOSS_RTOL)
        assert report["largest_leaf"] == [32, 128] and report["largest_leaf_local_shards"] == [[32, 128 // N_DEVICES]]
        np.testing.assert_allclose(report["losses"], reference, rtol=LOSS_RTOL)
    with Checkpoints(out / "checkpoints", keep=1) as ckpts:
        restored = ckpts.restore(*_abstract())
    assert restored.step == START + STEPS
    flat = {jax.tree_util.keystr(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path((restored.params, restored.opt_state))[0]}
    _assert_same_state(_load(fsdp_run[1] / "none.npz"), flat)


# --- one device, in this process ---------------------------------------------------------------------


def test_partition_spec_picks_the_largest_divisible_axis():
    P = jax.sharding.PartitionSpec
    assert sharding.partition_spec((50257, 768), "fsdp", 8) == P(None, "data")  # V = 50257 is odd
    assert sharding.partition_spec((768, 3072), "fsdp", 8) == P(None, "data")
    assert sharding.partition_spec((64, 64), "fsdp", 8) == P("data", None)  # a tie: the first axis
    assert sharding.partition_spec((7, 3), "fsdp", 8) == P()
    assert sharding.partition_spec((), "fsdp", 8) == P()
    assert sharding.partition_spec((768, 3072), "dp", 8) == P()
    with pytest.raises(ValueError, match="n_devices"):
        sharding.partition_spec((8,), "fsdp", 0)


def test_unknown_mode_names_the_allowed_ones():
    mesh = sharding.make_mesh(jax.devices()[:1])
    params, opt_state = {"w": jnp.ones((8, 2))}, {"count": jnp.zeros((), jnp.int32)}
    message = r"parallel: expected one of 'none', 'dp', 'fsdp', got 'zero3'"
    for call in (lambda: sharding.place_state(params, opt_state, "zero3", mesh),
                 lambda: sharding.state_shardings(params, "zero3", mesh),
                 lambda: sharding.describe(params, "zero3", mesh),
                 lambda: sharding.partition_spec((8,), "zero3", 8)):
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="mesh: expected a jax.sharding.Mesh"):
        sharding.place_state(params, opt_state, "dp", jax.devices()[0])


def test_batch_not_divisible_by_the_devices_names_both_numbers():
    mesh = jax.sharding.AbstractMesh((N_DEVICES,), (sharding.AXIS,))
    sharding.check_batch(16, mesh)
    with pytest.raises(ValueError, match=r"batch_size = 12 is not divisible by the 8 devices.*multiple of 8"):
        sharding.check_batch(12, mesh)
    with pytest.raises(ValueError, match=r"batch_size = 3 .* the 8 devices.*\(e\.g\. 8\)"):
        sharding.check_batch(3, mesh)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        sharding.check_batch(0, mesh)
    one = sharding.make_mesh(jax.devices()[:1])
    with pytest.raises(ValueError, match=r"rank >= 2"):
        sharding.place_batch((np.zeros(8, np.int32),), one)


def test_place_state_and_batch_on_a_one_device_mesh_keep_the_values():
    mesh = sharding.make_mesh(jax.devices()[:1])
    params = {"w": jnp.arange(16.0).reshape(8, 2), "b": jnp.ones(3)}
    opt_state = {"count": jnp.zeros((), jnp.int32)}
    for mode in sharding.MODES:
        placed_params, placed_opt = sharding.place_state(params, opt_state, mode, mesh)
        np.testing.assert_array_equal(placed_params["w"], params["w"])
        assert placed_opt["count"] == 0
    x = np.arange(2 * 4 * 5, dtype=np.int32).reshape(2, 4, 5)
    placed_x, placed_y = sharding.place_batch((x, x[0]), mesh)
    np.testing.assert_array_equal(placed_x, x)
    assert placed_x.sharding.spec == jax.sharding.PartitionSpec(None, "data", None)
    assert placed_y.sharding.spec == jax.sharding.PartitionSpec("data", None)


def test_describe_gpt2_small_on_8_devices_without_allocating():
    """Bytes per device of GPT-2 small's parameters and AdamW state, from jax.eval_shape shapes only."""
    _, params = nnx.split(abstract_gpt(GPTConfig.gpt2_small()), nnx.Param)
    opt_state = jax.eval_shape(make_optimizer(TRAIN).init, params)
    mesh = jax.sharding.AbstractMesh((N_DEVICES,), (sharding.AXIS,))
    dp = sharding.describe(params, "dp", mesh, opt_state=opt_state)
    fsdp = sharding.describe(params, "fsdp", mesh, opt_state=opt_state)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    assert n_params == 124_439_808  # GPT-2 small with a tied head
    assert dp["params_bytes"] == dp["params_bytes_per_device"] == fsdp["params_bytes"] == 4 * n_params
    assert dp["opt_state_bytes"] == dp["opt_state_bytes_per_device"] == 2 * 4 * n_params + 2 * 4  # mu, nu, 2 counts
    # every GPT-2 small leaf has an axis divisible by 8 (768, 3072, 2304 ...): each device holds exactly 1/8
    assert fsdp["params_bytes_per_device"] * N_DEVICES == fsdp["params_bytes"]
    assert fsdp["params_leaves_sharded"] == fsdp["params_leaves"]
    assert fsdp["opt_state_bytes_per_device"] == (fsdp["opt_state_bytes"] - 2 * 4) // N_DEVICES + 2 * 4
    assert sharding.describe(params, "fsdp", mesh)["opt_state_bytes"] is None


def test_initialize_distributed_passes_its_arguments_through(monkeypatch):
    seen = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: seen.append(kwargs))
    sharding.initialize_distributed(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=1)
    sharding.initialize_distributed()
    assert seen == [{"coordinator_address": "10.0.0.1:1234", "num_processes": 2, "process_id": 1}, {}]


def test_restore_with_shardings_of_the_wrong_structure_is_a_clear_error(tmp_path):
    params, opt_state = {"w": np.arange(8, dtype=np.float32)}, {"count": np.array(1, np.int32)}
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (params, opt_state))
    mesh = sharding.make_mesh(jax.devices()[:1])
    with Checkpoints(tmp_path, keep=1) as ckpts:
        ckpts.save(1, params, opt_state, model={}, train={}, elapsed_s=0.0)
        with pytest.raises(ValueError, match=re.escape("shardings: expected a jax.sharding.Sharding or a pair")):
            ckpts.restore(*abstract, shardings=[1, 2, 3])
        with pytest.raises(ValueError, match="shardings: expected .* like the targets"):
            ckpts.restore(*abstract, shardings=({"v": None}, {}))
        restored = ckpts.restore(*abstract, shardings=sharding.state_shardings(abstract, "fsdp", mesh))
    np.testing.assert_array_equal(restored.params["w"], params["w"])
    assert isinstance(restored.params["w"].sharding, jax.sharding.NamedSharding)
