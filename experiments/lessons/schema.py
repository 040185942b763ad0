"""The shape of a lesson page's hand-written content: prose, key numbers and exercises.

:mod:`experiments.lessons.content` holds one :class:`Week` per study week, written
with these records; :mod:`experiments.lessons.build` renders them together with the
registry's derivations and the experiments' ``results.json`` files.

Prose is a small HTML fragment (``<p>``, ``<em>``, ``<strong>``, ``<code>``,
``<ul>``/``<li>``, ``<a href>`` to another page of the site); mathematics inside
prose is plain Unicode text (``softmax(QKᵀ/√K)V``).  Every text exists in English
and Korean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Exercise", "Number", "Text", "Week"]


@dataclass(frozen=True, kw_only=True)
class Text:
    """One piece of prose in both languages of the site."""

    en: str
    """English (an HTML fragment)."""
    ko: str
    """Korean (an HTML fragment)."""


@dataclass(frozen=True, kw_only=True)
class Number:
    """A key number quoted on a page, read from an experiment's ``results.json``."""

    label: Text
    """What the number is, in a few words."""
    experiment: str
    """The experiment's name (``tfd experiment --list``); its results are ``<runs>/<experiment>/results.json``."""
    path: str
    """Where the value sits in ``results.json``: keys and list indices joined by dots (``"variance.scaled.0"``)."""
    fmt: str = ".4g"
    """A format spec for numbers (``".3f"``, ``".1%"``, ``","``); strings and lists are shown as they are."""


@dataclass(frozen=True, kw_only=True)
class Exercise:
    """A question whose answer a reader checks with a ``tfd`` command."""

    question: Text
    """The question."""
    check: str
    """The command that checks the answer (``"tfd derive attention.sdpa"``, ``"tfd verify --week 7"``)."""
    hint: Text
    """What to look for in that command's output."""


@dataclass(frozen=True, kw_only=True)
class Week:
    """A study week's page: its title, goal, prose, the numbers it quotes and its exercises.

    The derivations shown are those the registry files under ``number``; the
    experiments are those of :mod:`experiments.weekly` whose ``WEEK`` is ``number``.
    """

    number: int
    """The study week, 1 to 12."""
    title: Text
    """The week's topic."""
    goal: Text
    """What a reader can do after the page (one or two sentences)."""
    intro: tuple[Text, ...]
    """Paragraphs before the derivations: the idea, for a reader who knows Python and basic linear algebra."""
    derivation_notes: dict[str, Text] = field(default_factory=dict)
    """Derivation id -> a paragraph shown above that derivation's statement."""
    numbers: tuple[Number, ...] = ()
    """Key numbers from the week's experiments."""
    exercises: tuple[Exercise, ...] = ()
    """Exercises checked with ``tfd derive`` or ``tfd verify``."""
    limits: Text | None = None
    """Where the project does not reach for this week's topic, said plainly (weeks 1 to 3 above all)."""
