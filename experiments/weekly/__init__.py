"""The weekly experiments: one module per study week, each run as ``tfd experiment NAME``.

Every experiment module defines

* ``NAME``: the name ``tfd experiment`` takes (``"sdpa"``, ``"tokens"``, ...);
* ``WEEK``: the study week it belongs to;
* ``TITLE``: one line saying what it shows;
* ``run(out_dir, *, scale=1, seed=0, progress=True, tiny=False) -> dict``: runs the
  experiment, writes ``out_dir/results.json`` and its figures (PNG and SVG) with
  :mod:`experiments.weekly.common`, and returns the results.  ``scale=1`` is the
  small default (about a minute on a 2-core CPU); larger values grow it for
  accelerators.  ``tiny=True`` is the smallest run that still exercises every part
  (seconds; what the test suite runs).

:data:`EXPERIMENTS` maps each name to its module's dotted path; :func:`get` imports one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPERIMENTS", "get"]

#: experiment name -> module (imported on demand: each pulls in what it needs)
EXPERIMENTS: dict[str, str] = {
    "comparison": "experiments.weekly.comparison",
    "tokens": "experiments.weekly.tokens",
    "embeddings": "experiments.weekly.embeddings",
    "attention": "experiments.weekly.attention",
    "sdpa": "experiments.weekly.sdpa",
    "heads": "experiments.weekly.heads",
    "ffn": "experiments.weekly.ffn",
    "positional": "experiments.weekly.positional",
    "residual": "experiments.weekly.residual",
    "epilogue": "experiments.weekly.epilogue",
}


def get(name: str) -> ModuleType:
    """The experiment module called ``name``.

    Raises:
        ValueError: no experiment of that name (the known names are listed).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(sorted(EXPERIMENTS)) or '(none)'}")
    return importlib.import_module(EXPERIMENTS[name])
