"""Checkpoints of a training run with orbax: parameters, optimizer state, step and configs.

A run's checkpoints live in ``<out_dir>/checkpoints/<step>/``, one folder per
saved step, each holding two orbax items:

* ``state``: ``{"params": nnx.State, "opt_state": optax state}`` (``StandardSave``;
  restored against an abstract target, so every array comes back with the
  shape, dtype and pytree structure of a freshly built run);
* ``meta``: JSON ``{"format", "step", "model", "train", "elapsed_s"}``: the
  configs of the run that wrote it (checked on resume) and the training time
  spent up to that step.

Batches are a pure function of ``(seed, step)`` and the model has no random
state of its own (no dropout), so ``state`` and ``step`` are all a resumed run
needs to continue bit for bit.

Atomic saves.  On a local file system orbax writes a checkpoint into
``<step>.orbax-checkpoint-tmp-<time>`` and renames it to ``<step>`` only when
every file is written (``AtomicRenameTemporaryPath``, which also leaves a
``commit_success.txt``).  A save cut short (a crash, a killed process) leaves a
temporary folder that is never listed as a step: resuming starts from the
newest complete checkpoint.  Saves are synchronous: when :meth:`Checkpoints.save`
returns, the checkpoint is on disk (and the arrays saved may be donated to the
next step).

Only finite states are saved: :meth:`Checkpoints.save` refuses parameters or
optimizer moments holding NaN or infinity, so the newest checkpoint of a run
that diverged is the last finite state before it.

A checkpoint that cannot be read (damaged on disk after it was written) is
moved aside to ``<step>.unreadable`` with a :class:`CheckpointWarning`, and
:meth:`Checkpoints.restore` falls back to the one before it; if none can be
read it raises ``ValueError`` naming each step and its error.

Several devices.  Arrays sharded over a mesh (:mod:`experiments.sharding`) are
saved as whole arrays, each device writing its own slices; a checkpoint does not
depend on how it was placed when saved.  :meth:`Checkpoints.restore` places the
arrays on this process's first device, or with the ``shardings`` it is given: a
checkpoint written by 8 devices restores on one, and one written on one device
restores straight into the shards of 8 (each device reading only its slices).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CHECKPOINT_DIR", "FORMAT", "UNREADABLE_SUFFIX", "CheckpointWarning", "Checkpoints", "Restored",
           "all_finite", "config_differences"]

#: the sub-folder of a run's folder that holds its checkpoints
CHECKPOINT_DIR = "checkpoints"
#: the version of the ``meta`` item; a checkpoint of another format is refused
FORMAT = 1
#: the suffix of a checkpoint folder moved aside because it could not be read
UNREADABLE_SUFFIX = ".unreadable"


_MISSING = object()


class CheckpointWarning(UserWarning):
    """A checkpoint could not be read and was moved aside; an older one is used instead."""


@dataclass(frozen=True)
class Restored:
    """What :meth:`Checkpoints.restore` gives back."""

    step: int
    """The number of updates the restored state has had."""
    params: Any
    """The parameters (the structure of the abstract target, usually an ``nnx.State``)."""
    opt_state: Any
    """The optimizer state (the structure of the abstract target)."""
    meta: dict
    """The JSON item: ``format``, ``step``, ``model``, ``train``, ``elapsed_s``."""
    unreadable: tuple[tuple[int, str], ...] = ()
    """Newer checkpoints that could not be read, with their errors (now ``<step>.unreadable``)."""


def all_finite(tree) -> bool:
    """Whether every floating-point leaf of ``tree`` is free of NaN and infinity (integer leaves are ignored).

    Checked on the host with NumPy (no compilation); a checkpoint copies the arrays there anyway.
    An array spread over the devices of several processes (a multi-host run), which no
    process holds whole, is checked on its devices instead.

    >>> all_finite({"w": np.ones(3), "count": np.int32(4)}), all_finite([np.array([1.0, np.nan])])
    (True, False)
    """
    for leaf in jax.tree.leaves(tree):
        if not jnp.issubdtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype, jnp.inexact):
            continue
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            finite = bool(jnp.isfinite(leaf).all())
        else:
            finite = bool(np.isfinite(np.asarray(leaf)).all())
        if not finite:
            return False
    return True


def _placed(tree, shardings=None):
    """Abstract leaves get ``shardings`` (a pytree like ``tree``, or one sharding for all) where given.

    Otherwise a leaf without a sharding gets the default device's (this process's first,
    ``jax.devices()[0]`` on one host): restore there, not where it was saved.  A
    checkpoint written on a GPU then restores on a machine with only a CPU, and one
    written by 8 devices on a machine with one (orbax would otherwise use the sharding
    recorded at save time); in a multi-host run each process gets the whole arrays.
    """
    if shardings is not None:
        if isinstance(shardings, jax.sharding.Sharding):
            shardings = jax.tree.map(lambda _: shardings, tree)
        try:
            return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), tree, shardings)
        except ValueError as e:
            raise ValueError(f"shardings: expected a jax.sharding.Sharding or a pytree of them like the targets "
                             f"(params, opt_state), got another structure: {str(e).splitlines()[0][:200]}") from None
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def place(x):
        if getattr(x, "sharding", None) is not None:
            return x
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=device)

    return jax.tree.map(place, tree)


def config_differences(saved: dict, given: dict, prefix: str = "") -> list[str]:
    """The fields where two config dicts differ, as ``"name: checkpoint X, given Y"``; missing keys count.

    >>> config_differences({"lr": 0.1, "steps": 5}, {"lr": 0.2, "steps": 5}, "train.")
    ['train.lr: checkpoint 0.1, given 0.2']
    """
    keys = list(saved) + [k for k in given if k not in saved]
    return [f"{prefix}{k}: checkpoint {saved.get(k, '<missing>')!r}, given {given.get(k, '<missing>')!r}"
            for k in keys if saved.get(k, _MISSING) != given.get(k, _MISSING)]


class Checkpoints:
    """The checkpoints of one run in ``directory``, the newest ``keep`` of them kept.

    Args:
        directory: the checkpoint folder (``<out_dir>/checkpoints``); created on the first save.
        keep: how many of the newest checkpoints to keep; older ones are deleted after a save.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, directory, *, keep: int):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep <= 0:
            raise ValueError(f"keep: expected a positive integer, got {keep!r}")
        self.directory = Path(directory).absolute()
        self.keep = keep
        self._manager = None

    # --- orbax -----------------------------------------------------------------------------------

    @property
    def manager(self) -> ocp.CheckpointManager:
        if self._manager is None:
            options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=False,
                                                   enable_async_checkpointing=False, cleanup_tmp_directories=True)
            handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)
        return self._manager

    def _reopen(self):
        self.close()
        return self.manager

    def close(self) -> None:
        """Finish pending work and release orbax's manager (a later call reopens it)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- queries ---------------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints on disk, oldest first (temporary folders are not listed)."""
        if not self.directory.is_dir():
            return []
        return sorted(self._reopen().all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None`` when there is none."""
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> Path:
        """The folder of the checkpoint of ``step``."""
        return self.directory / str(step)

    def read_meta(self, step: int) -> dict:
        """The JSON item of the checkpoint of ``step``.

        Raises:
            ValueError: a checkpoint of another :data:`FORMAT` (or not written by :meth:`save`).
        """
        return self._check_meta(step, self._load_meta(step))

    def _load_meta(self, step: int):
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def _check_meta(self, step: int, meta) -> dict:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("step") != step:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(f"{self.path(step)}: expected a checkpoint of format {FORMAT} for step {step} as "
                             f"Checkpoints.save writes it, got format {found!r} ({str(meta)[:120]})")
        return meta

    # --- save and restore ------------------------------------------------------------------------

    def save(self, step: int, params, opt_state, *, model: dict, train: dict, elapsed_s: float) -> Path:
        """Write the checkpoint of ``step`` (synchronously, atomically) and delete the ones beyond ``keep``.

        Args:
            step: the number of updates ``params`` have had.
            params, opt_state: the state to save (not modified; may be donated afterwards).
            model, train: the run's configs as dicts (``to_dict()``), checked on resume.
            elapsed_s: the training time spent up to this step, in seconds.

        Returns:
            The checkpoint's folder.

        Raises:
            ValueError: a state with NaN or infinite entries (nothing is written), or a
                step that is already saved.
        """
        if not all_finite((params, opt_state)):
            raise ValueError(f"step {step}: refusing to checkpoint a state with NaN or infinite parameters or "
                             f"optimizer moments; the newest checkpoint stays step {self.latest_step()}")
        if step in self.steps():
            raise ValueError(f"step {step}: {self.path(step)} already exists; expected a step after "
                             f"{self.latest_step()}")
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "step": int(step), "model": model, "train": train, "elapsed_s": float(elapsed_s)}
        self.manager.save(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
            meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
        return self.path(step)

    def restore(self, abstract_params, abstract_opt_state, *, check_meta: Callable[[dict], None] | None = None,
                shardings=None) -> Restored | None:
        """The newest readable checkpoint, restored against abstract targets; ``None`` if there is none.

        Args:
            abstract_params, abstract_opt_state: pytrees of ``jax.ShapeDtypeStruct``
                (``nnx.state(abstract_gpt(config), nnx.Param)`` and
                ``jax.eval_shape(optimizer.init, abstract_params)``) or of arrays,
                giving the structure, shapes and dtypes to restore into; leaves
                without a sharding are restored onto the default device.
            check_meta: called with the newest checkpoint's meta before any array is
                read; raise from it to refuse the checkpoint (a config mismatch), which
                is not treated as damage.
            shardings: where to place the restored arrays: ``None`` (each target's own
                sharding, else this process's first device), one ``jax.sharding.Sharding`` for
                every array, or a pair ``(params_shardings, opt_state_shardings)`` of
                pytrees like the targets (:func:`experiments.sharding.state_shardings`),
                which restores straight into the shards of a multi-device run.

        A checkpoint whose meta or arrays cannot be read is moved to
        ``<step>.unreadable`` with a :class:`CheckpointWarning`, and the one before it
        is tried.

        Raises:
            ValueError: every checkpoint is unreadable (each step and error named), the
                newest readable one is of another :data:`FORMAT` or holds arrays other than
                the targets' (names, shapes or dtypes; the first few differences named), or
                what ``check_meta`` raises.
        """
        if shardings is not None and not isinstance(shardings, jax.sharding.Sharding):
            if not isinstance(shardings, (tuple, list)) or len(shardings) != 2:
                raise ValueError(f"shardings: expected a jax.sharding.Sharding or a pair (params_shardings, "
                                 f"opt_state_shardings), got {type(shardings).__name__}")
            shardings = {"params": shardings[0], "opt_state": shardings[1]}
        tree = _placed({"params": abstract_params, "opt_state": abstract_opt_state}, shardings)
        target = ocp.args.StandardRestore(tree)
        unreadable: list[tuple[int, str]] = []
        for step in reversed(self.steps()):
            try:
                meta = self._load_meta(step)
            except Exception as e:  # noqa: BLE001 - any failure to read means the checkpoint is unusable
                unreadable.append((step, self._set_aside(step, e)))
                continue
            self._check_meta(step, meta)  # another format: refused, not moved aside
            if check_meta is not None:
                check_meta(meta)
            try:
                saved = self.manager.item_metadata(step)["state"]
            except Exception as e:  # noqa: BLE001
                unreadable.append((step, self._set_aside(step, e)))
                continue
            self._check_structure(step, saved, tree)  # another model or optimizer: refused, not moved aside
            try:
                state = self.manager.restore(step, args=ocp.args.Composite(state=target)).state
            except Exception as e:  # noqa: BLE001
                unreadable.append((step, self._set_aside(step, e)))
                continue
            return Restored(step=step, params=state["params"], opt_state=state["opt_state"], meta=meta,
                            unreadable=tuple(unreadable))
        if unreadable:
            listed = "; ".join(f"step {s}: {e}" for s, e in unreadable)
            raise ValueError(f"{self.directory}: no readable checkpoint ({listed}); the unreadable ones were "
                             f"renamed to <step>{UNREADABLE_SUFFIX}")
        return None

    def _check_structure(self, step: int, saved, target) -> None:
        """Refuse a checkpoint whose array names, shapes or dtypes differ from the target's."""
        def spec(tree):
            flat = ocp.tree.to_flat_dict(tree, sep="/")
            return {k: (tuple(v.shape), jnp.dtype(v.dtype).name) for k, v in flat.items()}

        have, want = spec(saved), spec(target)
        if have == want:
            return
        diffs = [f"{k}: checkpoint {have.get(k, 'missing')}, expected {want.get(k, 'missing')}"
                 for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
        more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
        raise ValueError(f"{self.path(step)}: holds other arrays than the model and optimizer to restore "
                         f"({'; '.join(diffs[:5])}{more}); expected a checkpoint of the same model and optimizer")

    def _set_aside(self, step: int, error: Exception) -> str:
        """Rename an unreadable checkpoint out of orbax's sight; warn; return the error as text."""
        message = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        target = self.path(step).with_name(f"{step}{UNREADABLE_SUFFIX}")
        n = 1
        while target.exists():
            n += 1
            target = self.path(step).with_name(f"{step}{UNREADABLE_SUFFIX}{n}")
        self.close()
        shutil.move(self.path(step), target)
        warnings.warn(f"checkpoint {self.path(step)} could not be read ({message}); moved to {target.name}, "
                      f"trying the one before it", CheckpointWarning, stacklevel=3)
        return message
