r"""Training a :class:`model.gpt.GPT`: config, optimizer, a pure jitted step, and the loop.

* :class:`TrainConfig` holds every setting of a run (presets ``tiny`` and
  ``shakespeare-char``).
* :func:`make_optimizer` is an optax chain: clip the global gradient norm, then
  AdamW with a linear warmup and a cosine decay of the learning rate,

  .. math::
      \eta_s = \begin{cases}
        \eta\, s / s_w & s < s_w \\
        \eta_{\min} + \tfrac12 (\eta - \eta_{\min})
          \bigl(1 + \cos(\pi\, (s - s_w) / (S - s_w))\bigr) & s_w \le s \le S
      \end{cases}

  with :math:`s_w` = ``warmup_steps``, :math:`S` = ``steps``
  (``optax.warmup_cosine_decay_schedule``).  Weight decay applies to the
  matrices only (parameters with ``ndim >= 2``): the attention and feed-forward
  weights and, as in nanoGPT, the token and position embeddings; biases and
  LayerNorm gains and shifts are not decayed.
* :func:`make_train_step` returns the pure step ``train_step(params, opt_state,
  batch) -> (params, opt_state, metrics)``: the module is rebuilt with
  ``nnx.merge`` inside the jit, the gradient is accumulated over ``grad_accum``
  micro-batches with ``lax.scan``, and the old parameter and optimizer buffers
  are donated.  ``params`` is ``nnx.state(model, nnx.Param)``.
* :func:`train` runs the loop and writes ``config.json``, ``metrics.jsonl``,
  orbax checkpoints (:mod:`experiments.checkpoint`), the loss curve
  (:func:`experiments.figures.plot_loss`) and ``results.json``;
  :func:`resume` continues a run from its newest checkpoint.

Mixed precision.  ``compute_dtype="bfloat16"`` casts the float32 parameters to
bfloat16 inside the loss (:func:`cast_params`), so the forward and backward pass run
in bfloat16 while the parameters, their gradients and the AdamW moments stay float32;
the logits are cast to float32 before the cross-entropy.  A 300-step run of the tiny
GPT ends within 0.05 nats of the float32 run (``tests/test_train.py``, slow).

Devices.  ``parallel="dp"`` or ``"fsdp"`` spreads the same step over every device
with :mod:`experiments.sharding` (a 1-D mesh, the batch split over it; the state
replicated, or sharded for FSDP); XLA's SPMD partitioner inserts the collectives.

Resuming.  A checkpoint holds the parameters, the optimizer state (whose
``count`` is the step, and with it the learning rate) and the configs; batches
are a pure function of ``(seed, step)``, so a resumed run repeats, bit for bit,
the updates the uninterrupted run would have made.  The configs must match the
checkpoint's exactly, ``steps`` included: the cosine schedule decays over
``steps``, so the updates already made used the learning rates of that length.
To train part of a run now and the rest later, pass ``stop_at``.

Stopping.  Ctrl-C (``KeyboardInterrupt``) is taken between two steps: the state
after the last completed update is checkpointed, the loss curve drawn, and
:class:`TrainingInterrupted` (a ``KeyboardInterrupt``) raised with the step.
A loss that is NaN or infinite stops the run with a ``ValueError`` naming the
step; that state is never checkpointed (:meth:`Checkpoints.save` refuses
non-finite states), so the newest checkpoint is the last good one.

Batches.  A step draws ``grad_accum * batch_size`` windows with
:meth:`experiments.data.TokenData.batch` (seed, step) and reshapes them to
``[A, B, T]`` (A = ``grad_accum``): the mean of the A micro-batch losses is the
mean loss of the whole ``[A B, T]`` batch, so ``grad_accum=2, batch_size=B``
follows the same trajectory as ``grad_accum=1, batch_size=2B`` (to float32
rounding).  Token ids are checked before the jit boundary (the data's
vocabulary must fit in the model's).

References: I. Loshchilov and F. Hutter, "Decoupled Weight Decay
Regularization" (AdamW), ICLR 2019; A. Karpathy, nanoGPT
(``config/train_shakespeare_char.py``) for the ``shakespeare-char`` recipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import peak as peak_lib
from experiments.checkpoint import CHECKPOINT_DIR, Checkpoints, config_differences
from model.gpt import GPT, GPTConfig, abstract_gpt
from model.loss import cross_entropy
from model.validate import config_from_dict

__all__ = [
    "COMPUTE_DTYPES",
    "PARALLEL",
    "PRESETS",
    "TrainConfig",
    "TrainingInterrupted",
    "cast_params",
    "decay_mask",
    "make_eval_loss",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "resume",
    "stack_micro_batches",
    "train",
]

#: the dtypes the forward and backward pass may run in (:attr:`TrainConfig.compute_dtype`)
COMPUTE_DTYPES = ("float32", "bfloat16")
#: the ways a step may be spread over devices (:attr:`TrainConfig.parallel`)
PARALLEL = ("none", "dp", "fsdp")
#: fields that configs saved before they existed lack (their defaults apply)
_ADDED_LATER = frozenset({"compute_dtype", "parallel"})

#: preset name -> classmethod of :class:`TrainConfig`
PRESETS = {"tiny": "tiny", "shakespeare-char": "shakespeare_char"}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    return int(value)


def _number(name: str, value, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """The settings of a training run; every field is checked when the config is built.

    >>> TrainConfig.preset("shakespeare-char").steps
    2000
    >>> TrainConfig.preset("tiny", steps=10).steps
    10
    """

    steps: int
    """S: the number of optimizer updates."""
    batch_size: int
    """B: sequences per micro-batch."""
    grad_accum: int = 1
    """A: micro-batches whose gradients are averaged into one update (A·B sequences per step)."""
    lr: float = 1e-3
    """η: the peak learning rate, reached at the end of the warmup."""
    min_lr: float = 1e-4
    """η_min: the learning rate at the end of the cosine decay (step S); at most ``lr``."""
    warmup_steps: int = 100
    """s_w: steps of the linear warmup from 0 to ``lr``; less than ``steps``."""
    weight_decay: float = 0.1
    """λ: AdamW's decoupled weight decay, applied to parameters with ndim >= 2 only."""
    beta1: float = 0.9
    """β₁: Adam's decay rate of the first moment, in [0, 1)."""
    beta2: float = 0.99
    """β₂: Adam's decay rate of the second moment, in [0, 1)."""
    eps: float = 1e-8
    """ε: Adam's denominator offset."""
    grad_clip: float = 1.0
    """The largest global gradient norm; larger gradients are scaled down to it."""
    eval_every: int = 250
    """Estimate the validation loss every this many steps (and after the last)."""
    eval_batches: int = 20
    """Batches of B sequences in each loss estimate."""
    seed: int = 0
    """Seeds the initial parameters and the batches."""
    log_every: int = 10
    """Write a metrics line every this many steps (and at every evaluation and the last step)."""
    checkpoint_every: int = 250
    """Save a checkpoint every this many steps (and after the last step, at ``stop_at`` and on Ctrl-C)."""
    keep_checkpoints: int = 3
    """The number of newest checkpoints kept on disk; older ones are deleted."""
    compute_dtype: str = "float32"
    """The dtype of the forward and backward pass: ``"float32"``, or ``"bfloat16"`` for mixed precision
    (parameters, gradients and the optimizer state stay float32; the logits are cast to float32 for the loss)."""
    parallel: str = "none"
    """How the step is spread over ``jax.devices()`` (:mod:`experiments.sharding`): ``"none"`` (one device),
    ``"dp"`` (data parallel: batch split, state replicated) or ``"fsdp"`` (batch split, parameters and
    optimizer state sharded too); the batch size must be a multiple of the device count."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "log_every",
                     "checkpoint_every", "keep_checkpoints"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        for name in ("warmup_steps", "seed"):
            object.__setattr__(self, name, _non_negative_int(name, getattr(self, name)))
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps: expected fewer than steps = {self.steps}, got {self.warmup_steps}")
        object.__setattr__(self, "lr", _number("lr", self.lr, 0.0, math.inf, lo_open=True, hi_open=True))
        object.__setattr__(self, "min_lr", _number("min_lr", self.min_lr, 0.0, self.lr))
        object.__setattr__(self, "weight_decay", _number("weight_decay", self.weight_decay, 0.0, math.inf,
                                                         hi_open=True))
        for name in ("beta1", "beta2"):
            object.__setattr__(self, name, _number(name, getattr(self, name), 0.0, 1.0, hi_open=True))
        object.__setattr__(self, "eps", _number("eps", self.eps, 0.0, math.inf, lo_open=True, hi_open=True))
        object.__setattr__(self, "grad_clip", _number("grad_clip", self.grad_clip, 0.0, math.inf,
                                                      lo_open=True, hi_open=True))
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype: expected one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")
        if self.parallel not in PARALLEL:
            raise ValueError(f"parallel: expected one of {PARALLEL}, got {self.parallel!r}")

    @classmethod
    def tiny(cls, **overrides) -> TrainConfig:
        """A few dozen steps of :meth:`GPTConfig.tiny` on a CPU: 40 steps of 8 sequences, lr 3e-3."""
        fields = {"steps": 40, "batch_size": 8, "grad_accum": 1, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 5,
                  "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "eval_every": 20,
                  "eval_batches": 2, "seed": 0, "log_every": 5, "checkpoint_every": 20, "keep_checkpoints": 3}
        return cls(**{**fields, **overrides})

    @classmethod
    def shakespeare_char(cls, **overrides) -> TrainConfig:
        """nanoGPT's CPU recipe for character-level Shakespeare.

        From nanoGPT's ``config/train_shakespeare_char.py``: lr 1e-3, min_lr 1e-4,
        warmup 100, beta2 0.99, eval every 250 steps, a log line every 10; from its
        README's CPU command line: batch 12, 2000 steps (and the decay over 2000),
        20 evaluation batches; from ``train.py``'s defaults: weight decay 0.1,
        beta1 0.9, gradient clip 1.0, no gradient accumulation.  The seed 1337 is
        nanoGPT's.  A checkpoint every 250 steps (at each evaluation), the newest 3 kept.
        """
        fields = {"steps": 2000, "batch_size": 12, "grad_accum": 1, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0,
                  "eval_every": 250, "eval_batches": 20, "seed": 1337, "log_every": 10, "checkpoint_every": 250,
                  "keep_checkpoints": 3}
        return cls(**{**fields, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """The preset called ``name`` (see :data:`PRESETS`), with fields replaced by ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown train preset {name!r}; expected one of {', '.join(PRESETS)}")
        return getattr(cls, PRESETS[name])(**overrides)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name: plain JSON-compatible values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config saved by :meth:`to_dict`; every field must be present and no other key.

        Fields added after runs were first saved (``compute_dtype``, ``parallel``) may be
        absent: such a run was trained with their defaults.

        >>> TrainConfig.from_dict(TrainConfig.tiny().to_dict()) == TrainConfig.tiny()
        True

        Raises:
            TypeError: ``data`` is not a dict.
            ValueError: missing or unknown keys (named), or invalid values.
        """
        return config_from_dict(cls, data, optional=_ADDED_LATER)


#: fields the train step does not read: configs that differ only in these share one compiled step
#: (``parallel`` acts through the shardings of the step's inputs, not through its code)
_BOOKKEEPING = ("eval_every", "eval_batches", "log_every", "checkpoint_every", "keep_checkpoints", "seed",
                "parallel")


def _step_key(tc: TrainConfig) -> TrainConfig:
    """``tc`` with the fields the step does not read set to their defaults (the static argument of the jit)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in _BOOKKEEPING}
    return dataclasses.replace(tc, **defaults)


