"""Build the lesson site: ``<runs>/site/index.html`` and one page per study week.

:func:`build_site` renders, for every week 1 to 12,

* the week's goal, prose, limits and exercises (:data:`experiments.lessons.content.WEEKS`,
  in English and Korean, with a language switch that needs no network);
* every derivation the registry files under that week: id, title, statement, the
  shapes of its symbols in axis letters, each step and stated gradient as MathML
  (:func:`experiments.lessons.mathml.to_mathml`), and its verification result as
  ``tfd course`` recorded it in ``<runs>/course/index.json`` (steps proved, max
  relative error, gradient error, backend, date);
* the week's experiments: their key numbers read from ``<runs>/<name>/results.json``
  (each :class:`~experiments.lessons.schema.Number` resolves its dotted ``path``), their
  figures (the PNGs, copied into the site) and the claims they checked.

The builder never runs anything.  What is not computed is said to be so, with the
command that computes it; a value missing from an existing ``results.json`` is said to
be missing; an experiment whose last course run failed shows its error, not the
numbers an earlier run left behind; numbers from a tiny run are labelled as such.

The site is offline: relative links only, the style sheet and an OpenType MATH font
(copied from Debian's ``fonts-dejavu-extra`` when installed, else from the DejaVu
Serif that matplotlib ships, with its licence beside it) under ``site/``; no CDN, no
web font from the network.  Korean text uses the reader's installed fonts.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
import importlib.util
import json
import os
import shutil
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.lessons.schema import Number, Text, Week

__all__ = ["WEEK_NUMBERS", "MathFont", "build_site", "find_math_font", "resolve_path"]

#: The study weeks, one page each.
WEEK_NUMBERS = tuple(range(1, 13))

#: The language a page opens in (the reader's last choice is remembered where the browser allows).
DEFAULT_LANGUAGE = "ko"

#: The storage key under which a page remembers the reader's language.
LANGUAGE_KEY = "tfd-lessons-lang"


# ---------------------------------------------------------------------------------------
# the MATH font
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MathFont:
    """An OpenType font with a MATH table, and the licence that must travel with it."""

    path: Path
    """The font file."""
    licence: Path
    """Its licence text."""
    family: str
    """The family name the style sheet declares for it."""
    origin: str
    """Where it comes from, in words (shown in the build output and on the index page)."""


def _has_math_table(path: Path) -> bool:
    """Whether the OpenType/TrueType file at ``path`` has a ``MATH`` table (reads its table directory)."""
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12:
                return False
            (n_tables,) = struct.unpack(">H", header[4:6])
            directory = f.read(16 * n_tables)
    except OSError:
        return False
    return any(directory[16 * i:16 * i + 4] == b"MATH" for i in range(len(directory) // 16))


def _font_candidates() -> list[MathFont]:
    found = [MathFont(path=Path("/usr/share/fonts/truetype/dejavu/DejaVuMathTeXGyre.ttf"),
                      licence=Path("/usr/share/doc/fonts-dejavu-extra/copyright"),
                      family="DejaVu Math TeX Gyre", origin="Debian package fonts-dejavu-extra")]
    spec = importlib.util.find_spec("matplotlib")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        ttf = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
        found.append(MathFont(path=ttf / "DejaVuSerif.ttf", licence=ttf / "LICENSE_DEJAVU",
                              family="DejaVu Serif", origin="PyPI package matplotlib (mpl-data/fonts)"))
    return found


def find_math_font() -> MathFont | None:
    """The first installed, freely licensed font with a MATH table, or None.

    Tried in order: DejaVu Math TeX Gyre from Debian's ``fonts-dejavu-extra`` (made for
    mathematics: stretchy brackets, radicals, large operators), then the DejaVu Serif
    that matplotlib ships (its MATH table covers fewer stretchy glyphs).  A candidate
    counts only if both the font and its licence file exist and the font has a MATH table.
    """
    for font in _font_candidates():
        if font.path.is_file() and font.licence.is_file() and _has_math_table(font.path):
            return font
    return None


# ---------------------------------------------------------------------------------------
# interface strings (both languages)
# ---------------------------------------------------------------------------------------

def _ui(en: str, ko: str) -> Text:
    return Text(en=en, ko=ko)


UI: dict[str, Text] = {
    "site": _ui("Transformer derivations: a study course", "트랜스포머 유도: 스터디 과정"),
    "site_short": _ui("Transformer derivations", "트랜스포머 유도"),
    "all_weeks": _ui("All weeks", "전체 주차"),
    "previous": _ui("Previous week", "이전 주차"),
    "next": _ui("Next week", "다음 주차"),
    "goal": _ui("Goal", "목표"),
    "limits": _ui("Where this project does not reach", "이 프로젝트가 다루지 못하는 부분"),
    "derivations": _ui("Derivations", "유도"),
    "no_derivations": _ui("The registry files no derivation under this week.",
                          "레지스트리에 이 주차의 유도가 없습니다."),
    "statement": _ui("Statement", "식"),
    "shapes": _ui("Shapes", "모양(shape)"),
    "axes": _ui("Axis letters", "축 문자"),
    "checked_at": _ui("checked numerically at", "수치 검사 크기"),
    "constants": _ui("held fixed in the numeric check", "수치 검사에서 고정한 값"),
    "implemented_by": _ui("Implemented by", "구현"),
    "steps": _ui("Derivation steps", "유도 단계"),
    "step": _ui("Step", "단계"),
    "step_sizes": _ui("checked at", "검사 크기"),
    "gradients": _ui("Stated gradients, checked against JAX autodiff",
                     "JAX 자동 미분과 비교한 기울기"),
    "vjp": _ui("gradient of sum({out} ∘ {cot}) with respect to {wrt}",
               "{wrt}에 대한 sum({out} ∘ {cot})의 기울기"),
    "jacobian": _ui("Jacobian ∂{out}/∂{wrt}", "야코비 행렬 ∂{out}/∂{wrt}"),
    "source": _ui("Source", "출처"),
    "about": _ui("In the registry's words", "레지스트리의 설명 (영어)"),
    "check_yourself": _ui("Check it yourself", "직접 확인하기"),
    "verification": _ui("Verification", "검증"),
    "verified": _ui("verified", "검증됨"),
    "failed": _ui("FAILED", "실패"),
    "steps_proved": _ui("steps proved", "증명된 단계"),
    "max_rel_err": _ui("max relative error", "최대 상대 오차"),
    "tolerance": _ui("tolerance", "허용 오차"),
    "exact": _ui("must match exactly", "정확히 일치해야 함"),
    "gradient_error": _ui("gradient error", "기울기 오차"),
    "gradient_count": _ui("stated", "개 명시"),
    "no_gradients": _ui("no stated gradient", "명시된 기울기 없음"),
    "backend": _ui("backend", "백엔드"),
    "date": _ui("date", "날짜"),
    "not_verified": _ui("not verified in this run: run {cmd}", "이번 실행에서 검증되지 않음: {cmd} 를 실행하세요"),
    "key_numbers": _ui("Key numbers", "핵심 수치"),
    "no_numbers": _ui("This week quotes no numbers from an experiment.", "이 주차는 실험 수치를 인용하지 않습니다."),
    "value": _ui("value", "값"),
    "from": _ui("from", "출처"),
    "not_computed": _ui("not computed yet: run {cmd} (or {course})",
                        "아직 계산되지 않음: {cmd} (또는 {course}) 를 실행하세요"),
    "not_computed_course": _ui("not computed yet: run {course}", "아직 계산되지 않음: {course} 를 실행하세요"),
    "missing_value": _ui("not in results.json (no entry {path}); rerun {cmd} with this version of the code",
                         "results.json에 없음 ({path} 항목 없음): 이 버전의 코드로 {cmd} 를 다시 실행하세요"),
    "failed_run": _ui("the last course run of this experiment failed, so no numbers are shown: {error}; "
                      "rerun {cmd}",
                      "이 실험은 마지막 course 실행에서 실패하여 수치를 보이지 않습니다: {error}; {cmd} 를 다시 실행하세요"),
    "unreadable": _ui("results.json could not be read ({error}); rerun {cmd}",
                      "results.json을 읽을 수 없음 ({error}); {cmd} 를 다시 실행하세요"),
    "tiny": _ui("tiny-size run: numbers from the smallest settings, a smoke test, not the lesson's real sizes; "
                "{course} (without --tiny) computes those",
                "tiny 크기 실행: 동작 확인용 최소 설정의 수치이며 실제 크기가 아닙니다. "
                "실제 크기는 {course} (--tiny 없이) 로 계산하세요"),
    "tiny_badge": _ui("tiny run", "tiny 실행"),
    "experiments": _ui("Experiments", "실험"),
    "no_experiments": _ui("No experiment belongs to this week.", "이 주차에 속한 실험이 없습니다."),
    "computed_on": _ui("results.json written", "results.json 작성 시각"),
    "figures": _ui("Figures", "그림"),
    "no_figures": _ui("This experiment recorded no PNG figure.", "이 실험은 PNG 그림을 남기지 않았습니다."),
    "claims": _ui("What the experiment checked (from results.json)", "실험이 확인한 내용 (results.json, 영어)"),
    "holds": _ui("holds", "성립"),
    "does_not_hold": _ui("does not hold", "성립하지 않음"),
    "exercises": _ui("Exercises", "연습 문제"),
    "no_exercises": _ui("No exercise for this week yet.", "이 주차의 연습 문제는 아직 없습니다."),
    "check_with": _ui("Check with", "확인 명령"),
    "look_for": _ui("What to look for", "살펴볼 것"),
    "no_content": _ui("No prose has been written for this week yet; the derivations and experiments below are "
                      "complete.",
                      "이 주차의 설명은 아직 작성되지 않았습니다. 아래의 유도와 실험은 완전합니다."),
    "no_course": _ui("This site was built from a runs folder without a course run: no derivation is marked "
                     "verified and no experiment's numbers are shown. Run {course}, then {lessons}, to fill "
                     "them in.",
                     "이 사이트는 course 실행 결과가 없는 runs 폴더로 만들어졌습니다. 검증 결과와 실험 수치가 "
                     "없습니다. {course} 를 실행한 뒤 {lessons} 로 다시 만드세요."),
    "week": _ui("Week {n}", "{n}주차"),
    "built": _ui("Built by {lessons} on {date} from {runs}.", "{date}에 {runs} 폴더에서 {lessons} 로 만들었습니다."),
    "font_note": _ui("Equations: MathML rendered by the browser, with the font {font} ({origin}) shipped in "
                     "fonts/ with its licence.",
                     "수식: 브라우저가 그리는 MathML이며, 글꼴 {font} ({origin}) 를 라이선스와 함께 fonts/ 에 "
                     "넣었습니다."),
    "font_missing": _ui("Equations: MathML rendered with the reader's own math font (no MATH font was found "
                        "when the site was built).",
                        "수식: 독자의 수학 글꼴로 그리는 MathML입니다 (사이트를 만들 때 MATH 글꼴을 찾지 못했습니다)."),
    "weeks_heading": _ui("The twelve weeks", "12주 과정"),
    "col_week": _ui("Week", "주차"),
    "col_topic": _ui("Topic and goal", "주제와 목표"),
    "col_derivations": _ui("Derivations verified", "검증된 유도"),
    "col_experiments": _ui("Experiments", "실험"),
    "intro": _ui("Every equation on these pages is a SymPy statement from the project's registry, printed as "
                 "MathML; each derivation step is an identity SymPy proved, and each statement was compared "
                 "numerically with the JAX function that runs it. Numbers and figures come from the "
                 "experiments' results.json files; where something has not been computed, the page says so "
                 "and names the command that computes it.",
                 "이 페이지의 모든 식은 프로젝트 레지스트리의 SymPy 식을 MathML로 출력한 것입니다. 유도의 각 "
                 "단계는 SymPy가 증명한 항등식이고, 각 식은 그것을 실행하는 JAX 함수와 수치로 비교되었습니다. "
                 "수치와 그림은 실험의 results.json에서 가져오며, 아직 계산되지 않은 것은 그렇다고 밝히고 "
                 "계산하는 명령을 알려 줍니다."),
    "course_status": _ui("Course run", "course 실행"),
    "course_ok": _ui("everything ran", "모두 실행됨"),
    "course_failed": _ui("some parts failed", "일부 실패"),
    "serve": _ui("Open index.html from disk, or serve the folder with {cmd}.",
                 "index.html을 바로 열거나, {cmd} 로 폴더를 제공하세요."),
    "verified_count": _ui("{ok}/{n} verified", "{n}개 중 {ok}개 검증"),
    "unverified_count": _ui("{n}, not verified in this run", "{n}개, 이번 실행에서 검증되지 않음"),
    "none": _ui("none", "없음"),
    "status_ok": _ui("computed", "계산됨"),
    "status_missing": _ui("not computed", "계산되지 않음"),
    "status_failed": _ui("failed", "실패"),
    "language": _ui("Language", "언어"),
}

#: Said once above the derivations on the Korean side: their titles, steps and sources are the registry's English.
ENGLISH_ONLY_KO = "유도의 제목, 단계 설명, 출처는 레지스트리의 원문(영어) 그대로입니다."

#: Korean names of the axis letters (the English ones are :data:`derivations.symbolic.AXES`).
AXES_KO: dict[str, str] = {
    "B": "배치", "T": "쿼리 위치", "S": "키/값 위치", "D": "모델 너비", "H": "헤드",
    "K": "헤드 너비 (d_k = D / H)", "F": "피드포워드 은닉 너비", "V": "어휘", "L": "층", "C": "클래스",
}


# ---------------------------------------------------------------------------------------
# small HTML helpers
# ---------------------------------------------------------------------------------------

def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _code(text: str) -> str:
    return f"<code>{_esc(text)}</code>"


_BLOCK_TAGS = ("<p", "<ul", "<ol", "<div", "<table", "<pre", "<blockquote", "<h")


def _both(text: Text, tag: str = "span", cls: str = "", **values: str) -> str:
    """``text`` in both languages; ``values`` (already HTML) fill its ``{name}`` fields."""
    extra = f" {cls}" if cls else ""
    parts = []
    for lang in ("en", "ko"):
        body = getattr(text, lang)
        if values:
            body = body.format(**values)
        parts.append(f'<{tag} class="{lang}{extra}" lang="{lang}">{body}</{tag}>')
    return "".join(parts)


def _prose(text: Text, cls: str = "") -> str:
    """A prose fragment in both languages: a ``<p>`` unless it already is a block."""
    extra = f" {cls}" if cls else ""
    parts = []
    for lang in ("en", "ko"):
        body = getattr(text, lang).strip()
        if body.lower().startswith(_BLOCK_TAGS):
            parts.append(f'<div class="{lang}{extra}" lang="{lang}">{body}</div>')
        else:
            parts.append(f'<p class="{lang}{extra}" lang="{lang}">{body}</p>')
    return "".join(parts)


def _page_name(week: int) -> str:
    return f"week-{week:02d}.html"


def _utc(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso_to_text(value: Any) -> str:
    try:
        when = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(_dt.UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_err(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1e}"


# ---------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------

class _MissingPath(LookupError):
    def __init__(self, path: str, at: str):
        super().__init__(f"{path}: no entry {at!r}")
        self.at = at


def resolve_path(data: Any, path: str) -> Any:
    """The value at ``path`` in a JSON document: keys and list indices joined by dots.

    >>> resolve_path({"variance": {"scaled": [0.98, 1.01]}}, "variance.scaled.1")
    1.01

    Raises:
        LookupError: a key or index on the way does not exist (the message names it).
    """
    current = data
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            raise _MissingPath(path, ".".join(walked))
    return current


def _format_value(value: Any, fmt: str) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        try:
            return format(value, fmt)
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v, fmt) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@dataclass
class _Experiment:
    """What the site knows about one experiment's output folder."""

    name: str
    week: int | None
    title: str
    known: bool
    """Whether ``tfd experiment NAME`` runs it (else only ``tfd course`` makes the folder)."""
    status: str = "missing"
    """``ok``, ``missing``, ``failed`` (the course index says so) or ``unreadable``."""
    results: dict | None = None
    error: str | None = None
    tiny: bool = False
    written: str | None = None
    figures: list[str] = field(default_factory=list)
    """Site-relative paths of the copied figures."""

    def command(self) -> str:
        return f"tfd experiment {self.name}" if self.known else "tfd course"


