"""The half of tests/test_sharding.py that runs in a process of its own, with the devices the test gives it.

Run as ``python tests/sharding_worker.py TASK SPEC_JSON`` by the test, with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` in the environment (JAX
reads it once, at start-up, so it cannot be set inside the test process).  Every
result goes to ``<out>/report.json`` (``report<process_id>.json`` for ``multihost``)
and arrays to ``.npz`` files there; the test makes the assertions.  Tasks:

* ``steps``: restore the mid-run state the test saved, place it for each mode of
  ``spec["modes"]`` (``"none"`` first: the single-device reference), run
  ``spec["steps"]`` jitted steps on fixed batches, and report the losses, whether the
  outputs kept the inputs' shardings, each leaf's per-device slice, and the final
  state; the last mode's final state is checkpointed for the test to restore.
* ``restore``: restore a checkpoint on the devices at hand, unsharded and with the
  shardings of ``spec["mode"]``, and write the values.
* ``train``: :func:`experiments.train.train` for each mode, stopped half-way and
  resumed, and report the final losses and parameters.
* ``multihost``: one process of a multi-process run on one machine
  (:func:`experiments.sharding.initialize_distributed` with ``spec`` giving the
  coordinator, the number of processes and this one's id).

Not collected as tests (no ``test_`` prefix); importing it runs nothing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _setup():
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")  # strict, as tests/conftest.py makes the suite
    jax.config.update("jax_default_matmul_precision", "highest")


def _configs(spec):
    from experiments.train import TrainConfig
    from model.gpt import GPTConfig

    return GPTConfig.tiny(), TrainConfig.tiny(**spec.get("train", {}))


def _abstract(mc, tc):
    import jax
    from flax import nnx

    from experiments.train import make_optimizer
    from model.gpt import abstract_gpt

    graphdef, abstract_params = nnx.split(abstract_gpt(mc), nnx.Param)
    return graphdef, abstract_params, jax.eval_shape(make_optimizer(tc).init, abstract_params)


def _flat(tree) -> dict:
    """``{"path": numpy array}`` of a pytree (for ``np.savez``)."""
    import jax
    import numpy as np

    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _same_values(a, b) -> bool:
    import jax
    import numpy as np

    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b),
                                                                           strict=True))


def _layout(tree) -> dict:
    """Per leaf: global shape, the shape of each device's slice, devices holding it, fully replicated."""
    import jax

    out = {}
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shards = x.addressable_shards
        out[jax.tree_util.keystr(path)] = {
            "shape": list(x.shape), "shard_shapes": sorted({tuple(s.data.shape) for s in shards}),
            "devices": len({s.device for s in shards}), "replicated": x.sharding.is_fully_replicated,
            "distinct_slices": len({str(s.index) for s in shards}), "shard_bytes_device0": shards[0].data.nbytes,
        }
    return out