# --- optimizer ------------------------------------------------------------------------------------


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    """The learning rate per step: linear warmup 0 → ``lr`` over ``warmup_steps``, cosine → ``min_lr`` at ``steps``.

    >>> s = make_schedule(TrainConfig.tiny(steps=20, warmup_steps=4, lr=1e-2, min_lr=1e-3))
    >>> [round(float(s(i)), 6) for i in (0, 4, 20)]
    [0.0, 0.01, 0.001]
    """
    return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=tc.lr, warmup_steps=tc.warmup_steps,
                                              decay_steps=tc.steps, end_value=tc.min_lr)


def decay_mask(params):
    """A pytree like ``params`` with ``True`` at the leaves that are decayed: the matrices (``ndim >= 2``)."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    """``clip_by_global_norm(grad_clip)`` then AdamW with :func:`make_schedule` and :func:`decay_mask`."""
    return optax.chain(
        optax.clip_by_global_norm(tc.grad_clip),
        optax.adamw(make_schedule(tc), b1=tc.beta1, b2=tc.beta2, eps=tc.eps, weight_decay=tc.weight_decay,
                    mask=decay_mask),
    )


def _step_count(opt_state) -> jax.Array:
    """The number of updates already applied: the first ``count`` field of the optimizer state."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        if path and getattr(path[-1], "name", None) == "count":
            return leaf
    raise ValueError("optimizer state: expected a 'count' field (from optax.scale_by_adam), found none")


