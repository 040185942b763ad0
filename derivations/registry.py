"""The registry of derivations: one record per equation, registered once.

A :class:`Derivation` holds everything the verifier, ``tfd derive`` and the
lessons need: a stable id, the study week, the statement as a SymPy equality
``Eq(output, expression)``, the derivation steps (identities that must simplify
to true), the shapes of its symbols in axis letters, and the dotted name of the
``model`` function that implements it (a string, so this package never imports JAX).

Conventions
-----------
* The statement's left side is one symbol: the output.  Every other free symbol
  of the right side that is not an axis letter is an argument of the
  implementation, under the same name.
* ``shapes`` maps each argument and the output to axis letters: ``"TK"`` is a
  ``[T, K]`` array, ``"D"`` a 1-D array of length ``D`` (a ``1 x D`` row in SymPy),
  ``""`` a scalar.
* ``sizes`` are the concrete axis sizes at which the statement is checked
  numerically; they are small because the reference is expanded entry by entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import sympy as sp

__all__ = ["Step", "Gradient", "Derivation", "register", "REGISTRY", "get", "by_week"]

#: How a step is simplified before it is compared with zero.
METHODS = ("simplify", "expand", "trigsimp", "expand_trig", "doit", "stats")


@dataclass(frozen=True, kw_only=True)
class Step:
    """One derivation step: ``lhs - rhs`` must reduce to zero.

    Attributes:
        claim: the step in words, as a lesson would say it.
        eq: the identity ``Eq(lhs, rhs, evaluate=False)``.
        sizes: axis sizes at which a matrix identity is expanded and checked entry
            by entry; empty when the identity is proved for general sizes.
        method: the SymPy reduction applied to ``lhs - rhs`` (see ``METHODS``).
    """

    claim: str
    eq: sp.Eq
    sizes: Mapping[str, int] = field(default_factory=dict)
    method: str = "simplify"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"step method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.eq, sp.Equality):
            raise TypeError(f"step {self.claim!r}: expected a sympy Eq, got {type(self.eq).__name__}")


@dataclass(frozen=True, kw_only=True)
class Gradient:
    """A stated gradient of the statement's output, compared with JAX autodiff.

    Attributes:
        wrt: the argument differentiated.
        expr: the stated gradient.  With ``cotangent`` set it is the vector-Jacobian
            product: the gradient of ``sum(output * cotangent)`` with respect to
            ``wrt``, shaped like ``wrt``.  Without it, it is the full Jacobian
            ``d output / d wrt`` as a matrix ``[size(output), size(wrt)]``.
        cotangent: the name of the cotangent symbol in ``expr`` (shaped like the output).
    """

    wrt: str
    expr: sp.Basic
    cotangent: str | None = None


@dataclass(frozen=True, kw_only=True)
class Derivation:
    """A registered equation and the facts that check it (see the module docstring).

    Attributes:
        id: stable dotted id, ``<concept>.<name>``; ``<concept>`` names the module pair.
        week: the study-plan week it teaches.
        title: a short title.
        statement: ``Eq(output_symbol, expression)``.
        implementation: dotted name of the pure ``model`` function that computes it.
        shapes: axis letters of every argument and of the output.
        sizes: concrete axis sizes for the numeric check.
        steps: the derivation, each step an identity.
        gradients: stated gradients or Jacobians checked against ``jax.grad``/``jax.jacfwd``.
        domains: how to sample an argument when not standard normal: ``"positive"``,
            ``"causal"`` (a causal 0/1 mask), ``"mask"`` (random 0/1 with one 1 per row
            at least), ``"index:V"`` (integers in ``[0, V)``), ``"position"``
            (integers in ``[0, 64)``).
        constants: values for scalar symbols held fixed in the numeric check (``eps``, ``base``).
        size_args: keyword arguments of the implementation that take an axis size,
            e.g. ``{"n_heads": "H"}``.
        notes: prose for the lessons: what the equation means and where it comes from.
        source: the published source of the equation.
    """

    id: str
    week: int
    title: str
    statement: sp.Eq
    implementation: str
    shapes: Mapping[str, str]
    sizes: Mapping[str, int] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    gradients: tuple[Gradient, ...] = ()
    domains: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, float] = field(default_factory=dict)
    size_args: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""
    source: str = ""

    def __post_init__(self):
        for name in ("shapes", "sizes", "domains", "constants", "size_args"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "gradients", tuple(self.gradients))
        if not isinstance(self.statement, sp.Equality):
            raise TypeError(f"{self.id}: statement must be a sympy Eq, got {type(self.statement).__name__}")
        if self.output not in self.shapes:
            raise ValueError(f"{self.id}: shapes has no entry for the output {self.output!r}")
        missing = [a for a in self.arguments if a not in self.shapes]
        if missing:
            raise ValueError(f"{self.id}: shapes has no entry for arguments {missing}")
        letters = {c for s in self.shapes.values() for c in s} | set(self.size_args.values())
        unsized = sorted(letters - set(self.sizes))
        if unsized:
            raise ValueError(f"{self.id}: sizes has no value for axis letters {unsized}")

    @property
    def output(self) -> str:
        """Name of the output symbol (the statement's left side)."""
        return str(self.statement.lhs)

    @property
    def arguments(self) -> tuple[str, ...]:
        """Names of the statement's arguments, sorted: the implementation's array arguments."""
        from derivations.symbolic import size_symbols

        sizes = set(size_symbols().values())
        names = {str(m) for m in self.statement.rhs.atoms(sp.MatrixSymbol)}
        names |= {str(s) for s in self.statement.rhs.free_symbols
                  if isinstance(s, sp.Symbol) and s not in sizes}
        names -= set(self.constants)
        return tuple(sorted(names))

    @property
    def concept(self) -> str:
        """The concept module pair this derivation belongs to (``attention`` for ``attention.sdpa``)."""
        return self.id.split(".", 1)[0]


REGISTRY: dict[str, Derivation] = {}


def register(derivation: Derivation) -> Derivation:
    """Add ``derivation`` to the registry; an id can be registered only once."""
    if derivation.id in REGISTRY:
        raise ValueError(f"derivation id {derivation.id!r} is registered twice")
    REGISTRY[derivation.id] = derivation
    return derivation


def get(derivation_id: str) -> Derivation:
    """The derivation with this id, or a ``KeyError`` listing the known ids."""
    try:
        return REGISTRY[derivation_id]
    except KeyError:
        raise KeyError(f"no derivation {derivation_id!r}; known ids: {', '.join(sorted(REGISTRY))}") from None


def by_week() -> dict[int, list[Derivation]]:
    """The registry grouped by study week, in registration order within a week."""
    weeks: dict[int, list[Derivation]] = {}
    for d in REGISTRY.values():
        weeks.setdefault(d.week, []).append(d)
    return dict(sorted(weeks.items()))
