r"""Week 10: what a positional encoding looks like, and what a transformer without one cannot learn.

Three parts, every number from the model's own functions:

* **The sinusoidal table** :math:`\mathrm{PE}(p, 2i) = \sin(p\,\omega_i)`,
  :math:`\mathrm{PE}(p, 2i+1) = \cos(p\,\omega_i)`, :math:`\omega_i = \mathrm{base}^{-2i/D}`
  (:func:`model.positional.sinusoidal_encoding`), drawn as a heatmap of positions × dimensions:
  fast stripes in the first columns, slow ones in the last.
* **Its Gram matrix** :math:`G_{pq} = \mathrm{PE}(p) \cdot \mathrm{PE}(q)`
  (:func:`model.positional.encoding_gram`): plotted against :math:`p - q` every entry falls on
  one curve, :math:`\sum_i \cos((p - q)\,\omega_i)` (derivation ``positional.relative``), so
  ``G`` is constant along its diagonals: row ``p + 1`` is row ``p`` shifted by one.  The
  largest spread along a diagonal is measured against the float32 rounding bound.
* **A task that needs order: reversing a sequence.**  A sequence of ``n`` random symbols
  (uniform over ``S``), a separator, then the same symbols reversed::

      x_1 .. x_n  SEP  x_n .. x_1

  A :meth:`model.gpt.GPTConfig.tiny`-sized GPT (D = 32, H = 2, L = 2) reads the first
  ``2n`` tokens and is trained with the next-token cross-entropy
  (:func:`model.loss.cross_entropy`) on the ``n`` answer positions only (the targets after
  the separator; the first ``n`` symbols are random and cannot be predicted).  Four models
  that differ only in ``positional`` (``"none"``, ``"sinusoidal"``, ``"learned"``,
  ``"rotary"``) get the same seed, the same batches and the same optimizer
  (:func:`experiments.train.make_optimizer`: AdamW, warmup and cosine decay, clipping).
  With the same seed ``none``, ``sinusoidal`` and ``rotary`` start from identical weights;
  ``learned`` draws its position table from the same random stream, so the weights drawn
  after it differ.
  On held-out sequences (drawn from a separate random stream; how many also occurred in
  training is reported) the experiment measures, with teacher forcing: the answer loss, the
  **per-token accuracy** (argmax = target) at each answer position, and the **exact match**
  (all ``n`` answers right, which is the same as greedy decoding reproducing the whole
  reversed sequence: if every teacher-forced argmax is right, greedy decoding follows the
  true answers).

Two reference levels are computed from the held-out data: chance, ``1/S``, and the
*bag-of-symbols* level, the best accuracy of a predictor that knows which symbols remain to
be emitted (the multiset of the input minus the answers so far) but not their order:
at answer ``k`` it is :math:`\mathbb E[\max_s c_s / (n - k)]` over the ``n - k`` remaining
symbols, 1 at the last answer (one symbol is left).  Without positions a causal model still
sees its prefix grow, so it can count; it is not strictly held to this level, but it shows
what order-blind counting alone achieves.

What to expect, and what varies.  The learned table solves the task within a few hundred
steps.  The sinusoidal model first sits at chance, below the model without positions: the
table is added at unit amplitude (rows of length :math:`\sqrt{D/2}`) to token embeddings that
start near ``init_std`` :math:`\cdot\sqrt D`, so at first the tokens are a small part of the
input (``results.json`` records both lengths under ``embedding_scale``); it escapes after a
seed-dependent number of steps.  Without positions a causal model is not order-blind (each
prefix differs from the next by one token, so causal averages carry position: Haviv et al.,
"Transformer Language Models without Positional Encodings Still Learn Positional
Information", 2022), and on some seeds it learns much of the task.  One seed is one sample:
``scale > 1`` shows the spread.

``scale = k`` repeats the comparison for ``k`` seeds (``seed, seed + 1, ...``; each seed
changes the initial weights, the batches and the held-out set) and reports each and the mean.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.train import TrainConfig, make_optimizer
from experiments.weekly import common
from model.gpt import GPT, GPTConfig
from model.loss import cross_entropy
from model.positional import encoding_gram, sinusoidal_encoding
from model.similarity import cosine_similarity

__all__ = [
    "NAME",
    "POSITIONAL",
    "TITLE",
    "WEEK",
    "ReversalTask",
    "bag_of_symbols_accuracy",
    "evaluate",
    "gram_spread",
    "make_answer_step",
    "reversal_batch",
    "run",
]

NAME = "positional"
WEEK = 10
TITLE = "Positional encoding: the sinusoidal table, its shift-invariant Gram matrix, and reversal without positions"

#: the positional encodings compared, in the order of the figures
POSITIONAL = ("none", "sinusoidal", "learned", "rotary")
#: the frequency base of the sinusoidal table and of RoPE (both papers use 10000)
BASE = 10000.0
#: width D and positions of the drawn sinusoidal table and of its Gram matrix
TABLE_WIDTH, TABLE_POSITIONS = 64, 64


@dataclass(frozen=True, kw_only=True)
class ReversalTask:
    """The sizes of the reversal task and of its training; presets :meth:`default` and :meth:`tiny`."""

    length: int
    """n: symbols per sequence (the model reads 2n tokens)."""
    symbols: int
    """S: the alphabet; symbols are ``0 .. S-1`` and the separator is ``S``."""
    steps: int
    """Optimizer updates per model."""
    batch_size: int
    """Sequences per update."""
    lr: float
    """The peak learning rate (after the warmup)."""
    min_lr: float
    """The learning rate at the end of the cosine decay."""
    warmup_steps: int
    """Steps of the linear warmup."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay on the matrices (:func:`experiments.train.decay_mask`)."""
    heldout: int
    """Held-out sequences per seed."""
    eval_every: int
    """Evaluate on the held-out sequences every this many steps (and after the last)."""

    def __post_init__(self):
        for name in ("length", "symbols", "steps", "batch_size", "heldout", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.symbols < 2:
            raise ValueError(f"symbols: expected at least 2 symbols (with one, order carries nothing), "
                             f"got {self.symbols}")
        self.train_config()  # checks lr, min_lr and warmup_steps

    @classmethod
    def default(cls) -> ReversalTask:
        """``n = 8`` symbols out of ``S = 16``; 2000 steps of 32 sequences, lr 1e-2; 1024 held-out sequences."""
        return cls(length=8, symbols=16, steps=2000, batch_size=32, lr=1e-2, min_lr=1e-3, warmup_steps=200,
                   heldout=1024, eval_every=100)

    @classmethod
    def tiny(cls) -> ReversalTask:
        """The same task, 120 steps of 32 sequences and 256 held-out sequences: seconds, for the tests."""
        return cls(length=8, symbols=16, steps=120, batch_size=32, lr=1e-2, min_lr=1e-3, warmup_steps=12,
                   heldout=256, eval_every=40)

    @property
    def separator(self) -> int:
        """The separator's id, ``S`` (the symbols are ``0 .. S-1``)."""
        return self.symbols

    @property
    def vocab_size(self) -> int:
        """``S + 1``: the symbols and the separator."""
        return self.symbols + 1

    @property
    def context(self) -> int:
        """``2n``: the model reads ``x_1 .. x_n SEP x_n .. x_2`` and predicts the next token at each."""
        return 2 * self.length

    def train_config(self) -> TrainConfig:
        """The optimizer settings as a :class:`experiments.train.TrainConfig` (its other fields are unused)."""
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, min_lr=self.min_lr,
                           warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)

    def model_config(self, positional: str) -> GPTConfig:
        """:meth:`GPTConfig.tiny` with this task's vocabulary and context and the given ``positional``."""
        return GPTConfig.tiny(vocab_size=self.vocab_size, context=self.context, positional=positional,
                              pe_base=BASE)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name."""
        return dataclasses.asdict(self)


def reversal_batch(rng: np.random.Generator, batch_size: int, length: int, symbols: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` reversal sequences: inputs ``x`` and next-token targets ``y``, int32 ``[B, 2n]``.

    The full sequence is ``s = [x_1 .. x_n, SEP, x_n .. x_1]`` (``SEP = symbols``, each
    ``x_i`` uniform in ``[0, symbols)``); ``x = s[:-1]`` and ``y = s[1:]``, so the answers
    are ``y[:, n:]``.

    >>> x, y = reversal_batch(np.random.default_rng(0), 1, 3, 5)
    >>> x.tolist(), y.tolist()
    ([[4, 3, 2, 5, 2, 3]], [[3, 2, 5, 2, 3, 4]])
    """
    body_BN = rng.integers(0, symbols, size=(batch_size, length))
    sep_B1 = np.full((batch_size, 1), symbols)
    seq = np.concatenate([body_BN, sep_B1, body_BN[:, ::-1]], axis=1).astype(np.int32)
    return seq[:, :-1], seq[:, 1:]


