"""The small GPT that the weekly experiments share: trained once, then loaded from its run folder.

The weeks that look inside a trained model (attention maps, heads, FFN units, token
embeddings) all use the same character-level GPT trained on the built-in Shakespeare
corpus: the ``shakespeare-char`` presets, 2000 steps (about two minutes on a 2-core
CPU).  :func:`shared_gpt` trains it into ``<runs_dir>/shared-gpt`` the first time and
loads the newest checkpoint afterwards; an interrupted training resumes where it
stopped.  ``tiny=True`` gives the ``tiny`` model trained for a few dozen steps into
``<runs_dir>/shared-gpt-tiny``: seconds, for the tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["shared_gpt", "shared_run_dir"]


def shared_run_dir(runs_dir: str | os.PathLike, *, tiny: bool = False) -> Path:
    """Where :func:`shared_gpt` keeps its run: ``<runs_dir>/shared-gpt`` (or ``shared-gpt-tiny``)."""
    return Path(runs_dir) / ("shared-gpt-tiny" if tiny else "shared-gpt")


def _complete(run: Path) -> bool:
    try:
        return bool(json.loads((run / "results.json").read_text())["complete"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def shared_gpt(runs_dir: str | os.PathLike = "runs", *, tiny: bool = False, progress: bool = True):
    """The shared trained GPT, its tokenizer and its token data: ``(model, tokenizer, data)``.

    Trains it on first use (or finishes an interrupted training), then loads it.

    Args:
        runs_dir: the folder that holds the run folder (experiments pass their output
            folder's parent, so every experiment of a course finds the same model).
        tiny: the test-sized model instead of the default one.
        progress: show training progress.
    """
    from experiments.runs import load_model, open_run, prepare_run
    from experiments.train import TrainConfig, resume, train
    from model.gpt import GPTConfig

    run = shared_run_dir(runs_dir, tiny=tiny)
    if _complete(run):
        tok, data = open_run(run)
        model, _ = load_model(run)
        return model, tok, data
    if (run / "config.json").is_file() and (run / "checkpoints").is_dir() and (run / "tokenizer.json").is_file():
        tok, data = open_run(run)
        resume(run, data, progress=progress, figures=not tiny)
    else:
        tok, data = prepare_run(run, tokenizer="char")
        if tiny:
            model_config = GPTConfig.preset("tiny", vocab_size=tok.vocab_size)
            train_config = TrainConfig.preset("tiny", steps=60, eval_every=60, checkpoint_every=60)
        else:
            model_config = GPTConfig.preset("shakespeare-char", vocab_size=tok.vocab_size)
            train_config = TrainConfig.preset("shakespeare-char")
        train(model_config, train_config, data, out_dir=run, progress=progress, overwrite=True, figures=not tiny)
    model, _ = load_model(run)
    return model, tok, data
