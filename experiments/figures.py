"""Figures of a training run, drawn with matplotlib's Agg renderer (no display needed).

:func:`plot_loss` draws the training loss of every logged step and the
validation loss of every evaluation from a run's ``metrics.jsonl`` (see
:func:`experiments.train.train`) and writes it as PNG and SVG.  The figure is a
``matplotlib.figure.Figure`` used directly, never ``pyplot``: no global figure
state, no GUI backend, safe in threads and tests.  The files carry no creation
date, so the same metrics give the same bytes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["plot_loss", "read_metrics"]


def read_metrics(metrics_path: str | os.PathLike) -> list[dict]:
    """The JSON objects of ``metrics.jsonl``, one per non-empty line.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object with an integer ``step``
            (the message names the line).
    """
    path = Path(metrics_path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: expected one JSON object per line, could not parse it: {e}") from None
        if not isinstance(row, dict) or isinstance(row.get("step"), bool) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path}:{number}: expected a JSON object with an integer 'step', got {line[:80]!r}")
        rows.append(row)
    return rows


def plot_loss(metrics_path: str | os.PathLike, out_stem: str | os.PathLike, *, title: str | None = None,
              dpi: int = 150) -> tuple[Path, Path]:
    """Draw the training and validation loss of a run; write ``<out_stem>.png`` and ``<out_stem>.svg``.

    The training loss is the ``loss`` of each logged step (the mean cross-entropy
    of that step's batch, before its update); the validation loss is ``val_loss``
    where a line has one (an estimate over fixed validation batches).  Both in
    nats per token, against the step (optimizer updates done).

    Args:
        metrics_path: a ``metrics.jsonl`` written by :func:`experiments.train.train`.
        out_stem: the output path without suffix (``runs/tiny/loss``); its folder is created.
        title: the figure's title; ``None`` for one naming the run's folder.
        dpi: the resolution of the PNG.

    Returns:
        ``(png_path, svg_path)``.

    Raises:
        ValueError: a file with no finite training loss to draw, or malformed lines.
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    metrics_path = Path(metrics_path)
    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if _finite(r.get("loss"))]
    val = [(r["step"], r["val_loss"]) for r in rows if _finite(r.get("val_loss"))]
    if not train:
        raise ValueError(f"{metrics_path}: expected logged steps with a finite 'loss', found none "
                         f"({len(rows)} lines)")
    if title is None:
        run = metrics_path.resolve().parent.name
        title = f"Cross-entropy loss of run '{run}': training batches and validation estimate"

    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(*zip(*train), color="tab:blue", linewidth=1.2, label="training loss (logged steps)")
    if val:
        ax.plot(*zip(*val), color="tab:orange", linewidth=1.2, marker="o", markersize=4,
                label="validation loss (evaluations)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step (optimizer updates)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()

    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    with rc_context({"svg.hashsalt": "loss"}):  # stable element ids in the SVG
        fig.savefig(png, dpi=dpi, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})
    return png, svg


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
