r"""Causal attention, forward and backward: ours against ``jax.nn.dot_product_attention``.

Run as ``python -m experiments.bench_attention [--quick]``; ``tfd bench`` calls
:func:`attention_bench`.  Implementations, all causal, all the gradient of
:math:`\sum o` with respect to ``q, k, v`` under ``jax.jit``:

* ``sdpa``: :func:`model.attention.sdpa` with :func:`model.attention.causal_mask`
  (the one-shot softmax: the ``T x T`` weights exist, forward and backward);
* ``flash``: :func:`model.flash.flash_attention` (tiles of ``block_size``, online
  softmax, tiles above the diagonal skipped, a custom backward that stores only the
  output and the log-sum-exp);
* ``xla``: ``jax.nn.dot_product_attention(..., is_causal=True, implementation="xla")``;
* ``cudnn``: the same with ``implementation="cudnn"``, on a GPU only (it takes float16
  or bfloat16; an unsupported dtype or device is recorded as an error, not raised).

Ours take ``[B, H, T, K]`` (heads as a leading axis, as :mod:`model.multihead` calls
them), ``jax.nn`` takes ``[B, T, H, K]``: each gets the same numbers in its own layout,
transposed before timing.

Measurement: for each T, every implementation is compiled and run once (warm-up), then
the implementations take turns (``sdpa, flash, xla, ..., sdpa, flash, ...``) for
``repeats`` rounds, each call timed until its gradients are ready; the median is kept.
Side by side in one process, so a load that comes and goes falls on all of them.

FLOP count, the same for every implementation (so a FLOP/s ratio is a time ratio):
causal forward :math:`2 B H T^2 K` (the two matmuls :math:`Q K^\top` and :math:`P V`,
:math:`4 B H T^2 K`, halved by the causal mask), backward 2.5 times the forward (five
matmuls for two), so

.. math:: \text{FLOPs}_{\text{fwd+bwd}} = 3.5 \times 2 B H T^2 K = 7 B H T^2 K .

Ratios are *their time over ours*: above 1.0 means ours is faster (``"xla/flash"`` is
xla's time over flash's).

Memory: XLA's estimate for the compiled forward+backward, ``argument + output + temp``
bytes of ``jax.jit(f).lower(...).compile().memory_analysis()``, for every T of the sweep
and, compile only (nothing is run), for the longer ``memory_sweep``.  On CPU an
implementation whose estimate exceeds ``max_run_bytes`` (half the host memory unless
given) is not run at that T and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from model.attention import causal_mask, sdpa
from model.flash import flash_attention

__all__ = ["IMPLEMENTATIONS", "attention_bench", "causal_flops", "format_table", "main"]

#: every implementation the benchmark knows; ``cudnn`` runs on a GPU only
IMPLEMENTATIONS = ("sdpa", "flash", "xla", "cudnn")
#: what the FLOP count assumes, written into the results
FLOP_FORMULA = "7·B·H·T²·K: causal forward 2·B·H·T²·K (QKᵀ and PV, halved by the mask), backward 2.5× forward"
_OURS = ("sdpa", "flash")
_THEIRS = ("xla", "cudnn")


def causal_flops(batch: int, seq: int, heads: int, head_dim: int) -> int:
    """FLOPs of causal attention forward + backward, :math:`7 B H T^2 K` (see the module docstring).

    >>> causal_flops(1, 2, 1, 1)
    28
    """
    return 7 * batch * heads * seq * seq * head_dim


def _attend(name: str, block_size: int) -> tuple[Callable, str]:
    """The attention function of ``name`` and the layout it takes (``"bhtk"`` or ``"bthk"``)."""
    if name == "sdpa":
        return (lambda q, k, v: sdpa(q, k, v, causal_mask(q.shape[-2], k.shape[-2]))), "bhtk"
    if name == "flash":
        return (lambda q, k, v: flash_attention(q, k, v, block_size=block_size, causal=True)), "bhtk"
    if name in _THEIRS:
        return (lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=name)), "bthk"
    raise ValueError(f"implementations: expected names from {IMPLEMENTATIONS}, got {name!r}")


def _forward_backward(attend: Callable) -> Callable:
    """``jit`` of the gradient of the sum of the outputs (in float32) with respect to q, k and v."""
    return jax.jit(jax.grad(lambda q, k, v: jnp.sum(attend(q, k, v).astype(jnp.float32)), argnums=(0, 1, 2)))


def _memory_bytes(compiled) -> int | None:
    """argument + output + temp bytes of a compiled function (None where the backend gives no analysis)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001  (some backends do not implement it)
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def _host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _device() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": d.device_kind, "cpu_count": os.cpu_count(),
            "jax": jax.__version__}


