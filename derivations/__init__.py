"""SymPy statements and derivations of every transformer equation, one module per concept.

``derivations/<concept>.py`` mirrors ``model/<concept>.py``.  Importing the package
imports every concept module, which registers its derivations in :data:`REGISTRY`.
This package never imports JAX or Flax.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from derivations.registry import REGISTRY, Derivation, Gradient, Step, by_week, get, register

__all__ = ["REGISTRY", "Derivation", "Gradient", "Step", "by_week", "get", "register"]

#: modules of this package that hold machinery, not derivations
MACHINERY = frozenset({"registry", "symbolic", "check"})

for _m in _pkgutil.iter_modules(__path__):
    if _m.name not in MACHINERY:
        _importlib.import_module(f"{__name__}.{_m.name}")
