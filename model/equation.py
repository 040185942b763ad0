"""The marker that ties a pure function in ``model`` to the derivations it implements.

``@implements("attention.sdpa")`` records the function under its dotted name, so
the test suite can check both directions of the contract: every registered
derivation names a marked function, and every marked function is named by the
registry.  The decorator returns the function itself, so ``jax.jit`` and
``jax.grad`` see the plain function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["implements", "IMPLEMENTATIONS"]

Fn = TypeVar("Fn", bound=Callable)

#: dotted name -> (function, derivation ids it implements)
IMPLEMENTATIONS: dict[str, tuple[Callable, tuple[str, ...]]] = {}


def implements(*derivation_ids: str) -> Callable[[Fn], Fn]:
    """Mark a pure function as the implementation of the given derivation ids."""
    if not derivation_ids:
        raise ValueError("implements() needs at least one derivation id")

    def mark(fn: Fn) -> Fn:
        name = f"{fn.__module__}.{fn.__qualname__}"
        IMPLEMENTATIONS[name] = (fn, tuple(derivation_ids))
        fn.__derivation_ids__ = tuple(derivation_ids)
        return fn

    return mark