def _answer_loss(graphdef, length: int, params, x_BT, y_BT):
    """Mean next-token cross-entropy over the answer positions ``t >= n`` (``model.loss.cross_entropy``)."""
    logits_BTV = nnx.merge(graphdef, params)(x_BT)
    return jnp.mean(cross_entropy(logits_BTV[:, length:, :], y_BT[:, length:]))


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3, 4))
def _answer_step(graphdef, tc: TrainConfig, length: int, params, opt_state, x_BT, y_BT):
    loss, grads = jax.value_and_grad(functools.partial(_answer_loss, graphdef, length))(params, x_BT, y_BT)
    updates, opt_state = make_optimizer(tc).update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, loss


def make_answer_step(graphdef, task: ReversalTask):
    """The jitted pure step ``step(params, opt_state, x, y) -> (params, opt_state, loss)`` on the answer loss.

    The loss is the mean :func:`model.loss.cross_entropy` over the answer positions
    ``y[:, n:]`` (before the update); the update is :func:`experiments.train.make_optimizer`
    of :meth:`ReversalTask.train_config`.  ``params`` and ``opt_state`` are donated.
    """
    return functools.partial(_answer_step, graphdef, task.train_config(), task.length)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(graphdef, length: int, params, x_BT, y_BT):
    logits_BTV = nnx.merge(graphdef, params)(x_BT)[:, length:, :]
    answers_BN = y_BT[:, length:]
    correct_BN = jnp.argmax(logits_BTV, axis=-1) == answers_BN
    return jnp.mean(cross_entropy(logits_BTV, answers_BN)), correct_BN


