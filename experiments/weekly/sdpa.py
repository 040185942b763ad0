r"""Week 7: why scaled dot-product attention divides by :math:`\sqrt d`, measured.

For head widths :math:`d = 4, 8, \dots, 1024` and queries and keys with i.i.d.
:math:`\mathcal N(0, 1)` entries this experiment measures, with the model's own functions,

* the variance of the raw scores :math:`q \cdot k` (:func:`model.attention.scores`), which the
  registered derivation ``attention.scaled_scores`` says is :math:`d`, and of the scaled scores
  :math:`q \cdot k / \sqrt d` (:func:`model.attention.scaled_scores`), which it says is 1;
* the mean entropy (in nats) of the softmax rows over :math:`S` keys
  (:func:`model.attention.softmax`) with and without :math:`1/\sqrt d`: without it the rows
  saturate towards one-hot (entropy :math:`\to 0`) as :math:`d` grows;
* the gradient that reaches :math:`Q` and :math:`K` through the softmax: ``jax.grad`` of a
  fixed random linear readout :math:`\sum R \circ \operatorname{attn}(Q, K, V)` through
  :func:`model.attention.sdpa`, and through the same attention without the scale
  (:func:`model.attention.scores` then :func:`model.attention.softmax`).  The median row norm
  :math:`\lVert \partial L / \partial q_t \rVert` stays flat with the scale and vanishes
  without it; the mean does not vanish, because the few rows whose two largest scores
  nearly tie still receive large gradients (saturation makes the gradient sparse and spiky);
* one causal attention map (:func:`model.attention.causal_mask`) at the largest width,
  scaled and unscaled.

The samples are drawn once at the largest width with NumPy (seeded) and sliced, so every
width sees the same numbers, and the whole sweep is one compiled function (:func:`sweep`).
"""

from __future__ import annotations

import functools
import itertools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import entr

from experiments.weekly import common
from model.attention import causal_mask, scaled_scores, scores, sdpa, softmax

__all__ = ["HEAD_WIDTHS", "NAME", "TINY_HEAD_WIDTHS", "TITLE", "WEEK", "causal_weights", "measure", "run", "sweep"]

NAME = "sdpa"
WEEK = 7
TITLE = "Scaled dot-product attention: without 1/√d the scores grow like √d and the softmax saturates"

#: the head widths d of the default run (powers of 2)
HEAD_WIDTHS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: the head widths of the tiny run
TINY_HEAD_WIDTHS = (4, 64, 1024)
#: keys per row (S) and queries per sequence (T); the entropy of a uniform row is log S
KEYS = 64
#: sequences per width at scale 1 (and at tiny)
SEQUENCES, TINY_SEQUENCES = 64, 8
#: width of the values and of the readout (the same at every d, so the gradients compare)
VALUE_WIDTH = 16
#: positions of the causal attention map
MAP_POSITIONS = 16
#: relative band within which the measured variances must match the derivation (d and 1)
VARIANCE_BAND = 0.1
#: "roughly flat": the scaled entropy may move by at most this fraction of log S across widths
FLAT_ENTROPY = 0.05
#: "roughly flat": the scaled median gradient may change by at most this factor across widths
FLAT_GRADIENT = 1.5
#: "vanishes": the unscaled median gradient at the largest width is below this fraction of that at the smallest
VANISHED = 0.1


#: what the measurements show beyond the claims, for the lesson
NOTES = (
    ("Without 1/√d the median gradient first grows with d (the scores, and so their gradients, are √d larger) "
     "and then collapses once the rows saturate; with it the gradient is the same at every width."),
    ("The mean gradient without 1/√d does not vanish: the rows whose two largest scores nearly tie still get "
     "large gradients, and the gap between them grows only like √d, so the gradient becomes sparse and spiky "
     "rather than uniformly small. The median is the typical row."),
    ("The gradient reaching K vanishes later than the one reaching Q: each key collects from all T queries, and "
     "any query near a tie involving it sends it a large gradient."),
)


