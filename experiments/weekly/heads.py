r"""Week 8: multi-head attention: what each head looks at, what each is worth, and one head against several.

Three parts, every number from the model's own functions:

* **Per-head patterns.**  The attention weights of every head of every layer of the shared
  character-level GPT (:func:`experiments.weekly.shared.shared_gpt`) on one line of
  Shakespeare, recomputed from the block's parameters
  (:func:`experiments.weekly.attention.attention_maps`), in one grid of layers × heads.
* **Head ablation.**  Head ``h`` of layer ``l`` writes into the residual stream only through
  its own rows ``hK .. (h+1)K - 1`` of :math:`W_O`
  (:math:`\operatorname{Concat}_h(o_h) W_O = \sum_h o_h W_O^{(h)}`, the registered
  ``multihead.concat_identity``), so zeroing those rows (:func:`zero_heads`) removes exactly
  that head's output and nothing else (:math:`b_O` stays).  The validation loss
  (:func:`experiments.train.make_eval_loss`, :func:`model.loss.cross_entropy`) is measured
  with each head removed in turn, and with all heads of a layer removed at once, on the same
  fixed validation batches: :math:`\Delta` loss per (layer, head).
* **One head or several at the same size.**  The attention parameters are
  :math:`4D^2 + 4D` whatever the number of heads (``multihead.param_count``): the heads only
  split the same :math:`W_Q, W_K, W_V` into ``H`` blocks of width :math:`K = D/H`.  Two small
  GPTs that differ only in ``n_heads`` (1 and 4; the same D, F, L, context, steps, batches
  and seed, so also the same initial weights, whose shapes do not depend on ``H``) are
  trained on the Shakespeare data with :func:`experiments.train.make_train_step`, and their
  validation losses compared.  Their parameter counts are computed with
  :func:`model.gpt.param_count` and counted on the trained models.

``scale = k`` trains the head-count comparison for ``k`` seeds (``seed .. seed + k - 1``)
and evaluates the ablation on ``k`` times as many validation batches.

What to expect.  Removing a single head costs little next to removing a whole layer's heads,
and the costs do not add up.  At this size and training budget one head and four are close:
the difference of their validation losses is of the order of the spread between seeds
(``results.json`` reports both; ``scale > 1`` shows the spread), so the comparison shows above
all that the split into heads is free in parameters, not that it always wins.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.train import (
    TrainConfig,
    make_eval_loss,
    make_optimizer,
    make_train_step,
    stack_micro_batches,
)
from experiments.weekly import attention, common
from model.gpt import GPT, GPTConfig, count_parameters
from model.gpt import param_count as gpt_param_count
from model.multihead import param_count as attention_param_count

__all__ = ["NAME", "TITLE", "WEEK", "HeadCountTask", "ablation", "run", "train_head_count", "zero_heads"]

NAME = "heads"
WEEK = 8
TITLE = "Multi-head attention: each head's pattern, each head's worth, and one head vs several at equal size"

#: validation sequences per batch, and batches per unit of scale, of the ablation
ABLATION_BATCH, ABLATION_BATCHES = 32, 8
#: the same for the tiny run
TINY_ABLATION_BATCH, TINY_ABLATION_BATCHES = 8, 2


@dataclass(frozen=True, kw_only=True)
class HeadCountTask:
    """The two (or more) small GPTs that differ only in the number of heads, and how they are trained."""

    d_model: int
    """D: the width of the residual stream (every head count must divide it)."""
    d_ff: int
    """F: the FFN hidden width."""
    n_layers: int
    """L: the number of blocks."""
    context: int
    """T: the length of the training windows."""
    head_counts: tuple[int, ...]
    """The numbers of heads compared (the first is the baseline, 1)."""
    steps: int
    """Optimizer updates per model."""
    batch_size: int
    """Sequences per update."""
    lr: float
    """The peak learning rate (AdamW, linear warmup then cosine decay, :func:`experiments.train.make_optimizer`)."""
    warmup_steps: int
    """Steps of the linear warmup."""
    eval_every: int
    """Estimate the validation loss every this many steps (and at steps 0 and ``steps``)."""
    eval_batches: int
    """Validation batches of ``batch_size`` sequences per estimate (the same batches every time)."""

    def __post_init__(self):
        for name in ("d_model", "d_ff", "n_layers", "context", "steps", "batch_size", "eval_every", "eval_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        counts = self.head_counts
        if not isinstance(counts, tuple) or len(counts) < 2 or any(
                isinstance(h, bool) or not isinstance(h, int) or h <= 0 or self.d_model % h for h in counts):
            raise ValueError(f"head_counts: expected a tuple of at least two positive divisors of d_model = "
                             f"{self.d_model}, got {counts!r}")

    @classmethod
    def default(cls) -> HeadCountTask:
        """D = 64, F = 256, L = 2, T = 64; 1 vs 4 heads; 600 steps of 16 windows (about 20 s each on 2 CPU cores)."""
        return cls(d_model=64, d_ff=256, n_layers=2, context=64, head_counts=(1, 4), steps=600, batch_size=16,
                   lr=3e-3, warmup_steps=50, eval_every=50, eval_batches=8)

    @classmethod
    def tiny(cls) -> HeadCountTask:
        """D = 32, F = 128, L = 1, T = 32; 1 vs 4 heads; 30 steps of 8 windows: seconds, for the tests."""
        return cls(d_model=32, d_ff=128, n_layers=1, context=32, head_counts=(1, 4), steps=30, batch_size=8,
                   lr=3e-3, warmup_steps=5, eval_every=10, eval_batches=2)

    def model_config(self, n_heads: int, vocab_size: int) -> GPTConfig:
        """The GPT with ``n_heads`` heads; everything else is the same for every head count."""
        return GPTConfig(vocab_size=vocab_size, context=self.context, d_model=self.d_model, n_heads=n_heads,
                         d_ff=self.d_ff, n_layers=self.n_layers)

    def train_config(self, seed: int) -> TrainConfig:
        """:class:`experiments.train.TrainConfig` of one model (the decay spans all ``steps``)."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, min_lr=self.lr / 10,
                           warmup_steps=self.warmup_steps, eval_every=self.eval_every,
                           eval_batches=self.eval_batches, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return dataclasses.asdict(self)


