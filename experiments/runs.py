"""A named training run's corpus and tokenizer: what ``tfd train`` and ``tfd sample`` share.

A run lives in one folder (``runs/<name>/`` by default)::

    tokenizer.json      the tokenizer, readable by model.tokenizer.load
    data/               train.bin, val.bin and meta.json (experiments.data.prepare)
    config.json         model and training configs (written by experiments.train)
    metrics.jsonl, checkpoints/, loss.png, loss.svg, results.json

:func:`prepare_run` encodes a corpus (the built-in Shakespeare by default, or the
user's file or folder) with a chosen tokenizer and stores both in the run folder, so
that resuming or sampling later never depends on the corpus or the tokenizer
files still being where they were.  :func:`open_run` reads them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from experiments.data import TokenData, load_text, prepare, shakespeare_text
from model.gpt import GPT, GPTConfig
from model.tokenizer import CharTokenizer, Tokenizer, load

__all__ = ["TOKENIZERS", "build_tokenizer", "corpus_text", "load_model", "open_run", "prepare_run", "read_configs"]

#: the tokenizers a run can use: a character vocabulary of the corpus, or GPT-2's byte-level BPE
TOKENIZERS = ("char", "gpt2")


def corpus_text(data: str | os.PathLike | None = None) -> str:
    """The training text: the built-in Shakespeare corpus when ``data`` is None, else the file or folder ``data``.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: an empty corpus or a file that is not UTF-8 text (see :func:`experiments.data.load_text`).
    """
    return shakespeare_text() if data is None else load_text(data)


def build_tokenizer(kind: str, text: str) -> Tokenizer:
    """A tokenizer for ``text``: ``"char"`` (its distinct characters, sorted) or ``"gpt2"`` (GPT-2's files).

    >>> build_tokenizer("char", "abba").vocab_size
    2
    """
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "gpt2":
        from model.bpe import GPT2Tokenizer

        return GPT2Tokenizer.from_package()
    raise ValueError(f"tokenizer: expected one of {TOKENIZERS}, got {kind!r}")


def prepare_run(run_dir: str | os.PathLike, *, data: str | os.PathLike | None = None, tokenizer: str = "char",
                val_fraction: float = 0.1) -> tuple[Tokenizer, TokenData]:
    """Encode the corpus into ``run_dir/data`` and save the tokenizer as ``run_dir/tokenizer.json``.

    The tokenizer file is written after the data, so a run folder with a
    ``tokenizer.json`` has its data.

    Args:
        run_dir: the run's folder (created if needed).
        data: a text file or folder; None for the built-in Shakespeare corpus.
        tokenizer: one of :data:`TOKENIZERS`.
        val_fraction: the share of tokens held out for validation.

    Returns:
        the tokenizer and the :class:`experiments.data.TokenData`.
    """
    run = Path(run_dir)
    text = corpus_text(data)
    tok = build_tokenizer(tokenizer, text)
    token_data = prepare(text, tok.encode, tok.vocab_size, run / "data", val_fraction=val_fraction)
    tmp = run / "tokenizer.json.tmp"
    tok.save(tmp)
    os.replace(tmp, run / "tokenizer.json")
    return tok, token_data


def open_run(run_dir: str | os.PathLike) -> tuple[Tokenizer, TokenData]:
    """The tokenizer and token data that :func:`prepare_run` stored in ``run_dir``.

    Raises:
        FileNotFoundError: ``run_dir`` is not a prepared run folder (the message says what is missing).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder at {str(run)!r}; start one with `tfd train`")
    if not (run / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{run}: expected a run folder with tokenizer.json (written by `tfd train`), "
                                f"found {sorted(p.name for p in run.iterdir())}")
    return load(run / "tokenizer.json"), TokenData.open(run / "data")


def read_configs(run_dir: str | os.PathLike):
    """The model and training configs in ``run_dir/config.json``, as :func:`experiments.train.train` wrote them.

    Raises:
        FileNotFoundError: no ``config.json`` (not a run folder, or one never trained).
        ValueError: a ``config.json`` that does not hold ``{"model": ..., "train": ...}``.
    """
    from experiments.train import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected the folder of a run started by `tfd train`")
    try:
        configs = json.loads(path.read_text())
        return GPTConfig.from_dict(configs["model"]), TrainConfig.from_dict(configs["train"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected {{\"model\": ..., \"train\": ...}} as `tfd train` writes it, "
                         f"could not read it: {e!r}") from None


def load_model(run_dir: str | os.PathLike) -> tuple[GPT, int]:
    """The trained model of ``run_dir``, from its newest readable checkpoint, and that checkpoint's step.

    Raises:
        FileNotFoundError: no ``config.json`` or no checkpoint in ``run_dir``.
        ValueError: checkpoints that do not match the run's config, or none readable.
    """
    import jax
    from flax import nnx

    from experiments.checkpoint import CHECKPOINT_DIR, Checkpoints
    from experiments.train import make_optimizer
    from model.gpt import abstract_gpt

    model_config, train_config = read_configs(run_dir)
    graphdef, abstract_params = nnx.split(abstract_gpt(model_config), nnx.Param)
    abstract_opt_state = jax.eval_shape(make_optimizer(train_config).init, abstract_params)
    with Checkpoints(Path(run_dir) / CHECKPOINT_DIR, keep=train_config.keep_checkpoints) as checkpoints:
        restored = checkpoints.restore(abstract_params, abstract_opt_state)
    if restored is None:
        raise FileNotFoundError(f"{Path(run_dir) / CHECKPOINT_DIR}: no checkpoint to load; train the run first "
                                f"(`tfd train --resume {run_dir}` continues it)")
    return nnx.merge(graphdef, restored.params), restored.step