def _inputs(batch, seq, heads, head_dim, dtype, seed=0) -> dict[str, tuple]:
    rng = np.random.default_rng(seed)
    bthk = tuple(jnp.asarray(rng.standard_normal((batch, seq, heads, head_dim)), dtype=dtype) for _ in range(3))
    return {"bthk": bthk, "bhtk": tuple(jnp.swapaxes(x, 1, 2) for x in bthk)}


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))


def attention_bench(*, batch: int = 8, seq: int = 1024, heads: int = 12, head_dim: int = 64,
                    sweep: Sequence[int] = (256, 512, 1024, 2048), repeats: int = 5, block_size: int = 128,
                    dtype=jnp.float32, implementations: Sequence[str] | None = None,
                    memory_sweep: Sequence[int] | None = None, max_run_bytes: int | None = None,
                    progress: Callable[[str], None] | None = None) -> dict:
    """Time causal attention forward + backward for each T of ``sweep`` (and ``seq``); see the module docstring.

    Args:
        batch, seq, heads, head_dim: (B, T, H, K) of the headline comparison; ``seq`` joins the sweep.
        sweep: the sequence lengths T to time.
        repeats: timed rounds after the warm-up; the median is reported.
        block_size: the tile size of ``flash``.
        dtype: of q, k and v (``jnp.float32`` or ``jnp.bfloat16``).
        implementations: names from :data:`IMPLEMENTATIONS`; default: ``sdpa, flash, xla``, and
            ``cudnn`` when the backend is a GPU.
        memory_sweep: longer T for which only the compiled memory is reported (nothing runs);
            default: 4 and 8 times the longest T timed ((8192, 16384) for the default sweep).
        max_run_bytes: on CPU, do not run an implementation whose compiled memory estimate is
            larger (default: half the host memory); a GPU reports its own out-of-memory errors.
        progress: called with a line of text as each T is done (e.g. ``print``).

    Returns:
        A JSON-ready dict: ``device`` (backend, device kind, ...), ``config``, ``flop_formula``,
        ``rows`` (one per T: ``seconds``, ``flop_s``, ``memory_bytes``, ``ratios``, ``errors``,
        ``max_grad_difference``), ``memory`` (compile-only rows) and ``headline`` (the row at ``seq``).
    """
    for name, n in (("batch", batch), ("seq", seq), ("heads", heads), ("head_dim", head_dim),
                    ("repeats", repeats), ("block_size", block_size)):
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"attention_bench: {name} must be a positive integer, got {n!r}")
    backend = jax.default_backend()
    if implementations is None:
        implementations = ("sdpa", "flash", "xla") + (("cudnn",) if backend == "gpu" else ())
    unknown = [n for n in implementations if n not in IMPLEMENTATIONS]
    if unknown or not implementations:
        raise ValueError(f"implementations: expected names from {IMPLEMENTATIONS}, got {tuple(implementations)}")
    if max_run_bytes is None and backend == "cpu":
        host = _host_memory_bytes()
        max_run_bytes = host // 2 if host else None
    dtype_name = jnp.dtype(dtype).name
    say = progress or (lambda line: None)
    lengths = sorted({int(t) for t in sweep} | {seq})
    if memory_sweep is None:
        memory_sweep = (4 * lengths[-1], 8 * lengths[-1])

    rows = []
    for t in lengths:
        inputs = _inputs(batch, t, heads, head_dim, dtype)
        fns, seconds, memory, errors, grads = {}, {}, {}, {}, {}
        for name in implementations:
            attend, layout = _attend(name, block_size)
            fn = _forward_backward(attend)
            try:
                compiled = fn.lower(*inputs[layout]).compile()
                memory[name] = _memory_bytes(compiled)
                if max_run_bytes is not None and memory[name] is not None and memory[name] > max_run_bytes:
                    errors[name] = f"not run: needs {memory[name] / 2**30:.1f} GiB > {max_run_bytes / 2**30:.1f} GiB"
                    continue
                out = jax.block_until_ready(compiled(*inputs[layout]))  # warm-up
                grads[name] = [np.asarray(g if layout == "bhtk" else jnp.swapaxes(g, 1, 2), np.float32) for g in out]
                fns[name] = (compiled, inputs[layout])
                seconds[name] = []
            except Exception as e:  # noqa: BLE001  (an unsupported implementation is recorded, not raised)
                errors[name] = _error(e)
        for _ in range(repeats):
            for name, (compiled, args) in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(compiled(*args))
                seconds[name].append(time.perf_counter() - start)
        median = {name: statistics.median(s) for name, s in seconds.items()}
        flops = causal_flops(batch, t, heads, head_dim)
        ratios = {f"{theirs}/{ours}": median[theirs] / median[ours]
                  for theirs in (*_THEIRS, "sdpa") for ours in ("sdpa", "flash")
                  if theirs != ours and theirs in median and ours in median}
        first = next(iter(grads), None)
        rows.append({
            "T": t,
            "flops": flops,
            "seconds": median,
            "flop_s": {name: flops / s for name, s in median.items()},
            "memory_bytes": memory,
            "ratios": ratios,
            "errors": errors,
            "max_grad_difference": {name: max(_relative(a, b) for a, b in zip(g, grads[first]))
                                    for name, g in grads.items() if name != first},
            "reference_for_difference": first,
        })
        say(f"attention T={t}: " + ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in median.items()))

    memory_rows = []
    for t in sorted({int(t) for t in memory_sweep}):
        shapes = {layout: (jax.ShapeDtypeStruct(shape, dtype),) * 3
                  for layout, shape in (("bthk", (batch, t, heads, head_dim)), ("bhtk", (batch, heads, t, head_dim)))}
        row: dict[str, Any] = {"T": t, "memory_bytes": {}, "errors": {}}
        for name in implementations:
            attend, layout = _attend(name, block_size)
            try:
                row["memory_bytes"][name] = _memory_bytes(_forward_backward(attend).lower(*shapes[layout]).compile())
            except Exception as e:  # noqa: BLE001
                row["errors"][name] = _error(e)
        memory_rows.append(row)
        say(f"attention memory T={t}: " + ", ".join(
            f"{n} {b / 2**20:.0f} MiB" for n, b in row["memory_bytes"].items() if b is not None))

    return {
        "device": _device(),
        "config": {"batch": batch, "seq": seq, "heads": heads, "head_dim": head_dim, "dtype": dtype_name,
                   "block_size": block_size, "repeats": repeats, "causal": True,
                   "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
                   "implementations": list(implementations), "max_run_bytes": max_run_bytes},
        "flop_formula": FLOP_FORMULA,
        "rows": rows,
        "memory": memory_rows,
        "headline": next(r for r in rows if r["T"] == seq),
    }