def _unscaled_attention(q, k, v):
    """``softmax(Q Kᵀ) V`` without the 1/√d: :func:`model.attention.scores`, then :func:`model.attention.softmax`.
    """
    return jnp.einsum("...ts,...sk->...tk", softmax(scores(q, k)), v)


def _row_norms(g):
    """Euclidean norm of each row ``[..., T, K] -> [..., T]``."""
    return jnp.sqrt(jnp.sum(g * g, axis=-1))


def measure(q, k, v, r) -> dict[str, Any]:
    r"""Score variances, softmax entropies and gradient norms at one head width, scaled and unscaled.

    Args:
        q: queries ``[B, T, d]``.
        k: keys ``[B, S, d]``.
        v: values ``[B, S, K_v]``.
        r: the readout ``[B, T, K_v]``: the loss is :math:`L = \sum R \circ \operatorname{attn}(Q, K, V)`.

    Returns:
        ``var_raw`` and ``var_scaled`` (scalars: the variance over every score), and for
        ``"scaled"`` (:func:`model.attention.sdpa`) and ``"unscaled"`` a dict of per-row arrays:
        ``entropy`` ``[B, T]`` (nats), ``max_weight`` ``[B, T]``, ``grad_q`` ``[B, T]`` and
        ``grad_k`` ``[B, S]`` (row norms of :math:`\partial L/\partial Q`, :math:`\partial L/\partial K`).
    """
    raw, scaled = scores(q, k), scaled_scores(q, k)
    out: dict[str, Any] = {"var_raw": jnp.var(raw), "var_scaled": jnp.var(scaled)}
    for name, x, attend in (("scaled", scaled, sdpa), ("unscaled", raw, _unscaled_attention)):
        p = softmax(x)
        grad_q, grad_k = jax.grad(lambda q_, k_, f=attend: jnp.sum(f(q_, k_, v) * r), argnums=(0, 1))(q, k)
        out[name] = {"entropy": jnp.sum(entr(p), axis=-1), "max_weight": jnp.max(p, axis=-1),
                     "grad_q": _row_norms(grad_q), "grad_k": _row_norms(grad_k)}
    return out


def causal_weights(q, k):
    """Causal attention weights ``[T, T]`` of one sequence and their row entropies, scaled and unscaled.

    Args:
        q, k: ``[T, d]``.

    Returns:
        ``{"scaled": ..., "unscaled": ...}``, each ``(weights [T, T], row entropies [T])``: the weights are
        :func:`model.attention.softmax` of :func:`model.attention.scaled_scores` (as in sdpa) or of
        :func:`model.attention.scores` under :func:`model.attention.causal_mask`.
    """
    mask = causal_mask(q.shape[0], k.shape[0])
    out = {}
    for name, x in (("scaled", scaled_scores(q, k)), ("unscaled", scores(q, k))):
        p = softmax(x, mask=mask)
        out[name] = (p, jnp.sum(entr(p), axis=-1))
    return out


def _uniform_entropy(n_keys: int):
    """Entropy of the softmax of a constant row (every weight 1/S): log S, through :func:`model.attention.softmax`."""
    return jnp.sum(entr(softmax(jnp.zeros(n_keys, jnp.float32))))


