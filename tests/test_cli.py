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