def _ms(s) -> str:
    return "-" if s is None else f"{s * 1e3:.1f}"


def _gflops(x) -> str:
    return "-" if x is None else f"{x / 1e9:.1f}"


def _mib(b) -> str:
    if b is None:
        return "-"
    return f"{b / 2**20:.2f}" if b < 10 * 2**20 else f"{b / 2**20:.0f}"


def format_table(results: dict) -> str:
    """The results of :func:`attention_bench` as a printed table: time, GFLOP/s, ratios, memory."""
    dev, cfg = results["device"], results["config"]
    names = cfg["implementations"]
    title = (f"causal attention forward+backward on {dev['backend']} ({dev['device_kind']}), "
             f"B={cfg['batch']} H={cfg['heads']} K={cfg['head_dim']} {cfg['dtype']}, flash tiles of "
             f"{cfg['block_size']}, median of {cfg['repeats']}")
    lines = [title,
             f"FLOPs = {results['flop_formula']}",
             "ratios are their time over ours: > 1.0 means ours is faster"]
    header = ["T"] + [f"{n} ms" for n in names] + [f"{n} GFLOP/s" for n in names]
    ratio_names = sorted({k for r in results["rows"] for k in r["ratios"]})
    header += ratio_names + [f"{n} MiB" for n in names]
    table = [header]
    for r in results["rows"]:
        table.append([str(r["T"])] + [_ms(r["seconds"].get(n)) for n in names]
                     + [_gflops(r["flop_s"].get(n)) for n in names]
                     + [f"{r['ratios'][k]:.2f}" if k in r["ratios"] else "-" for k in ratio_names]
                     + [_mib(r["memory_bytes"].get(n)) for n in names])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in table]
    for r in results["rows"]:
        for n, e in r["errors"].items():
            lines.append(f"T={r['T']} {n}: {e}")
    if results["memory"]:
        lines.append("compiled memory only (argument + output + temp, MiB; nothing run):")
        for r in results["memory"]:
            cells = ", ".join(f"{n} {_mib(r['memory_bytes'].get(n))}" for n in names if n in r["memory_bytes"])
            errors = "".join(f"; {n}: {e}" for n, e in r["errors"].items())
            lines.append(f"  T={r['T']}: {cells}{errors}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench_attention",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (B=1, T=64, H=2, K=8), for a smoke test")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--sweep", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--memory-sweep", type=int, nargs="*",
                        help="T for compile-only memory (default: 4 and 8 times the longest T timed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--implementations", nargs="+", choices=IMPLEMENTATIONS)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        kwargs = dict(batch=1, seq=64, heads=2, head_dim=8, sweep=(32, 64), repeats=2, block_size=16)
    else:
        kwargs = dict(batch=args.batch, seq=args.seq, heads=args.heads, head_dim=args.head_dim,
                      sweep=tuple(args.sweep), repeats=args.repeats,
                      memory_sweep=None if args.memory_sweep is None else tuple(args.memory_sweep),
                      block_size=args.block_size)
    results = attention_bench(dtype=jnp.dtype(args.dtype), implementations=args.implementations,
                              progress=lambda line: print(line, flush=True), **kwargs)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
