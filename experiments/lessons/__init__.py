"""The lesson site: one static page per study week, built from the registry and the runs.

``tfd lessons`` (and the last step of ``tfd course``) calls :func:`build_site`, which
writes ``runs/site/``: ``index.html``, ``week-01.html`` … ``week-12.html``, a style
sheet and a MATH font.  Equations are MathML (:mod:`experiments.lessons.mathml`), so
the pages need no JavaScript and no network; the prose of each week
(:mod:`experiments.lessons.content`, records of :mod:`experiments.lessons.schema`) is
in English and Korean.
"""

from experiments.lessons.build import build_site

__all__ = ["build_site"]
