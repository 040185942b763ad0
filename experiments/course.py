"""``tfd course``: the whole study plan in one command.

1. verifies every derivation (as ``tfd verify``);
2. trains the small GPT the experiments share, once (:mod:`experiments.weekly.shared`);
3. runs every week's experiment into ``<runs_dir>/<name>/``;
4. writes ``<runs_dir>/course/index.json``: per week, each experiment's title, its
   results file and figures, its time and whether it ran, plus the verification summary.

An experiment that fails is recorded with its error and the course goes on; the exit
status says whether everything ran.  Ctrl-C stops the course; the shared GPT's training
checkpoints as it stops and resumes on the next run, and finished experiments keep
their files.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["run_course"]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _verify_all(ids: list[str] | None, progress: bool) -> dict[str, Any]:
    import jax

    import derivations
    from experiments.verify import verify

    chosen = [derivations.get(i) for i in ids] if ids is not None else list(derivations.REGISTRY.values())
    start = time.perf_counter()
    failed = []
    for n, d in enumerate(chosen, 1):
        r = verify(d)
        if not r.ok:
            failed.append(d.id)
        _say(progress, f"  verify [{n}/{len(chosen)}] {d.id}: {'ok' if r.ok else 'FAILED'}")
    return {"derivations": len(chosen), "verified": len(chosen) - len(failed), "failed": failed,
            "seconds": time.perf_counter() - start, "backend": jax.default_backend(),
            "device": jax.devices()[0].device_kind}


def run_course(runs_dir: str | os.PathLike = "runs", *, tiny: bool = False, progress: bool = True,
               only: list[str] | None = None, verify_ids: list[str] | None = None) -> dict[str, Any]:
    """Run the course into ``runs_dir`` and return what ``index.json`` holds.

    Args:
        runs_dir: where the experiment folders, the shared GPT and ``course/index.json`` go.
        tiny: every experiment at its tiny size with the tiny shared GPT (for tests).
        progress: print what runs, and show training progress.
        only: run only these experiments (default: all of them).
        verify_ids: verify only these derivations (default: all of them).

    Raises:
        ValueError: an unknown experiment name in ``only``.
    """
    from experiments import weekly
    from experiments.weekly.shared import shared_gpt, shared_run_dir

    runs = Path(runs_dir)
    names = list(weekly.EXPERIMENTS) if only is None else list(only)
    unknown = [n for n in names if n not in weekly.EXPERIMENTS]
    if unknown:
        raise ValueError(f"only: unknown experiment(s) {unknown}; expected names from {sorted(weekly.EXPERIMENTS)}")
    modules = sorted(((weekly.get(n), n) for n in names), key=lambda m: (m[0].WEEK, m[1]))
    start = time.perf_counter()
    index: dict[str, Any] = {"runs_dir": str(runs), "tiny": tiny}

    _say(progress, "course: verifying the derivations")
    index["verify"] = _verify_all(verify_ids, progress)

    _say(progress, "course: the shared GPT (trained once, then loaded)")
    t = time.perf_counter()
    shared_gpt(runs, tiny=tiny, progress=progress)
    index["shared_gpt"] = {"run": str(shared_run_dir(runs, tiny=tiny)), "seconds": time.perf_counter() - t}

    weeks: dict[int, list[dict[str, Any]]] = {}
    for n, (module, name) in enumerate(modules, 1):
        out = runs / name
        _say(progress, f"course: [{n}/{len(modules)}] week {module.WEEK} {name}: {module.TITLE}")
        t = time.perf_counter()
        entry: dict[str, Any] = {"name": name, "title": module.TITLE, "folder": str(out)}
        try:
            module.run(out, tiny=tiny, progress=progress)
            entry["ok"] = True
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one failing experiment must not stop the course
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
            entry["traceback"] = traceback.format_exc()
            _say(progress, f"  FAILED: {entry['error']}")
        entry["seconds"] = time.perf_counter() - t
        entry["results"] = str(out / "results.json") if (out / "results.json").is_file() else None
        entry["figures"] = sorted(str(p) for p in out.glob("*") if p.suffix in (".png", ".svg"))
        weeks.setdefault(module.WEEK, []).append(entry)
    index["weeks"] = [{"week": w, "experiments": weeks[w]} for w in sorted(weeks)]
    index["ok"] = not index["verify"]["failed"] and all(e["ok"] for w in weeks.values() for e in w)
    index["seconds"] = time.perf_counter() - start
    folder = runs / "course"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, folder / "index.json")
    _say(progress, f"course: {'everything ran' if index['ok'] else 'some parts FAILED'} in "
                   f"{index['seconds']:.0f} s; index at {folder / 'index.json'}")
    return index