def evaluate(graphdef, params, x_BT, y_BT, length: int) -> dict[str, Any]:
    """Answer loss, per-token accuracy, exact match and accuracy per answer position, with teacher forcing.

    Returns:
        ``loss`` (nats per answer token), ``token_accuracy``, ``exact_match`` (every answer of a
        sequence right) and ``position_accuracy`` (a list over the ``n`` answers, first answer first).
    """
    loss, correct_BN = jax.device_get(_evaluate(graphdef, length, params, jnp.asarray(x_BT), jnp.asarray(y_BT)))
    return {"loss": float(loss), "token_accuracy": float(correct_BN.mean()),
            "exact_match": float(correct_BN.all(axis=1).mean()),
            "position_accuracy": correct_BN.mean(axis=0).tolist()}


def bag_of_symbols_accuracy(x_BT: np.ndarray, length: int, symbols: int) -> list[float]:
    """The best accuracy at each answer of a predictor that knows the remaining symbols but not their order.

    Before answer ``k`` (0-based) the symbols not yet emitted are ``x_1 .. x_{n-k}``; all their
    orders are equally likely, so the best guess is the most frequent of them and it is right
    with probability ``max_s c_s / (n - k)``.  Averaged over the sequences of ``x``.

    >>> x, _ = reversal_batch(np.random.default_rng(0), 4, 3, 2)
    >>> bag_of_symbols_accuracy(x, 3, 2)[-1]  # one symbol left: always right
    1.0
    """
    body_BN = np.asarray(x_BT)[:, :length]
    counts_BNS = np.cumsum(np.eye(symbols, dtype=np.int64)[body_BN], axis=1)  # counts of x_1 .. x_j, j = 1..n
    best = []
    for k in range(length):
        left = length - k
        best.append(float(np.mean(counts_BNS[:, left - 1, :].max(axis=1) / left)))
    return best


