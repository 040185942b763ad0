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
* :func:`train` runs the loop and writes ``config.json`` and ``metrics.jsonl``.

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

import dataclasses
import functools
import json
import math
import os
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

from model.gpt import GPT, GPTConfig
from model.loss import cross_entropy

__all__ = [
    "PRESETS",
    "TrainConfig",
    "decay_mask",
    "make_eval_loss",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "stack_micro_batches",
    "train",
]

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

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "log_every"):
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

    @classmethod
    def tiny(cls, **overrides) -> TrainConfig:
        """A few dozen steps of :meth:`GPTConfig.tiny` on a CPU: 40 steps of 8 sequences, lr 3e-3."""
        fields = {"steps": 40, "batch_size": 8, "grad_accum": 1, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 5,
                  "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0, "eval_every": 20,
                  "eval_batches": 2, "seed": 0, "log_every": 5}
        return cls(**{**fields, **overrides})

    @classmethod
    def shakespeare_char(cls, **overrides) -> TrainConfig:
        """nanoGPT's CPU recipe for character-level Shakespeare.

        From nanoGPT's ``config/train_shakespeare_char.py``: lr 1e-3, min_lr 1e-4,
        warmup 100, beta2 0.99, eval every 250 steps, a log line every 10; from its
        README's CPU command line: batch 12, 2000 steps (and the decay over 2000),
        20 evaluation batches; from ``train.py``'s defaults: weight decay 0.1,
        beta1 0.9, gradient clip 1.0, no gradient accumulation.  The seed 1337 is
        nanoGPT's.
        """
        fields = {"steps": 2000, "batch_size": 12, "grad_accum": 1, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.99, "grad_clip": 1.0,
                  "eval_every": 250, "eval_batches": 20, "seed": 1337, "log_every": 10}
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