# --- the step -------------------------------------------------------------------------------------


def cast_params(params, compute_dtype: str):
    """``params`` with every floating leaf cast to ``compute_dtype`` (the forward pass of mixed precision).

    The cast is differentiable: the gradient that reaches the float32 parameters is
    the bfloat16 gradient cast back, so the optimizer updates float32 master weights.
    """
    if compute_dtype == "float32":
        return params
    dtype = jnp.dtype(compute_dtype)
    return jax.tree.map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params)


def _mean_loss(graphdef, params, x_BT, y_BT, dropout_key=None, compute_dtype: str = "float32"):
    model = nnx.merge(graphdef, cast_params(params, compute_dtype))
    logits = model(x_BT, dropout_key=dropout_key).astype(jnp.float32)
    return jnp.mean(cross_entropy(logits, y_BT))


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3, 4))
def _train_step(graphdef, tc: TrainConfig, optimizer, params, opt_state, batch, dropout_key=None):
    """One update; ``graphdef``, ``tc`` and ``optimizer`` are static, so equal ones share one compilation."""
    optimizer = make_optimizer(tc) if optimizer is None else optimizer
    grad_fn = jax.value_and_grad(functools.partial(_mean_loss, graphdef, compute_dtype=tc.compute_dtype))
    x_ABT, y_ABT = batch
    n_micro = x_ABT.shape[0]

    def micro(carry, ixy):
        loss_sum, grads_sum = carry
        i, x_BT, y_BT = ixy
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
        loss, grads = grad_fn(params, x_BT, y_BT, key)
        return (loss_sum + loss, jax.tree.map(jnp.add, grads_sum, grads)), None

    if n_micro == 1:  # no loop: XLA then fuses the gradient into the update
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, 0)
        loss, grads = grad_fn(params, x_ABT[0], y_ABT[0], key)
    else:
        zeros = jax.tree.map(jnp.zeros_like, params)
        (loss_sum, grads_sum), _ = jax.lax.scan(micro, (jnp.zeros((), jnp.float32), zeros),
                                                (jnp.arange(n_micro), x_ABT, y_ABT))
        loss = loss_sum / n_micro
        grads = jax.tree.map(lambda g: g / n_micro, grads_sum)
    lr = make_schedule(tc)(_step_count(opt_state))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": lr}
    return params, opt_state, metrics