def gram_spread(gram: np.ndarray) -> float:
    """The largest spread (max - min) of ``G`` along any of its diagonals: 0 for a Toeplitz matrix."""
    g = np.asarray(gram, dtype=np.float64)
    t = g.shape[0]
    return max(float(np.ptp(np.diagonal(g, o))) for o in range(-t + 1, t))


def _train_one(task: ReversalTask, positional: str, seed: int, heldout, bar) -> dict[str, Any]:
    """Train one model on the reversal task; its loss per step and held-out evaluations."""
    cfg = task.model_config(positional)
    model = GPT(cfg, rngs=nnx.Rngs(seed))
    initial_norms = {"position": float(jnp.mean(jnp.linalg.norm(model.positions(task.context), axis=-1))),
                     "token": float(jnp.mean(jnp.linalg.norm(model.wte[...], axis=-1)))}
    graphdef, params = nnx.split(model, nnx.Param)
    opt_state = make_optimizer(task.train_config()).init(params)
    step = make_answer_step(graphdef, task)
    x_eval, y_eval = heldout
    losses, curve = [], []
    for s in range(1, task.steps + 1):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, s)))
        x, y = reversal_batch(rng, task.batch_size, task.length, task.symbols)
        params, opt_state, loss = step(params, opt_state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(loss))
        if s % task.eval_every == 0 or s == task.steps:
            curve.append({"step": s, **evaluate(graphdef, params, x_eval, y_eval, task.length)})
        if bar is not None:
            bar.update(1)
    out: dict[str, Any] = {"positional": positional, "seed": seed, "initial_norms": initial_norms,
                           "train_loss": losses, "heldout_curve": curve, "final": curve[-1]}
    if positional == "learned":
        wpe = nnx.merge(graphdef, params).wpe[...]
        out["learned_cosine"] = np.asarray(cosine_similarity(wpe[:, None, :], wpe[None, :, :])).tolist()
    return out


