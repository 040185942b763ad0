r"""Week 6: attention as similarity, inside the shared trained GPT.

For one line of Shakespeare, every block of the shared character-level GPT
(:func:`experiments.weekly.shared.shared_gpt`) compares each position's query with
every position's key.  This experiment recomputes those comparisons from the block's
own parameters with the verified functions and draws them:

* **the raw similarities** :math:`X = Q K^\top` (:func:`model.attention.scores`) per head, in
  the first and the last layer, where :math:`Q = \operatorname{LN}_1(x) W_Q + b_Q` and
  :math:`K = \operatorname{LN}_1(x) W_K + b_K` split into heads
  (:func:`model.normalization.layer_norm`, :func:`model.multihead.split_heads`), :math:`x` the
  residual stream that enters the block;
* **the attention weights** :math:`\operatorname{softmax}(X / \sqrt K, M)` with the causal mask
  :math:`M` (:func:`model.attention.scaled_scores`, :func:`model.attention.softmax`,
  :func:`model.attention.causal_mask`): each row is a distribution over the keys a query may see;
* **how sharp the weights are** when the scores are multiplied by a factor :math:`c` before
  the softmax, :math:`\operatorname{softmax}(c\, X / \sqrt K)`, which is the softmax at
  temperature :math:`\tau = 1/c` (``softmax(x, tau)``): the mean row entropy (nats) against
  :math:`c`, per layer, on the line and on validation windows of the same length.  The model
  itself runs at :math:`c = 1`.

That the pictures are what the model computes is checked, not assumed: the block is rebuilt
from these weights (:func:`rebuild_block`: the heads :math:`P V`, concatenated, through
:func:`model.multihead.output_projection`, the residual sum, then
:func:`model.block.ffn_sublayer`) and compared with the block's own output
(:func:`model.block.transformer_block`); the largest relative difference is in ``results.json``.

Why entropy falls as :math:`c` grows: for a row of scores :math:`x` and
:math:`p = \operatorname{softmax}(c x)`, :math:`\frac{d}{dc} H(p) = -c\,\operatorname{Var}_p(x) \le 0`,
with equality only when the scores the row sees are all equal.  At :math:`c \to 0` each row is
uniform over its visible keys (entropy :math:`\log(t + 1)` at query ``t``); at
:math:`c \to \infty` it puts all its weight on its largest score (entropy 0).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.scipy.special import entr

from experiments.weekly import common
from model.attention import causal_mask, scaled_scores, scores, softmax
from model.block import ffn_sublayer
from model.gpt import embed
from model.multihead import merge_heads, output_projection, split_heads
from model.normalization import layer_norm
from model.validate import add_bias, check_rank

__all__ = ["LINE", "NAME", "SCORE_SCALES", "TITLE", "WEEK", "analyse", "attention_maps", "heatmap_grid",
           "line_tokens", "rebuild_block", "row_offset_share", "run", "token_labels"]

NAME = "attention"
WEEK = 6
TITLE = "Attention as similarity: QKᵀ compares each query with every key, the softmax turns similarities into weights"

#: the line of Shakespeare whose attention is drawn (cut to the model's context)
LINE = "To be, or not to be: that is the question:"
#: the factors c that multiply the scaled scores before the softmax (temperature τ = 1/c)
SCORE_SCALES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: the factors of the tiny run
TINY_SCORE_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
#: validation windows (of the line's length) per unit of scale, for the entropy curve
WINDOWS, TINY_WINDOWS = 32, 4
#: the largest relative difference allowed between the rebuilt block and the block (float32 rounding)
REPRODUCTION_RTOL = 1e-5

_ATTENTION_PARAMS = ("gamma_1", "beta_1", "w_q", "b_q", "w_k", "b_k", "w_v", "b_v")
_BLOCK_PARAMS = (*_ATTENTION_PARAMS, "w_o", "b_o", "gamma_2", "beta_2", "w_1", "b_1", "w_2", "b_2")


def _require(params: Mapping, names: tuple[str, ...]) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a mapping of block parameters (TransformerBlock.params()), "
                        f"got {type(params).__name__}")
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"params: expected the block parameters {list(names)}, missing {missing}")


def _heads(z, w, b, n_heads: int):
    """``z W + b`` split into heads: ``[..., T, D] -> [..., H, T, K]`` (``b`` may be ``None``)."""
    y = jnp.einsum("...td,de->...te", z, w)
    return split_heads(y if b is None else add_bias(y, b), n_heads)


def attention_maps(x, params: Mapping, *, n_heads: int, eps, mask=None, rope=None, tau=1.0) -> dict[str, Any]:
    r"""The queries, keys, values, similarities and attention weights of one pre-LN block.

    .. math:: z = \operatorname{LN}_1(x), \quad q_h = R(z W_Q^{(h)} + b_Q^{(h)}), \quad
              k_h = R(z W_K^{(h)} + b_K^{(h)}), \quad v_h = z W_V^{(h)} + b_V^{(h)}

    .. math:: X_h = q_h k_h^\top, \qquad P_h = \operatorname{softmax}\!\left(\frac{X_h}{\sqrt K\,\tau}, M\right)

    exactly the steps of :func:`model.multihead.multi_head_attention` inside
    :func:`model.block.attention_sublayer` (``tau = 1``), with every intermediate kept.

    Args:
        x: the residual stream entering the block ``[..., T, D]``.
        params: the block's parameters by name (:meth:`model.block.TransformerBlock.params`); the
            attention half ``gamma_1, beta_1, w_q, b_q, w_k, b_k, w_v, b_v`` is read.
        n_heads: H.
        eps: the LayerNorm epsilon.
        mask: optional boolean ``[..., T, T]``; ``True`` attends (the same for every head).
        rope: optional callable on the per-head queries and keys ``[..., H, T, K]`` (``GPT.rope``).
        tau: the softmax temperature (``1/c`` for scores multiplied by ``c``).

    Returns:
        ``q``, ``k``, ``v`` ``[..., H, T, K]``; ``scores`` :math:`X` ``[..., H, T, T]``
        (:func:`model.attention.scores`); ``scaled`` :math:`X/\sqrt K`
        (:func:`model.attention.scaled_scores`); ``weights`` :math:`P` ``[..., H, T, T]``.

    Raises:
        ValueError: missing parameters or bad shapes (from the model functions).
        TypeError: ``params`` that is not a mapping.
    """
    _require(params, _ATTENTION_PARAMS)
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    z = layer_norm(x, params["gamma_1"], params["beta_1"], eps=eps)
    q = _heads(z, params["w_q"], params["b_q"], n_heads)
    k = _heads(z, params["w_k"], params["b_k"], n_heads)
    v = _heads(z, params["w_v"], params["b_v"], n_heads)
    if rope is not None:
        q, k = rope(q), rope(k)
    if mask is not None:
        mask = jnp.expand_dims(mask, -3)  # [..., 1, T, T]: the same mask for every head
    scaled = scaled_scores(q, k)
    return {"q": q, "k": k, "v": v, "scores": scores(q, k), "scaled": scaled,
            "weights": softmax(scaled, tau=tau, mask=mask)}


def rebuild_block(x, weights, v, params: Mapping, *, n_heads: int, eps, activation: str = "relu"):
    r"""The block's output computed from given attention weights: :math:`y = h + \operatorname{FFN}(\operatorname{LN}_2(h))`.

    .. math:: h = x + \operatorname{Concat}_h(P_h v_h)\, W_O + b_O

    With the weights and values of :func:`attention_maps` (``tau = 1``) this is the block's
    own output (:func:`model.block.transformer_block`), so drawing those weights draws what
    the model computes.

    Args:
        x: the residual stream entering the block ``[..., T, D]``.
        weights: attention weights ``[..., H, T, S]``.
        v: values ``[..., H, S, K]``.
        params: the block's parameters by name (:meth:`model.block.TransformerBlock.params`).
        n_heads: H.
        eps: the LayerNorm epsilon.
        activation: the FFN activation (``GPTConfig.activation``).

    Returns:
        ``[..., T, D]``.

    Raises:
        ValueError: missing parameters or shapes that do not fit together.
    """
    _require(params, _BLOCK_PARAMS)
    check_rank("x", x, min_rank=2, axes="[..., T, D]")
    check_rank("weights", weights, min_rank=3, axes="[..., H, T, S]")
    check_rank("v", v, min_rank=3, axes="[..., H, S, K]")
    w_shape, v_shape, x_shape = tuple(jnp.shape(weights)), tuple(jnp.shape(v)), tuple(jnp.shape(x))
    if w_shape[:-2] != v_shape[:-2] or w_shape[-1] != v_shape[-2] or w_shape[-3] != n_heads \
            or w_shape[-2] != x_shape[-2] or v_shape[-1] * n_heads != x_shape[-1]:
        raise ValueError(f"weights and v: expected [..., H, T, S] and [..., H, S, K] with H = {n_heads}, "
                         f"T = {x_shape[-2]} and H*K = D = {x_shape[-1]} (x {x_shape}), "
                         f"got weights {w_shape} and v {v_shape}")
    heads = jnp.einsum("...ts,...sk->...tk", weights, v)  # [..., H, T, K]
    h = x + output_projection(merge_heads(heads), params["w_o"], params["b_o"], n_heads=n_heads)
    return ffn_sublayer(h, params["gamma_2"], params["beta_2"], params["w_1"], params["b_1"], params["w_2"],
                        params["b_2"], eps=eps, activation=activation)


def _row_entropy(p):
    """Entropy (nats) of each row ``[..., S] -> [...]``; masked weights are 0 and add nothing."""
    return jnp.sum(entr(p), axis=-1)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("scales",))
def _analyse(graphdef, params, tokens_BT, *, scales: tuple[float, ...]):
    model = nnx.merge(graphdef, params)
    c = model.config
    t = tokens_BT.shape[-1]
    x = embed(tokens_BT, model.wte[...], model.positions(t))
    mask = causal_mask(t, t)
    rope = model.rope(0, t)
    layers = []
    for block in model.blocks:
        p = block.params()
        maps = attention_maps(x, p, n_heads=c.n_heads, eps=c.eps, mask=mask, rope=rope)
        y = block(x, mask, rope=rope)
        rebuilt = rebuild_block(x, maps["weights"], maps["v"], p, n_heads=c.n_heads, eps=c.eps,
                                activation=c.activation)
        head_mask = jnp.expand_dims(mask, -3)
        # [B, H, C]: mean over the rows of each sequence and head, at each factor c (tau = 1/c)
        entropy = jnp.stack([jnp.mean(_row_entropy(softmax(maps["scaled"], tau=1.0 / s, mask=head_mask)), axis=-1)
                             for s in scales], axis=-1)
        last_row = jnp.stack([softmax(maps["scaled"][0, :, -1, :], tau=1.0 / s, mask=mask[-1]) for s in scales])
        layers.append({"scores": maps["scores"][0], "weights": maps["weights"][0], "entropy": entropy,
                       "last_row": last_row,  # [C, H, S]: the last query of the first sequence
                       "error": jnp.max(jnp.abs(rebuilt - y)), "size": jnp.max(jnp.abs(y))})
        x = y
    uniform = jnp.mean(_row_entropy(softmax(jnp.zeros((t, t), jnp.float32), mask=mask)))
    return layers, uniform


def analyse(model, tokens_BT, scales) -> dict[str, Any]:
    """Attention maps of the first sequence and row entropies at each factor ``c``, every layer, one compiled call.

    Args:
        model: a :class:`model.gpt.GPT`.
        tokens_BT: token ids ``[B, T]`` (``T`` at most the context); sequence 0 is the one whose maps are kept.
        scales: the factors ``c`` (positive numbers).

    Returns:
        ``layers``: per layer ``scores`` and ``weights`` ``[H, T, T]`` of sequence 0, ``entropy``
        ``[B, H, C]`` (mean row entropy in nats of each sequence and head at each ``c``),
        ``last_row`` ``[C, H, T]`` (the weights of sequence 0's last query at each ``c``), ``error``
        (the largest absolute difference between :func:`rebuild_block` and the block) and ``size``
        (the largest absolute entry of the block's output); ``uniform``: the mean entropy of
        causal rows with equal scores (the limit ``c -> 0``).

    Raises:
        ValueError: bad tokens (:func:`model.gpt.check_tokens`) or a factor that is not positive.
    """
    from model.gpt import check_tokens

    scales = tuple(float(s) for s in scales)
    if not scales or not all(np.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scales: expected positive finite factors c, got {scales!r}")
    tokens_BT = np.asarray(tokens_BT)
    check_rank("tokens_BT", tokens_BT, min_rank=2, axes="[B, T]")
    check_tokens(tokens_BT, model.config.vocab_size, model.config.context)
    graphdef, params = nnx.split(model, nnx.Param)
    layers, uniform = jax.device_get(_analyse(graphdef, params, jnp.asarray(tokens_BT, jnp.int32), scales=scales))
    return {"layers": layers, "uniform": float(uniform)}


def line_tokens(tokenizer, context: int, line: str = LINE) -> list[int]:
    """The ids of ``line`` cut to ``context`` tokens.

    Raises:
        ValueError: an empty line.
    """
    ids = list(tokenizer.encode(line))[:context]
    if not ids:
        raise ValueError(f"line: expected at least one token, got {line!r}")
    return ids


def token_labels(tokenizer, ids) -> list[str]:
    """One tick label per token: its text, with a space shown as ␣ and a newline as ⏎."""
    return [tokenizer.decode([i]).replace(" ", "␣").replace("\n", "⏎") for i in ids]


def heatmap_grid(out, stem: str, panels, labels, *, title: str, kind: str) -> list[str]:
    """Save a grid of ``[T, T]`` heatmaps, one row per entry of ``panels``, as ``out/stem.png`` and ``.svg``.

    Args:
        out: the output folder.
        stem: the file name without suffix.
        panels: rows ``(row label, [one [T, T] array per head])``, all rows with the same number of heads.
        labels: the T tick labels (the tokens).
        title: the figure's title.
        kind: ``"scores"`` (a diverging map symmetric about 0 per row, with the causal boundary drawn)
            or ``"weights"`` (0 to 1, the masked upper triangle left blank).

    Returns:
        the two file names.
    """
    if kind not in ("scores", "weights"):
        raise ValueError(f"kind: expected 'scores' or 'weights', got {kind!r}")
    n_rows, n_cols = len(panels), len(panels[0][1])
    t = len(labels)
    side = max(2.6, 0.075 * t + 1.2)
    height = 0.8 * side * n_rows + 0.9  # square panels: the colorbars take part of the width
    fig, axes = common.figure(n_rows, n_cols, figsize=(side * n_cols + 1.2, height), squeeze=False)
    fig.subplots_adjust(top=1.0 - 0.7 / height, bottom=0.5 / height, hspace=0.25, wspace=0.08)
    mask = np.tril(np.ones((t, t), dtype=bool))
    fontsize = 7 if t <= 24 else 5
    for r, (row_label, maps) in enumerate(panels):
        image = None
        if kind == "scores":
            limit = max(float(np.max(np.abs(m))) for m in maps) or 1.0
        for h, m in enumerate(maps):
            ax = axes[r][h]
            m = np.asarray(m)
            if kind == "scores":
                image = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
                # the causal boundary: keys right of the staircase are never used by the model
                ax.step(np.arange(t + 1) - 0.5, np.arange(t + 1) - 0.5, where="post", color="k", lw=0.6)
            else:
                image = ax.imshow(np.ma.masked_where(~mask, m), cmap="viridis", vmin=0.0, vmax=1.0)
            # the tokens label the outer panels only (every panel shares them): fewer texts to lay out
            if r == n_rows - 1:
                ax.set_xticks(range(t), labels, fontsize=fontsize)
            else:
                ax.set_xticks([])
            if h == 0:
                ax.set_yticks(range(t), labels, fontsize=fontsize)
            else:
                ax.set_yticks([])
            ax.tick_params(length=0)
            ax.set_title(f"{row_label}, head {h}", fontsize=9)
            if r == n_rows - 1:
                ax.set_xlabel("key (position s)", fontsize=8)
            if h == 0:
                ax.set_ylabel("query (position t)", fontsize=8)
        fig.colorbar(image, ax=list(axes[r]), shrink=0.8,
                     label="score q·k" if kind == "scores" else "attention weight")
    fig.suptitle(title)
    return common.save_figure(fig, out, stem)


def _figure_temperature(out, m) -> list[str]:
    e = m["entropy"]
    scales = e["scales"]
    fig, axes = common.figure(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    for layer, curve in enumerate(e["windows_per_layer"]):
        ax.plot(scales, curve, "o-", label=f"layer {layer} (validation windows)")
    ax.plot(scales, e["line"], "k--", marker="s", label="all layers, the line")
    ax.axhline(e["uniform"], color="grey", ls=":", label="c → 0: uniform over the visible keys")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("factor c on the scores (softmax temperature τ = 1/c; the model runs at c = 1)")
    ax.set_ylabel("mean entropy of an attention row (nats)")
    ax.set_title("Larger c, sharper weights: entropy falls as c grows")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    row = m["last_row"]
    labels = m["line"]["labels"]
    for i, s in enumerate(scales):
        ax.plot(range(len(labels)), row["weights"][i], "o-", ms=3, label=f"c = {s:g}")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=6)
    ax.set_xlabel("key (position s)")
    ax.set_ylabel("attention weight")
    ax.set_title(f"The last query of the line, layer {row['layer']}, head {row['head']}")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.suptitle("Scaling the scores before the softmax: softmax(c·QKᵀ/√K)")
    return common.save_figure(fig, out, "attention_temperature")


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Draw QKᵀ and the attention weights of the shared GPT on one line; measure entropy against c.

    Args:
        out_dir: folder for ``results.json`` and the figures ``attention_scores``,
            ``attention_weights`` and ``attention_temperature`` (PNG and SVG); the shared GPT is
            trained into (or loaded from) its parent folder.
        scale: a positive int; the entropy curve averages over ``32 * scale`` validation windows.
        seed: chooses the validation windows.
        progress: report what it does (and the shared GPT's training, the first time).
        tiny: the tiny shared GPT, 4 windows and five factors: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``line``, ``maps`` (first and last layer),
        ``reproduction``, ``entropy``, ``last_row``, ``observations``, ``claims`` (each with ``holds``)
        and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    from experiments.weekly.shared import shared_gpt

    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    model, tokenizer, data = shared_gpt(Path(out).parent, tiny=tiny, progress=progress)
    c = model.config
    scales = TINY_SCORE_SCALES if tiny else SCORE_SCALES
    n_windows = TINY_WINDOWS if tiny else WINDOWS * scale

    ids = line_tokens(tokenizer, c.context)
    t = len(ids)
    windows, _ = next(data.iter_eval_batches("val", n_windows, t, 1, seed))
    tokens = np.concatenate([np.asarray([ids], np.int32), windows.astype(np.int32)])
    common.say(NAME, progress, f"{c.n_layers} layers x {c.n_heads} heads on a line of {t} tokens and "
                               f"{n_windows} windows, {len(scales)} factors c")
    with jax.default_matmul_precision("highest"):
        a = analyse(model, tokens, scales)
    layers = a["layers"]
    last = c.n_layers - 1
    labels = token_labels(tokenizer, ids)

    entropy_line = [float(np.mean([np.mean(lay["entropy"][0], axis=0)[i] for lay in layers]))
                    for i in range(len(scales))]
    windows_per_layer = [np.mean(lay["entropy"][1:], axis=(0, 1)).tolist() for lay in layers]
    per_head = [np.mean(lay["entropy"][1:], axis=0).tolist() for lay in layers]  # [L][H][C]
    windows_mean = np.mean(windows_per_layer, axis=0).tolist()
    at_one = min(range(len(scales)), key=lambda i: abs(np.log(scales[i])))  # the model's own c = 1
    sharpest = min(range(c.n_heads), key=lambda h: layers[last]["entropy"][0][h][at_one])
    rel_error = max(float(lay["error"]) / max(float(lay["size"]), 1e-30) for lay in layers)

    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "seed": seed, "tiny": tiny, "backend": jax.default_backend(),
                  "model": c.to_dict(), "windows": n_windows, "window_length": t,
                  "entropy_unit": "nats",
                  "scores": "X = QKᵀ per head from LN_1(x) W_Q + b_Q and LN_1(x) W_K + b_K (model.attention.scores)",
                  "weights": "softmax(c·X/√K) under the causal mask (model.attention.softmax, tau = 1/c)"},
        "line": {"text": tokenizer.decode(ids), "tokens": ids, "labels": labels},
        "maps": {str(layer): {"layer": layer, "scores": np.asarray(layers[layer]["scores"]).tolist(),
                              "weights": np.asarray(layers[layer]["weights"]).tolist()}
                 for layer in sorted({0, last})},
        "reproduction": {"max_relative_difference": rel_error, "rtol": REPRODUCTION_RTOL,
                         "per_layer_max_abs_difference": [float(lay["error"]) for lay in layers],
                         "note": "rebuild_block(weights drawn here) vs the block's own output "
                                 "(model.block.transformer_block), relative to the largest output entry"},
        "entropy": {"scales": list(scales), "line": entropy_line, "windows_per_layer": windows_per_layer,
                    "windows_mean": windows_mean, "windows_per_layer_head": per_head, "uniform": a["uniform"],
                    "note": "mean over rows (every query position, row 0 included: its entropy is always 0), "
                            "heads and sequences"},
        "last_row": {"layer": last, "head": int(sharpest), "scales": list(scales),
                     "weights": [np.asarray(layers[last]["last_row"][i][sharpest]).tolist()
                                 for i in range(len(scales))]},
    }
    shares = {layer["layer"]: [row_offset_share(x) for x in layer["scores"]] for layer in m["maps"].values()}
    m["observations"] = [
        {"observation": "part of each raw similarity map is constant along rows (the visible keys of one query): "
                        "the softmax ignores such offsets, so that part of QKᵀ never changes a weight",
         "evidence": {"share of the variance of the visible scores that is row offsets, per layer and head":
                      shares}},
        {"observation": "the model runs at c = 1; the mean row entropy there, per layer (validation windows)",
         "evidence": {"entropy at c = 1": [curve[at_one] for curve in windows_per_layer],
                      "uniform (c → 0)": a["uniform"]}},
    ]
    m["claims"] = _claims(m)
    common.say(NAME, progress, "drawing figures")
    m["figures"] = (
        heatmap_grid(out, "attention_scores",
              [(f"layer {layer}", m["maps"][str(layer)]["scores"]) for layer in sorted({0, last})], labels,
              title=f"Raw similarities QKᵀ per head, first and last layer: “{m['line']['text']}” "
                    f"(right of the staircase: future keys, masked out)", kind="scores")
        + heatmap_grid(out, "attention_weights",
                [(f"layer {layer}", m["maps"][str(layer)]["weights"]) for layer in sorted({0, last})], labels,
                title=f"Attention weights softmax(QKᵀ/√K) under the causal mask: “{m['line']['text']}”",
                kind="weights")
        + _figure_temperature(out, m))
    common.write_results(out, m)
    return m


def row_offset_share(x) -> float:
    r"""The share of the variance of the visible (causal) scores ``x [T, T]`` that is constant along rows.

    Row ``t`` sees keys ``0..t``; the row offset is the mean of those scores.  Adding a constant
    to a row leaves its softmax unchanged, so this share of the raw similarities (for example
    :math:`q_t \cdot b_K`, the same for every key) has no effect on the attention weights.

    >>> row_offset_share(np.array([[1.0, 9.0], [2.0, 2.0]]))  # row 0 sees one key; row 1 is constant
    1.0
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"x: expected square scores [T, T], got shape {x.shape}")
    rows = [x[t, :t + 1] for t in range(x.shape[0])]
    visible = np.concatenate(rows)
    total = float(np.var(visible))
    if total == 0.0:
        return 1.0
    within = float(np.var(np.concatenate([r - r.mean() for r in rows])))
    return 1.0 - within / total


def _decreasing(values) -> bool:
    return all(b < a for a, b in pairwise(values))


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of the lesson, each with the measured evidence and whether it holds."""
    e, r = m["entropy"], m["reproduction"]
    per_head = e["windows_per_layer_head"]
    return [
        {"claim": "the heatmaps are what the model computes: the block rebuilt from these weights reproduces "
                  f"its output (largest difference within {r['rtol']:g} of the largest output entry)",
         "holds": r["max_relative_difference"] <= r["rtol"],
         "evidence": {"max relative difference": r["max_relative_difference"]}},
        {"claim": "multiplying the scores by a larger c sharpens the weights: the mean row entropy decreases "
                  "monotonically as c grows (on the line, and in every layer and head on validation windows)",
         "holds": _decreasing(e["line"]) and _decreasing(e["windows_mean"])
                  and all(_decreasing(head) for layer in per_head for head in layer),
         "evidence": {"c": e["scales"], "line": e["line"], "windows, per layer": e["windows_per_layer"]}},
        {"claim": "the entropy stays below that of uniform weights over the visible keys (the c → 0 limit)",
         "holds": max(e["line"] + e["windows_mean"]) < e["uniform"],
         "evidence": {"uniform": e["uniform"], "largest measured": max(e["line"] + e["windows_mean"])}},
    ]
