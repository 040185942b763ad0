"""What every weekly experiment shares: its output folder, results.json, figures in PNG and SVG."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_scale", "figure", "output_dir", "progress_bar", "save_figure", "say", "write_results"]


def check_scale(scale) -> int:
    """``scale`` as a positive int (1 is the small default), or a ValueError naming what arrived."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale: expected a positive integer (1 = the small default), got {scale!r}")
    return int(scale)


def output_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path, created if needed."""
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(value: Any) -> Any:
    """JSON-compatible values: NumPy/JAX scalars and arrays to Python numbers and lists; NaN/inf to strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_results(out_dir: str | os.PathLike, results: dict[str, Any]) -> Path:
    """Write ``results`` as ``out_dir/results.json`` (atomically: a temporary file, then a rename)."""
    path = output_dir(out_dir) / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_plain(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def figure(*args, **kwargs):
    """A new matplotlib figure on the non-interactive Agg backend: ``(fig, ax)`` as ``plt.subplots`` returns."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, out_dir: str | os.PathLike, stem: str) -> list[str]:
    """Save ``fig`` as ``out_dir/stem.png`` and ``out_dir/stem.svg``, close it, and return the two file names."""
    import matplotlib.pyplot as plt

    folder = output_dir(out_dir)
    names = []
    for suffix in ("png", "svg"):
        fig.savefig(folder / f"{stem}.{suffix}", dpi=150, bbox_inches="tight")
        names.append(f"{stem}.{suffix}")
    plt.close(fig)
    return names


def say(name: str, enabled: bool, text: str) -> None:
    """Print ``"<name>: <text>"`` to stderr when ``enabled`` (an experiment's progress lines)."""
    if enabled:
        print(f"{name}: {text}", file=sys.stderr, flush=True)


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar of ``total`` steps when ``enabled`` and tqdm is installed, else ``None``."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
