"""The lesson site (``tfd lessons``): pages, MathML, offline links, both languages, honest numbers.

The site is built from the tiny runs folder of the weekly tests (``weekly_runs``) and
from an empty one; the numbers logic is checked on hand-written ``results.json`` files.
The real-browser check is in ``test_lessons_browser.py``.
"""

import json
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import derivations
from experiments.cli import main
from experiments.course import verification_record
from experiments.lessons import build
from experiments.lessons.build import build_site, resolve_path
from experiments.lessons.mathml import UnprintableError, to_mathml
from experiments.lessons.schema import Exercise, Number, Text, Week
from experiments.verify import verify

PAGES = ["index.html"] + [f"week-{n:02d}.html" for n in range(1, 13)]
HANGUL = re.compile(r"[\uac00-\ud7a3]")
MATH = re.compile(r"<math\b.*?</math>", re.DOTALL)


def _png(path: Path, width: int = 2, height: int = 2) -> None:
    """A small valid PNG (grey pixels), written without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class _Refs(HTMLParser):
    """Every URL a page refers to (href, src), and the lang attributes it uses."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.langs: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.urls.append((tag, attrs[key]))
        if attrs.get("lang"):
            self.langs.add(attrs["lang"])


def _refs(page: Path) -> _Refs:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def runs(weekly_runs, tiny_experiment):
    """The weekly tests' tiny runs folder, with at least the comparison experiment computed."""
    tiny_experiment("comparison")
    return weekly_runs


@pytest.fixture(scope="module")
def record():
    """A real verification record of one quick derivation."""
    return verification_record(verify(derivations.get("attention.scores")))


@pytest.fixture(scope="module")
def site(runs, record, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    index = build_site(runs, out, verify_results=[record], progress=False)
    assert index == out / "index.html"
    return out


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory):
    runs = tmp_path_factory.mktemp("empty-runs")
    build_site(runs, progress=False)
    return runs / "site"


def test_a_page_per_week_an_index_a_style_sheet_and_a_math_font(site):
    for name in PAGES + ["site.css"]:
        assert (site / name).is_file(), name
    font = build.find_math_font()
    if font is not None:  # matplotlib ships DejaVu Serif, so there always is one where the project installs
        assert (site / "fonts" / font.path.name).is_file()
        assert (site / "fonts" / f"LICENSE-{font.path.stem}.txt").is_file()
        assert f'url("fonts/{font.path.name}")' in (site / "site.css").read_text()


def test_every_derivation_is_on_its_weeks_page_with_its_steps(site):
    pages = {n: (site / f"week-{n:02d}.html").read_text(encoding="utf-8") for n in range(1, 13)}
    for d in derivations.REGISTRY.values():
        page = pages[d.week]
        assert f'id="{d.id}"' in page, d.id
        assert f"tfd verify {d.id}" in page and f"tfd derive {d.id}" in page
        section = page.split(f'id="{d.id}"', 1)[1].split('<section class="derivation"', 1)[0]
        assert section.count("<math") >= 1 + len(d.steps) + len(d.gradients), d.id


def test_every_equation_on_the_pages_is_well_formed_mathml_with_a_notation_of_its_own(site):
    for name in PAGES:
        html = (site / name).read_text(encoding="utf-8")
        assert "data-fallback" not in html, name  # a SymPy class the printer has no notation for
        assert "&ExponentialE;" not in html and "ⅇ" not in html
        for m in MATH.findall(html):
            root = ET.fromstring(m)
            assert root.tag.endswith("math")


def test_the_printer_notations():
    import sympy as sp

    x = sp.Symbol("x")
    assert ">e</mi>" in to_mathml(sp.exp(x)) and "ExponentialE" not in to_mathml(sp.exp(x))
    w = sp.MatrixSymbol("w_q", 4, 4)
    sliced = to_mathml(w[:, 2:4])
    assert "[" in sliced and ":" in sliced
    ET.fromstring(to_mathml(sp.Max(0, x) - sp.pi, display="inline"))

    class Unknown(sp.Basic):
        pass

    with pytest.raises(UnprintableError, match="Unknown"):
        to_mathml(Unknown(x), strict=True)
    with pytest.raises(ValueError, match="display"):
        to_mathml(x, display="wide")


