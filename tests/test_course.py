"""`tfd course`: the verification summary, the shared GPT, the experiments and index.json."""

import json

import pytest

from experiments.cli import main
from experiments.course import run_course


def test_course_writes_an_index_of_what_ran(weekly_runs):
    tmp_path = weekly_runs  # the tiny shared GPT of the weekly tests' session
    index = run_course(tmp_path, tiny=True, progress=False, only=["comparison"],
                       verify_ids=["attention.scores"])
    saved = json.loads((tmp_path / "course" / "index.json").read_text())
    assert saved["ok"] and index["ok"]
    assert saved["verify"] == {**saved["verify"], "derivations": 1, "verified": 1, "failed": []}
    [record] = saved["verify"]["results"]
    assert record["id"] == "attention.scores" and record["ok"] and record["steps_proved"] == record["steps_total"]
    assert record["date"].endswith("+00:00") and record["backend"] == saved["verify"]["backend"]
    assert saved["site"]["ok"] and saved["site"]["path"] == str(tmp_path / "site" / "index.html")
    assert "attention.scores" in (tmp_path / "site" / "week-06.html").read_text(encoding="utf-8")
    assert [w["week"] for w in saved["weeks"]] == [2]
    for week in saved["weeks"]:
        for e in week["experiments"]:
            assert e["results"] and e["figures"], e
    assert (tmp_path / "shared-gpt-tiny" / "checkpoints").is_dir()


def test_a_site_that_cannot_be_built_fails_the_course(tmp_path, monkeypatch):
    import experiments.lessons
    import experiments.weekly.shared

    def broken(*args, **kwargs):
        raise RuntimeError("no site today")

    monkeypatch.setattr(experiments.lessons, "build_site", broken)
    monkeypatch.setattr(experiments.weekly.shared, "shared_gpt", lambda *args, **kwargs: None)  # no experiment runs
    index = run_course(tmp_path, tiny=True, progress=False, only=[], verify_ids=[])
    assert not index["ok"] and not index["site"]["ok"] and "no site today" in index["site"]["error"]
    assert json.loads((tmp_path / "course" / "index.json").read_text())["site"]["ok"] is False


def test_course_rejects_unknown_experiments(tmp_path):
    with pytest.raises(SystemExit, match="unknown experiment"):
        main(["course", "--runs-dir", str(tmp_path), "--only", "nope"])


@pytest.mark.slow
def test_the_whole_course_at_tiny_size(tmp_path, capsys):
    assert main(["course", "--runs-dir", str(tmp_path), "--tiny", "--quiet"]) == 0
    assert "everything ran" in capsys.readouterr().out
