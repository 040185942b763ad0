r"""Training on several devices with JAX's SPMD partitioner: data parallelism and FSDP.

One jitted train step (:func:`experiments.train.make_train_step`) runs unchanged on
one device or on many: only where its inputs live changes, and the compiler
(GSPMD) inserts the communication.  Every device of a 1-D mesh (:func:`make_mesh`,
axis ``"data"``) takes B/N of the sequences of each micro-batch
(:func:`place_batch`), N being the number of devices; the state lives

* ``"dp"`` (data parallelism): whole on every device (replicated).  The step
  averages the gradients over the devices (an all-reduce), then every device
  makes the same update.
* ``"fsdp"`` (fully sharded data parallelism, ZeRO-3): each parameter and each
  AdamW moment split along one axis, 1/N per device (:func:`partition_spec`).
  The step gathers a parameter where the forward and backward passes need it,
  reduce-scatters the gradients, and each device updates its own slice: memory
  for the state falls from P to about P/N per device.
* ``"none"``: on the first device, as a run on one device does.

The loss is the mean over the A·B sequences of a step whatever N is, so a step on N
devices computes the same update as on one, up to the order of float32 sums:
the per-device partial sums of the loss and of the gradients are added in another
order (about 1e-7 relative per reduction; tests/test_sharding.py checks the loss
to 1e-6 relative and every parameter to 1e-5 after a few steps).

Several hosts.  Call :func:`initialize_distributed` first, once per process (one
process per host, each seeing its local devices); :func:`make_mesh` then spans
the devices of every host, and the same program runs on each.  The batches are a
pure function of ``(seed, step)``, so every process builds the same global batch
and :func:`place_batch` hands each device its rows.

References: S. Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
Trillion Parameter Models", SC 2020; Y. Xu et al., "GSPMD: General and Scalable
Parallelization for ML Computation Graphs", 2021; the JAX guide "Distributed
arrays and automatic parallelization".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import (
    AbstractMesh,
    AxisType,
    Mesh,
    NamedSharding,
    PartitionSpec,
    SingleDeviceSharding,
)

__all__ = [
    "AXIS",
    "MODES",
    "check_batch",
    "check_mode",
    "describe",
    "initialize_distributed",
    "make_mesh",
    "partition_spec",
    "place_batch",
    "place_state",
    "state_shardings",
]

#: the name of the mesh axis the batch (and, in ``"fsdp"``, the state) is split over
AXIS = "data"
#: the ways of placing the training state: one device, replicated, sharded
MODES = ("none", "dp", "fsdp")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a ``ValueError`` naming them.

    >>> check_mode("fsdp")
    'fsdp'
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"parallel: expected one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    return mode


def initialize_distributed(**kwargs) -> None:
    """Join this process to a multi-host run: :func:`jax.distributed.initialize` with ``kwargs`` passed through.

    Call it once in every process, before anything touches a device (before
    ``jax.devices()``, a model's initialisation, or any computation); afterwards
    ``jax.devices()`` lists the devices of every host and :func:`make_mesh` spans them
    all, while ``jax.local_devices()`` lists this process's own.  Run one process per
    host (the usual layout on GPUs: each process drives all the GPUs of its host),
    each with the same program and arguments.

    Keyword arguments (all optional where the cluster is detected):

    * ``coordinator_address``: ``"host:port"`` of process 0, which every process can
      reach (process 0 listens there);
    * ``num_processes``: the number of processes in the run;
    * ``process_id``: this process's index in ``[0, num_processes)`` (0 is the coordinator);
    * ``local_device_ids``: the devices this process drives (default: all it sees).

    Under SLURM (``srun``), Open MPI, and on Cloud TPU pods these are detected from
    the environment, so ``initialize_distributed()`` with no argument suffices; on
    other clusters pass the first three.  On a single host with several GPUs no call
    is needed: one process already sees every local device.

    Raises:
        RuntimeError: from JAX, when devices were already initialised or the
            coordinator cannot be reached.
    """
    jax.distributed.initialize(**kwargs)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: ``jax.devices()``, every device of every process), axis :data:`AXIS`.

    Built with :func:`jax.make_mesh`, which orders the devices along the
    interconnect's ring where it knows the topology (TPUs), with the axis in
    ``Auto`` mode: shardings are given on the arrays and the compiler propagates them.

    >>> mesh = make_mesh(jax.devices()[:1])
    >>> mesh.axis_names, mesh.size
    (('data',), 1)
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices: expected at least one device, got none")
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def partition_spec(shape: Sequence[int], mode: str, n_devices: int) -> PartitionSpec:
    """How a leaf of ``shape`` is split in ``mode`` over ``n_devices``.

    ``"dp"`` (and ``"none"``): ``P()``, whole on each device.  ``"fsdp"``: split along
    its largest axis whose size is divisible by ``n_devices`` (the first such axis on
    a tie); ``P()`` if there is none (scalars such as the optimizer's step count,
    vectors of an odd size).

    >>> partition_spec((65, 32), "fsdp", 8)
    P(None, 'data')
    >>> partition_spec((128, 32), "fsdp", 8), partition_spec((), "fsdp", 8), partition_spec((65,), "fsdp", 8)
    (P('data', None), P(), P())
    >>> partition_spec((128, 32), "dp", 8)
    P()
    """
    check_mode(mode)
    if isinstance(n_devices, bool) or not isinstance(n_devices, (int, np.integer)) or n_devices <= 0:
        raise ValueError(f"n_devices: expected a positive integer, got {n_devices!r}")
    shape = tuple(int(s) for s in shape)
    if mode != "fsdp":
        return PartitionSpec()
    candidates = [(size, -axis) for axis, size in enumerate(shape) if size > 0 and size % n_devices == 0]
    if not candidates:
        return PartitionSpec()
    axis = -max(candidates)[1]
    return PartitionSpec(*(AXIS if a == axis else None for a in range(len(shape))))


def _check_mesh(mesh, *, concrete: bool = False):
    """``mesh`` if it is a mesh with the axis :data:`AXIS`; an ``AbstractMesh`` too unless ``concrete``."""
    kinds = (Mesh,) if concrete else (Mesh, AbstractMesh)
    if not isinstance(mesh, kinds) or AXIS not in mesh.axis_names:
        what = "a jax.sharding.Mesh" if concrete else "a jax.sharding.Mesh (or AbstractMesh)"
        raise TypeError(f"mesh: expected {what} with an axis {AXIS!r} (from make_mesh), got {mesh!r}")
    return mesh


def _n_devices(mesh: Mesh) -> int:
    return mesh.shape[AXIS]


def state_shardings(tree, mode: str, mesh: Mesh):
    """A pytree like ``tree`` with the sharding of each leaf in ``mode``.

    ``tree`` holds arrays or ``jax.ShapeDtypeStruct`` (only shapes are read), e.g.
    ``nnx.state(model, nnx.Param)``, an optax state, or their abstract versions for
    :meth:`experiments.checkpoint.Checkpoints.restore`.  ``"dp"`` and ``"fsdp"`` give a
    ``NamedSharding(mesh, partition_spec(...))`` per leaf; ``"none"`` gives the first
    device of ``mesh`` (``SingleDeviceSharding``; a concrete mesh is needed then).

    >>> import jax.numpy as jnp
    >>> mesh = jax.sharding.AbstractMesh((8,), (AXIS,))
    >>> s = state_shardings({"w": jax.ShapeDtypeStruct((64, 16), jnp.float32)}, "fsdp", mesh)
    >>> s["w"].spec, s["w"].shard_shape((64, 16))
    (P('data', None), (8, 16))

    Raises:
        ValueError: an unknown ``mode`` (the allowed ones named).
        TypeError: ``mesh`` is not a mesh with the axis :data:`AXIS`.
    """
    check_mode(mode)
    _check_mesh(mesh, concrete=mode == "none")
    if mode == "none":
        device = SingleDeviceSharding(mesh.devices.flat[0])
        return jax.tree.map(lambda _: device, tree)
    n = _n_devices(mesh)
    return jax.tree.map(lambda x: NamedSharding(mesh, partition_spec(np.shape(x), mode, n)), tree)


def _put(x, sharding):
    """``x`` as a global array with ``sharding``, built from host data each process holds in full.

    ``jax.make_array_from_callback`` asks only for the slices of this process's
    devices, so the same call works on one host and on several (where a committed
    array of one process cannot simply be moved to another's devices).  An array
    already placed so (restored straight into its shards) is returned as it is.
    """
    if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
        return x
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place_state(params, opt_state, mode: str, mesh: Mesh):
    """``(params, opt_state)`` moved to their shardings in ``mode`` (:func:`state_shardings`).

    The inputs may live on one device (a fresh or restored run) or be NumPy arrays;
    on several hosts every process must pass the same values (the same seed, or the
    same checkpoint).  Arrays already in their target sharding (restored with
    ``Checkpoints.restore(..., shardings=state_shardings(...))``) are kept as they
    are; others are copied, and the inputs are not modified.

    Raises:
        ValueError: an unknown ``mode``.
    """
    _check_mesh(mesh, concrete=True)
    shardings = state_shardings((params, opt_state), mode, mesh)
    if mode == "none" or jax.process_count() == 1:
        return jax.device_put((params, opt_state), shardings)
    return jax.tree.map(_put, (params, opt_state), shardings)


def check_batch(batch_size: int, mesh: Mesh) -> None:
    """``batch_size`` (B, sequences per micro-batch) must split evenly over the devices of ``mesh``.

    Call it before compiling: every device takes B/N sequences.

    >>> check_batch(16, jax.sharding.AbstractMesh((8,), (AXIS,)))
    >>> check_batch(12, jax.sharding.AbstractMesh((8,), (AXIS,)))
    Traceback (most recent call last):
    ...
    ValueError: batch_size = 12 is not divisible by the 8 devices of the mesh; expected a multiple of 8 (e.g. 8 or 16), so that each device takes batch_size / 8 sequences
    """
    n = _n_devices(_check_mesh(mesh))
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if batch_size % n:
        below, above = batch_size // n * n, -(-batch_size // n) * n
        nearest = f"{above}" if below == 0 else f"{below} or {above}"
        raise ValueError(f"batch_size = {batch_size} is not divisible by the {n} devices of the mesh; expected a "
                         f"multiple of {n} (e.g. {nearest}), so that each device takes batch_size / {n} sequences")


def place_batch(batch, mesh: Mesh):
    """A batch split over the devices of ``mesh`` along B: each device holds B/N rows.

    ``batch`` is a tuple (or any pytree) of arrays shaped ``[..., B, T]``: the
    step's ``(x, y)``, int32 ``[A, B, T]``, or an evaluation batch ``[B, T]``; B
    is the second axis from the end.  Every process passes the whole global batch
    (batches are a pure function of ``(seed, step)``) and places only its devices' rows.

    Raises:
        ValueError: an array of rank below 2, or B not divisible by the number of
            devices (both named).
    """
    _check_mesh(mesh, concrete=True)

    def put(x):
        shape = np.shape(x)
        if len(shape) < 2:
            raise ValueError(f"batch: expected arrays shaped [..., B, T] (rank >= 2), got shape {shape}")
        check_batch(shape[-2], mesh)
        spec = PartitionSpec(*([None] * (len(shape) - 2)), AXIS, None)
        return _put(x, NamedSharding(mesh, spec))

    return jax.tree.map(put, batch)


def describe(params, mode: str, mesh: Mesh, opt_state=None) -> dict[str, Any]:
    """Memory of the training state per device in ``mode`` (for logs); works on abstract trees too.

    Computed from the shapes and :func:`partition_spec`, so ``jax.eval_shape`` trees
    (nothing allocated) on a ``jax.sharding.AbstractMesh`` (no devices needed)
    describe a model too large for the machine at hand, on devices it does not have.

    Returns:
        ``"mode"``, ``"devices"`` (N), ``"params_bytes"`` (the whole),
        ``"params_bytes_per_device"``, ``"params_leaves"``, ``"params_leaves_sharded"``,
        and the same four for ``opt_state`` (``None`` when it is not given).  In
        ``"none"`` and ``"dp"`` a device holds the whole; in ``"fsdp"`` about 1/N of it.

    >>> import jax.numpy as jnp
    >>> tree = {"w": jax.ShapeDtypeStruct((16, 4), jnp.float32), "b": jax.ShapeDtypeStruct((5,), jnp.float32)}
    >>> d = describe(tree, "fsdp", jax.sharding.AbstractMesh((8,), (AXIS,)))
    >>> d["params_bytes"], d["params_bytes_per_device"], d["params_leaves_sharded"]
    (276, 52, 1)
    """
    check_mode(mode)
    n = _n_devices(_check_mesh(mesh))

    def tally(tree) -> dict[str, int]:
        total = per_device = leaves = sharded = 0
        for x in jax.tree.leaves(tree):
            shape, itemsize = tuple(np.shape(x)), np.dtype(x.dtype).itemsize
            spec = partition_spec(shape, mode, n)
            total += math.prod(shape) * itemsize
            per_device += math.prod(NamedSharding(mesh, spec).shard_shape(shape)) * itemsize
            leaves += 1
            sharded += AXIS in spec
        return {"bytes": total, "bytes_per_device": per_device, "leaves": leaves, "leaves_sharded": sharded}

    out: dict[str, Any] = {"mode": mode, "devices": n}
    for name, tree in (("params", params), ("opt_state", opt_state)):
        t = tally(tree) if tree is not None else dict.fromkeys(("bytes", "bytes_per_device", "leaves",
                                                                 "leaves_sharded"))
        out.update({f"{name}_{k}": v for k, v in t.items()})
    return out
