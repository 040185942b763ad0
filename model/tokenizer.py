"""Tokenizers (week 4): how text becomes the integer ids an LLM reads.

A tokenizer maps a string to a list of token ids in ``[0, V)`` and back.  Every
tokenizer here has the same small interface:

``vocab_size``
    ``V``, the number of distinct ids; the embedding table of a model has ``V`` rows.
``encode(text) -> list[int]``
    the ids of ``text``.
``decode(ids) -> str``
    the text of ``ids``: a list, a tuple, or a 1-D integer NumPy/JAX array ``[T]``.
    An id outside ``[0, V)`` is a ``ValueError`` naming the id, its position and ``V``
    (a model's embedding gather would silently clamp it); a float array is a ``TypeError``.
``save(path)`` / ``load(path)``
    a plain JSON file with a ``"type"`` and a format ``"version"``.  The module-level
    :func:`load` restores any tokenizer; ``SomeTokenizer.load`` insists on its own type.

Three tokenizers, from the simplest to the one GPT-2 was trained with:

* :class:`CharTokenizer` (here): one id per character of a known alphabet.
* :class:`model.bpe.BytePairTokenizer`: byte-level byte-pair encoding, trained on a corpus.
* :class:`model.bpe.GPT2Tokenizer`: GPT-2's own byte-level BPE, loaded from its
  ``encoder.json`` and ``vocab.bpe``.

The two BPE tokenizers live in :mod:`model.bpe` and can also be imported from here.

>>> tok = CharTokenizer.from_text("hello world")
>>> tok.vocab_size, tok.encode("hold")
(8, [3, 5, 4, 1])
>>> tok.decode([3, 2, 4, 4, 5])
'hello'
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

__all__ = ["CharTokenizer", "Tokenizer", "check_ids", "load"]

#: tokenizer type name -> class, filled by subclasses of :class:`Tokenizer` as they are defined.
TOKENIZER_TYPES: dict[str, type[Tokenizer]] = {}

_BPE_NAMES = ("BytePairTokenizer", "GPT2Tokenizer", "GPT2_PATTERN")


def __getattr__(name: str):
    """Import the BPE tokenizers from :mod:`model.bpe` on first use (no import cycle)."""
    if name in _BPE_NAMES:
        from model import bpe

        return getattr(bpe, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_ids(ids, vocab_size: int) -> list[int]:
    """Return ``ids`` as a list of Python ints, each checked to lie in ``[0, vocab_size)``.

    Accepts a list or tuple of integers, or a 1-D integer NumPy/JAX array ``[T]``.

    Raises:
        TypeError: a float, boolean or string array, or a non-integer element.
        ValueError: an array that is not 1-D, or an id outside ``[0, vocab_size)``
            (the message names the id, its position and ``V``).

    >>> check_ids((2, 0), 3)
    [2, 0]
    >>> check_ids([0, 3], 3)
    Traceback (most recent call last):
    ...
    ValueError: token id 3 at position 1 is outside [0, V) with V = 3
    """
    if isinstance(ids, (list, tuple)):
        out = []
        for pos, i in enumerate(ids):
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"token ids must be integers: expected an int at position {pos}, "
                                f"got {i!r} of type {type(i).__name__}")
            out.append(int(i))
    else:
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"token ids must be an integer array or a list of ints, "
                            f"got an array of dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"token ids: expected shape [T] (one sequence), got shape {arr.shape}")
        out = arr.tolist()
    for pos, i in enumerate(out):
        if not 0 <= i < vocab_size:
            raise ValueError(f"token id {i} at position {pos} is outside [0, V) with V = {vocab_size}")
    return out


class Tokenizer(ABC):
    """The interface every tokenizer implements; see the module docstring.

    Subclasses set ``TYPE`` (the ``"type"`` field of their JSON file) and
    ``VERSION`` (the format version they write and read), and implement
    ``vocab_size``, ``encode``, ``decode``, ``_to_json`` and ``_from_json``.
    """

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "TYPE" in cls.__dict__:
            TOKENIZER_TYPES[cls.TYPE] = cls

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """``V``: ids run over ``[0, V)``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""

    @abstractmethod
    def decode(self, ids) -> str:
        """The text of ``ids`` (list, tuple, or 1-D integer array ``[T]``)."""

    @abstractmethod
    def _to_json(self) -> dict[str, Any]:
        """The fields of the saved file, besides ``type`` and ``version``."""

    @classmethod
    @abstractmethod
    def _from_json(cls, data: dict[str, Any], path: str) -> Tokenizer:
        """Rebuild from the saved fields; raise ``ValueError`` naming ``path`` if they are malformed."""

    def save(self, path: str | os.PathLike) -> None:
        """Write this tokenizer to ``path`` as a JSON file readable by :func:`load`."""
        data = {"type": self.TYPE, "version": self.VERSION, **self._to_json()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Restore a tokenizer from a file written by :meth:`save`.

        Called on a subclass, the file must hold that type; on :class:`Tokenizer`
        any known type is accepted.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file is not valid JSON, has another ``type``, an unknown
                ``version`` or malformed fields; the message names ``path``.
        """
        data = _read_json(path)
        kind = data.get("type")
        wanted = cls.__dict__.get("TYPE")
        if wanted is not None and kind != wanted:
            raise ValueError(f"{os.fspath(path)}: expected a tokenizer file of type {wanted!r}, got type {kind!r}")
        if kind not in TOKENIZER_TYPES:
            _import_all_types()
        if kind not in TOKENIZER_TYPES:
            raise ValueError(f"{os.fspath(path)}: expected a tokenizer file with \"type\" one of "
                             f"{sorted(TOKENIZER_TYPES)}, got {kind!r}")
        target = TOKENIZER_TYPES[kind]
        version = data.get("version")
        if version != target.VERSION:
            raise ValueError(f"{os.fspath(path)}: expected format version {target.VERSION} for type {kind!r}, "
                             f"got {version!r}")
        return target._from_json(data, os.fspath(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def load(path: str | os.PathLike) -> Tokenizer:
    """Restore any tokenizer saved with ``save(path)``; its ``"type"`` field picks the class.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "char.json")
    >>> CharTokenizer.from_text("abc").save(path)
    >>> load(path)
    CharTokenizer(vocab_size=3)
    """
    return Tokenizer.load(path)


def _import_all_types() -> None:
    from model import bpe  # noqa: F401  (defines the BPE types)


def _read_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{os.fspath(path)}: expected a JSON tokenizer file written by save(), "
                         f"but it is not valid JSON ({e})") from e
    if not isinstance(data, dict) or "type" not in data or "version" not in data:
        raise ValueError(f"{os.fspath(path)}: expected a JSON object with \"type\" and \"version\" fields, "
                         f"got {type(data).__name__}"
                         + (f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else ""))
    return data


def json_field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], path: str, what: str):
    """``data[name]``, checked to be of type ``kind``; ``what`` says what was expected, for the error."""
    if name not in data:
        raise ValueError(f"{path}: expected a field {name!r} ({what}), but it is missing")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path}: expected field {name!r} to be {what}, got {type(value).__name__}")
    return value


class CharTokenizer(Tokenizer):
    """One id per character: the vocabulary is a sorted list of distinct characters.

    The simplest tokenizer, and the one a character-level language model uses.
    Id ``i`` is the ``i``-th character of the sorted alphabet, so ``V`` is the
    alphabet size.  Text with a character outside the alphabet cannot be encoded.

    Args:
        chars: the alphabet, distinct single characters, in id order.

    >>> tok = CharTokenizer.from_text("banana")
    >>> tok.chars, tok.encode("nab")
    (('a', 'b', 'n'), [2, 0, 1])
    """

    TYPE = "char"

    def __init__(self, chars: Iterable[str]):
        chars = tuple(chars)
        for pos, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer: expected single characters, got {c!r} at position {pos}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(f"CharTokenizer: expected distinct characters, got {dup!r} more than once")
        if not chars:
            raise ValueError("CharTokenizer: expected at least one character, got an empty alphabet")
        self.chars: tuple[str, ...] = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose alphabet is the sorted set of characters of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.from_text: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer.from_text: expected a non-empty text, got an empty string")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """The id of each character of ``text``.

        Raises:
            ValueError: a character outside the alphabet; the message gives its
                ``repr`` and its position in ``text``.
        """
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            pos, c = next((p, c) for p, c in enumerate(text) if c not in index)
            raise ValueError(f"CharTokenizer.encode: character {c!r} at position {pos} is not in the "
                             f"vocabulary of {self.vocab_size} characters") from None

    def decode(self, ids) -> str:
        chars = self.chars
        return "".join(chars[i] for i in check_ids(ids, self.vocab_size))

    def _to_json(self) -> dict[str, Any]:
        return {"chars": list(self.chars)}

    @classmethod
    def _from_json(cls, data: dict[str, Any], path: str) -> CharTokenizer:
        chars = json_field(data, "chars", list, path, "a list of single characters")
        try:
            return cls(chars)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

