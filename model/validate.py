"""Input checks at the boundary where arrays enter a model function.

They run on static shapes, so they cost nothing under ``jax.jit`` and raise
before tracing: a ``ValueError`` whose message says what was expected and what
arrived.  ``assert`` is never used for this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp

__all__ = ["check_rank", "check_axis", "check_shape", "check_divisible", "add_bias", "check_positive_int",
           "config_from_dict"]


def _shape(x) -> tuple[int, ...]:
    return tuple(jnp.shape(x))


def check_rank(name: str, x, *, min_rank: int, axes: str) -> None:
    """``x`` must have at least ``min_rank`` dimensions; ``axes`` spells the expected shape."""
    shape = _shape(x)
    if len(shape) < min_rank:
        raise ValueError(f"{name}: expected shape {axes} (rank >= {min_rank}), got shape {shape} (rank {len(shape)})")


def check_shape(name: str, x, expected: Sequence[int], *, axes: str) -> None:
    """``x`` must have exactly the shape ``expected`` (spelled ``axes``)."""
    shape = _shape(x)
    if shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {axes} = {tuple(expected)}, got {shape}")


def check_axis(name: str, x, axis: int, expected: int, *, axes: str, why: str = "") -> None:
    """Dimension ``axis`` of ``x`` must equal ``expected``."""
    shape = _shape(x)
    if shape[axis] != expected:
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{name}: expected shape {axes} with {expected} along axis {axis}{reason}, got shape {shape}")


def check_divisible(what: str, n: int, by_name: str, by: int) -> None:
    """``n`` must be divisible by ``by`` (e.g. the model width by the number of heads)."""
    if by <= 0 or n % by:
        raise ValueError(f"{what} = {n} must be divisible by {by_name} = {by}")


def check_positive_int(name: str, n) -> int:
    """``n`` must be a positive Python integer (a static size)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {n!r}")
    return n


def add_bias(y, b):
    """``y + b`` with ``b`` broadcast explicitly over the leading axes of ``y`` (no rank promotion)."""
    return y + jnp.broadcast_to(b, jnp.shape(y))


def config_from_dict(cls, data, *, optional: frozenset[str] = frozenset()):
    """``cls(**data)`` for a frozen config dataclass, with every field present and no other key.

    Fields named in ``optional`` may be absent (their defaults apply): fields added
    after configs were first saved.

    Raises:
        TypeError: ``data`` is not a dict.
        ValueError: missing or unknown keys (both named), or invalid values (from ``cls``).
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}.from_dict: expected a dict, got {type(data).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    missing = [f for f in fields if f not in data and f not in optional]
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise ValueError(f"{cls.__name__}.from_dict: missing keys {missing}, unknown keys {unknown}; "
                         f"expected exactly {fields}")
    return cls(**data)