def _mean_loss(graphdef, params, x_BT, y_BT):
    model = nnx.merge(graphdef, params)
    return jnp.mean(cross_entropy(model(x_BT), y_BT))


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3, 4))
def _train_step(graphdef, tc: TrainConfig, optimizer, params, opt_state, batch):
    """One update; ``graphdef``, ``tc`` and ``optimizer`` are static, so equal ones share one compilation."""
    optimizer = make_optimizer(tc) if optimizer is None else optimizer
    grad_fn = jax.value_and_grad(functools.partial(_mean_loss, graphdef))
    x_ABT, y_ABT = batch
    n_micro = x_ABT.shape[0]

    def micro(carry, xy):
        loss_sum, grads_sum = carry
        loss, grads = grad_fn(params, *xy)
        return (loss_sum + loss, jax.tree.map(jnp.add, grads_sum, grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    (loss_sum, grads_sum), _ = jax.lax.scan(micro, (jnp.zeros((), jnp.float32), zeros), (x_ABT, y_ABT))
    loss = loss_sum / n_micro
    grads = jax.tree.map(lambda g: g / n_micro, grads_sum)
    lr = make_schedule(tc)(_step_count(opt_state))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": lr}
    return params, opt_state, metrics


def make_train_step(graphdef, tc: TrainConfig, optimizer: optax.GradientTransformation | None = None
                    ) -> Callable:
    """The jitted pure step ``train_step(params, opt_state, batch) -> (params, opt_state, metrics)``.

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
    Steps made from equal ``graphdef``, ``tc`` and ``optimizer`` share one compiled
    function (they are static arguments of one ``jax.jit``).
    """
    if not isinstance(tc, TrainConfig):
        raise TypeError(f"tc: expected a TrainConfig, got {type(tc).__name__}")
    return functools.partial(_train_step, graphdef, tc, optimizer)


@functools.partial(jax.jit, static_argnums=0)
def _eval_loss(graphdef, params, x_BT, y_BT):
    return _mean_loss(graphdef, params, x_BT, y_BT)


def make_eval_loss(graphdef) -> Callable:
    """The jitted ``eval_loss(params, x, y)``: the mean cross-entropy of the batch ``[B, T]``."""
    return functools.partial(_eval_loss, graphdef)


def stack_micro_batches(x_BT: np.ndarray, y_BT: np.ndarray, grad_accum: int) -> tuple[np.ndarray, np.ndarray]:
    """``[A B, T]`` inputs and targets reshaped to ``[A, B, T]`` (consecutive rows form a micro-batch)."""
    grad_accum = _positive_int("grad_accum", grad_accum)
    n, t = x_BT.shape
    if n % grad_accum:
        raise ValueError(f"batch: expected a multiple of grad_accum = {grad_accum} sequences, got {n}")
    return x_BT.reshape(grad_accum, n // grad_accum, t), y_BT.reshape(grad_accum, n // grad_accum, t)


# --- the loop -------------------------------------------------------------------------------------


def _estimate(eval_loss, params, data, split: str, tc: TrainConfig, block_size: int) -> float:
    batches = data.iter_eval_batches(split, tc.batch_size, block_size, tc.eval_batches, tc.seed)
    return float(np.mean([float(eval_loss(params, x, y)) for x, y in batches]))


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", dynamic_ncols=True)


def train(model_config: GPTConfig, train_config: TrainConfig, data, *, out_dir: str | os.PathLike,
          progress: bool = True) -> dict[str, Any]:
    """Train a fresh :class:`GPT` on ``data`` and log the run under ``out_dir``.

    Writes ``out_dir/config.json`` (``{"model": ..., "train": ...}``) and
    ``out_dir/metrics.jsonl``: one JSON object per logged step with ``step``
    (updates done), ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s`` (over the
    steps since the previous line) and ``val_loss`` on evaluation steps, each line
    flushed as it is written.  Shows a tqdm bar when ``progress`` and tqdm is
    installed, plain printed lines when ``progress`` and it is not.

    Args:
        model_config: the model's shape; its ``context`` is the block size T.
        train_config: the run's settings.
        data: a :class:`experiments.data.TokenData` whose ``vocab_size`` is at most the model's.
        out_dir: the run's folder (created if missing).
        progress: show progress.

    Returns:
        ``{"train_loss", "val_loss"}`` (final estimates over ``eval_batches``
        batches of each split), ``"steps"``, ``"tokens_per_s"`` (mean over the run,
        compilation included) and ``"params"`` (the final ``nnx.State``).

    Raises:
        TypeError: configs of the wrong type.
        ValueError: a data vocabulary larger than the model's, splits shorter than
            ``context + 1`` tokens, or a loss that is NaN or infinite (the message
            names the step).
    """
    if not isinstance(model_config, GPTConfig):
        raise TypeError(f"model_config: expected a GPTConfig, got {type(model_config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config: expected a TrainConfig, got {type(train_config).__name__}")
    tc, block_size = train_config, model_config.context
    if data.vocab_size > model_config.vocab_size:
        raise ValueError(f"data.vocab_size = {data.vocab_size} exceeds the model's vocab_size = "
                         f"{model_config.vocab_size}; expected data ids to fit in the model's vocabulary")
    n_seq = tc.grad_accum * tc.batch_size
    data.batch("train", n_seq, block_size, seed=tc.seed, step=0)  # checks sizes before any compilation
    data.batch("val", tc.batch_size, block_size, seed=tc.seed, step=0)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model": model_config.to_dict(), "train": tc.to_dict()},
                                                indent=2) + "\n")

    graphdef, params = nnx.split(GPT(model_config, rngs=nnx.Rngs(tc.seed)), nnx.Param)
    optimizer = make_optimizer(tc)
    opt_state = optimizer.init(params)
    train_step = make_train_step(graphdef, tc)
    eval_loss = make_eval_loss(graphdef)
    tokens_per_step = n_seq * block_size

    bar = _progress_bar(tc.steps, progress)
    t_start = t_last = time.perf_counter()
    last_logged = 0
    with open(out / "metrics.jsonl", "w") as log:
        try:
            for step in range(1, tc.steps + 1):
                x, y = data.batch("train", n_seq, block_size, seed=tc.seed, step=step - 1)
                params, opt_state, metrics = train_step(params, opt_state, stack_micro_batches(x, y, tc.grad_accum))
                loss = float(metrics["loss"])
                if not math.isfinite(loss):
                    raise ValueError(f"step {step}: the training loss is {loss} (not finite); lower lr "
                                     f"(now {float(metrics['lr']):.3g}) or grad_clip, or check the data")
                evaluate = step % tc.eval_every == 0 or step == tc.steps
                if not (evaluate or step % tc.log_every == 0):
                    if bar is not None:
                        bar.update(1)
                    continue
                now = time.perf_counter()
                line = {"step": step, "loss": loss, "lr": float(metrics["lr"]),
                        "grad_norm": float(metrics["grad_norm"]),
                        "tokens_per_s": tokens_per_step * (step - last_logged) / max(now - t_last, 1e-12)}
                if evaluate:
                    line["val_loss"] = _estimate(eval_loss, params, data, "val", tc, block_size)
                log.write(json.dumps(line) + "\n")
                log.flush()
                t_last, last_logged = time.perf_counter(), step
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{line['tokens_per_s']:.0f}")
                elif progress:
                    extra = f" val_loss {line['val_loss']:.4f}" if evaluate else ""
                    print(f"step {step}/{tc.steps} loss {loss:.4f}{extra} "
                          f"tokens/s {line['tokens_per_s']:.0f}", flush=True)
        finally:
            if bar is not None:
                bar.close()
    elapsed = time.perf_counter() - t_start
    return {
        "steps": tc.steps,
        "train_loss": _estimate(eval_loss, params, data, "train", tc, block_size),
        "val_loss": _estimate(eval_loss, params, data, "val", tc, block_size),
        "tokens_per_s": tokens_per_step * tc.steps / elapsed,
        "params": params,
    }