def test_pages_are_offline_and_every_reference_resolves(site):
    for name in PAGES:
        page = site / name
        text = page.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, name
        for tag, url in _refs(page).urls:
            if url.startswith("data:"):
                continue
            assert "//" not in url and not url.startswith("/"), (name, tag, url)
            target = url.split("#", 1)[0]
            if target:
                assert (site / target).is_file(), (name, url)
    css = (site / "site.css").read_text(encoding="utf-8")
    assert "http" not in css and "@import" not in css
    for url in re.findall(r'url\("?([^")]+)"?\)', css):
        assert "//" not in url and (site / url).is_file(), url


def test_both_languages_are_on_every_page(site):
    from experiments.lessons.content import WEEKS

    for name in PAGES:
        page = site / name
        text = page.read_text(encoding="utf-8")
        assert {"en", "ko"} <= _refs(page).langs, name
        assert 'id="lang-en"' in text and 'id="lang-ko"' in text
        assert HANGUL.search(text), name
    for n, week in WEEKS.items():
        text = (site / f"week-{n:02d}.html").read_text(encoding="utf-8")
        assert week.title.en in text and week.title.ko in text
        assert week.goal.en.strip() in text and week.goal.ko.strip() in text


def test_computed_experiments_show_figures_and_a_verification_record_is_shown(site, runs, record):
    from experiments.weekly import comparison

    week = (site / f"week-{comparison.WEEK:02d}.html").read_text(encoding="utf-8")
    images = [url for tag, url in _refs(site / f"week-{comparison.WEEK:02d}.html").urls if tag == "img"]
    assert images and all(url.startswith("figures/comparison/") for url in images)
    assert "not computed yet" not in week.split('id="experiment-comparison"', 1)[1].split("</section>", 1)[0]
    scores = (site / "week-06.html").read_text(encoding="utf-8").split('id="attention.scores"', 1)[1]
    scores = scores.split("</section>", 1)[0]
    assert f"{record['steps_proved']}/{record['steps_total']}" in scores
    assert record["date"][:10] in scores and "✓" in scores


def test_an_empty_runs_folder_gives_pages_that_say_what_to_run_and_show_no_numbers(empty_site):
    from experiments import weekly

    for name in PAGES:
        text = (empty_site / name).read_text(encoding="utf-8")
        assert "tfd course" in text, name
        assert 'class="value"' not in text and "<img" not in text, name
    for name in weekly.EXPERIMENTS:
        n = weekly.get(name).WEEK
        text = (empty_site / f"week-{n:02d}.html").read_text(encoding="utf-8")
        assert f"tfd experiment {name}" in text and "not computed yet" in text
    for d in derivations.REGISTRY.values():
        text = (empty_site / f"week-{d.week:02d}.html").read_text(encoding="utf-8")
        section = text.split(f'id="{d.id}"', 1)[1].split("</section>", 1)[0]
        assert "not verified in this run" in section and "✓" not in section


def _week(*numbers: Number) -> dict[int, Week]:
    return {7: Week(number=7, title=Text(en="Scaled attention", ko="스케일드 어텐션"),
                    goal=Text(en="A goal.", ko="목표."), intro=(Text(en="An idea.", ko="생각."),),
                    numbers=numbers,
                    exercises=(Exercise(question=Text(en="How many steps?", ko="몇 단계?"),
                                        check="tfd derive attention.sdpa",
                                        hint=Text(en="Count them.", ko="세어 보세요.")),))}


def _number(path: str, experiment: str = "sdpa", fmt: str = ".3f") -> Number:
    return Number(label=Text(en=f"label {path}", ko=f"이름 {path}"), experiment=experiment, path=path, fmt=fmt)


def _row(page: str, path: str) -> str:
    return page.split(f"label {path}", 1)[1].split("</tr>", 1)[0]