def _course_entries(course: dict | None) -> dict[str, dict]:
    entries: dict[str, dict] = {}
    if not course:
        return entries
    for week in course.get("weeks") or []:
        for e in week.get("experiments") or []:
            if isinstance(e, dict) and "name" in e:
                entries[e["name"]] = e
    return entries


def _load_experiment(runs: Path, name: str, week: int | None, title: str, known: bool,
                     course: dict | None) -> _Experiment:
    exp = _Experiment(name=name, week=week, title=title, known=known)
    entry = _course_entries(course).get(name)
    path = runs / name / "results.json"
    if entry is not None and entry.get("ok") is False:
        exp.status = "failed"
        exp.error = str(entry.get("error") or "unknown error")
        return exp
    if not path.is_file():
        return exp
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        results, exp.error = None, f"{type(e).__name__}: {e}"
    else:
        if not isinstance(results, dict):
            exp.error = f"expected a JSON object, got {type(results).__name__}"
    if exp.error is not None:
        exp.status = "unreadable"
        return exp
    exp.status = "ok"
    exp.results = results
    exp.written = _utc(path.stat().st_mtime)
    setup = results.get("setup")
    if isinstance(setup, dict) and "tiny" in setup:
        exp.tiny = bool(setup["tiny"])
    elif entry is not None and course is not None:
        exp.tiny = bool(course.get("tiny"))
    return exp