def _batches(mc, tc, n: int, seed: int):
    """``n`` fixed batches ``(x, y)``, int32 ``[A, B, T]``, drawn with NumPy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (tc.grad_accum, tc.batch_size, mc.context)
    return [tuple(rng.integers(0, mc.vocab_size, shape, dtype=np.int32) for _ in range(2)) for _ in range(n)]


def task_steps(spec, out: Path) -> dict:
    import jax
    import numpy as np

    from experiments import sharding
    from experiments.checkpoint import Checkpoints
    from experiments.train import make_train_step

    mc, tc = _configs(spec)
    graphdef, abstract_params, abstract_opt_state = _abstract(mc, tc)
    mesh = sharding.make_mesh()
    ckpts = Checkpoints(spec["init"], keep=1)
    reference = ckpts.restore(abstract_params, abstract_opt_state)  # on the default device
    step = make_train_step(graphdef, tc)
    batches = _batches(mc, tc, spec["steps"], spec["seed"])
    report = {"devices": jax.device_count(), "start_step": reference.step, "modes": {}}
    for mode in spec["modes"]:
        r = report["modes"][mode] = {}
        state = jax.tree.map(lambda x: x.copy(), (reference.params, reference.opt_state))
        if mode != "none":
            state = sharding.place_state(*state, mode, mesh)
            # the single-device checkpoint restored straight into this mode's shards: the same values and placement
            direct = ckpts.restore(abstract_params, abstract_opt_state,
                                   shardings=sharding.state_shardings((abstract_params, abstract_opt_state), mode,
                                                                      mesh))
            r["restored_into_shards_equal"] = _same_values(state, (direct.params, direct.opt_state))
            r["restored_into_shards_same_sharding"] = all(
                a.sharding.is_equivalent_to(b.sharding, a.ndim)
                for a, b in zip(jax.tree.leaves(state), jax.tree.leaves((direct.params, direct.opt_state)),
                                strict=True))
            r["describe"] = sharding.describe(state[0], mode, mesh, opt_state=state[1])
            r["layout_before"] = _layout(state)
        params, opt_state = state
        r["losses"], r["grad_norms"], r["shardings_kept"], r["seconds"] = [], [], [], []
        for batch in batches:
            before = [x.sharding for x in jax.tree.leaves((params, opt_state))]
            placed = batch if mode == "none" else sharding.place_batch(batch, mesh)
            t = time.perf_counter()
            params, opt_state, metrics = step(params, opt_state, placed, None)
            r["losses"].append(float(metrics["loss"]))
            r["seconds"].append(time.perf_counter() - t)
            r["grad_norms"].append(float(metrics["grad_norm"]))
            r["shardings_kept"].append(all(
                s.is_equivalent_to(x.sharding, x.ndim)
                for s, x in zip(before, jax.tree.leaves((params, opt_state)), strict=True)))
        if mode != "none":
            r["layout_after"] = _layout((params, opt_state))
        np.savez(out / f"{mode}.npz", **_flat((params, opt_state)))
        final = (params, opt_state)
    with Checkpoints(out / "checkpoints", keep=1) as saved:  # the last mode's state, as it is placed
        saved.save(reference.step + spec["steps"], *final, model=mc.to_dict(), train=tc.to_dict(), elapsed_s=0.0)
    return report


def task_restore(spec, out: Path) -> dict:
    import jax
    import numpy as np

    from experiments import sharding
    from experiments.checkpoint import Checkpoints

    mc, tc = _configs(spec)
    _, abstract_params, abstract_opt_state = _abstract(mc, tc)
    mesh = sharding.make_mesh()
    with Checkpoints(spec["checkpoints"], keep=1) as ckpts:
        plain = ckpts.restore(abstract_params, abstract_opt_state)
        placed = ckpts.restore(abstract_params, abstract_opt_state, shardings=sharding.state_shardings(
            (abstract_params, abstract_opt_state), spec["mode"], mesh))
    np.savez(out / "restored.npz", **_flat((plain.params, plain.opt_state)))
    return {"devices": jax.device_count(), "step": plain.step,
            "placed_equal": _same_values((plain.params, plain.opt_state), (placed.params, placed.opt_state)),
            "plain_devices": sorted({len(x.sharding.device_set) for x in jax.tree.leaves(plain.params)}),
            "layout": _layout((placed.params, placed.opt_state))}


def task_train(spec, out: Path) -> dict:
    import numpy as np

    from experiments.data import TokenData
    from experiments.train import resume, train

    mc, _ = _configs(spec)
    period = spec["period"]
    seq = np.tile(np.arange(period), 200)
    data = TokenData.from_arrays(train=seq, val=seq[: 20 * period], vocab_size=mc.vocab_size)
    report = {}
    for mode in spec["modes"]:
        _, tc = _configs({"train": {**spec.get("train", {}), "parallel": mode}})
        folder = out / mode
        half = train(mc, tc, data, out_dir=folder, progress=False, figures=False, stop_at=spec["stop_at"])
        result = resume(folder, data, progress=False, figures=False)
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        np.savez(out / f"train_{mode}.npz", **_flat(result["params"]))
        report[mode] = {"half_steps": half["steps"], "resumed_from": result["resumed_from"], "steps": result["steps"],
                        "train_loss": result["train_loss"], "val_loss": result["val_loss"],
                        "losses": [r["loss"] for r in rows]}
    return report


def task_multihost(spec, out: Path) -> dict:
    """One of ``spec["num_processes"]`` processes: fsdp steps over the devices of all of them, then a checkpoint.

    The start checkpoint is restored twice: straight into the shards (each process
    reading its slices) and onto a local device then :func:`sharding.place_state`
    (each process holding the whole); the two must agree slice by slice.
    """
    import jax
    import numpy as np

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from experiments import sharding

    sharding.initialize_distributed(coordinator_address=spec["coordinator_address"],
                                    num_processes=spec["num_processes"], process_id=spec["process_id"])
    from experiments.checkpoint import Checkpoints
    from experiments.train import make_eval_loss, make_train_step

    mc, tc = _configs(spec)
    graphdef, abstract_params, abstract_opt_state = _abstract(mc, tc)
    abstract = (abstract_params, abstract_opt_state)
    mesh = sharding.make_mesh()
    with Checkpoints(spec["init"], keep=1) as ckpts:
        direct = ckpts.restore(*abstract, shardings=sharding.state_shardings(abstract, "fsdp", mesh))
        local = ckpts.restore(*abstract, shardings=jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    params, opt_state = sharding.place_state(local.params, local.opt_state, "fsdp", mesh)
    same = True
    for a, whole, b in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((local.params, local.opt_state)),
                           jax.tree.leaves((direct.params, direct.opt_state)), strict=True):
        host = np.asarray(whole)
        for sa, sb in zip(a.addressable_shards, b.addressable_shards, strict=True):
            same &= sa.device == sb.device and np.array_equal(sa.data, host[sa.index]) and np.array_equal(
                sb.data, host[sb.index])
    kept = all(a is b for a, b in zip(jax.tree.leaves(sharding.place_state(direct.params, direct.opt_state, "fsdp",
                                                                            mesh)),
                                       jax.tree.leaves((direct.params, direct.opt_state)), strict=True))
    step = make_train_step(graphdef, tc)
    eval_loss = make_eval_loss(graphdef)
    x, y = (a[0] for a in _batches(mc, tc, 1, spec["seed"] + 1)[0])
    eval_placed = float(eval_loss(params, *sharding.place_batch((x, y), mesh)))
    try:
        eval_numpy = float(eval_loss(params, x, y))
    except Exception as e:  # noqa: BLE001 - reported, not raised: the test states which inputs work
        eval_numpy = f"{type(e).__name__}: {str(e)[:300]}"
    losses = []
    for batch in _batches(mc, tc, spec["steps"], spec["seed"]):
        params, opt_state, metrics = step(params, opt_state, sharding.place_batch(batch, mesh), None)
        losses.append(float(metrics["loss"]))
    with Checkpoints(out / "checkpoints", keep=1) as saved:
        saved.save(local.step + spec["steps"], params, opt_state, model=mc.to_dict(), train=tc.to_dict(),
                   elapsed_s=0.0)
    leaf = max(jax.tree.leaves(params), key=lambda x: x.size)
    report = {"process_index": jax.process_index(), "process_count": jax.process_count(),
              "devices": jax.device_count(), "local_devices": jax.local_device_count(), "losses": losses,
              "restored_slices_equal": bool(same), "placed_kept": kept, "eval_placed": eval_placed,
              "eval_numpy": eval_numpy, "largest_leaf": list(leaf.shape),
              "largest_leaf_local_shards": sorted({tuple(s.data.shape) for s in leaf.addressable_shards}),
              "fully_addressable": leaf.is_fully_addressable}
    jax.distributed.shutdown()
    return report


TASKS = {"steps": task_steps, "restore": task_restore, "train": task_train, "multihost": task_multihost}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in TASKS:
        raise SystemExit(f"usage: sharding_worker.py {{{'|'.join(TASKS)}}} SPEC_JSON")
    spec = json.loads(argv[1])
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    _setup()
    t = time.perf_counter()
    report = TASKS[argv[0]](spec, out)
    report["wall_s"] = time.perf_counter() - t
    name = f"report{spec['process_id']}.json" if "process_id" in spec else "report.json"
    (out / name).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
