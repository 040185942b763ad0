"""The lesson pages' hand-written content (experiments/lessons/content.py).

Every week 1..12 has a page; every text exists in English and Korean (the Korean in
Hangul); every HTML fragment is well-formed and uses only the tags the schema allows;
every derivation note belongs to a registered derivation of its page's week; every key
number names a weekly experiment and its path resolves in a ``results.json`` that
experiment really writes (at tiny size, into the session's ``weekly_runs``); every
exercise is a ``tfd derive`` / ``tfd verify`` command the CLI parses, about derivations
that exist.

Resolving the numbers trains every weekly experiment at tiny size (about two minutes on
two cores, on top of the weekly tests' own runs), so that check is under ``-m slow``; the
default suite checks statically that each key of a number's path is a string the
experiment's module writes.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import derivations
from experiments import weekly
from experiments.cli import build_parser
from experiments.lessons.build import resolve_path
from experiments.lessons.content import WEEKS
from experiments.lessons.schema import Exercise, Number, Text, Week

#: tags a prose fragment may use (schema.py); the fragment is parsed inside a <div>
INLINE_TAGS = frozenset({"em", "strong", "code", "a"})
BLOCK_TAGS = frozenset({"p", "ul", "li"})
#: where a link may point: another page of the site
SITE_PAGE = re.compile(r"^(index|week-(0[1-9]|1[0-2]))\.html(#[A-Za-z0-9_-]+)?$")
HANGUL = re.compile("[\uac00-\ud7a3]")
#: number paths that exist only when an optional data package is installed: (experiment, path prefix)
#: -> whether the results say that part was skipped
OPTIONAL_PARTS = {
    ("tokens", "gpt2.korean."): lambda r: bool(r.get("korean", {}).get("skipped")),
    ("embeddings", "minilm."): lambda r: not r.get("minilm", {}).get("available", False),
}


def _texts(week: Week):
    """(where, text, inline_only) for every Text of a page."""
    yield "title", week.title, True
    yield "goal", week.goal, False
    for i, t in enumerate(week.intro):
        yield f"intro[{i}]", t, False
    for key, t in week.derivation_notes.items():
        yield f"derivation_notes[{key}]", t, False
    for i, n in enumerate(week.numbers):
        yield f"numbers[{i}].label", n.label, True
    for i, e in enumerate(week.exercises):
        yield f"exercises[{i}].question", e.question, False
        yield f"exercises[{i}].hint", e.hint, False
    if week.limits is not None:
        yield "limits", week.limits, False


ALL_TEXTS = [pytest.param(t, inline, id=f"week{n}-{where}")
             for n, w in WEEKS.items() for where, t, inline in _texts(w)]
ALL_NUMBERS = [(n, i, num) for n, w in WEEKS.items() for i, num in enumerate(w.numbers)]
ALL_EXERCISES = [pytest.param(e, id=f"week{n}-exercise{i}")
                 for n, w in WEEKS.items() for i, e in enumerate(w.exercises)]


def test_every_week_has_a_page():
    assert sorted(WEEKS) == list(range(1, 13))
    for n, week in WEEKS.items():
        assert isinstance(week, Week) and week.number == n
        assert week.intro, f"week {n}: no introduction"
        assert 2 <= len(week.exercises) <= 4, f"week {n}: {len(week.exercises)} exercises"
        assert all(isinstance(x, Number) for x in week.numbers)
        assert all(isinstance(x, Exercise) for x in week.exercises)


def test_weeks_without_their_own_experiment_or_equation_say_where_the_project_stops():
    for n in (1, 2, 3):
        assert WEEKS[n].limits is not None, f"week {n} needs an honest note on what the project does not reach"


def _check_fragment(html: str, *, inline_only: bool, lang: str) -> None:
    try:
        root = ET.fromstring(f"<div>{html}</div>")
    except ET.ParseError as e:
        raise AssertionError(f"{lang}: not well-formed HTML ({e}): {html!r}") from None
    allowed = INLINE_TAGS if inline_only else INLINE_TAGS | BLOCK_TAGS
    for el in root.iter():
        if el is root:
            continue
        assert el.tag in allowed, f"{lang}: tag <{el.tag}> not allowed here (allowed: {sorted(allowed)})"
        if el.tag == "a":
            assert set(el.attrib) == {"href"}, f"{lang}: <a> takes href only, got {el.attrib}"
            assert SITE_PAGE.match(el.attrib["href"]), f"{lang}: link outside the site: {el.attrib['href']!r}"
        else:
            assert not el.attrib, f"{lang}: <{el.tag}> takes no attributes, got {el.attrib}"
        if el.tag == "li":
            assert el in {c for ul in root.iter("ul") for c in ul}, f"{lang}: <li> outside a <ul>"
        if el.tag == "ul":
            assert all(c.tag == "li" for c in el), f"{lang}: a <ul> holds <li> only"
    starts_block = html.lstrip().lower().startswith(("<p", "<ul"))
    if starts_block:
        # a block fragment is a sequence of blocks: no loose text between them
        loose = [(root.text or "")] + [(c.tail or "") for c in root]
        assert all(not s.strip() for s in loose), f"{lang}: text outside the blocks: {html!r}"
        assert all(c.tag in ("p", "ul") for c in root), f"{lang}: top-level tags must be <p> or <ul>"
    else:
        # the site wraps it in one <p>: only inline tags inside
        inner = {el.tag for el in root.iter() if el is not root}
        assert not inner & BLOCK_TAGS, f"{lang}: a paragraph fragment holds block tags {inner & BLOCK_TAGS}"


@pytest.mark.parametrize(("text", "inline_only"), ALL_TEXTS)
def test_texts_are_well_formed_html_in_both_languages(text, inline_only):
    assert isinstance(text, Text)
    for lang in ("en", "ko"):
        body = getattr(text, lang)
        assert isinstance(body, str) and body.strip(), f"{lang}: empty"
        _check_fragment(body, inline_only=inline_only, lang=lang)
    assert HANGUL.search(text.ko), f"ko has no Hangul: {text.ko!r}"
    assert text.en != text.ko


def test_fragment_checker_rejects_bad_html():
    bad = (("<p>open", False), ("<div>x</div>", False), ("<b>x</b>", True), ("<p>x</p>", True),
           ('<a href="https://example.com">x</a>', True), ('<code class="x">y</code>', True),
           ("x <p>y</p>", False), ("<p>x</p> loose", False), ("<li>x</li>", False), ("a &nbsp; b", True))
    for html, inline_only in bad:
        with pytest.raises(AssertionError):
            _check_fragment(html, inline_only=inline_only, lang="en")
    _check_fragment('x <a href="week-07.html">week 7</a> <code>y</code>', inline_only=True, lang="en")
    _check_fragment("<p>x</p><ul><li>a <em>b</em></li></ul>", inline_only=False, lang="en")


def test_derivation_notes_belong_to_the_pages_week():
    for n, week in WEEKS.items():
        for key in week.derivation_notes:
            assert key in derivations.REGISTRY, f"week {n}: no derivation {key!r}"
            assert derivations.get(key).week == n, (
                f"week {n}: note for {key!r}, which the registry files under week {derivations.get(key).week}")


def test_numbers_name_weekly_experiments():
    for n, i, num in ALL_NUMBERS:
        assert num.experiment in weekly.EXPERIMENTS, f"week {n} number {i}: unknown experiment {num.experiment!r}"
        assert num.path and all(num.path.split(".")), f"week {n} number {i}: empty part in path {num.path!r}"
        format(1.0 if num.fmt not in ("d", ",") else 1, num.fmt)   # a valid format spec


def _keys_in_source(name: str) -> set[str]:
    """Every string constant of experiment ``name``'s module: the keys its ``results.json`` can have."""
    spec = importlib.util.find_spec(weekly.EXPERIMENTS[name])
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _unknown_keys(num: Number) -> list[str]:
    """The parts of ``num.path`` that are neither list indices nor strings the experiment's module writes."""
    keys = _keys_in_source(num.experiment)
    return [p for p in num.path.split(".") if not p.lstrip("-").isdigit() and p not in keys]