def _figure_files(folder: Path, results: dict) -> list[Path]:
    listed = results.get("figures")
    names = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    files = [folder / n for n in names if n.lower().endswith(".png") and "/" not in n and "\\" not in n]
    if not names:
        files = sorted(folder.glob("*.png"))
    return [f for f in files if f.is_file()]


# ---------------------------------------------------------------------------------------
# derivations
# ---------------------------------------------------------------------------------------

@functools.cache
def _mathml(expr, display: str = "block") -> str:
    from experiments.lessons.mathml import to_mathml

    return to_mathml(expr, display)


def _symbol_mathml(name: str) -> str:
    import sympy as sp

    from experiments.lessons.mathml import LessonMathMLPrinter

    return LessonMathMLPrinter().doprint(sp.Symbol(name))


def _shape_mathml(name: str, letters: str, domain: str) -> str:
    """``name ∈ ℝ^{T×K}`` (or the set its domain says) as inline MathML."""
    if domain in ("mask", "causal"):
        base = "<mrow><mo>{</mo><mn>0</mn><mo>,</mo><mn>1</mn><mo>}</mo></mrow>"
    elif domain.startswith("index:"):
        n = _esc(domain.split(":", 1)[1])
        base = f"<mrow><mo>{{</mo><mn>0</mn><mo>,</mo><mo>…</mo><mo>,</mo><mi>{n}</mi><mo>−</mo><mn>1</mn><mo>}}</mo></mrow>"
    elif domain == "position":
        base = '<mi mathvariant="normal">ℕ</mi>'
    else:
        base = '<mi mathvariant="normal">ℝ</mi>'
    if letters:
        dims = "<mo>×</mo>".join(f"<mi>{_esc(a)}</mi>" for a in letters)
        base = f"<msup>{base}<mrow>{dims}</mrow></msup>"
    return (f'<math display="inline">{_symbol_mathml(name)}<mo>∈</mo>{base}</math>')