def _key_names(path) -> list:
    return [getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path]


def zero_heads(params, heads: Iterable[tuple[int, int]], *, n_heads: int):
    r"""A copy of a GPT's parameters in which the given heads write nothing: their rows of :math:`W_O` are zero.

    Head ``h`` of layer ``l`` reaches the block's output only through rows ``hK .. (h+1)K - 1`` of
    that layer's :math:`W_O` (:func:`model.multihead.output_projection`:
    :math:`\sum_h o_h W_O^{(h)} + b_O`), so with those rows zero the attention output is what it
    would be with that head's output :math:`o_h` set to zero; :math:`b_O` is kept.

    Args:
        params: the parameters of a :class:`model.gpt.GPT` (``nnx.split(model, nnx.Param)[1]``); not changed.
        heads: pairs ``(layer, head)``.
        n_heads: H, the heads per layer.

    Returns:
        the new parameters (the same structure).

    Raises:
        ValueError: a pair that is not two ints, a head outside ``[0, H)``, or a layer the
            parameters do not hold.
    """
    if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads <= 0:
        raise ValueError(f"n_heads: expected a positive integer, got {n_heads!r}")
    rows: dict[int, set[int]] = {}
    for pair in heads:
        if (not isinstance(pair, tuple) or len(pair) != 2
                or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in pair)):
            raise ValueError(f"heads: expected pairs (layer, head) of ints, got {pair!r}")
        layer, head = int(pair[0]), int(pair[1])
        if not 0 <= head < n_heads:
            raise ValueError(f"heads: expected a head in [0, H) = [0, {n_heads}), got {head} (layer {layer})")
        rows.setdefault(layer, set()).add(head)
    found: set[int] = set()

    def zero(path, leaf):
        keys = _key_names(path)
        if len(keys) >= 4 and keys[0] == "blocks" and keys[2:4] == ["attn", "w_o"] and keys[1] in rows:
            d = leaf.shape[0]
            if d % n_heads:
                raise ValueError(f"n_heads: expected a divisor of the width D = {d} of W_O, got {n_heads}")
            width = d // n_heads
            keep = np.ones(d, dtype=np.float32)
            for h in rows[keys[1]]:
                keep[h * width:(h + 1) * width] = 0.0
            found.add(keys[1])
            return leaf * jnp.asarray(keep, leaf.dtype)[:, None]
        return leaf

    out = jax.tree_util.tree_map_with_path(zero, params)
    missing = sorted(set(rows) - found)
    if missing:
        raise ValueError(f"heads: the parameters hold no attention W_O for layers {missing} "
                         f"(expected layers of blocks[l].attn.w_o)")
    return out


