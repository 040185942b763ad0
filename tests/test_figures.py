"""Tests for experiments/figures.py: the loss curve from a metrics.jsonl, as PNG and SVG."""

import json
import math

import pytest

from experiments.figures import plot_loss, read_metrics


def _write_metrics(path, steps=30, eval_every=10):
    """A plausible metrics.jsonl: loss decaying from ln 65, a validation estimate every ``eval_every`` steps."""
    lines = []
    for step in range(1, steps + 1):
        row = {"step": step, "loss": math.log(65) * math.exp(-step / 15) + 0.5, "lr": 1e-3, "tokens_per_s": 1e4}
        if step % eval_every == 0:
            row["val_loss"] = row["loss"] + 0.1
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-x")
    metrics = _write_metrics(folder / "metrics.jsonl")
    return plot_loss(metrics, folder / "figures" / "loss"), folder


def test_writes_png_and_svg(drawn):
    (png, svg), folder = drawn
    assert (png, svg) == (folder / "figures" / "loss.png", folder / "figures" / "loss.svg")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a 7 x 4.2 inch figure at 150 dpi
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 20_000
    # matplotlib keeps every text of the figure as a comment next to its glyphs
    for label in ("step (optimizer updates)", "cross-entropy (nats per token)", "training loss (logged steps)",
                  "validation loss (evaluations)", f"run '{folder.name}'"):
        assert label in text, label


def test_same_metrics_same_bytes(drawn, tmp_path):
    (png, svg), folder = drawn
    png2, svg2 = plot_loss(folder / "metrics.jsonl", tmp_path / "again")
    assert png2.read_bytes() == png.read_bytes() and svg2.read_bytes() == svg.read_bytes()


def test_title_and_no_validation(tmp_path):
    metrics = _write_metrics(tmp_path / "metrics.jsonl", steps=5, eval_every=100)
    _, svg = plot_loss(metrics, tmp_path / "loss", title="Week 12: a tiny GPT")
    text = svg.read_text()
    assert "Week 12: a tiny GPT" in text and "validation loss" not in text


def test_bad_metrics(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no.*finite 'loss'|found none"):
        plot_loss(empty, tmp_path / "loss")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss"\n')
    with pytest.raises(ValueError, match=r"broken.jsonl:2: expected one JSON object per line"):
        read_metrics(broken)
    no_step = tmp_path / "no_step.jsonl"
    no_step.write_text('{"loss": 2.0}\n')
    with pytest.raises(ValueError, match="integer 'step'"):
        read_metrics(no_step)
    with pytest.raises(FileNotFoundError):
        plot_loss(tmp_path / "missing.jsonl", tmp_path / "loss")