def _verification_html(d, record: Mapping | None) -> str:
    cmd = _code(f"tfd verify {d.id}")
    if record is None:
        return f'<p class="verify none">{_both(UI["not_verified"], cmd=cmd)}</p>'
    ok = bool(record.get("ok"))
    badge = (f'<span class="badge ok">✓ {_both(UI["verified"])}</span>' if ok
             else f'<span class="badge bad">✗ {_both(UI["failed"])}</span>')
    tolerance = (_both(UI["exact"]) if record.get("tolerance") == 0
                 else f'{_both(UI["tolerance"])} {_esc(_fmt_err(record.get("tolerance")))}')
    proved = f'{_esc(record.get("steps_proved", "?"))}/{_esc(record.get("steps_total", "?"))}'
    error = _esc(_fmt_err(record.get("numeric_error")))
    items = [f'{_both(UI["steps_proved"])} {proved}',
             f'{_both(UI["max_rel_err"])} {error} ({tolerance}, {_esc(record.get("dtype", "?"))})']
    if record.get("gradients_total"):
        tol = record.get("gradient_tolerance", record.get("tolerance"))
        items.append(f'{_both(UI["gradient_error"])} {_esc(_fmt_err(record.get("gradient_error")))} '
                     f'({_both(UI["tolerance"])} {_esc(_fmt_err(tol))}; {_esc(record.get("gradients_total"))} '
                     f'{_both(UI["gradient_count"])})')
    else:
        items.append(_both(UI["no_gradients"]))
    items.append(f'{_both(UI["backend"])} {_esc(record.get("backend", "?"))}')
    if record.get("date"):
        items.append(f'{_both(UI["date"])} {_esc(_iso_to_text(record["date"]))}')
    out = f'<p class="verify {"ok" if ok else "bad"}">{badge} ' + " · ".join(items) + "</p>"
    if record.get("error"):
        out += f'<pre class="error">{_esc(record["error"])}</pre>'
    return out


