"""The week-4 experiment: BPE compression against vocabulary size, English against Korean (tiny run)."""

import importlib.util
import json
from itertools import pairwise

import pytest

from experiments.data import shakespeare_text
from experiments.weekly import tokens
from model.bpe import BytePairTokenizer

HAS_KOREAN = importlib.util.find_spec("konlpy") is not None


@pytest.fixture(scope="module")
def results(tiny_experiment):
    return tiny_experiment("tokens")


def test_writes_results_and_figures(results):
    out, m = results
    on_disk = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert on_disk["name"] == tokens.NAME == "tokens" and on_disk["week"] == tokens.WEEK == 4
    assert on_disk["english"]["vocab_size"] == m["english"]["vocab_size"]
    for stem in ("tokens_compression", "tokens_examples"):
        for suffix in ("png", "svg"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 0
            assert f"{stem}.{suffix}" in m["figures"]


def test_compression_improves_with_the_vocabulary(results):
    _, m = results
    per_byte = [r["tokens_per_byte"] for r in m["english"]["measured"]]
    assert m["english"]["vocab_size"] == [256 + k for k in tokens.TINY_MERGES]
    assert per_byte[0] == 1.0  # bytes only: one token per byte
    assert all(b < a for a, b in pairwise(per_byte))
    assert m["claims"][0]["holds"]


@pytest.mark.skipif(not HAS_KOREAN, reason="konlpy (the Korean corpus) is not installed")
def test_korean_costs_more_tokens_per_character_under_both_tokenizers(results):
    _, m = results
    for ko, en in zip(m["korean"]["measured"], m["english"]["measured"], strict=True):
        assert ko["tokens_per_char"] > en["tokens_per_char"]
    assert m["gpt2"]["korean"]["tokens_per_char"] > m["gpt2"]["english"]["tokens_per_char"]
    # trained on English only, our BPE has no Hangul merges: Korean stays at about one token per byte
    assert all(r["tokens_per_byte"] > 0.9 for r in m["korean"]["measured"])
    assert all(c["holds"] for c in m["claims"])


def test_korean_is_skipped_with_an_install_note_when_konlpy_is_missing(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "konlpy" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps konlpy"):
        tokens.korean_text()
    m = tokens.run(tmp_path, tiny=True, progress=False)
    on_disk = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert on_disk["korean"]["skipped"] and "pip install --no-deps konlpy" in on_disk["korean"]["install"]
    assert "korean" not in m["gpt2"] and m["setup"]["korean_chars"] is None
    assert all(c["holds"] for c in m["claims"])  # the English claims still hold; no Korean numbers invented


def test_round_trip_of_every_text_and_example(results):
    _, m = results
    assert all(r["round_trip"] for r in m["english"]["measured"])
    for language in ("english", "korean"):
        for who in ("ours", "gpt2"):
            ex = m["examples"][language][who]
            assert ex["round_trip"]
            assert b"".join(bytes.fromhex(t["hex"]) for t in ex["tokens"]).decode("utf-8") == ex["text"]
            assert [t["id"] for t in ex["tokens"]] == ex["ids"]
    assert m["claims"][-1]["holds"]


def test_smaller_vocabularies_are_prefixes_of_the_largest_training_run():
    text = shakespeare_text()[:5000]
    full = BytePairTokenizer.train(text, 256 + 200)
    assert len(full.merges) == 200
    for k in (0, 50, 150):
        assert BytePairTokenizer.train(text, 256 + k).merges == full.merges[:k]


def test_compression_rejects_empty_text():
    with pytest.raises(ValueError, match="non-empty"):
        tokens.compression(BytePairTokenizer([]), "")


def test_bad_scale_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        tokens.run(tmp_path, scale=0, tiny=True, progress=False)
