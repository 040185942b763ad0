r"""Week 2: published transformers compared through the registered formulas, math first.

Every number here is a registered SymPy statement evaluated at a published architecture:
``gpt.param_count`` (the parameters of the GPT of ``model/gpt.py``)

.. math:: N = VD + [\text{learned}]\,TD + L\,(4D^2 + 2DF + 2D + [\text{biases}](F + 7D)) + D
          + [\text{biases}]\,D + [\text{untied}]\,DV

and ``cost.train_flops`` (matrix-multiply FLOPs per token of one forward and backward pass)

.. math:: C = 3\,\bigl(L\,(8D^2 + 4DF + 4TD) + 2DV\bigr).

The formulas describe one architecture: a 2-matrix GELU FFN, full multi-head keys and
values, LayerNorm, an embedding and an optional separate head.  Where a published model
differs, the difference is written down as a SymPy correction term (a third FFN matrix
for SwiGLU, narrower :math:`W_K, W_V` for grouped-query attention, BERT's token-type
table and pooler), evaluated at the same shapes, and the corrected count is compared with
the published one.  A correction to the parameters of a weight matrix applied at every
position changes :math:`C` by 6 FLOPs per token per weight (``cost.train_flops``:
:math:`C = 6 N_\text{matmul} + 12LTD`).

:data:`ARCHITECTURES` holds the published shapes and counts with their sources,
:data:`CORRECTIONS` the terms;
:func:`evaluate` computes one row; :func:`run` writes ``results.json``, ``table.md`` and
the figure ``comparison_flops`` (training FLOPs per token against parameters, log-log).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

import derivations
from derivations.cost import approximation
from derivations.gpt import GPT2_SIZES, N, biases, learned_positions, tie_embeddings
from derivations.symbolic import D, F, H, L, T, V
from experiments.weekly import common

__all__ = ["ARCHITECTURES", "CORRECTIONS", "NAME", "TITLE", "WEEK", "Architecture", "Correction", "Published",
           "evaluate", "markdown_table", "run"]

NAME = "comparison"
WEEK = 2
TITLE = "Published transformers through the registered formulas: parameters and training FLOPs per token"

RADFORD_2019 = 'Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019'
BROWN_2020 = 'Brown et al., "Language Models are Few-Shot Learners" (GPT-3), NeurIPS 2020'
TOUVRON_2023A = 'Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023'
TOUVRON_2023B = 'Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023'
AINSLIE_2023 = ('Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head '
                'Checkpoints", 2023')
SHAZEER_2020 = 'Shazeer, "GLU Variants Improve Transformer", 2020'
ZHANG_2019 = 'Zhang and Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019'
DEVLIN_2019 = ('Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language '
               'Understanding", NAACL 2019')

#: key/value heads of grouped-query attention (H_kv = H is multi-head attention, 1 is multi-query)
H_kv = sp.Symbol("H_kv", integer=True, positive=True)
#: rows of BERT's token-type (segment) embedding table
n_types = sp.Symbol("n_types", integer=True, positive=True)


@dataclass(frozen=True, kw_only=True)
class Published:
    """A parameter count as published, with where it is published.

    Attributes:
        value: the count (a rounded figure such as 7e9 when the source rounds).
        text: the count as the source writes it ("7B", "124,439,808").
        source: paper and table, or the released checkpoint.
        exact: whether ``value`` is an exact count of parameters (a checkpoint) or a rounded figure.
    """

    value: int
    text: str
    source: str
    exact: bool


@dataclass(frozen=True, kw_only=True)
class Correction:
    """A difference between a published architecture and the one the registered formulas describe.

    Attributes:
        key: a short name (``"swiglu"``); the explanations refer to a correction's value by it.
        what: the difference in words.
        parameters: SymPy expression added to ``gpt.param_count`` (in the axis letters, ``H_kv``, ``n_types``).
        flops: SymPy expression added to ``cost.train_flops`` (FLOPs per token; 0 when no product changes).
    """

    key: str
    what: str
    parameters: sp.Expr
    flops: sp.Expr | int = 0


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """A published architecture: its shapes, the formula's flags, published counts and corrections.

    Attributes:
        name: a short id (``"llama-2-7b"``).
        label: how the figure and table name it.
        V, T, D, H, F, L: vocabulary, context, width, heads, FFN width, layers.
        tie_embeddings, learned_positions, biases: the flags of ``gpt.param_count`` (0 or 1).
        extra: values of the correction symbols (``H_kv``, ``n_types``).
        shapes_source: where the shapes come from.
        published: the published counts; the first exact one (else the first) is the reference.
        corrections: what the formulas do not describe, as terms.
        explanation: the comparison in words.
    """

    name: str
    label: str
    V: int
    T: int
    D: int
    H: int
    F: int
    L: int
    tie_embeddings: int
    learned_positions: int
    biases: int
    extra: Mapping[str, int] = field(default_factory=dict)
    shapes_source: str
    published: tuple[Published, ...]
    corrections: tuple[Correction, ...] = ()
    explanation: str


_SWIGLU_WEIGHTS = L * D * F
_GQA_WEIGHTS = -2 * L * D * (D - H_kv * D / H)

#: the differences between published architectures and the formulas, as terms in the axis letters
CORRECTIONS: dict[str, Correction] = {c.key: c for c in (
    Correction(
        key="swiglu",
        what="SwiGLU FFN: three matrices W_1, W_3 [D, F] and W_2 [F, D] (the formula's GELU FFN has two, "
             "feedforward.param_count 2DF + F + D); +LDF parameters, each in a product at every position: "
             "+6LDF FLOPs per token",
        parameters=_SWIGLU_WEIGHTS, flops=6 * _SWIGLU_WEIGHTS),
    Correction(
        key="gqa",
        what="grouped-query attention: H_kv key/value heads of width K = D/H, so W_K and W_V are [D, H_kv·D/H] "
             "instead of [D, D] (multihead.param_count 4D² + 4D); −2LD(D − H_kv·D/H) parameters and 6 FLOPs "
             "per token fewer for each (the T × T attention products are unchanged: every query head still "
             "attends over T keys of width K)",
        parameters=_GQA_WEIGHTS, flops=6 * _GQA_WEIGHTS),
    Correction(
        key="rmsnorm",
        what="RMSNorm keeps a gain and drops the shift: with biases = 0 the formula already counts a gain of D "
             "per norm (2D per block, D for the final norm), so no term",
        parameters=sp.Integer(0)),
    Correction(
        key="token_types",
        what="token-type (segment A/B) embeddings [n_types, D], added to the input like W_P: +n_types·D "
             "parameters, a lookup (no FLOPs in products)",
        parameters=n_types * D),
    Correction(
        key="pooler",
        what="the pooler, tanh([CLS] W + b) with W [D, D] and b [D]: +D² + D parameters, one product per "
             "sequence: +6D²/T FLOPs per token",
        parameters=D**2 + D, flops=6 * D**2 / T),
    Correction(
        key="post_ln",
        what="post-LN (LayerNorm after each residual addition) and one LayerNorm after the embedding instead of "
             "the final LN_f: the same 2·2D per block and 2D once, so no term",
        parameters=sp.Integer(0)),
)}


def _gpt2(name: str, label: str, d: int, n_layers: int, n_heads: int, paper: str, folder: str) -> Architecture:
    released = GPT2_SIZES[name][2]
    return Architecture(
        name=name, label=label, V=50257, T=1024, D=d, H=n_heads, F=4 * d, L=n_layers,
        tie_embeddings=1, learned_positions=1, biases=1,
        shapes_source=f"{RADFORD_2019}, table 2 (L, D) and section 2.3 (V = 50,257, T = 1024); F = 4D and "
                      "H = D/64 as in the released checkpoint's hparams.json",
        published=(
            Published(value=released, text=f"{released:,}", exact=True,
                      source=f"the released checkpoint (openai/gpt-2 model {folder}; Hugging Face {name}): the "
                             "sum of its tensor sizes (derivations.gpt.GPT2_SIZES)"),
            Published(value=int(float(paper.rstrip("M")) * 1e6), text=paper, exact=False,
                      source=f"{RADFORD_2019}, table 2"),
        ),
        explanation=(f"GPT-2 is the architecture the formula describes (pre-LN, GELU FFN with F = 4D, biases, "
                     f"learned positions, head tied to W_E), and the formula gives the released checkpoint's "
                     f"{released:,} exactly. The paper's table 2 lists {paper}, smaller than the checkpoint it "
                     f"released (the repository names the model {folder}); the paper does not say how its figure "
                     f"was counted."),
    )


def _architectures() -> tuple[Architecture, ...]:
    c = CORRECTIONS
    llama_2 = (f"{TOUVRON_2023B}, table 1 (context T = 4096; grouped-query attention for 70B) and section 2.2 "
               f"(the architecture of LLaMA 1: pre-normalisation with RMSNorm, SwiGLU, rotary positions)")
    return (
        _gpt2("gpt2", "GPT-2 small", 768, 12, 12, "117M", "124M"),
        _gpt2("gpt2-medium", "GPT-2 medium", 1024, 24, 16, "345M", "355M"),
        _gpt2("gpt2-large", "GPT-2 large", 1280, 36, 20, "762M", "774M"),
        _gpt2("gpt2-xl", "GPT-2 XL", 1600, 48, 25, "1542M", "1558M"),
        Architecture(
            name="gpt3-175b", label="GPT-3 175B", V=50257, T=2048, D=12288, H=96, F=4 * 12288, L=96,
            tie_embeddings=1, learned_positions=1, biases=1,
            shapes_source=(f"{BROWN_2020}, table 2.1 (n_layers 96, d_model 12288, n_heads 96, d_ff = 4 d_model, "
                           "n_ctx 2048); V = 50,257, GPT-2's BPE vocabulary (section 2.1: the same model and "
                           "architecture as GPT-2; the paper states no vocabulary size)"),
            published=(Published(value=175_000_000_000, text="175.0B", exact=False,
                                 source=f"{BROWN_2020}, table 2.1 (n_params)"),),
            explanation=("GPT-3 uses GPT-2's architecture (the paper adds alternating dense and locally banded "
                         "sparse attention layers, which hold no parameters but skip some of the T × T scores "
                         "that the FLOPs formula counts). With a tied head, as in GPT-2, the formula gives "
                         "{formula}, {formula_diff} from the published 175.0B; the paper rounds to a tenth of a "
                         "billion and does not say whether the head is tied: an untied head would add VD = "
                         "{vd} ({untied} in all, {untied_diff}). Either way the blocks' 12LD² = {kaplan} are "
                         "{kaplan_share} of the count."),
        ),
        Architecture(
            name="llama-2-7b", label="LLaMA-2 7B", V=32000, T=4096, D=4096, H=32, F=11008, L=32,
            tie_embeddings=0, learned_positions=0, biases=0, extra={"H_kv": 32},
            shapes_source=(f"{llama_2}; D = 4096, H = 32, L = 32 from {TOUVRON_2023A}, table 2 (the 7B model has "
                           "the same shapes); F = 11008 and V = 32,000 from the released checkpoint's config.json "
                           "(intermediate_size, vocab_size)"),
            published=(
                Published(value=6_738_415_616, text="6,738,415,616", exact=True,
                          source="the released checkpoint meta-llama/Llama-2-7b-hf: the sum of its tensor sizes "
                                 "(reported by Hugging Face transformers); not stated in the paper"),
                Published(value=7_000_000_000, text="7B", exact=False, source=f"{TOUVRON_2023B}, table 1"),
                Published(value=6_700_000_000, text="6.7B", exact=False,
                          source=f"{TOUVRON_2023A}, table 2 (LLaMA 7B, the same shapes)"),
            ),
            corrections=(c["swiglu"], c["rmsnorm"]),
            explanation=("LLaMA-2 7B is a pre-norm decoder with RMSNorm, no biases, rotary positions (no "
                         "position table: learned_positions = 0) and an untied head (tie_embeddings = 0), all of "
                         "which the formula's flags express. What it does not express is the SwiGLU FFN "
                         f"({SHAZEER_2020}): gate and up projections W_1, W_3 [D, F] and W_2 [F, D], three "
                         "matrices where the formula counts two. Uncorrected the formula gives {formula} "
                         "({formula_diff}); adding LDF = {swiglu} gives {corrected}, {corrected_diff} from the "
                         "released checkpoint. F = 11008 is about 2/3 · 4D rounded up to a multiple of 256, so "
                         "that the three matrices hold about as many weights as a 4D GELU FFN's two."),
        ),
        Architecture(
            name="llama-2-70b", label="LLaMA-2 70B", V=32000, T=4096, D=8192, H=64, F=28672, L=80,
            tie_embeddings=0, learned_positions=0, biases=0, extra={"H_kv": 8},
            shapes_source=(f"{llama_2}; D = 8192, H = 64, H_kv = 8, L = 80, F = 28672 and V = 32,000 from the "
                           "released checkpoint's config.json (hidden_size, num_attention_heads, "
                           "num_key_value_heads, num_hidden_layers, intermediate_size, vocab_size)"),
            published=(
                Published(value=68_976_648_192, text="68,976,648,192", exact=True,
                          source="the released checkpoint meta-llama/Llama-2-70b-hf: the sum of its tensor sizes "
                                 "(reported by Hugging Face transformers); not stated in the paper"),
                Published(value=70_000_000_000, text="70B", exact=False, source=f"{TOUVRON_2023B}, table 1"),
            ),
            corrections=(c["swiglu"], c["gqa"], c["rmsnorm"]),
            explanation=("As LLaMA-2 7B (RMSNorm, no biases, rotary positions, untied head, SwiGLU: +LDF = "
                         "{swiglu}), and grouped-query attention "
                         f"({AINSLIE_2023}): 64 query heads share 8 key/value heads of width 128, so W_K and W_V "
                         "are [8192, 1024] rather than [8192, 8192], −2LD(D − H_kv·D/H) = {gqa}. Uncorrected the "
                         "formula gives {formula} ({formula_diff}); corrected, {corrected} ({corrected_diff} from "
                         "the released checkpoint). The name rounds 69.0B up to 70B."),
        ),
        Architecture(
            name="bert-base", label="BERT-base", V=30522, T=512, D=768, H=12, F=3072, L=12,
            tie_embeddings=1, learned_positions=1, biases=1, extra={"n_types": 2},
            shapes_source=(f"{DEVLIN_2019}, section 3 (L = 12, H = 768, A = 12) and appendix A.2 (sequences of "
                           "at most 512 tokens); F = 4·768, V = 30,522 (WordPiece) and 2 token types from the "
                           "released bert-base-uncased config.json"),
            published=(
                Published(value=109_482_240, text="109,482,240", exact=True,
                          source="the released checkpoint bert-base-uncased (the encoder with its pooler, "
                                 "Hugging Face BertModel): the sum of its tensor sizes; not stated in the paper"),
                Published(value=110_000_000, text="110M", exact=False, source=f"{DEVLIN_2019}, section 3"),
            ),
            corrections=(c["token_types"], c["pooler"], c["post_ln"]),
            explanation=("BERT is an encoder: no causal mask, which changes no count. Its embedding and blocks "
                         "have the formula's shapes (learned positions, GELU FFN with F = 4D, biases), and its "
                         "pre-training MLM decoder is tied to W_E (tie_embeddings = 1; the MLM and NSP heads are "
                         "not part of the 110M). Post-LN moves the LayerNorms without changing their count. The "
                         "formula gives {formula} ({formula_diff}); BERT adds a token-type table [2, D] = "
                         "{token_types} and the pooler's W [D, D] and b [D] = {pooler}: {corrected}, "
                         "{corrected_diff} from the released checkpoint, which the paper rounds to 110M. The FLOPs "
                         "count an LM head at every position, as a GPT has; BERT's pre-training applies its MLM "
                         "head only at the 15 % masked positions."),
        ),
    )


#: the published architectures compared, in the order of the table
ARCHITECTURES: tuple[Architecture, ...] = _architectures()


def _values(a: Architecture) -> dict[sp.Symbol, int]:
    """The statements' symbols at ``a``: V, T, D, H, F, L, the three flags and the correction symbols."""
    values = {V: a.V, T: a.T, D: a.D, H: a.H, F: a.F, L: a.L,
              tie_embeddings: a.tie_embeddings, learned_positions: a.learned_positions, biases: a.biases}
    for name, value in a.extra.items():
        values[{"H_kv": H_kv, "n_types": n_types}[name]] = value
    return values