def ablation(model: GPT, batches) -> dict[str, Any]:
    """Validation loss of ``model`` with each head removed in turn, and with each layer's heads all removed.

    Args:
        model: a :class:`model.gpt.GPT`.
        batches: ``(x, y)`` pairs of int32 ``[B, T]`` (the same batches for every variant).

    Returns:
        ``base`` (the loss of the model as it is), ``single`` ``[L][H]`` and ``layer`` ``[L]``
        (the losses with head ``(l, h)`` / every head of layer ``l`` zeroed, :func:`zero_heads`),
        ``delta_single``, ``delta_layer`` (those minus ``base``) and ``sum_delta_single`` ``[L]`` (the
        single-head deltas of each layer added up, to compare with ``delta_layer``); losses are the mean of
        :func:`experiments.train.make_eval_loss` over the batches.

    Raises:
        ValueError: no batches.
    """
    batches = [(jnp.asarray(x), jnp.asarray(y)) for x, y in batches]
    if not batches:
        raise ValueError("batches: expected at least one (x, y) pair, got none")
    c = model.config
    graphdef, params = nnx.split(model, nnx.Param)
    eval_loss = make_eval_loss(graphdef)

    def loss(p) -> float:
        return float(np.mean([float(eval_loss(p, x, y)) for x, y in batches]))

    base = loss(params)
    single = [[loss(zero_heads(params, [(layer, h)], n_heads=c.n_heads)) for h in range(c.n_heads)]
              for layer in range(c.n_layers)]
    whole = [loss(zero_heads(params, [(layer, h) for h in range(c.n_heads)], n_heads=c.n_heads))
             for layer in range(c.n_layers)]
    delta_single = [[v - base for v in row] for row in single]
    return {"base": base, "single": single, "layer": whole, "delta_single": delta_single,
            "delta_layer": [v - base for v in whole], "sum_delta_single": [sum(row) for row in delta_single]}


def train_head_count(task: HeadCountTask, n_heads: int, data, seed: int, bar=None) -> dict[str, Any]:
    """Train the GPT of ``task`` with ``n_heads`` heads on ``data``; its losses and parameter counts.

    Returns:
        ``n_heads``, ``seed``, ``train_loss`` (per step, before each update), ``val_curve``
        (``{"step", "val_loss"}`` at step 0, every ``eval_every`` steps and the last), ``final_val_loss``,
        ``params_counted`` (:func:`model.gpt.count_parameters` of the model),
        ``params_formula`` (:func:`model.gpt.param_count`) and ``initial`` (the initial parameter
        leaves as NumPy arrays, for comparing the head counts; not written to ``results.json``).
    """
    cfg = task.model_config(n_heads, data.vocab_size)
    tc = task.train_config(seed)
    model = GPT(cfg, rngs=nnx.Rngs(seed))
    counted = count_parameters(model)
    graphdef, params = nnx.split(model, nnx.Param)
    initial = [np.array(leaf, copy=True) for leaf in jax.tree.leaves(params)]  # the step donates params
    opt_state = make_optimizer(tc).init(params)
    step = make_train_step(graphdef, tc)
    eval_loss = make_eval_loss(graphdef)
    val = [(jnp.asarray(x), jnp.asarray(y))
           for x, y in data.iter_eval_batches("val", tc.batch_size, cfg.context, tc.eval_batches, seed)]

    def val_loss(p) -> float:
        return float(np.mean([float(eval_loss(p, x, y)) for x, y in val]))

    losses, curve = [], [{"step": 0, "val_loss": val_loss(params)}]
    for s in range(1, tc.steps + 1):
        x, y = data.batch("train", tc.batch_size, cfg.context, seed=seed, step=s - 1)
        params, opt_state, metrics = step(params, opt_state, stack_micro_batches(x, y, 1))
        losses.append(float(metrics["loss"]))
        if s % tc.eval_every == 0 or s == tc.steps:
            curve.append({"step": s, "val_loss": val_loss(params)})
        if bar is not None:
            bar.update(1)
    formula = gpt_param_count(cfg.vocab_size, cfg.context, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers,
                              tie_embeddings=cfg.tie_embeddings, learned_positions=cfg.positional == "learned",
                              biases=cfg.bias)
    return {"n_heads": n_heads, "seed": seed, "head_width": cfg.d_model // n_heads, "train_loss": losses,
            "val_curve": curve, "final_val_loss": curve[-1]["val_loss"], "params_counted": counted,
            "params_formula": formula, "initial": initial}