def test_number_paths_use_keys_the_experiments_write():
    """Static and fast, for every number (the slow experiments' too): each key is a string of the module's code."""
    for n, i, num in ALL_NUMBERS:
        assert not _unknown_keys(num), f"week {n} number {i}: {num.experiment} never writes {_unknown_keys(num)}"
    typo = Number(label=Text(en="x", ko="가"), experiment="sdpa", path="variance.scaeld.0")
    assert _unknown_keys(typo) == ["scaeld"]


def _tiny_results(tiny_experiment, name: str) -> dict:
    """``results.json`` of experiment ``name`` at tiny size, run once per session (``tiny_experiment``)."""
    out, _ = tiny_experiment(name)
    path = out / "results.json"
    results = json.loads(path.read_text(encoding="utf-8"))
    assert results.get("setup", {}).get("tiny", True), f"{path} is not a tiny run"
    return results


def _check_number(results: dict, num: Number, where: str) -> None:
    try:
        value = resolve_path(results, num.path)
    except LookupError as e:
        for (exp, prefix), skipped in OPTIONAL_PARTS.items():
            if num.experiment == exp and num.path.startswith(prefix) and skipped(results):
                pytest.skip(f"{where}: {exp}'s optional data is not installed ({prefix}*)")
        raise AssertionError(f"{where}: {e}") from None
    assert isinstance(value, (int, float)) and not isinstance(value, bool), (
        f"{where}: {num.path} is {value!r}, expected a number")
    format(value, num.fmt)   # the page can show it with its format