def _whole(expr, values, what: str) -> int:
    value = sp.sympify(expr).subs(values)
    if not value.is_Integer:
        raise ValueError(f"{what}: expected a whole number at {values}, got {value}")
    return int(value)


def _relative(a: int, b: int) -> float:
    return (a - b) / b


def _percent(x: float) -> str:
    return f"{x:+.2%}" if abs(x) >= 5e-5 else ("exact" if x == 0 else f"{x:+.4%}")


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def evaluate(a: Architecture) -> dict[str, Any]:
    """One row: the registered formulas at ``a``, the corrections, the corrected counts and the comparison.

    Returns:
        a dict with ``name``, ``label``, ``shapes`` (V, T, D, H, F, L, flags and extras) and
        ``shapes_source``, ``formula`` (``parameters`` from ``gpt.param_count`` and
        ``train_flops_per_token`` from ``cost.train_flops``), ``corrections`` (each ``what``, the
        SymPy terms as text and their values), ``corrected`` (``parameters``,
        ``train_flops_per_token``, the estimate ``six_n_plus_12ltd`` and ``flops_over_6n``), ``published`` (each
        ``value``, ``text``, ``source``, ``exact``, and the relative difference of the formula and
        of the corrected count from it), ``reference`` (the published count compared against),
        ``difference`` and ``explanation``.
    """
    values = _values(a)
    n_formula = _whole(derivations.get("gpt.param_count").statement.rhs, values, f"{a.name}: gpt.param_count")
    c_formula = _whole(derivations.get("cost.train_flops").statement.rhs, values, f"{a.name}: cost.train_flops")
    corrections = []
    for c in a.corrections:
        corrections.append({"key": c.key, "what": c.what,
                            "parameters_term": str(c.parameters), "flops_term": str(c.flops),
                            "parameters": _whole(c.parameters, values, f"{a.name}: {c.what}"),
                            "flops_per_token": _whole(c.flops, values, f"{a.name}: {c.what}")})
    n = n_formula + sum(c["parameters"] for c in corrections)
    flops = c_formula + sum(c["flops_per_token"] for c in corrections)
    reference = next((p for p in a.published if p.exact), a.published[0])
    published = [{"value": p.value, "text": p.text, "source": p.source, "exact": p.exact,
                  "formula_difference": _relative(n_formula, p.value), "corrected_difference": _relative(n, p.value)}
                 for p in a.published]
    untied = _whole(derivations.get("gpt.param_count").statement.rhs, {**values, tie_embeddings: 0},
                    f"{a.name}: untied")
    kaplan = _whole(12 * L * D**2, values, f"{a.name}: 12LD²")
    words = {
        "formula": f"{n_formula:,}", "corrected": f"{n:,}",
        "formula_diff": _percent(_relative(n_formula, reference.value)),
        "corrected_diff": _percent(_relative(n, reference.value)),
        "vd": f"{a.V * a.D:,}", "untied": f"{untied:,}", "untied_diff": _percent(_relative(untied, reference.value)),
        "kaplan": f"{kaplan:,}", "kaplan_share": f"{kaplan / n:.1%}",
        **{c.key: f"{v['parameters']:+,}" for c, v in zip(a.corrections, corrections, strict=True)},
    }
    return {
        "name": a.name, "label": a.label,
        "shapes": {"V": a.V, "T": a.T, "D": a.D, "H": a.H, "F": a.F, "L": a.L,
                   "tie_embeddings": a.tie_embeddings, "learned_positions": a.learned_positions,
                   "biases": a.biases, **dict(a.extra)},
        "shapes_source": a.shapes_source,
        "formula": {"parameters": n_formula, "train_flops_per_token": c_formula},
        "corrections": corrections,
        "corrected": {"parameters": n, "train_flops_per_token": flops,
                      "six_n_plus_12ltd": _whole(approximation, {**values, N: n}, f"{a.name}: 6N + 12LTD"),
                      "flops_over_6n": flops / _whole(approximation.subs(T, 0), {N: n}, f"{a.name}: 6N")},
        "published": published,
        "reference": {"value": reference.value, "text": reference.text, "source": reference.source,
                      "exact": reference.exact},
        "difference": {"formula": n_formula - reference.value,
                       "formula_relative": _relative(n_formula, reference.value),
                       "corrected": n - reference.value, "corrected_relative": _relative(n, reference.value)},
        "explanation": a.explanation.format(**words),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`evaluate` as a markdown table, followed by one explanation per model and the sources."""
    head = ("| model | L | D | H | F | V | T | N, gpt.param_count | corrections | N corrected | published "
            "| formula vs published | corrected vs published | C per token, cost.train_flops | C corrected |")
    lines = [head, "|" + "---|" * 15]
    for r in rows:
        s, ref = r["shapes"], r["reference"]
        fixes = "; ".join(f"{c['parameters']:+,}" for c in r["corrections"] if c["parameters"]) or "none"
        published = " / ".join(p["text"] for p in r["published"])
        lines.append(
            f"| {r['label']} | {s['L']} | {s['D']} | {s['H']} | {s['F']} | {s['V']} | {s['T']} "
            f"| {r['formula']['parameters']:,} | {fixes} | {r['corrected']['parameters']:,} | {published} "
            f"| {_percent(r['difference']['formula_relative'])} vs {ref['text']} "
            f"| {_percent(r['difference']['corrected_relative'])} vs {ref['text']} "
            f"| {r['formula']['train_flops_per_token']:.4g} | {r['corrected']['train_flops_per_token']:.4g} |")
    lines += ["", "## Explanations", ""]
    for r in rows:
        lines.append(f"- **{r['label']}**: {r['explanation']}")
        for c in r["corrections"]:
            lines.append(f"  - correction `{c['parameters_term']}` = {c['parameters']:+,} parameters: {c['what']}")
    lines += ["", "## Sources", ""]
    for r in rows:
        lines.append(f"- **{r['label']}**: shapes: {r['shapes_source']}.")
        for p in r["published"]:
            lines.append(f"  - {p['text']}: {p['source']}.")
    return "\n".join(lines) + "\n"


#: where a label sits relative to its point (offset in points, horizontal alignment), where the default overlaps
_LABEL_PLACES = {"bert-base": ((-7, 3), "right")}


def _figure(out, rows) -> list[str]:
    fig, (ax, ratio_ax) = common.figure(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    xs = [r["corrected"]["parameters"] for r in rows]
    ys = [r["corrected"]["train_flops_per_token"] for r in rows]
    ax.loglog(xs, ys, "o", color="C0", label="corrected count and FLOPs (formula + correction terms)")
    moved = [r for r in rows if r["formula"]["parameters"] != r["corrected"]["parameters"]]
    if moved:
        ax.loglog([r["formula"]["parameters"] for r in moved], [r["formula"]["train_flops_per_token"] for r in moved],
                  "o", mfc="none", color="C1", label="registered formula alone (where corrected)")
        for r in moved:
            ax.plot([r["formula"]["parameters"], r["corrected"]["parameters"]],
                    [r["formula"]["train_flops_per_token"], r["corrected"]["train_flops_per_token"]],
                    color="C1", lw=0.8, alpha=0.7)
    line_x = [min(xs) / 2, max(xs) * 2]
    six_n = approximation.subs(T, 0)  # 6N: the estimate without its attention term 12LTD
    ax.loglog(line_x, [float(six_n.subs(N, x)) for x in line_x], "k--", lw=1, label="6N (Kaplan et al.)")
    ratios = [r["corrected"]["flops_over_6n"] for r in rows]
    ratio_ax.semilogx(xs, ratios, "o", color="C0")
    ratio_ax.axhline(1.0, color="k", ls="--", lw=1)
    for r, x, y, q in zip(rows, xs, ys, ratios, strict=True):
        offset, align = _LABEL_PLACES.get(r["name"], ((6, -10), "left"))
        ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=offset, ha=align, fontsize=8)
        ratio_ax.annotate(r["label"], (x, q), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training FLOPs per token C (forward + backward matrix products)")
    ax.set_title("Training FLOPs per token vs parameters\n(gpt.param_count, cost.train_flops at the published shapes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ratio_ax.set_xlabel("parameters N")
    ratio_ax.set_ylabel("C / 6N")
    ratio_ax.set_title("How far C is from 6N: the attention products 12LTD\nadd, parameters in no product subtract")
    ratio_ax.grid(True, which="both", alpha=0.3)
    return common.save_figure(fig, out, "comparison_flops")


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Evaluate the registered formulas at every published architecture; write results, table and figure.

    The computation is exact arithmetic on SymPy statements (well under a second once the
    registry is imported), so ``scale``, ``seed`` and ``tiny`` change nothing; they are
    accepted (and ``scale`` checked) as every experiment's are.

    Args:
        out_dir: folder for ``results.json``, ``table.md`` and ``comparison_flops.png``/``.svg``.
        scale: a positive int (no effect).
        seed: no effect (nothing is random).
        progress: print one line per model on stderr.
        tiny: no effect (the run is already seconds).

    Returns:
        what ``results.json`` holds: ``statements`` (the two registered right-hand sides),
        ``rows`` (one :func:`evaluate` per architecture), ``table`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    common.check_scale(scale)
    out = common.output_dir(out_dir)
    rows = []
    for a in ARCHITECTURES:
        rows.append(evaluate(a))
        if progress:
            r = rows[-1]
            print(f"{NAME}: {a.label:<13} N = {r['corrected']['parameters']:>17,} "
                  f"({_percent(r['difference']['corrected_relative'])} vs {r['reference']['text']})",
                  file=sys.stderr, flush=True)
    table = markdown_table(rows)
    (out / "table.md").write_text(f"# {TITLE}\n\n{table}", encoding="utf-8")
    results = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "statements": {key: {"statement": str(derivations.get(key).statement.rhs),
                             "title": derivations.get(key).title}
                       for key in ("gpt.param_count", "cost.train_flops")},
        "rows": rows,
        "table": "table.md",
        "figures": _figure(out, rows),
    }
    common.write_results(out, results)
    return results
