"""Sampled checks of the model functions, keyed by derivation id.

Some facts a derivation proves are not a single equation to compare: that the
variance of the scaled scores is 1, that causal attention ignores the future,
that the FFN commutes with permutations.  Each is checked here by running the
jit-compiled model function on sampled inputs and measuring how far it is from
the fact.  A check returns ``(measured, tolerance)`` and passes when
``measured <= tolerance``; the verifier runs them after the numeric check.

One module per concept (``attention.py``, ``feedforward.py``, ...) registers its
checks with :func:`check`; importing this package imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Property", "PROPERTIES", "check", "for_derivation"]


@dataclass(frozen=True)
class Property:
    """A sampled check: ``fn(rng) -> (measured, tolerance)``; ``name`` says what is measured."""

    derivation_id: str
    name: str
    fn: Callable[[np.random.Generator], tuple[float, float]]


#: derivation id -> its sampled checks
PROPERTIES: dict[str, list[Property]] = {}


def check(derivation_id: str, name: str):
    """Register the decorated ``fn(rng) -> (measured, tolerance)`` as a check of ``derivation_id``."""

    def register(fn):
        PROPERTIES.setdefault(derivation_id, []).append(Property(derivation_id, name, fn))
        return fn

    return register


def for_derivation(derivation_id: str) -> list[Property]:
    """The sampled checks of one derivation (empty when it has none)."""
    return PROPERTIES.get(derivation_id, [])


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