def _derivation_html(d, week: Week | None, record: Mapping | None) -> str:
    from derivations.symbolic import AXES

    parts = [f'<section class="derivation" id="{_esc(d.id)}">',
             f'<h3><code class="id">{_esc(d.id)}</code> <span lang="en">{_esc(d.title)}</span></h3>']
    note = week.derivation_notes.get(d.id) if week is not None else None
    if note is not None:
        parts.append(_prose(note, "note"))
    parts.append(f'<div class="eq statement" aria-label="{_esc(UI["statement"].en)}">{_mathml(d.statement)}</div>')
    shapes = " ".join(_shape_mathml(n, s, d.domains.get(n, "normal")) for n, s in d.shapes.items())
    parts.append(f'<p class="shapes"><span class="label">{_both(UI["shapes"])}</span> {shapes}</p>')
    letters = sorted({c for s in d.shapes.values() for c in s} | set(d.size_args.values()),
                     key=lambda a: list(AXES).index(a) if a in AXES else 99)
    if letters:
        en = ", ".join(f"{a}: {AXES.get(a, '?')}" for a in letters)
        ko = ", ".join(f"{a}: {AXES_KO.get(a, AXES.get(a, '?'))}" for a in letters)
        sizes = ", ".join(f"{a} = {d.sizes[a]}" for a in letters if a in d.sizes)
        parts.append(f'<p class="axes"><span class="label">{_both(UI["axes"])}</span> '
                     f'{_both(Text(en=_esc(en), ko=_esc(ko)))}; {_both(UI["checked_at"])} {_esc(sizes)}</p>')
    if d.constants:
        consts = ", ".join(f"{k} = {v}" for k, v in d.constants.items())
        parts.append(f'<p class="axes">{_both(UI["constants"])}: {_esc(consts)}</p>')
    parts.append(f'<p class="impl"><span class="label">{_both(UI["implemented_by"])}</span> '
                 f'{_code(d.implementation)}</p>')
    if d.notes:
        parts.append(f'<p class="about" lang="en"><span class="label">{_both(UI["about"])}</span> {_esc(d.notes)}</p>')
    if d.steps:
        parts.append(f'<h4>{_both(UI["steps"])}</h4><ol class="steps">')
        for step in d.steps:
            where = ""
            if step.sizes:
                where = (f' <span class="sizes">({_both(UI["step_sizes"])} '
                         + _esc(", ".join(f"{a} = {v}" for a, v in step.sizes.items())) + ")</span>")
            parts.append(f'<li><p class="claim"><span lang="en">{_esc(step.claim)}</span>{where}</p>'
                         f'<div class="eq">{_mathml(step.eq)}</div></li>')
        parts.append("</ol>")
    if d.gradients:
        parts.append(f'<h4>{_both(UI["gradients"])}</h4><ul class="gradients">')
        for g in d.gradients:
            kind = (UI["vjp"] if g.cotangent else UI["jacobian"])
            label = Text(en=_esc(kind.en.format(out=d.output, cot=g.cotangent, wrt=g.wrt)),
                         ko=_esc(kind.ko.format(out=d.output, cot=g.cotangent, wrt=g.wrt)))
            parts.append(f'<li><p class="claim">{_both(label)}</p><div class="eq">{_mathml(g.expr)}</div></li>')
        parts.append("</ul>")
    if d.source:
        parts.append(f'<p class="source"><span class="label">{_both(UI["source"])}</span> '
                     f'<span lang="en">{_esc(d.source)}</span></p>')
    parts.append(f'<h4>{_both(UI["verification"])}</h4>')
    parts.append(_verification_html(d, record))
    parts.append(f'<p class="check"><span class="label">{_both(UI["check_yourself"])}</span> '
                 f'{_code(f"tfd derive {d.id}")} · {_code(f"tfd verify {d.id}")}</p>')
    parts.append("</section>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# pages
# ---------------------------------------------------------------------------------------

_SCRIPT = """(function () {
  var key = "LANGUAGE_KEY";
  function use(lang) {
    var radio = document.getElementById("lang-" + lang);
    if (radio) { radio.checked = true; document.documentElement.lang = lang; }
  }
  try { var saved = window.localStorage.getItem(key); if (saved === "en" || saved === "ko") { use(saved); } }
  catch (e) { /* storage unavailable: the page keeps its default language */ }
  var radios = document.querySelectorAll("input.lang-radio");
  for (var i = 0; i < radios.length; i++) {
    radios[i].addEventListener("change", function (event) {
      var lang = event.target.value;
      document.documentElement.lang = lang;
      try { window.localStorage.setItem(key, lang); } catch (e) { /* not remembered */ }
    });
  }
})();""".replace("LANGUAGE_KEY", LANGUAGE_KEY)


def _page(title: str, body: str, nav: str) -> str:
    checked = {lang: " checked" if lang == DEFAULT_LANGUAGE else "" for lang in ("en", "ko")}
    return f"""<!DOCTYPE html>
<html lang="{DEFAULT_LANGUAGE}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="site.css">
</head>
<body>
<input type="radio" name="lang" id="lang-ko" value="ko" class="lang-radio"{checked["ko"]}>
<input type="radio" name="lang" id="lang-en" value="en" class="lang-radio"{checked["en"]}>
<div class="page">
<header class="top">
<nav>{nav}</nav>
<div class="switch" role="group" aria-label="Language / 언어"><label for="lang-ko" lang="ko">한국어</label><label for="lang-en" lang="en">English</label></div>
</header>
<main>
{body}
</main>
</div>
<script>
{_SCRIPT}
</script>
</body>
</html>
"""


def _nav(week: int | None) -> str:
    items = [f'<a href="index.html">{_both(UI["all_weeks"])}</a>']
    if week is not None:
        if week > WEEK_NUMBERS[0]:
            items.append(f'<a href="{_page_name(week - 1)}" rel="prev">← {_both(UI["week"], n=str(week - 1))}</a>')
        if week < WEEK_NUMBERS[-1]:
            items.append(f'<a href="{_page_name(week + 1)}" rel="next">{_both(UI["week"], n=str(week + 1))} →</a>')
    return " ".join(items)


def _week_title(n: int, week: Week | None) -> Text:
    label = UI["week"]
    if week is None:
        return Text(en=label.en.format(n=n), ko=label.ko.format(n=n))
    return Text(en=f"{label.en.format(n=n)} · {week.title.en}", ko=f"{label.ko.format(n=n)} · {week.title.ko}")


def _numbers_html(week: Week | None, experiments: dict[str, _Experiment]) -> str:
    parts = [f'<h2 id="numbers">{_both(UI["key_numbers"])}</h2>']
    numbers: tuple[Number, ...] = week.numbers if week is not None else ()
    if not numbers:
        parts.append(f'<p class="muted">{_both(UI["no_numbers"])}</p>')
        return "\n".join(parts)
    course = _code("tfd course")
    parts.append(f'<table class="numbers"><thead><tr><th>{_both(UI["key_numbers"])}</th>'
                 f'<th>{_both(UI["value"])}</th><th>{_both(UI["from"])}</th></tr></thead><tbody>')
    for n in numbers:
        exp = experiments[n.experiment]
        cmd = _code(exp.command())
        if exp.status == "ok":
            try:
                value = resolve_path(exp.results, n.path)
                cell = f'<span class="value">{_esc(_format_value(value, n.fmt))}</span>'
                if exp.tiny:
                    cell += f' <span class="badge tiny">{_both(UI["tiny_badge"])}</span>'
            except _MissingPath as e:
                cell = f'<span class="missing">{_both(UI["missing_value"], path=_code(e.at), cmd=cmd)}</span>'
        elif exp.status == "failed":
            cell = f'<span class="missing">{_both(UI["failed_run"], error=_esc(exp.error), cmd=cmd)}</span>'
        elif exp.status == "unreadable":
            cell = f'<span class="missing">{_both(UI["unreadable"], error=_esc(exp.error), cmd=cmd)}</span>'
        elif exp.known:
            cell = f'<span class="missing">{_both(UI["not_computed"], cmd=cmd, course=course)}</span>'
        else:
            cell = f'<span class="missing">{_both(UI["not_computed_course"], course=course)}</span>'
        parts.append(f'<tr><td>{_both(n.label)}</td><td>{cell}</td>'
                     f'<td><code>{_esc(n.experiment)}</code> <code class="path">{_esc(n.path)}</code></td></tr>')
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _experiment_html(exp: _Experiment) -> str:
    cmd = _code(exp.command())
    course = _code("tfd course")
    parts = [f'<section class="experiment" id="experiment-{_esc(exp.name)}">',
             f'<h3><code>{_esc(exp.name)}</code> <span lang="en">{_esc(exp.title)}</span></h3>']
    if exp.status == "missing":
        msg = UI["not_computed"] if exp.known else UI["not_computed_course"]
        parts.append(f'<p class="missing">{_both(msg, cmd=cmd, course=course)}</p>')
    elif exp.status == "failed":
        parts.append(f'<p class="missing">{_both(UI["failed_run"], error=_esc(exp.error), cmd=cmd)}</p>')
    elif exp.status == "unreadable":
        parts.append(f'<p class="missing">{_both(UI["unreadable"], error=_esc(exp.error), cmd=cmd)}</p>')
    else:
        parts.append(f'<p class="muted">{_both(UI["computed_on"])} {_esc(exp.written)} · {cmd}</p>')
        if exp.tiny:
            parts.append(f'<p class="notice tiny">{_both(UI["tiny"], course=course)}</p>')
        parts.append(f'<h4>{_both(UI["figures"])}</h4>')
        if exp.figures:
            for src in exp.figures:
                stem = Path(src).stem
                parts.append(f'<figure><img src="{_esc(src)}" alt="{_esc(exp.name)}: {_esc(stem)}">'
                             f'<figcaption><code>{_esc(stem)}</code></figcaption></figure>')
        else:
            parts.append(f'<p class="muted">{_both(UI["no_figures"])}</p>')
        claims = exp.results.get("claims") if exp.results else None
        if isinstance(claims, list) and claims:
            parts.append(f'<h4>{_both(UI["claims"])}</h4><ul class="claims">')
            for c in claims:
                if not isinstance(c, dict) or "claim" not in c:
                    continue
                holds = c.get("holds")
                mark = ('<span class="badge ok">✓</span>' if holds is True else
                        '<span class="badge bad">✗</span>' if holds is False else "")
                word = (_both(UI["holds"]) if holds is True else _both(UI["does_not_hold"]) if holds is False
                        else "")
                parts.append(f'<li>{mark} <span lang="en">{_esc(c["claim"])}</span> '
                             f'<span class="muted">({word})</span></li>')
            parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _exercises_html(week: Week | None) -> str:
    parts = [f'<h2 id="exercises">{_both(UI["exercises"])}</h2>']
    exercises = week.exercises if week is not None else ()
    if not exercises:
        parts.append(f'<p class="muted">{_both(UI["no_exercises"])}</p>')
        return "\n".join(parts)
    parts.append('<ol class="exercises">')
    for ex in exercises:
        parts.append(f'<li>{_prose(ex.question)}'
                     f'<p class="check"><span class="label">{_both(UI["check_with"])}</span> {_code(ex.check)}</p>'
                     f'<div class="hint"><span class="label">{_both(UI["look_for"])}</span>{_prose(ex.hint)}</div>'
                     f"</li>")
    parts.append("</ol>")
    return "\n".join(parts)


def _week_page(n: int, week: Week | None, derivs: list, records: Mapping[str, Mapping],
               experiments: list[_Experiment], all_experiments: dict[str, _Experiment],
               course: dict | None, footer: str) -> str:
    title = _week_title(n, week)
    parts = [f'<h1>{_both(title)}</h1>']
    if course is None:
        parts.append(f'<p class="notice">{_both(UI["no_course"], course=_code("tfd course"), lessons=_code("tfd lessons"))}</p>')
    if week is None:
        parts.append(f'<p class="notice">{_both(UI["no_content"])}</p>')
    else:
        parts.append(f'<div class="goal"><h2>{_both(UI["goal"])}</h2>{_prose(week.goal)}</div>')
        parts.extend(_prose(p) for p in week.intro)
        if week.limits is not None:
            parts.append(f'<div class="limits"><h2>{_both(UI["limits"])}</h2>{_prose(week.limits)}</div>')
    parts.append(f'<h2 id="derivations">{_both(UI["derivations"])}</h2>')
    if derivs:
        parts.append(f'<p class="muted ko" lang="ko">{ENGLISH_ONLY_KO}</p>')
        parts.extend(_derivation_html(d, week, records.get(d.id)) for d in derivs)
    else:
        parts.append(f'<p class="muted">{_both(UI["no_derivations"])}</p>')
    parts.append(_numbers_html(week, all_experiments))
    parts.append(f'<h2 id="experiments">{_both(UI["experiments"])}</h2>')
    if experiments:
        parts.extend(_experiment_html(e) for e in experiments)
    else:
        parts.append(f'<p class="muted">{_both(UI["no_experiments"])}</p>')
    parts.append(_exercises_html(week))
    parts.append(footer)
    return _page(f"{title.en} — {UI['site_short'].en}", "\n".join(parts), _nav(n))


def _index_page(weeks: Mapping[int, Week], by_week: dict[int, list], records: Mapping[str, Mapping],
                experiments: dict[int, list[_Experiment]], course: dict | None, footer: str, site: Path) -> str:
    from derivations.symbolic import AXES

    parts = [f'<h1>{_both(UI["site"])}</h1>', _prose(Text(en=UI["intro"].en, ko=UI["intro"].ko))]
    if course is None:
        parts.append(f'<p class="notice">{_both(UI["no_course"], course=_code("tfd course"), lessons=_code("tfd lessons"))}</p>')
    else:
        state = UI["course_ok"] if course.get("ok") else UI["course_failed"]
        v = course.get("verify") or {}
        summary = (f'{_esc(v.get("verified", "?"))}/{_esc(v.get("derivations", "?"))} · '
                   f'{_both(UI["backend"])} {_esc(v.get("backend", "?"))} ({_esc(v.get("device", "?"))})')
        parts.append(f'<p class="status"><span class="label">{_both(UI["course_status"])}</span> '
                     f'{_both(state)} · {_both(UI["verification"])} {summary}</p>')
        if course.get("tiny"):
            parts.append(f'<p class="notice tiny">{_both(UI["tiny"], course=_code("tfd course"))}</p>')
    parts.append(f'<h2>{_both(UI["weeks_heading"])}</h2>')
    parts.append(f'<table class="weeks"><thead><tr><th>{_both(UI["col_week"])}</th><th>{_both(UI["col_topic"])}</th>'
                 f'<th>{_both(UI["col_derivations"])}</th><th>{_both(UI["col_experiments"])}</th></tr></thead><tbody>')
    for n in WEEK_NUMBERS:
        week = weeks.get(n)
        title = _week_title(n, week)
        topic = f'<a href="{_page_name(n)}">{_both(title)}</a>'
        if week is not None:
            topic += _prose(week.goal, "small")
        derivs = by_week.get(n, [])
        if not derivs:
            dcell = _both(UI["none"])
        else:
            done = [records[d.id] for d in derivs if d.id in records]
            if done:
                ok = sum(1 for r in done if r.get("ok"))
                dcell = _both(UI["verified_count"], ok=str(ok), n=str(len(derivs)))
            else:
                dcell = _both(UI["unverified_count"], n=str(len(derivs)))
        exps = experiments.get(n, [])
        if exps:
            cells = []
            for e in exps:
                key = {"ok": "status_ok", "failed": "status_failed"}.get(e.status, "status_missing")
                tiny = f' <span class="badge tiny">{_both(UI["tiny_badge"])}</span>' if e.status == "ok" and e.tiny else ""
                cells.append(f'<code>{_esc(e.name)}</code>: {_both(UI[key])}{tiny}')
            ecell = "<br>".join(cells)
        else:
            ecell = _both(UI["none"])
        parts.append(f"<tr><td>{n}</td><td>{topic}</td><td>{dcell}</td><td>{ecell}</td></tr>")
    parts.append("</tbody></table>")
    parts.append(f'<h2>{_both(UI["axes"])}</h2><ul class="legend">')
    for a, meaning in AXES.items():
        parts.append(f'<li><math display="inline"><mi>{_esc(a)}</mi></math> '
                     f'{_both(Text(en=_esc(meaning), ko=_esc(AXES_KO.get(a, meaning))))}</li>')
    parts.append("</ul>")
    parts.append(f'<p class="muted">{_both(UI["serve"], cmd=_code(f"python -m http.server --directory {site}"))}</p>')
    parts.append(footer)
    return _page(UI["site"].en, "\n".join(parts), _nav(None))


# ---------------------------------------------------------------------------------------
# the style sheet
# ---------------------------------------------------------------------------------------

def _css(font: MathFont | None) -> str:
    if font is not None:
        face = (f'@font-face {{ font-family: "TFD Math"; src: url("fonts/{font.path.name}") '
                f'format("{"opentype" if font.path.suffix.lower() == ".otf" else "truetype"}"); }}\n')
        math_family = '"TFD Math", math'
    else:
        face = ""
        math_family = "math"
    return face + SITE_CSS.replace("MATH_FAMILY", math_family)


SITE_CSS = """
:root { --fg: #1d1d1f; --muted: #5b5b66; --line: #d9d9e0; --accent: #1f5fbf; --ok: #17803d; --bad: #b3261e;
        --note: #fff7e0; --panel: #f6f7fb; }
* { box-sizing: border-box; }
html { font-size: 17px; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.6;
       font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK KR", "Apple SD Gothic Neo",
                    "Malgun Gothic", "NanumGothic", "Nanum Gothic", sans-serif; }
:lang(ko) { word-break: keep-all; }
.page { max-width: 62rem; margin: 0 auto; padding: 0 1.2rem 3rem; }
header.top { display: flex; justify-content: space-between; align-items: center; gap: 1rem; flex-wrap: wrap;
             border-bottom: 1px solid var(--line); padding: .6rem 0; position: sticky; top: 0; background: #fff;
             z-index: 1; }
header.top nav a { margin-right: 1rem; }
a { color: var(--accent); }
.lang-radio { position: absolute; opacity: 0; pointer-events: none; }
.switch label { cursor: pointer; padding: .15rem .6rem; border: 1px solid var(--line); border-radius: .4rem;
                margin-left: .3rem; user-select: none; }
#lang-ko:checked ~ .page .switch label[for="lang-ko"],
#lang-en:checked ~ .page .switch label[for="lang-en"] { background: var(--accent); color: #fff;
                                                         border-color: var(--accent); }
#lang-ko:checked ~ .page .en { display: none !important; }
#lang-en:checked ~ .page .ko { display: none !important; }
h1 { font-size: 1.8rem; line-height: 1.3; margin: 1.4rem 0 1rem; }
h2 { font-size: 1.35rem; margin: 2.2rem 0 .8rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
h4 { font-size: .95rem; margin: 1.1rem 0 .4rem; color: var(--muted); text-transform: none; }
code { font-family: "DejaVu Sans Mono", "Noto Sans Mono", ui-monospace, monospace; font-size: .88em;
       background: var(--panel); padding: .05rem .3rem; border-radius: .25rem; }
pre.error { white-space: pre-wrap; background: #fdecea; padding: .6rem; border-radius: .4rem; font-size: .85rem; }
math { font-family: MATH_FAMILY; font-size: 1.08em; }
.eq { overflow-x: auto; overflow-y: hidden; padding: .35rem 0; }
.eq math[display="block"] { margin: .2rem 0; }
.statement { background: var(--panel); border-radius: .5rem; padding: .6rem .8rem; }
.derivation { border-top: 1px dashed var(--line); margin-top: 1.6rem; }
.derivation .id, .experiment h3 code { color: var(--accent); }
.label { font-weight: 600; margin-right: .4rem; color: var(--muted); }
.muted, .sizes { color: var(--muted); font-size: .92rem; }
.shapes math { margin-right: 1.2rem; }
.steps li, .gradients li { margin-bottom: .6rem; }
.claim { margin: .2rem 0; }
.about, .source { font-size: .95rem; }
.goal { background: #eef4ff; border-left: 4px solid var(--accent); padding: .2rem 1rem; border-radius: .3rem; }
.goal h2, .limits h2 { border: 0; margin: .6rem 0 .2rem; font-size: 1.05rem; }
.limits { background: var(--note); border-left: 4px solid #d9a400; padding: .2rem 1rem; border-radius: .3rem;
          margin-top: 1.2rem; }
.notice { background: var(--note); border: 1px solid #efd27a; padding: .5rem .8rem; border-radius: .4rem; }
.missing { color: var(--bad); }
.badge { display: inline-block; font-size: .8rem; padding: 0 .4rem; border-radius: .3rem; font-weight: 600; }
.badge.ok { background: #e3f4e8; color: var(--ok); }
.badge.bad { background: #fdecea; color: var(--bad); }
.badge.tiny { background: #fff0c2; color: #7a5a00; }
.verify.ok { color: var(--fg); }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { border-bottom: 1px solid var(--line); padding: .4rem .5rem; text-align: left; vertical-align: top; }
th { background: var(--panel); }
td .small, p.small { font-size: .88rem; color: var(--muted); margin: .2rem 0 0; }
.value { font-weight: 600; font-variant-numeric: tabular-nums; }
code.path { color: var(--muted); }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: .3rem; }
figcaption { font-size: .85rem; color: var(--muted); }
.exercises li { margin-bottom: 1rem; }
.hint { color: var(--muted); }
.hint p { margin: .2rem 0; }
footer { margin-top: 3rem; border-top: 1px solid var(--line); padding-top: .6rem; color: var(--muted);
         font-size: .88rem; }
"""


# ---------------------------------------------------------------------------------------
# the builder
# ---------------------------------------------------------------------------------------

def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _check_weeks(weeks: Any) -> dict[int, Week]:
    if not isinstance(weeks, Mapping):
        raise TypeError(f"weeks: expected a mapping from week number to Week, got {type(weeks).__name__}")
    checked: dict[int, Week] = {}
    for n, week in weeks.items():
        if isinstance(n, bool) or not isinstance(n, int) or n not in WEEK_NUMBERS:
            raise ValueError(f"weeks: expected keys among the week numbers 1 to 12, got {n!r}")
        if not isinstance(week, Week):
            raise TypeError(f"weeks[{n}]: expected an experiments.lessons.schema.Week, got {type(week).__name__}")
        if week.number != n:
            raise ValueError(f"weeks[{n}]: the Week says it is week {week.number}")
        checked[n] = week
    return checked


def _records(verify_results: Any, course: dict | None) -> dict[str, Mapping]:
    if verify_results is None:
        verify_results = ((course or {}).get("verify") or {}).get("results") or []
    if isinstance(verify_results, Mapping):
        return {str(k): v for k, v in verify_results.items()}
    if isinstance(verify_results, Iterable) and not isinstance(verify_results, (str, bytes)):
        out = {}
        for r in verify_results:
            if not isinstance(r, Mapping) or "id" not in r:
                raise TypeError(f"verify_results: expected records with an 'id' key, got {r!r}")
            out[str(r["id"])] = r
        return out
    raise TypeError(f"verify_results: expected a list of records or a mapping id -> record, "
                    f"got {type(verify_results).__name__}")


def _read_course(runs: Path, progress: bool) -> dict | None:
    path = runs / "course" / "index.json"
    if not path.is_file():
        return None
    try:
        course = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        course, problem = None, str(e)
    else:
        problem = None if isinstance(course, dict) else f"expected a JSON object, got {type(course).__name__}"
    if problem is not None:
        _say(progress, f"lessons: {path} could not be read ({problem}); building as if no course had run")
        return None
    return course


def _experiment_modules() -> dict[str, tuple[int, str]]:
    from experiments import weekly

    found = {}
    for name in weekly.EXPERIMENTS:
        module = weekly.get(name)
        found[name] = (int(module.WEEK), str(module.TITLE))
    return found


def build_site(runs_dir: str | os.PathLike = "runs", out_dir: str | os.PathLike | None = None, *,
               weeks: Mapping[int, Week] | None = None, verify_results: Any = None,
               progress: bool = True) -> Path:
    """Write the lesson site and return the path of its ``index.html``.

    Reads what ``runs_dir`` holds and runs nothing: ``course/index.json`` for the
    verification results and which experiments failed, ``<name>/results.json`` and the
    PNG figures of each experiment.

    Args:
        runs_dir: the runs folder of ``tfd course`` / ``tfd experiment``.
        out_dir: where the site goes (default ``<runs_dir>/site``).  Only the site's own
            files are replaced there: the pages, ``site.css``, ``fonts/`` and ``figures/``.
        weeks: the prose of each week (default
            :data:`experiments.lessons.content.WEEKS`); a week without an entry gets a
            page with its derivations and experiments only.
        verify_results: verification records (dicts with at least ``id``; see
            :func:`experiments.course.run_course`), as a list or a mapping id -> record;
            default: those in ``<runs_dir>/course/index.json``.
        progress: say what is being built, and which font, on stderr.

    Returns:
        the path of ``index.html``.

    Raises:
        TypeError, ValueError: ``weeks`` or ``verify_results`` is not as described.
    """
    import derivations

    if weeks is None:
        from experiments.lessons.content import WEEKS as weeks  # the default prose
    weeks = _check_weeks(weeks)
    runs = Path(runs_dir)
    out = Path(out_dir) if out_dir is not None else runs / "site"
    course = _read_course(runs, progress)
    records = _records(verify_results, course)

    out.mkdir(parents=True, exist_ok=True)
    for own in ("figures", "fonts"):
        if (out / own).is_dir():
            shutil.rmtree(out / own)

    font = find_math_font()
    if font is not None:
        (out / "fonts").mkdir()
        shutil.copyfile(font.path, out / "fonts" / font.path.name)
        shutil.copyfile(font.licence, out / "fonts" / f"LICENSE-{font.path.stem}.txt")
        _say(progress, f"lessons: math font {font.family} from the {font.origin} ({font.path})")
    else:
        _say(progress, "lessons: NOTE no OpenType MATH font found (Debian fonts-dejavu-extra, or matplotlib's "
                       "DejaVu Serif); equations fall back to the reader's `math` font family, where brackets "
                       "may not stretch. Install fonts-dejavu-extra and rebuild with `tfd lessons`.")
    (out / "site.css").write_text(_css(font), encoding="utf-8")

    modules = _experiment_modules()
    wanted = set(modules) | {n.experiment for w in weeks.values() for n in w.numbers}
    all_experiments: dict[str, _Experiment] = {}
    for name in sorted(wanted):
        week_no, title = modules.get(name, (None, name))
        all_experiments[name] = _load_experiment(runs, name, week_no, title, name in modules, course)
    for exp in all_experiments.values():
        if exp.status == "ok" and exp.week is not None:
            folder = runs / exp.name
            for f in _figure_files(folder, exp.results):
                target = out / "figures" / exp.name / f.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                exp.figures.append(f"figures/{exp.name}/{f.name}")
    by_week_exp: dict[int, list[_Experiment]] = {}
    for exp in sorted(all_experiments.values(), key=lambda e: e.name):
        if exp.week is not None:
            by_week_exp.setdefault(exp.week, []).append(exp)

    by_week = derivations.by_week()
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    font_line = (_both(UI["font_note"], font=_esc(font.family), origin=_esc(font.origin)) if font is not None
                 else _both(UI["font_missing"]))
    footer = (f'<footer><p>{_both(UI["built"], lessons=_code("tfd lessons"), date=_esc(now), runs=_code(str(runs)))}'
              f'</p><p>{font_line}</p></footer>')

    for n in WEEK_NUMBERS:
        _say(progress, f"lessons: week {n}")
        page = _week_page(n, weeks.get(n), by_week.get(n, []), records, by_week_exp.get(n, []),
                          all_experiments, course, footer)
        (out / _page_name(n)).write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index_page(weeks, by_week, records, by_week_exp, course, footer, out), encoding="utf-8")
    return index
