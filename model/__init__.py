"""Pure JAX functions, one per equation, and the Flax NNX modules that hold their parameters.

Axis letters, one legend for shapes, einsum strings and names (the SymPy symbols
in ``derivations`` use the same letters and the same argument names):

====  ==========================================
B     batch
T     query positions
S     key/value positions
D     model width
H     heads
K     head width, d_k = D / H
F     feed-forward hidden width
V     vocabulary
L     layers
C     classes
====  ==========================================

Shapes are written ``[B, T, D]``; a leading ``...`` means any number of batch axes.
Every function marked with :func:`model.equation.implements` implements a
registered derivation and says which in its docstring.  This package never imports SymPy.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from model.equation import IMPLEMENTATIONS, implements

__all__ = ["IMPLEMENTATIONS", "implements"]

for _m in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_m.name}")