def _numbers_of(experiments) -> list:
    return [pytest.param(num, id=f"week{n}-{i}-{num.experiment}") for n, i, num in ALL_NUMBERS
            if num.experiment in experiments]


@pytest.fixture(scope="module")
def tiny_results(tiny_experiment):
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = _tiny_results(tiny_experiment, name)
        return cache[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("num", _numbers_of(weekly.EXPERIMENTS))
def test_number_paths_resolve_in_a_tiny_run(num, tiny_results):
    _check_number(tiny_results(num.experiment), num, f"{num.experiment}:{num.path}")


def test_a_wrong_path_is_caught():
    results = {"variance": {"scaled": [0.98, 1.01]}, "name": "x"}
    _check_number(results, Number(label=Text(en="x", ko="가"), experiment="sdpa", path="variance.scaled.-1"),
                  "ok")
    for path in ("variance.scaled.2", "variance.raw.0", "name", "variance"):
        with pytest.raises(AssertionError):
            _check_number(results, Number(label=Text(en="x", ko="가"), experiment="sdpa", path=path), path)


@pytest.mark.parametrize("exercise", ALL_EXERCISES)
def test_exercises_are_tfd_commands_about_real_derivations(exercise):
    argv = shlex.split(exercise.check)
    assert argv[0] == "tfd", exercise.check
    args = build_parser().parse_args(argv[1:])
    assert args.command in ("derive", "verify"), f"{exercise.check}: check with tfd derive or tfd verify"
    if args.command == "derive":
        assert args.id and not args.list, f"{exercise.check}: derive needs one id"
        ids = [args.id]
    else:
        ids = list(args.ids)
        if args.week is not None:
            assert derivations.by_week().get(args.week), f"{exercise.check}: week {args.week} has no derivations"
        assert ids or args.week is not None, f"{exercise.check}: verify everything is not an exercise"
    for i in ids:
        assert i in derivations.REGISTRY, f"{exercise.check}: no derivation {i!r}"