def make_train_step(graphdef, tc: TrainConfig, optimizer: optax.GradientTransformation | None = None
                    ) -> Callable:
    """The jitted pure step ``train_step(params, opt_state, batch, dropout_key=None) -> (params, opt_state, metrics)``.

    Args:
        graphdef: the structure of the model, from ``nnx.split(model, nnx.Param)``.
        tc: the training config (its optimizer settings are used).
        optimizer: ``None`` (the default) for :func:`make_optimizer` ``(tc)``, or another optax
            transformation whose state holds a step ``count`` (as ``scale_by_adam`` or
            ``scale_by_schedule`` do); ``opt_state`` must come from the same optimizer.

    The step takes ``batch = (x, y)``, both int32 ``[A, B, T]`` (A = ``tc.grad_accum``
    micro-batches, see :func:`stack_micro_batches`), and returns ``metrics`` with the
    scalars ``loss`` (mean over the A·B sequences, before the update), ``grad_norm``
    (the global norm before clipping) and ``lr`` (the rate of this update).  The
    ``params`` and ``opt_state`` passed in are donated: do not use them afterwards.
    ``dropout_key`` (a PRNG key) switches on the model's dropout for this update
    (micro-batch ``i`` uses ``fold_in(dropout_key, i)``); ``None`` trains without it.
    Steps made from equal ``graphdef``, ``tc`` and ``optimizer`` share one compiled
    function (they are static arguments of one ``jax.jit``); configs that differ only
    in the fields the step does not read (evaluation, logging, checkpoints, seed) count
    as equal.
    """
    if not isinstance(tc, TrainConfig):
        raise TypeError(f"tc: expected a TrainConfig, got {type(tc).__name__}")
    return functools.partial(_train_step, graphdef, _step_key(tc), optimizer)


@functools.partial(jax.jit, static_argnums=0, static_argnames="compute_dtype")
def _eval_loss(graphdef, params, x_BT, y_BT, compute_dtype="float32"):
    return _mean_loss(graphdef, params, x_BT, y_BT, compute_dtype=compute_dtype)


def make_eval_loss(graphdef, compute_dtype: str = "float32") -> Callable:
    """The jitted ``eval_loss(params, x, y)``: the mean cross-entropy of the batch ``[B, T]``.

    ``compute_dtype`` is the dtype of the forward pass (:attr:`TrainConfig.compute_dtype`).
    """
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype: expected one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
    return functools.partial(_eval_loss, graphdef, compute_dtype=compute_dtype)