@functools.partial(jax.jit, static_argnames=("widths", "map_positions"))
def sweep(q, k, v, r, *, widths: tuple[int, ...], map_positions: int) -> dict[str, Any]:
    """:func:`measure` at every head width and :func:`causal_weights` of the first sequence, in one compiled call.

    The inputs at width ``d`` are the first ``d`` columns of ``q`` and ``k`` (static slices),
    so every width sees the same samples and the whole sweep is one compilation.

    Args:
        q: queries ``[B, T, d_max]``.
        k: keys ``[B, S, d_max]``.
        v: values ``[B, S, K_v]``.
        r: the readout ``[B, T, K_v]``.
        widths: the head widths, each at most ``d_max``.
        map_positions: the positions of the causal map (the first ones of sequence 0), at most T.

    Returns:
        ``{"widths": [measure at each width], "maps": causal_weights at the largest width,
        "mask": the causal mask of the maps, "uniform_entropy": log S}``.
    """
    return {"widths": [measure(q[..., :d], k[..., :d], v, r) for d in widths],
            "maps": causal_weights(q[0, :map_positions, :max(widths)], k[0, :map_positions, :max(widths)]),
            "mask": causal_mask(map_positions, map_positions),
            "uniform_entropy": _uniform_entropy(k.shape[-2])}


def _predicted_variances(widths) -> tuple[list[float], list[float]]:
    """Var(q·k) = K and Var(q·k/√K) = 1: right-hand sides of steps of ``attention.scaled_scores``, at K = d."""
    import sympy as sp

    import derivations
    from derivations.symbolic import K

    steps = derivations.get("attention.scaled_scores").steps
    raw = next(s.eq.rhs for s in steps if s.eq.rhs == K)
    scaled = next(s.eq.rhs for s in steps if s.eq.rhs == 1 and K in s.eq.lhs.free_symbols)
    return ([float(sp.sympify(raw).subs(K, d)) for d in widths],
            [float(sp.sympify(scaled).subs(K, d)) for d in widths])


def _figure_variance(out, widths, m) -> list[str]:
    fig, ax = common.figure(figsize=(6, 4.2))
    ax.loglog(widths, m["variance"]["raw"], "o-", label="measured Var(q·k)")
    ax.loglog(widths, m["variance"]["scaled"], "s-", label="measured Var(q·k/√d)")
    ax.loglog(widths, m["variance"]["predicted_raw"], "k--", lw=1, label="derivation: Var(q·k) = d")
    ax.loglog(widths, m["variance"]["predicted_scaled"], "k:", lw=1, label="derivation: Var(q·k/√d) = 1")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("head width d")
    ax.set_ylabel("variance of the scores")
    ax.set_title("Score variance vs head width: q·k grows like d, q·k/√d stays at 1")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return common.save_figure(fig, out, "sdpa_variance")