def test_numbers_are_read_from_results_json_and_never_invented(tmp_path):
    runs = tmp_path / "runs"
    (runs / "sdpa").mkdir(parents=True)
    (runs / "sdpa" / "results.json").write_text(json.dumps(
        {"setup": {"tiny": True}, "variance": {"scaled": [0.5, 1.25]}, "figures": ["v.png", "v.svg"],
         "claims": [{"claim": "the variance is one", "holds": True}]}))
    _png(runs / "sdpa" / "v.png")
    weeks = _week(_number("variance.scaled.-1"), _number("variance.nope.0"), _number("x", experiment="heads"))
    build_site(runs, tmp_path / "site", weeks=weeks, progress=False)
    page = (tmp_path / "site" / "week-07.html").read_text(encoding="utf-8")
    found = _row(page, "variance.scaled.-1")
    assert '<span class="value">1.250</span>' in found and "tiny run" in found
    missing = _row(page, "variance.nope.0")
    assert "not in results.json" in missing and "variance.nope" in missing and 'class="value"' not in missing
    absent = _row(page, "x")
    assert "not computed yet" in absent and "tfd experiment heads" in absent
    assert (tmp_path / "site" / "figures" / "sdpa" / "v.png").is_file()
    assert "the variance is one" in page and "tiny-size run" in page


def test_an_experiment_that_failed_in_the_last_course_run_shows_its_error_not_old_numbers(tmp_path):
    runs = tmp_path / "runs"
    (runs / "sdpa").mkdir(parents=True)
    (runs / "sdpa" / "results.json").write_text(json.dumps({"variance": {"scaled": [0.5, 1.25]}}))
    _png(runs / "sdpa" / "old.png")
    (runs / "course").mkdir()
    (runs / "course" / "index.json").write_text(json.dumps(
        {"tiny": False, "ok": False, "verify": {"derivations": 0, "verified": 0, "failed": [], "results": []},
         "weeks": [{"week": 7, "experiments": [{"name": "sdpa", "ok": False, "error": "RuntimeError: boom"}]}]}))
    build_site(runs, tmp_path / "site", weeks=_week(_number("variance.scaled.0")), progress=False)
    page = (tmp_path / "site" / "week-07.html").read_text(encoding="utf-8")
    assert "RuntimeError: boom" in page and "1.250" not in page and "0.500" not in page and "<img" not in page


def test_a_results_json_that_cannot_be_read_is_said_to_be_so(tmp_path):
    runs = tmp_path / "runs"
    (runs / "sdpa").mkdir(parents=True)
    (runs / "sdpa" / "results.json").write_text("[1, 2")
    build_site(runs, tmp_path / "site", weeks=_week(_number("variance.scaled.0")), progress=False)
    page = (tmp_path / "site" / "week-07.html").read_text(encoding="utf-8")
    assert "could not be read" in page and "JSONDecodeError" in page and 'class="value"' not in page


def test_without_a_math_font_the_site_falls_back_to_the_readers_math_font(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "find_math_font", lambda: None)
    build_site(tmp_path / "runs", tmp_path / "site", weeks={}, progress=True)
    css = (tmp_path / "site" / "site.css").read_text(encoding="utf-8")
    assert "@font-face" not in css and "font-family: math;" in css
    assert not (tmp_path / "site" / "fonts").exists()
    assert "no OpenType MATH font" in capsys.readouterr().err


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        build_site(tmp_path, weeks=[1, 2], progress=False)
    with pytest.raises(ValueError, match="1 to 12"):
        build_site(tmp_path, weeks={13: _week()[7]}, progress=False)
    with pytest.raises(ValueError, match="week 7"):
        build_site(tmp_path, weeks={8: _week()[7]}, progress=False)
    with pytest.raises(TypeError, match="verify_results"):
        build_site(tmp_path, weeks={}, verify_results=3, progress=False)


def test_resolve_path():
    data = {"a": {"b": [1, {"c": 2}]}}
    assert resolve_path(data, "a.b.1.c") == 2 and resolve_path(data, "a.b.-2") == 1
    with pytest.raises(LookupError, match="a.b.5"):
        resolve_path(data, "a.b.5")


def test_tfd_lessons_builds_from_what_runs_holds_and_says_how_to_serve_it(tmp_path, capsys):
    assert main(["lessons", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out" / "index.html") in out and "http.server" in out and "tfd course" in out
    assert (tmp_path / "out" / "week-12.html").is_file()