def _embedding_scales(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean row lengths, at initialisation, of the token embeddings and of the position vectors added to them."""
    first = {r["positional"]: r["initial_norms"] for r in runs if r["seed"] == runs[0]["seed"]}
    return {"token_embedding_norm": first["sinusoidal"]["token"],
            **{f"{k}_position_norm": first[k]["position"] for k in ("sinusoidal", "learned")},
            "note": "mean row length at initialisation (GPT.wte and GPT.positions, first seed): the sinusoidal "
                    "rows have length sqrt(D/2) while token embeddings start near init_std * sqrt(D), so at "
                    "first the input of the first block is mostly position; Vaswani et al. multiply the "
                    "embeddings by sqrt(D)"}


def _training_batches_seen(task: ReversalTask, seed: int) -> set[bytes]:
    seen = set()
    for s in range(1, task.steps + 1):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, s)))
        x, _ = reversal_batch(rng, task.batch_size, task.length, task.symbols)
        seen.update(row.tobytes() for row in x[:, :task.length])
    return seen


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Draw the sinusoidal table and its Gram matrix; train four GPTs to reverse sequences; write results and figures.

    Args:
        out_dir: folder for ``results.json`` and the figures ``positional_table``,
            ``positional_gram``, ``positional_reversal_training``, ``positional_reversal_accuracy``
            and ``positional_learned_table`` (PNG and SVG).
        scale: a positive int: the number of seeds (``seed .. seed + scale - 1``) the
            comparison is repeated for.
        seed: the first seed: initial weights, training batches and held-out sequences.
        progress: show a progress bar over the training steps.
        tiny: :meth:`ReversalTask.tiny` (120 steps): seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``table``, ``gram``, ``reversal`` (per seed and
        positional encoding: the loss per step, the held-out curve and the final evaluation),
        ``summary`` (final accuracies per encoding over the seeds), ``claims`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    task = ReversalTask.tiny() if tiny else ReversalTask.default()
    seeds = list(range(seed, seed + scale))

    with jax.default_matmul_precision("highest"):
        p = jnp.arange(TABLE_POSITIONS, dtype=jnp.int32)
        table = np.asarray(jax.jit(functools.partial(sinusoidal_encoding, d_model=TABLE_WIDTH, base=BASE))(p))
        gram = np.asarray(jax.jit(functools.partial(encoding_gram, d_model=TABLE_WIDTH, base=BASE))(p))
    eps32 = float(np.finfo(np.float32).eps)
    # each entry sums D/2 products of encodings whose angles p·ω carry about p·eps of rounding
    tolerance = (TABLE_WIDTH / 2) * 2 * TABLE_POSITIONS * eps32
    spread = gram_spread(gram)

    bar = common.progress_bar(len(seeds) * len(POSITIONAL) * task.steps, progress, "reversal training")
    runs, references = [], []
    try:
        for s in seeds:
            heldout = reversal_batch(np.random.default_rng(np.random.SeedSequence(s, spawn_key=(1,))),
                                     task.heldout, task.length, task.symbols)
            seen = _training_batches_seen(task, s)
            overlap = sum(row.tobytes() in seen for row in heldout[0][:, :task.length])
            references.append({"seed": s, "heldout_also_in_training": overlap,
                               "bag_of_symbols": bag_of_symbols_accuracy(heldout[0], task.length, task.symbols)})
            for positional in POSITIONAL:
                runs.append(_train_one(task, positional, s, heldout, bar))
    finally:
        if bar is not None:
            bar.close()

    scales = _embedding_scales(runs)
    bag = np.mean([r["bag_of_symbols"] for r in references], axis=0)
    summary = {}
    for positional in POSITIONAL:
        finals = [r["final"] for r in runs if r["positional"] == positional]
        summary[positional] = {
            key: {"per_seed": [f[key] for f in finals], "mean": float(np.mean([f[key] for f in finals]))}
            for key in ("token_accuracy", "exact_match", "loss")}
        summary[positional]["position_accuracy_mean"] = np.mean([f["position_accuracy"] for f in finals],
                                                                axis=0).tolist()
    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "tiny": tiny, "seeds": seeds, "backend": jax.default_backend(),
                  "task": task.to_dict(), "model": task.model_config("learned").to_dict() | {"positional": list(
                      POSITIONAL)},
                  "loss": "mean next-token cross-entropy (model.loss.cross_entropy) over the n answer positions",
                  "accuracy": "teacher-forced argmax on held-out sequences; exact match = all n answers right "
                              "(= greedy decoding reproduces the reversed sequence)",
                  "optimizer": "experiments.train.make_optimizer (AdamW, warmup + cosine, grad clip), "
                               "same batches and initial seed for every encoding"},
        "table": {"d_model": TABLE_WIDTH, "positions": TABLE_POSITIONS, "base": BASE, "values": table},
        "gram": {"d_model": TABLE_WIDTH, "positions": TABLE_POSITIONS, "base": BASE, "values": gram,
                 "diagonal_spread": spread, "tolerance": tolerance,
                 "note": "G[p, q] = PE(p)·PE(q) from model.positional.encoding_gram (float32); the spread is "
                         "the largest max - min along a diagonal"},
        "reversal": {"runs": runs, "references": references,
                     "chance": 1.0 / task.symbols, "bag_of_symbols_mean": bag.tolist(),
                     "bag_of_symbols_token_accuracy": float(bag.mean())},
        "summary": summary,
        "embedding_scale": scales,
    }
    m["claims"] = _claims(m)
    m["figures"] = (_figure_table(out, m) + _figure_gram(out, m) + _figure_training(out, m, task)
                    + _figure_accuracy(out, m, task) + _figure_learned(out, m))
    common.write_results(out, m)
    return m


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of the lesson, each with the measured evidence and whether it holds."""
    g, s, rev = m["gram"], m["summary"], m["reversal"]
    acc = {k: s[k]["token_accuracy"]["mean"] for k in POSITIONAL}
    exact = {k: s[k]["exact_match"]["mean"] for k in POSITIONAL}
    with_positions = [k for k in POSITIONAL if k != "none"]
    none_position = s["none"]["position_accuracy_mean"]
    return [
        {"claim": "PE(p)·PE(q) depends on p - q only: the Gram matrix is constant along its diagonals "
                  "(to float32 rounding)",
         "holds": g["diagonal_spread"] <= g["tolerance"],
         "evidence": {"largest spread along a diagonal": g["diagonal_spread"], "tolerance": g["tolerance"]}},
        {"claim": "every encoding that gives positions beats no positional encoding on reversal "
                  "(mean held-out per-token accuracy)",
         "holds": all(acc[k] > acc["none"] for k in with_positions),
         "evidence": {"token accuracy": acc, "exact match": exact}},
        {"claim": "without positions the model still beats chance (the causal mask lets it count)",
         "holds": acc["none"] > rev["chance"],
         "evidence": {"none": acc["none"], "chance": rev["chance"],
                      "bag-of-symbols level": rev["bag_of_symbols_token_accuracy"]}},
        {"claim": "without positions the last answers are the easiest (few symbols are left to choose from, "
                  "as for order-blind counting): accuracy at the last answer exceeds that at the first",
         "holds": none_position[-1] > none_position[0],
         "evidence": {"none, accuracy per answer": none_position, "bag-of-symbols level per answer":
                      rev["bag_of_symbols_mean"]}},
    ]


def _figure_table(out, m) -> list[str]:
    t = m["table"]
    fig, ax = common.figure(figsize=(7, 5))
    image = ax.imshow(np.asarray(t["values"]), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="PE(p, j)")
    ax.set_xlabel("dimension j (even: sin, odd: cos; frequency falls with j)")
    ax.set_ylabel("position p")
    ax.set_title(f"Sinusoidal positional encoding, D = {t['d_model']}, base {t['base']:g}")
    return common.save_figure(fig, out, "positional_table")


def _figure_gram(out, m) -> list[str]:
    g = m["gram"]
    values = np.asarray(g["values"])
    n = values.shape[0]
    fig, axes = common.figure(1, 2, figsize=(12, 4.8))
    image = axes[0].imshow(values, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=axes[0], label="PE(p)·PE(q)")
    axes[0].set_xlabel("position q")
    axes[0].set_ylabel("position p")
    axes[0].set_title("Gram matrix G = PE PEᵀ: constant along diagonals", fontsize=10)
    pp, qq = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    points = axes[1].scatter((pp - qq).ravel(), values.ravel(), c=pp.ravel(), s=4, cmap="plasma", rasterized=True)
    fig.colorbar(points, ax=axes[1], label="position p")
    axes[1].set_xlabel("offset p − q")
    axes[1].set_ylabel("PE(p)·PE(q)")
    axes[1].set_title(f"All {n * n} entries against p − q fall on one curve "
                      f"(spread {g['diagonal_spread']:.1e})", fontsize=10)
    axes[1].grid(True, alpha=0.3)
    fig.suptitle(f"Dot products of sinusoidal encodings depend on the offset only (D = {g['d_model']}, "
                 f"positions 0..{n - 1})")
    return common.save_figure(fig, out, "positional_gram")


def _figure_training(out, m, task) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(12, 4.4))
    rev = m["reversal"]
    for k, positional in enumerate(POSITIONAL):
        for j, r in enumerate(x for x in rev["runs"] if x["positional"] == positional):
            label = positional if j == 0 else None
            steps = np.arange(1, len(r["train_loss"]) + 1)
            axes[0].plot(steps, r["train_loss"], color=f"C{k}", lw=0.8, alpha=0.8, label=label)
            curve = r["heldout_curve"]
            axes[1].plot([c["step"] for c in curve], [c["token_accuracy"] for c in curve], "o-", ms=3,
                         color=f"C{k}", alpha=0.9, label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("answer cross-entropy (nats per token)")
    axes[0].set_title("Training loss on the answer positions")
    axes[1].axhline(rev["chance"], color="k", ls=":", lw=1, label=f"chance 1/S = {rev['chance']:.3f}")
    axes[1].axhline(rev["bag_of_symbols_token_accuracy"], color="k", ls="--", lw=1,
                    label=f"bag of symbols (order-blind) = {rev['bag_of_symbols_token_accuracy']:.3f}")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("training step")
    axes[1].set_ylabel("held-out per-token accuracy")
    axes[1].set_title("Held-out accuracy during training")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Reversing {task.length} symbols out of {task.symbols}: tiny GPTs that differ only in the "
                 f"positional encoding ({len(m['setup']['seeds'])} seed(s))")
    return common.save_figure(fig, out, "positional_reversal_training")


