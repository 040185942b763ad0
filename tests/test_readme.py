"""The README stays true: it lists every file of the repository and every derivation in the weekly map."""

import re
import subprocess
from pathlib import Path

import pytest

import derivations

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _tracked_files() -> list[str]:
    try:
        done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the file list is checked in a clone")
    return [f for f in done.stdout.splitlines() if f]


def test_readme_lists_every_file():
    missing = [f for f in _tracked_files() if f"`{f}`" not in README]
    assert not missing, f"README.md does not list: {missing}"


def test_readme_weekly_map_names_every_derivation_and_its_function():
    for d in derivations.REGISTRY.values():
        assert f"`{d.id}`" in README, f"the weekly map lacks {d.id}"
        assert d.implementation.rsplit(".", 1)[1] in README, f"the weekly map lacks {d.implementation}"


def test_readme_shows_the_two_commands():
    assert re.search(r"python -m pip install -e '\.\[test\]'", README)
    assert "tfd verify" in README and "python -m pytest" in README