def stack_micro_batches(x_BT: np.ndarray, y_BT: np.ndarray, grad_accum: int) -> tuple[np.ndarray, np.ndarray]:
    """``[A B, T]`` inputs and targets reshaped to ``[A, B, T]`` (consecutive rows form a micro-batch)."""
    grad_accum = _positive_int("grad_accum", grad_accum)
    n, t = x_BT.shape
    if n % grad_accum:
        raise ValueError(f"batch: expected a multiple of grad_accum = {grad_accum} sequences, got {n}")
    return x_BT.reshape(grad_accum, n // grad_accum, t), y_BT.reshape(grad_accum, n // grad_accum, t)


# --- the loop -------------------------------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`train` between two steps; the state after ``step`` is checkpointed.

    A ``KeyboardInterrupt``, so code that does not look for it stops as Ctrl-C always does.

    Attributes:
        step: the number of updates done.
        checkpoint: the folder of the checkpoint of ``step``; ``None`` if it could not be
            saved (the newest checkpoint on disk is then an earlier one).
        out_dir: the run's folder, for :func:`resume`.
    """

    def __init__(self, step: int, checkpoint: Path | None, out_dir: Path):
        self.step, self.checkpoint, self.out_dir = step, checkpoint, out_dir
        saved = f"saved {checkpoint}" if checkpoint is not None else "no checkpoint of this step could be saved"
        super().__init__(f"training interrupted after step {step}; {saved}; continue with "
                         f"resume({str(out_dir)!r}, data)")


@contextlib.contextmanager
def _deferred_ctrl_c():
    """Hold Ctrl-C until the running step is done; yields ``pressed()``, true once Ctrl-C was pressed.

    The step donates its input buffers, so a ``KeyboardInterrupt`` raised inside it
    would leave no state to save.  A second Ctrl-C raises at once.  Outside the main
    thread (where Python delivers no signals) nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = []

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _intact(tree) -> bool:
    """Whether no array of ``tree`` was donated (deleted) by a step cut short."""
    return not any(isinstance(x, jax.Array) and x.is_deleted() for x in jax.tree.leaves(tree))


def _write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON through a temporary file and ``os.replace`` (never half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines of ``metrics.jsonl`` up to ``step`` (the restored state's); drop later ones.

    A last line that is not valid JSON (cut short when a process died) is dropped too.
    """
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: expected one JSON object per line, got {line[:80]!r}") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path}:{number}: expected a JSON object with an integer 'step', got {line[:80]!r}")
        if row["step"] <= step:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _plot(out: Path) -> list[str]:
    """Draw ``out/loss.png`` and ``out/loss.svg`` from ``out/metrics.jsonl``; nothing before the first line."""
    from experiments.figures import plot_loss

    metrics = out / "metrics.jsonl"
    if not metrics.exists() or not metrics.read_text().strip():
        return []
    return [str(p) for p in plot_loss(metrics, out / "loss")]


def _estimate(eval_loss, params, data, split: str, tc: TrainConfig, block_size: int) -> float:
    batches = data.iter_eval_batches(split, tc.batch_size, block_size, tc.eval_batches, tc.seed)
    return float(np.mean([float(eval_loss(params, x, y)) for x, y in batches]))


def _progress_bar(total: int, enabled: bool, initial: int = 0):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _check_resume(meta: dict, *, configs: dict, folder: Path) -> None:
    """Refuse a checkpoint whose configs differ from the given ones, naming every differing field."""
    diffs = (config_differences(meta.get("model", {}), configs["model"], "model.")
             + config_differences(meta.get("train", {}), configs["train"], "train."))
    if not diffs:
        return
    note = ""
    if any(d.startswith("train.steps:") for d in diffs):
        note = (f"; steps cannot change on resume: the cosine schedule decays over steps, so the updates already "
                f"made used the learning rates of a {meta['train'].get('steps')}-step run (to train part of a run "
                f"now and the rest later, start it with its full steps and stop_at)")
    raise ValueError(f"resume: the checkpoint {folder} was written with a different config: {'; '.join(diffs)}; "
                     f"expected the same model and train configs{note}")


def train(model_config: GPTConfig, train_config: TrainConfig, data, *, out_dir: str | os.PathLike,
          progress: bool = True, resume: bool = False, stop_at: int | None = None, overwrite: bool = False,
          flops_per_token: float | None = None, peak_flops: float | None = None, figures: bool = True,
          on_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train a :class:`GPT` on ``data`` (fresh, or from the newest checkpoint) and log the run under ``out_dir``.

    Writes into ``out_dir``:

    * ``config.json``: ``{"model": ..., "train": ...}``.
    * ``metrics.jsonl``: one JSON object per logged step with ``step`` (updates
      done), ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s`` (over the steps since
      the previous line, wall clock), ``val_loss`` on evaluation steps and, when
      ``flops_per_token`` is given and the peak is known, ``mfu`` =
      ``tokens_per_s * flops_per_token / peak``; each line flushed as it is written.
    * ``checkpoints/<step>/``: every ``checkpoint_every`` steps and at the end, the
      newest ``keep_checkpoints`` kept (:class:`experiments.checkpoint.Checkpoints`).
    * ``loss.png`` and ``loss.svg`` (:func:`experiments.figures.plot_loss`) at the end
      and on Ctrl-C, unless ``figures=False``.
    * ``results.json`` at the end: what the returned dict holds, without ``params``.

    Shows a tqdm bar with the loss, tokens/s and MFU when ``progress`` and tqdm is
    installed, plain printed lines when ``progress`` and it is not.

    Args:
        model_config: the model's shape; its ``context`` is the block size T.
        train_config: the run's settings.
        data: a :class:`experiments.data.TokenData` whose ``vocab_size`` is at most the model's.
        out_dir: the run's folder (created if missing).
        progress: show progress.
        resume: continue from the newest readable checkpoint in ``out_dir``, whose configs
            must equal ``model_config`` and ``train_config``; lines of ``metrics.jsonl``
            after its step are dropped.  ``False``: a fresh run, refused if ``out_dir``
            holds checkpoints (unless ``overwrite``).
        stop_at: stop after this update (at most ``steps``) with a checkpoint, to
            :func:`resume` later; the schedule still spans ``steps``.  ``None``: run to ``steps``.
        overwrite: with ``resume=False``, delete the checkpoints already in ``out_dir``.
        flops_per_token: the model FLOPs of one token's training (forward and backward);
            enables ``mfu`` in the metrics and the results.
        peak_flops: the device's peak FLOP/s, overriding
            :func:`experiments.peak.peak_flops` (measured on a CPU, a datasheet figure on
            a known accelerator, unknown otherwise).
        figures: draw the loss curve (about half a second with matplotlib).
        on_step: called as ``on_step(step, {"loss", "lr", "grad_norm"})`` after each
            update, its checkpoint and its metrics line (a ``KeyboardInterrupt`` raised
            there acts as Ctrl-C).

    Returns:
        ``"steps"`` (updates done), ``"total_steps"``, ``"complete"``, ``"resumed_from"``
        (the restored step or ``None``), ``"train_loss"`` and ``"val_loss"`` (final
        estimates over ``eval_batches`` batches of each split), ``"tokens_per_s"``
        (this session's mean, compilation included), ``"steady_tokens_per_s"`` (after
        this session's first step; ``None`` with fewer than two steps),
        ``"elapsed_s"`` (training time of the whole run up to here, earlier sessions
        included), ``"session_s"``, ``"flops_per_token"``, ``"mfu"`` (from the steady
        rate, or ``None``), ``"peak"`` (:meth:`experiments.peak.Peak.to_dict` or
        ``None``), ``"checkpoint"`` (the newest checkpoint's folder), ``"figures"`` and
        ``"params"`` (the final ``nnx.State``).

    Raises:
        TypeError: configs of the wrong type, an ``on_step`` that is not callable.
        ValueError: a data vocabulary larger than the model's, splits shorter than
            ``context + 1`` tokens, a loss that is NaN or infinite (the message names the
            step; that state is not checkpointed), a resume whose configs differ from
            the checkpoint's (every differing field named) or with no checkpoint, a
            fresh run into a folder with checkpoints, a bad ``stop_at``.
        TrainingInterrupted: Ctrl-C, after checkpointing the last completed step.
    """
    if not isinstance(model_config, GPTConfig):
        raise TypeError(f"model_config: expected a GPTConfig, got {type(model_config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config: expected a TrainConfig, got {type(train_config).__name__}")
    tc, block_size = train_config, model_config.context
    if stop_at is not None and _positive_int("stop_at", stop_at) > tc.steps:
        raise ValueError(f"stop_at: expected a step in [1, steps] = [1, {tc.steps}], got {stop_at}")
    if flops_per_token is not None:
        flops_per_token = _number("flops_per_token", flops_per_token, 0.0, math.inf, lo_open=True, hi_open=True)
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step: expected a callable or None, got {type(on_step).__name__}")
    if data.vocab_size > model_config.vocab_size:
        raise ValueError(f"data.vocab_size = {data.vocab_size} exceeds the model's vocab_size = "
                         f"{model_config.vocab_size}; expected data ids to fit in the model's vocabulary")
    n_seq = tc.grad_accum * tc.batch_size
    data.batch("train", n_seq, block_size, seed=tc.seed, step=0)  # checks sizes before any compilation
    data.batch("val", tc.batch_size, block_size, seed=tc.seed, step=0)

    out = Path(out_dir)
    checkpoints = Checkpoints(out / CHECKPOINT_DIR, keep=tc.keep_checkpoints)
    configs = {"model": model_config.to_dict(), "train": tc.to_dict()}
    metrics_path = out / "metrics.jsonl"
    mesh = None
    if tc.parallel != "none":
        from experiments import sharding

        mesh = sharding.make_mesh()
        sharding.check_batch(tc.batch_size, mesh)
    # on several hosts every process trains, process 0 alone writes the logs, results and figures
    writer = jax.process_index() == 0
    if resume:
        graphdef, abstract_params = nnx.split(abstract_gpt(model_config, seed=tc.seed), nnx.Param)
        abstract_opt_state = jax.eval_shape(make_optimizer(tc).init, abstract_params)
        restored = checkpoints.restore(
            abstract_params, abstract_opt_state,
            check_meta=lambda meta: _check_resume(meta, configs=configs, folder=checkpoints.path(meta["step"])),
            shardings=None if mesh is None else sharding.state_shardings((abstract_params, abstract_opt_state),
                                                                         tc.parallel, mesh))
        if restored is None:
            raise ValueError(f"resume: no checkpoint in {checkpoints.directory}; expected the folder of a run "
                             f"started by train() (or train without resume)")
        start, params, opt_state = restored.step, restored.params, restored.opt_state
        elapsed_before = float(restored.meta.get("elapsed_s", 0.0))
        if writer:
            _truncate_metrics(metrics_path, start)
    else:
        existing = checkpoints.steps()
        if existing and not overwrite:
            raise ValueError(f"out_dir: {out} already holds the checkpoints of steps {existing}; expected a new "
                             f"folder: pass resume=True to continue that run, or overwrite=True to delete them")
        if existing:
            shutil.rmtree(checkpoints.directory)
        graphdef, params = nnx.split(GPT(model_config, rngs=nnx.Rngs(tc.seed)), nnx.Param)
        opt_state = make_optimizer(tc).init(params)
        # committed to the device, as restored arrays are: both then share one compiled step
        params, opt_state = jax.device_put((params, opt_state), jax.local_devices()[0])
        start, elapsed_before = 0, 0.0
    if mesh is not None:
        params, opt_state = sharding.place_state(params, opt_state, tc.parallel, mesh)
    stop = tc.steps if stop_at is None else stop_at
    if stop < start:
        raise ValueError(f"stop_at: expected a step at or after the checkpoint's step {start}, got {stop_at}")
    out.mkdir(parents=True, exist_ok=True)
    if writer:
        _write_json(out / "config.json", configs)

    peak = peak_lib.peak_flops(override=peak_flops)
    train_step = make_train_step(graphdef, tc)
    eval_loss = make_eval_loss(graphdef, tc.compute_dtype)
    tokens_per_step = n_seq * block_size

    bar = _progress_bar(tc.steps, progress and writer, initial=start)
    session_start = t_last = time.perf_counter()
    t_first = None  # when this session's first step was done (compilation behind it)
    last_logged = done = first_done = start
    last_saved = start if resume else None

    def save(step: int) -> None:
        nonlocal last_saved
        checkpoints.save(step, params, opt_state, model=configs["model"], train=configs["train"],
                         elapsed_s=elapsed_before + time.perf_counter() - session_start)
        last_saved = step

    with (open(metrics_path if writer else os.devnull, "a" if resume else "w") as log, checkpoints,
          _deferred_ctrl_c() as ctrl_c):
        try:
            for step in range(start + 1, stop + 1):
                x, y = data.batch("train", n_seq, block_size, seed=tc.seed, step=step - 1)
                dropout_key = (jax.random.fold_in(jax.random.key(tc.seed), step)
                               if model_config.dropout > 0 else None)
                batch = stack_micro_batches(x, y, tc.grad_accum)
                if mesh is not None:
                    batch = sharding.place_batch(batch, mesh)
                params, opt_state, metrics = train_step(params, opt_state, batch, dropout_key)
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    raise ValueError(f"step {step}: the training loss is {loss} (not finite); lower lr "
                                     f"(now {float(metrics['lr']):.3g}) or grad_clip, or check the data; "
                                     f"the newest checkpoint is step {last_saved}")
                done = step
                if t_first is None:
                    t_first, first_done = time.perf_counter(), step
                scalars = {"loss": loss, "lr": float(metrics["lr"]), "grad_norm": float(metrics["grad_norm"])}
                evaluate = step % tc.eval_every == 0 or step == tc.steps
                if evaluate or step % tc.log_every == 0:
                    now = time.perf_counter()
                    line = {"step": step, **scalars,
                            "tokens_per_s": tokens_per_step * (step - last_logged) / max(now - t_last, 1e-12)}
                    if flops_per_token is not None and peak is not None:
                        line["mfu"] = line["tokens_per_s"] * flops_per_token / peak.flops_per_s
                    if evaluate:
                        line["val_loss"] = _estimate(eval_loss, params, data, "val", tc, block_size)
                    log.write(json.dumps(line) + "\n")
                    log.flush()
                    t_last, last_logged = time.perf_counter(), step
                    _show(bar, progress and writer, line, tc.steps)
                if bar is not None:
                    bar.update(1)
                if step % tc.checkpoint_every == 0 or step == stop:
                    save(step)
                if on_step is not None:
                    on_step(step, scalars)
                if ctrl_c():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if _intact((params, opt_state)):
                done = int(_step_count(opt_state))  # the state's own count, wherever the interrupt came
                if done not in (0, last_saved):
                    with contextlib.suppress(ValueError):  # a non-finite state is not saved
                        save(done)
            log.flush()
            if figures and writer:
                _plot(out)
            raise TrainingInterrupted(done, checkpoints.path(done) if last_saved == done else None, out) from None
        finally:
            if bar is not None:
                bar.close()
    t_end = time.perf_counter()

    session_s = t_end - session_start
    steady = (tokens_per_step * (done - first_done) / (t_end - t_first)
              if t_first is not None and done > first_done else None)
    results = {
        "steps": done,
        "total_steps": tc.steps,
        "complete": done == tc.steps,
        "resumed_from": start if resume else None,
        "train_loss": _estimate(eval_loss, params, data, "train", tc, block_size),
        "val_loss": _estimate(eval_loss, params, data, "val", tc, block_size),
        "tokens_per_s": tokens_per_step * (done - start) / max(session_s, 1e-12),
        "steady_tokens_per_s": steady,
        "elapsed_s": elapsed_before + session_s,
        "session_s": session_s,
        "flops_per_token": flops_per_token,
        "mfu": (steady * flops_per_token / peak.flops_per_s
                if steady is not None and flops_per_token is not None and peak is not None else None),
        "peak": None if peak is None else peak.to_dict(),
        "checkpoint": None if last_saved is None else str(checkpoints.path(last_saved)),
        "figures": _plot(out) if figures and writer else [],
    }
    if writer:
        _write_json(out / "results.json", results)
    return {**results, "params": params}


def _show(bar, progress: bool, line: dict, total: int) -> None:
    """The loss, tokens/s and MFU of a metrics line on the bar, or printed when there is no bar."""
    if bar is not None:
        extra = {"mfu": f"{line['mfu']:.1%}"} if "mfu" in line else {}
        bar.set_postfix(loss=f"{line['loss']:.4f}", tok_s=f"{line['tokens_per_s']:.0f}", **extra)
    elif progress:
        extra = f" val_loss {line['val_loss']:.4f}" if "val_loss" in line else ""
        mfu = f" mfu {line['mfu']:.1%}" if "mfu" in line else ""
        print(f"step {line['step']}/{total} loss {line['loss']:.4f}{extra} "
              f"tokens/s {line['tokens_per_s']:.0f}{mfu}", flush=True)


def resume(out_dir: str | os.PathLike, data, *, progress: bool = True, stop_at: int | None = None,
           flops_per_token: float | None = None, peak_flops: float | None = None, figures: bool = True,
           on_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Continue the run in ``out_dir`` from its newest checkpoint, with the configs in its ``config.json``.

    The same as :func:`train` with ``resume=True`` and the configs the run was
    started with; the other arguments are :func:`train`'s.

    Raises:
        ValueError: no ``config.json`` in ``out_dir``, or one that does not hold
            ``{"model": ..., "train": ...}``; and what :func:`train` raises.
    """
    from experiments.runs import read_configs

    try:
        model_config, train_config = read_configs(out_dir)
    except FileNotFoundError as e:
        raise ValueError(f"resume: {e}") from None
    return train(model_config, train_config, data, out_dir=out_dir, progress=progress, resume=True,
                 stop_at=stop_at, flops_per_token=flops_per_token, peak_flops=peak_flops, figures=figures,
                 on_step=on_step)