def _figure_entropy(out, widths, m) -> list[str]:
    fig, ax = common.figure(figsize=(6, 4.2))
    e = m["entropy"]
    ax.plot(widths, e["scaled"], "s-", label="with 1/√d (sdpa)")
    ax.plot(widths, e["unscaled"], "o-", label="without 1/√d")
    ax.axhline(e["uniform"], color="k", ls="--", lw=1, label=f"uniform over S = {m['setup']['keys']} keys (log S)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("head width d")
    ax.set_ylabel("mean entropy of a softmax row (nats)")
    ax.set_title("Softmax entropy vs head width: without 1/√d the rows saturate")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return common.save_figure(fig, out, "sdpa_entropy")


def _figure_gradients(out, widths, m) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, what in zip(axes, ("gradient_q", "gradient_k"), ("q_t", "k_s"), strict=True):
        g = m[key]
        ax.loglog(widths, g["scaled"]["median"], "s-", label="with 1/√d: median")
        ax.loglog(widths, g["unscaled"]["median"], "o-", label="without 1/√d: median")
        ax.loglog(widths, g["scaled"]["mean"], "s:", color="C0", alpha=0.6, label="with 1/√d: mean")
        ax.loglog(widths, g["unscaled"]["mean"], "o:", color="C1", alpha=0.6, label="without 1/√d: mean")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("head width d")
        ax.set_ylabel(f"row norm ‖∂L/∂{what}‖")
        ax.set_title(f"Gradient reaching {'Q' if key == 'gradient_q' else 'K'} through the softmax")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Gradient norms vs head width (L = Σ R∘attention(Q, K, V), fixed random R and V)")
    return common.save_figure(fig, out, "sdpa_gradients")


def _figure_maps(out, maps) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(11, 5.2))
    image = None
    for ax, key, label in zip(axes, ("scaled", "unscaled"), ("with 1/√d (sdpa)", "without 1/√d"), strict=True):
        w = np.asarray(maps[key])
        shown = np.ma.masked_where(~np.asarray(maps["mask"]), w)
        image = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=1.0)
        ticks = list(range(0, w.shape[0], 2))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("key position s")
        ax.set_ylabel("query position t")
        ax.set_title(f"{label}\nmean row entropy {np.mean(maps[f'entropy_{key}']):.2f} nats")
    fig.colorbar(image, ax=list(axes), label="attention weight")
    fig.suptitle(f"Causal attention weights of one random example (d = {maps['head_width']}, "
                 f"T = {maps['positions']}; blank: masked)")
    return common.save_figure(fig, out, "sdpa_causal_maps")


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Measure score variance, softmax entropy and gradients against the head width; write results and figures.

    Args:
        out_dir: folder for ``results.json`` and the figures ``sdpa_variance``, ``sdpa_entropy``,
            ``sdpa_gradients`` and ``sdpa_causal_maps`` (PNG and SVG).
        scale: a positive int; the number of sequences per width is ``64 * scale``.
        seed: seeds the NumPy generator that draws Q, K, V and the readout.
        progress: say on stderr what it is doing (the sweep is one compiled call).
        tiny: three widths (4, 64, 1024) and 8 sequences: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``head_widths``, ``variance``, ``entropy``,
        ``max_weight``, ``gradient_q``, ``gradient_k``, ``causal_maps``, ``claims`` (each with
        ``holds``), ``notes`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    widths = TINY_HEAD_WIDTHS if tiny else HEAD_WIDTHS
    n_seq = TINY_SEQUENCES if tiny else SEQUENCES * scale
    d_max = max(widths)

    rng = np.random.default_rng(seed)
    q_all = jnp.asarray(rng.standard_normal((n_seq, KEYS, d_max), dtype=np.float32))
    k_all = jnp.asarray(rng.standard_normal((n_seq, KEYS, d_max), dtype=np.float32))
    v = jnp.asarray(rng.standard_normal((n_seq, KEYS, VALUE_WIDTH), dtype=np.float32))
    r = jnp.asarray(rng.standard_normal((n_seq, KEYS, VALUE_WIDTH), dtype=np.float32))

    common.say(NAME, progress, f"measuring {len(widths)} head widths x {n_seq} sequences of {KEYS} positions "
                               f"(one compiled sweep)")
    with jax.default_matmul_precision("highest"):
        swept = jax.device_get(sweep(q_all, k_all, v, r, widths=tuple(widths), map_positions=MAP_POSITIONS))
    rows, maps, uniform = swept["widths"], swept["maps"], float(swept["uniform_entropy"])

    def per_width(kind, field, stat):
        return [float(stat(np.asarray(row[kind][field]))) for row in rows]

    predicted_raw, predicted_scaled = _predicted_variances(widths)
    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"head_widths": list(widths), "sequences": n_seq, "queries": KEYS, "keys": KEYS,
                  "value_width": VALUE_WIDTH, "entries": "i.i.d. N(0, 1) (NumPy, float32)", "seed": seed,
                  "scale": scale, "tiny": tiny, "backend": jax.default_backend(),
                  "loss": "L = sum(R * attention(Q, K, V)), R and V fixed random N(0, 1)",
                  "entropy_unit": "nats"},
        "head_widths": list(widths),
        "variance": {"raw": [float(row["var_raw"]) for row in rows],
                     "scaled": [float(row["var_scaled"]) for row in rows],
                     "predicted_raw": predicted_raw, "predicted_scaled": predicted_scaled,
                     "band": VARIANCE_BAND,
                     "source": "attention.scaled_scores: Var(q·k) = K and Var(q·k/√K) = 1, at K = d"},
        "entropy": {"scaled": per_width("scaled", "entropy", np.mean),
                    "unscaled": per_width("unscaled", "entropy", np.mean), "uniform": uniform},
        "max_weight": {"scaled": per_width("scaled", "max_weight", np.mean),
                       "unscaled": per_width("unscaled", "max_weight", np.mean)},
    }
    for key, field in (("gradient_q", "grad_q"), ("gradient_k", "grad_k")):
        m[key] = {kind: {"median": per_width(kind, field, np.median), "mean": per_width(kind, field, np.mean)}
                  for kind in ("scaled", "unscaled")}
    m["causal_maps"] = {
        "head_width": d_max, "positions": MAP_POSITIONS, "mask": np.asarray(swept["mask"]).tolist(),
        **{kind: np.asarray(maps[kind][0]).tolist() for kind in ("scaled", "unscaled")},
        **{f"entropy_{kind}": np.asarray(maps[kind][1]).tolist() for kind in ("scaled", "unscaled")},
    }
    m["claims"] = _claims(m)
    m["notes"] = NOTES
    common.say(NAME, progress, "drawing figures")
    m["figures"] = (_figure_variance(out, widths, m) + _figure_entropy(out, widths, m)
                    + _figure_gradients(out, widths, m) + _figure_maps(out, m["causal_maps"]))
    common.write_results(out, m)
    return m


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of the lesson, each with the measured evidence and whether it holds."""
    v, e, gq = m["variance"], m["entropy"], m["gradient_q"]
    band = v["band"]
    raw_ratio = [a / p for a, p in zip(v["raw"], v["predicted_raw"], strict=True)]
    scaled_ratio = [a / p for a, p in zip(v["scaled"], v["predicted_scaled"], strict=True)]
    g_scaled, g_unscaled = gq["scaled"]["median"], gq["unscaled"]["median"]
    return [
        {"claim": f"Var(q·k) = d: the measured variance is within {band:.0%} of d at every width",
         "holds": all(abs(x - 1) <= band for x in raw_ratio),
         "evidence": {"measured / d": raw_ratio}},
        {"claim": f"Var(q·k/√d) = 1: the measured variance is within {band:.0%} of 1 at every width",
         "holds": all(abs(x - 1) <= band for x in scaled_ratio),
         "evidence": {"measured": v["scaled"]}},
        {"claim": "without 1/√d the softmax saturates as d grows: the mean row entropy falls",
         "holds": e["unscaled"][-1] < e["unscaled"][0] and all(
             b <= a for a, b in itertools.pairwise(e["unscaled"])),
         "evidence": {"entropy without 1/√d": e["unscaled"], "mean largest weight": m["max_weight"]["unscaled"]}},
        {"claim": f"with 1/√d the entropy stays roughly flat (within {FLAT_ENTROPY:.0%} of log S across widths)",
         "holds": max(e["scaled"]) - min(e["scaled"]) <= FLAT_ENTROPY * e["uniform"],
         "evidence": {"entropy with 1/√d": e["scaled"], "log S": e["uniform"]}},
        {"claim": "without 1/√d the typical gradient reaching Q vanishes: the median ‖∂L/∂q_t‖ at the "
                  f"largest width is below {VANISHED:g} of its value at the smallest",
         "holds": g_unscaled[-1] < VANISHED * g_unscaled[0],
         "evidence": {"median without 1/√d": g_unscaled,
                      "mean without 1/√d": gq["unscaled"]["mean"]}},
        {"claim": f"with 1/√d the median ‖∂L/∂q_t‖ stays roughly flat (within a factor {FLAT_GRADIENT})",
         "holds": max(g_scaled) <= FLAT_GRADIENT * min(g_scaled),
         "evidence": {"median with 1/√d": g_scaled}},
    ]
