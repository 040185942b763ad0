"""The `tfd` command: verify selects and reports, derive prints, bad ids are clear errors."""

import pytest

from experiments.cli import main


def test_verify_one_week_prints_a_row_per_derivation(capsys):
    assert main(["verify", "--week", "6", "--numeric-only"]) == 0
    out = capsys.readouterr().out
    assert "attention.scores" in out and "attention.softmax" in out and "attention.sdpa" not in out
    assert "2/2 derivations verified" in out


def test_verify_by_id(capsys):
    assert main(["verify", "attention.causal_mask"]) == 0
    out = capsys.readouterr().out
    assert "attention.causal_mask" in out and "3/3" in out and "ok" in out


def test_unknown_id_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown derivation id"):
        main(["verify", "no.such"])
    with pytest.raises(SystemExit, match="no derivation 'no.such'"):
        main(["derive", "no.such"])


def test_derive_prints_statement_and_steps(capsys):
    assert main(["derive", "attention.sdpa"]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "step 1:" in out and "model.attention.sdpa" in out
    assert main(["derive", "attention.sdpa", "--latex"]) == 0
    assert r"\operatorname{softmax}" in capsys.readouterr().out


def test_derive_list_groups_by_week(capsys):
    assert main(["derive", "--list"]) == 0
    out = capsys.readouterr().out
    assert "week 7" in out and "attention.backward" in out


@pytest.mark.parametrize("derivation_id", sorted(__import__("derivations").REGISTRY))
def test_every_derivation_prints_pretty_and_latex_and_its_statement_as_mathml(derivation_id, capsys):
    import sympy as sp

    import derivations

    assert main(["derive", derivation_id]) == 0
    assert main(["derive", derivation_id, "--latex"]) == 0
    assert sp.mathml(derivations.get(derivation_id).statement, printer="presentation")
    assert derivation_id in capsys.readouterr().out


# --- train, sample, info ---------------------------------------------------------------------------

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`tfd train --preset tiny` on a small text file: stopped at step 6, then resumed to the end (12 steps)."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    args = ["train", "--preset", "tiny", "--data", str(corpus), "--runs-dir", str(root / "runs"), "--steps", "12",
            "--quiet"]
    assert main([*args, "--stop-at", "6"]) == 0
    run = root / "runs" / "tiny"
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    return root, run, args


def test_train_writes_the_run_and_resumes_to_the_end(trained, capsys):
    import json

    root, run, args = trained
    for name in ("config.json", "metrics.jsonl", "tokenizer.json", "loss.png", "loss.svg", "results.json"):
        assert (run / name).is_file(), name
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 12
    with pytest.raises(SystemExit, match="already holds a run with checkpoints"):
        main(args)  # a second fresh start would lose the first run
    with pytest.raises(SystemExit, match="do not combine it with .*--dtype or --parallel"):
        main(["train", "--resume", str(run), "--dtype", "bfloat16"])  # the run's own configs decide


def test_train_takes_the_compute_dtype_and_parallel_mode(trained):
    import json

    root, _, _ = trained
    corpus = root / "corpus.txt"
    assert main(["train", "--preset", "tiny", "--data", str(corpus), "--runs-dir", str(root / "runs"), "--steps", "2",
                 "--dtype", "bfloat16", "--parallel", "dp", "--name", "bf16", "--quiet"]) == 0
    train = json.loads((root / "runs" / "bf16" / "config.json").read_text())["train"]
    assert (train["compute_dtype"], train["parallel"]) == ("bfloat16", "dp")


def test_sample_continues_a_prompt(trained, capsys):
    _, run, _ = trained
    assert main(["sample", "--run", str(run), "--prompt", "To be", "--max-new-tokens", "12", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    text = captured.out.rstrip("\n")
    assert text.startswith("To be") and len(text) == len("To be") + 12
    assert "checkpoint at step 12" in captured.err


def test_sample_rejects_characters_the_run_never_saw(trained):
    _, run, _ = trained
    with pytest.raises(SystemExit, match="tfd sample: .*'Z'"):
        main(["sample", "--run", str(run), "--prompt", "Zebra"])


def test_sample_needs_a_run(tmp_path):
    with pytest.raises(SystemExit, match="no run folder"):
        main(["sample", "--run", str(tmp_path / "none"), "--prompt", "a"])


def test_info_prints_counts_and_memory(capsys):
    assert main(["info", "--preset", "gpt2-small"]) == 0
    out = capsys.readouterr().out
    assert "124,439,808" in out and "equal" in out


def test_experiment_list_and_unknown_name(capsys):
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    assert "sdpa" in out and "comparison" in out
    with pytest.raises(SystemExit, match="unknown experiment 'nope'"):
        main(["experiment", "nope"])


def test_experiment_runs_into_its_folder(tmp_path, capsys):
    assert main(["experiment", "comparison", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert (tmp_path / "c" / "results.json").is_file()
    assert "comparison (week 2) done" in capsys.readouterr().out