def _same_initial_weights(runs) -> bool:
    """Whether the runs of each seed started from identical parameters (leaf by leaf, exactly)."""
    same = True
    for s in {r["seed"] for r in runs}:
        first, *rest = [r["initial"] for r in runs if r["seed"] == s]
        same &= all(len(other) == len(first) and all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
                    for other in rest)
    return bool(same)


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Draw every head's pattern, ablate every head, and train one head against several; write results and figures.

    Args:
        out_dir: folder for ``results.json`` and the figures ``heads_patterns``, ``heads_ablation``
            and ``heads_count_training`` (PNG and SVG); the shared GPT is trained into (or loaded
            from) its parent folder.
        scale: a positive int: the seeds of the head-count comparison (``seed .. seed + scale - 1``)
            and the multiple of the ablation's validation batches.
        seed: chooses the ablation's validation batches and seeds the head-count models (weights and batches).
        progress: report what it does, with a bar over the training steps.
        tiny: the tiny shared GPT, two small batches and :meth:`HeadCountTask.tiny`: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``line``, ``patterns``, ``ablation``,
        ``head_count`` (per run: losses, curves and parameter counts; and a summary),
        ``parameters``, ``observations``, ``claims`` (each with ``holds``) and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    from experiments.weekly.shared import shared_gpt

    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    model, tokenizer, data = shared_gpt(Path(out).parent, tiny=tiny, progress=progress)
    c = model.config
    task = HeadCountTask.tiny() if tiny else HeadCountTask.default()
    seeds = list(range(seed, seed + scale))

    ids = attention.line_tokens(tokenizer, c.context)
    labels = attention.token_labels(tokenizer, ids)
    common.say(NAME, progress, f"attention patterns of {c.n_layers} layers x {c.n_heads} heads on the line")
    with jax.default_matmul_precision("highest"):
        maps = attention.analyse(model, np.asarray([ids], np.int32), (1.0,))
    patterns = [np.asarray(layer["weights"]).tolist() for layer in maps["layers"]]  # [L][H][T][T]

    batch, n_batches = (TINY_ABLATION_BATCH, TINY_ABLATION_BATCHES) if tiny else (ABLATION_BATCH,
                                                                                  ABLATION_BATCHES * scale)
    common.say(NAME, progress, f"ablating each of {c.n_layers * c.n_heads} heads and each layer's heads on {n_batches} "
                               f"validation batches of {batch} x {c.context} tokens")
    abl = ablation(model, data.iter_eval_batches("val", batch, c.context, n_batches, seed))

    bar = common.progress_bar(len(seeds) * len(task.head_counts) * task.steps, progress, "1 head vs several")
    runs = []
    try:
        for s in seeds:
            for h in task.head_counts:
                runs.append(train_head_count(task, h, data, s, bar))
    finally:
        if bar is not None:
            bar.close()
    same_init = _same_initial_weights(runs)
    for r in runs:
        del r["initial"]

    summary = {str(h): {"final_val_loss": {"per_seed": [r["final_val_loss"] for r in runs if r["n_heads"] == h],
                                           "mean": float(np.mean([r["final_val_loss"] for r in runs
                                                                  if r["n_heads"] == h]))}}
               for h in task.head_counts}
    attn_counts = {str(h): attention_param_count(task.d_model, h) for h in task.head_counts}
    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "seed": seed, "seeds": seeds, "tiny": tiny, "backend": jax.default_backend(),
                  "shared_model": c.to_dict(), "head_count_task": task.to_dict(),
                  "ablation_batches": n_batches, "ablation_batch": batch,
                  "ablation": "rows hK..(h+1)K-1 of W_O zeroed (experiments.weekly.heads.zero_heads); loss = mean "
                              "of experiments.train.make_eval_loss (model.loss.cross_entropy) over fixed validation "
                              "batches",
                  "training": "experiments.train.make_train_step (AdamW, warmup + cosine, grad clip); the same "
                              "seed, batches and initial weights for every head count"},
        "line": {"text": tokenizer.decode(ids), "tokens": ids, "labels": labels},
        "patterns": patterns,
        "ablation": abl,
        "head_count": {"runs": runs, "summary": summary, "same_initial_weights": same_init},
        "parameters": {
            "attention_per_layer": attn_counts,
            "attention_formula": "4D² + 4D (model.multihead.param_count, multihead.param_count)",
            "gpt_formula": {str(h): next(r["params_formula"] for r in runs if r["n_heads"] == h)
                            for h in task.head_counts},
            "gpt_counted": {str(h): next(r["params_counted"] for r in runs if r["n_heads"] == h)
                            for h in task.head_counts},
            "note": "the heads split the same W_Q, W_K, W_V [D, D] into H blocks of K = D/H columns (and W_O into "
                    "H blocks of rows): no parameter depends on H"},
    }
    one, *several = [str(h) for h in task.head_counts]
    per_seed = {h: summary[h]["final_val_loss"]["per_seed"] for h in summary}
    m["observations"] = [
        {"observation": f"at equal parameter count and after the same training, the final validation loss of "
                        f"{' and '.join(several)} heads against {one}: the difference per seed (negative: several "
                        f"heads lower), to be read against the spread between seeds; one seed is one sample "
                        f"(scale > 1 repeats the comparison)",
         "evidence": {"final validation loss per seed": per_seed,
                      "difference per seed": {h: [a - b for a, b in zip(per_seed[h], per_seed[one], strict=True)]
                                              for h in several},
                      "spread between seeds (max - min)": {h: max(v) - min(v) for h, v in per_seed.items()}}},
        {"observation": "heads do not add up: removing a whole layer's heads costs a different amount than the sum "
                        "of removing each alone (more: the heads cover for each other; less: they overlap)",
         "evidence": {"Δloss, whole layer": abl["delta_layer"], "sum of single-head Δloss": abl["sum_delta_single"]}},
    ]
    m["claims"] = _claims(m)
    common.say(NAME, progress, "drawing figures")
    last = c.n_layers - 1
    m["figures"] = (
        attention.heatmap_grid(out, "heads_patterns",
                               [(f"layer {layer}", patterns[layer]) for layer in range(c.n_layers)], labels,
                               title=f"Attention weights of every head (rows: layers 0..{last}, columns: heads) on "
                                     f"“{m['line']['text']}”", kind="weights")
        + _figure_ablation(out, m) + _figure_training(out, m, task))
    common.write_results(out, m)
    return m


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of the lesson, each with the measured evidence and whether it holds."""
    a, p, hc = m["ablation"], m["parameters"], m["head_count"]
    deltas = [d for row in a["delta_single"] for d in row] + list(a["delta_layer"])
    counts = list(p["gpt_formula"].values()) + list(p["gpt_counted"].values())
    attn = list(p["attention_per_layer"].values())
    return [
        {"claim": "removing any head changes the validation loss by a finite amount (no head's removal breaks "
                  "the model numerically)",
         "holds": all(np.isfinite(d) for d in deltas),
         "evidence": {"Δloss per (layer, head)": a["delta_single"], "Δloss per layer": a["delta_layer"]}},
        {"claim": "removing all heads of a layer raises the loss more than removing any one of them",
         "holds": all(whole > max(row) for whole, row in zip(a["delta_layer"], a["delta_single"], strict=True)),
         "evidence": {"Δloss, whole layer": a["delta_layer"],
                      "largest single-head Δloss per layer": [max(row) for row in a["delta_single"]]}},
        {"claim": "one head and several have the same number of parameters (4D² + 4D per attention layer, "
                  "whatever H; the whole GPT too, by formula and counted on the trained models)",
         "holds": len(set(counts)) == 1 and len(set(attn)) == 1,
         "evidence": {"attention per layer": p["attention_per_layer"], "GPT, formula": p["gpt_formula"],
                      "GPT, counted": p["gpt_counted"]}},
        {"claim": "with the same seed the models start from identical weights (no parameter shape depends on H)",
         "holds": bool(hc["same_initial_weights"]), "evidence": {}},
    ]


def _figure_ablation(out, m) -> list[str]:
    a = m["ablation"]
    single = np.asarray(a["delta_single"])
    whole = np.asarray(a["delta_layer"])
    n_layers, n_heads = single.shape
    fig, axes = common.figure(1, 2, figsize=(4.0 + 1.1 * n_heads + 4.0, 1.0 + 0.9 * n_layers + 1.8),
                              gridspec_kw={"width_ratios": [max(n_heads, 2), 3]}, layout="constrained")
    ax = axes[0]
    limit = float(np.max(np.abs(single))) or 1.0
    image = ax.imshow(single, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (layer, head), value in np.ndenumerate(single):
        ax.text(head, layer, f"{value:+.3f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("one head removed")
    fig.colorbar(image, ax=ax, label="Δ validation loss (nats/token)")
    ax = axes[1]
    ax.barh(range(n_layers), whole, color="C3", label="all heads of the layer removed")
    ax.barh(range(n_layers), single.max(axis=1), color="C0", height=0.4, label="largest single head")
    ax.set_yticks(range(n_layers))
    ax.set_ylabel("layer")
    ax.invert_yaxis()
    ax.set_xlabel("Δ validation loss (nats/token)")
    ax.set_title("whole layer removed")
    ax.legend(fontsize=7)
    ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"Head ablation in the shared GPT: validation loss {a['base']:.3f} without ablation; "
                 f"Δ when a head's rows of W_O are zeroed")
    return common.save_figure(fig, out, "heads_ablation")


def _figure_training(out, m, task: HeadCountTask) -> list[str]:
    hc = m["head_count"]
    fig, axes = common.figure(1, 2, figsize=(12, 4.4))
    window = max(1, task.steps // 30)
    smoothing = f"running mean over {window} steps, " if window > 1 else ""
    for i, h in enumerate(task.head_counts):
        color = f"C{i}"
        for j, r in enumerate(r for r in hc["runs"] if r["n_heads"] == h):
            label = f"H = {h} (K = {r['head_width']})" if j == 0 else None
            loss = np.asarray(r["train_loss"])
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            axes[0].plot(np.arange(window, len(loss) + 1), smooth, color=color, alpha=0.8, label=label)
            curve = r["val_curve"]
            axes[1].plot([p["step"] for p in curve], [p["val_loss"] for p in curve], "o-", ms=3, color=color,
                         label=label)
    for ax, what in zip(axes, (f"training loss ({smoothing}nats/token)", "validation loss (nats/token)"),
                        strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(what)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    final = {h: s["final_val_loss"]["mean"] for h, s in hc["summary"].items()}
    axes[1].set_title("validation: " + ", ".join(f"H = {h}: {v:.3f}" for h, v in final.items()))
    axes[0].set_title("training")
    n = next(iter(m["parameters"]["gpt_counted"].values()))
    fig.suptitle(f"One head vs several at equal size: D = {task.d_model}, L = {task.n_layers}, F = {task.d_ff}, "
                 f"{n:,} parameters each, same seed, batches and initial weights")
    return common.save_figure(fig, out, "heads_count_training")