def _figure_accuracy(out, m, task) -> list[str]:
    s, rev = m["summary"], m["reversal"]
    fig, axes = common.figure(1, 2, figsize=(12, 5.0))
    answers = np.arange(1, task.length + 1)
    for k, positional in enumerate(POSITIONAL):
        axes[0].plot(answers, s[positional]["position_accuracy_mean"], "o-", color=f"C{k}", label=positional)
    axes[0].plot(answers, rev["bag_of_symbols_mean"], "k--", lw=1, label="bag of symbols (order-blind)")
    axes[0].axhline(rev["chance"], color="k", ls=":", lw=1, label="chance 1/S")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_xlabel("answer k (the k-th symbol after the separator)")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].set_title("Accuracy at each answer position (end of training)")
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    axes[0].grid(True, alpha=0.3)
    x = np.arange(len(POSITIONAL))
    token = [s[p]["token_accuracy"]["mean"] for p in POSITIONAL]
    exact = [s[p]["exact_match"]["mean"] for p in POSITIONAL]
    axes[1].bar(x - 0.2, token, 0.4, label="per-token accuracy")
    axes[1].bar(x + 0.2, exact, 0.4, label="exact match (whole sequence)")
    for xi, (a, b) in enumerate(zip(token, exact, strict=True)):
        axes[1].text(xi - 0.2, a + 0.01, f"{a:.2f}", ha="center", fontsize=8)
        axes[1].text(xi + 0.2, b + 0.01, f"{b:.2f}", ha="center", fontsize=8)
    axes[1].set_xticks(x, POSITIONAL)
    axes[1].set_ylim(0, 1.12)
    axes[1].set_xlabel("positional encoding")
    axes[1].set_ylabel("held-out accuracy")
    axes[1].set_title("Final held-out accuracy")
    axes[1].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle(f"Reversal after {task.steps} steps: {task.heldout} held-out sequences per seed, "
                 f"mean over {len(m['setup']['seeds'])} seed(s)")
    return common.save_figure(fig, out, "positional_reversal_accuracy")


def _figure_learned(out, m) -> list[str]:
    learned = next(r for r in m["reversal"]["runs"] if r["positional"] == "learned")
    fig, ax = common.figure(figsize=(5.6, 4.8))
    image = ax.imshow(np.asarray(learned["learned_cosine"]), cmap="RdBu_r", vmin=-1, vmax=1,
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_xlabel("position q")
    ax.set_ylabel("position p")
    ax.set_title(f"Learned position vectors after reversal training\n(cos(W_P[p], W_P[q]), seed {learned['seed']})",
                 fontsize=10)
    return common.save_figure(fig, out, "positional_learned_table")
