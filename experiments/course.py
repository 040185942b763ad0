"""``tfd course``: the whole study plan in one command.

1. verifies every derivation (as ``tfd verify``);
2. trains the small GPT the experiments share, once (:mod:`experiments.weekly.shared`);
3. runs every week's experiment into ``<runs_dir>/<name>/``;
4. writes ``<runs_dir>/course/index.json``: per week, each experiment's title, its
   results file and figures, its time and whether it ran, plus the verification summary
   and each derivation's verification record (``index["verify"]["results"]``);
5. builds the lesson site from all of it (:func:`experiments.lessons.build_site`) into
   ``<runs_dir>/site/`` and records its path in the index.

An experiment that fails, or a site that cannot be built, is recorded with its error and
the course goes on; the exit status says whether everything ran.  Ctrl-C stops the
course; the shared GPT's training checkpoints as it stops and resumes on the next run,
and finished experiments keep their files.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["run_course", "verification_record"]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def verification_record(result, date: datetime.datetime | None = None) -> dict[str, Any]:
    """One derivation's verification result (:class:`experiments.verify.Result`) as index.json stores it.

    Keys: ``id, week, title, steps_proved, steps_total, numeric_error, gradient_error,
    gradients_total, tolerance, dtype, backend, seconds, ok, error`` and ``date`` (ISO
    8601, UTC; now when not given), plus ``gradient_tolerance`` and
    ``sampled_passed``/``sampled_total`` for the sampled checks.  The lesson pages read these.
    """
    when = date if date is not None else datetime.datetime.now(datetime.UTC)
    return {"id": result.id, "week": result.week, "title": result.title,
            "steps_proved": result.steps_proved, "steps_total": result.steps_total,
            "numeric_error": result.numeric_error, "gradient_error": result.gradient_error,
            "gradients_total": result.gradients_total, "tolerance": result.tolerance,
            "gradient_tolerance": result.gradient_tolerance, "dtype": result.dtype,
            "backend": result.backend, "seconds": result.seconds, "ok": result.ok, "error": result.error,
            "sampled_passed": sum(value <= tol for _, value, tol in result.properties),
            "sampled_total": len(result.properties),
            "date": when.astimezone(datetime.UTC).isoformat(timespec="seconds")}


def _verify_all(ids: list[str] | None, progress: bool) -> dict[str, Any]:
    import jax

    import derivations
    from experiments.verify import verify

    chosen = [derivations.get(i) for i in ids] if ids is not None else list(derivations.REGISTRY.values())
    start = time.perf_counter()
    failed = []
    records = []
    for n, d in enumerate(chosen, 1):
        r = verify(d)
        records.append(verification_record(r))
        if not r.ok:
            failed.append(d.id)
        _say(progress, f"  verify [{n}/{len(chosen)}] {d.id}: {'ok' if r.ok else 'FAILED'}")
    return {"derivations": len(chosen), "verified": len(chosen) - len(failed), "failed": failed,
            "seconds": time.perf_counter() - start, "backend": jax.default_backend(),
            "device": jax.devices()[0].device_kind, "results": records}


def _write_index(folder: Path, index: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=2) + "\n")
    os.replace(tmp, folder / "index.json")
    return folder / "index.json"


def _build_site(runs: Path, progress: bool) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        from experiments.lessons import build_site

        site = {"path": str(build_site(runs, progress=progress)), "ok": True}
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - recorded like a failing experiment
        site = {"path": None, "ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
        _say(progress, f"  FAILED: {site['error']}")
    site["seconds"] = time.perf_counter() - t
    return site


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
    _write_index(folder, index)  # the site reads it

    _say(progress, "course: building the lesson site")
    index["site"] = _build_site(runs, progress)
    index["ok"] = index["ok"] and index["site"]["ok"]
    index["seconds"] = time.perf_counter() - start
    _write_index(folder, index)
    _say(progress, f"course: {'everything ran' if index['ok'] else 'some parts FAILED'} in "
                   f"{index['seconds']:.0f} s; index at {folder / 'index.json'}"
                   + (f"; lessons at {index['site']['path']}" if index["site"]["ok"] else ""))
    return index
