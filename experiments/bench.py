"""``tfd bench``: our train step against PyTorch, our attention against JAX's, compile time, MFU, memory.

Every comparison is measured side by side in this one process, after warm-up, as the
median of several repeats, and reported as a ratio with the absolute figures and the
device.  Ratios read "above 1.0 means ours is better": ours tokens/s over theirs, or
their time over ours.

1. **Train step** (:func:`train_step_bench`): tokens/s of one optimizer update of our GPT
   (:func:`experiments.train.make_train_step`: loss, gradient, clipping, AdamW) against
   the same model and update in PyTorch (:mod:`experiments.bench_torch`, nanoGPT-style),
   at the same config, batch, dtype and thread count.  The two are timed in alternating
   rounds (ours, theirs, ours, ...), so a load that comes and goes on the machine falls on
   both; each round times ``steps`` updates one by one, each ending when the loss is on
   the host.
2. **Attention** (:func:`experiments.bench_attention.attention_bench`): causal attention
   forward and backward, ours (:func:`model.attention.sdpa` and the online-softmax
   :mod:`model.flash`) against ``jax.nn.dot_product_attention``.
3. **Compile and memory** (:func:`compile_bench`): the seconds to lower and compile the
   train step, XLA's memory analysis of the compiled step, and the steady-state MFU: the
   train step's tokens/s times the measured matmul FLOPs per token
   (:func:`model.cost.train_flops_per_token`) over the device's peak
   (:func:`experiments.peak.peak_flops`: a measured matmul ceiling on CPU, the datasheet
   on GPU).

On a GPU the train-step comparison also runs ``gpt2-small`` at T = 1024 in bfloat16
(ours: ``compute_dtype="bfloat16"``; PyTorch: ``torch.autocast(bfloat16)``).

Results go to ``<out>/results.json`` (written atomically) and a table is printed.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["bench", "compile_bench", "format_report", "train_step_bench"]


def _device() -> dict[str, Any]:
    import jax

    d = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": d.device_kind, "device_count": jax.device_count(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__}


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


class _Ours:
    """Our GPT's jitted train step on a fixed batch, ready to time."""

    def __init__(self, model_config, train_config, batch_size: int, seed: int):
        import jax
        import jax.numpy as jnp
        import numpy as np
        from flax import nnx

        from experiments.train import make_optimizer, make_train_step
        from model.gpt import GPT

        graphdef, params = nnx.split(GPT(model_config, rngs=nnx.Rngs(seed)), nnx.Param)
        opt_state = make_optimizer(train_config).init(params)
        self.params, self.opt_state = jax.device_put((params, opt_state), jax.devices()[0])
        self.step = make_train_step(graphdef, train_config)
        self.graphdef, self.train_config = graphdef, train_config
        rng = np.random.default_rng(seed)
        seq = rng.integers(0, model_config.vocab_size, (1, batch_size, model_config.context + 1)).astype(np.int32)
        self.batch = (jnp.asarray(seq[..., :-1]), jnp.asarray(seq[..., 1:]))
        self.parameters = int(sum(np.size(p) for p in jax.tree.leaves(params)))

    def run(self, n: int) -> list[float]:
        seconds = []
        for _ in range(n):
            t = time.perf_counter()
            self.params, self.opt_state, metrics = self.step(self.params, self.opt_state, self.batch)
            self.loss = float(metrics["loss"])
            seconds.append(time.perf_counter() - t)
        return seconds


def _median_per_round(rounds: list[list[float]]) -> float:
    return statistics.median(sum(r) / len(r) for r in rounds)


def train_step_bench(preset: str, *, batch_size: int | None = None, context: int | None = None,
                     compute_dtype: str = "float32", rounds: int = 5, steps: int = 10, warmup: int = 3,
                     seed: int = 0, torch_ref: bool = True, progress: bool = False) -> dict[str, Any]:
    """Tokens/s of our train step and of the PyTorch reference, same config, timed in alternating rounds.

    Args:
        preset: a :class:`model.gpt.GPTConfig` preset; the train preset of the same name
            gives the optimizer settings and, unless ``batch_size`` is given, the batch.
        context: T, if not the preset's.
        compute_dtype: ``"float32"`` or ``"bfloat16"`` (PyTorch then runs under autocast).
        rounds, steps, warmup: ``warmup`` untimed updates each, then ``rounds`` rounds of
            ``steps`` timed updates, alternating ours and theirs; the figure is the median
            over the rounds of the mean seconds per update.
        torch_ref: compare with PyTorch (skipped, with the reason, when it is not installed).
    """
    import jax

    from experiments import bench_torch
    from experiments.train import PRESETS as TRAIN_PRESETS
    from experiments.train import TrainConfig
    from model.gpt import GPTConfig

    overrides = {} if context is None else {"context": context}
    model_config = GPTConfig.preset(preset, **overrides)
    train_config = TrainConfig.preset(preset if preset in TRAIN_PRESETS else "shakespeare-char",
                                      compute_dtype=compute_dtype)
    batch_size = train_config.batch_size if batch_size is None else batch_size
    tokens = batch_size * model_config.context
    _say(progress, f"bench: train step {preset} (B={batch_size}, T={model_config.context}, {compute_dtype})")

    t = time.perf_counter()
    ours = _Ours(model_config, train_config, batch_size, seed)
    ours.run(1)
    first_step_s = time.perf_counter() - t
    ours.run(warmup)

    result: dict[str, Any] = {"preset": preset, "batch_size": batch_size, "context": model_config.context,
                              "compute_dtype": compute_dtype, "parameters": ours.parameters,
                              "rounds": rounds, "steps_per_round": steps, "first_step_s": first_step_s}
    reason = bench_torch.available() if torch_ref else "not requested (--no-torch)"
    theirs = None
    if reason is None:
        import torch

        device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        if jax.default_backend() == "gpu" and device == "cpu":
            reason = "JAX runs on a GPU but PyTorch sees none (a CPU build of torch): not a like-for-like comparison"
        else:
            threads = os.cpu_count() if device == "cpu" else None
            theirs = bench_torch.Runner(model_config, train_config, batch_size=batch_size, seed=seed, device=device,
                                        threads=threads, autocast_bf16=compute_dtype == "bfloat16")
            theirs.run(warmup + 1)
            if theirs.parameters != ours.parameters:
                raise RuntimeError(f"the PyTorch reference has {theirs.parameters} parameters, ours "
                                   f"{ours.parameters}: not the same model")
    ours_rounds, theirs_rounds = [], []
    for _ in range(rounds):
        ours_rounds.append(ours.run(steps))
        if theirs is not None:
            theirs_rounds.append(theirs.run(steps))
    s_ours = _median_per_round(ours_rounds)
    result["ours"] = {"seconds_per_step": s_ours, "tokens_per_s": tokens / s_ours, "final_loss": ours.loss,
                      "implementation": "JAX/Flax NNX, jax.jit train step (experiments.train.make_train_step)"}
    if theirs is None:
        result["pytorch"] = {"skipped": reason}
        result["ratio"] = None
    else:
        s_theirs = _median_per_round(theirs_rounds)
        result["pytorch"] = {"seconds_per_step": s_theirs, "tokens_per_s": tokens / s_theirs,
                             "final_loss": theirs.loss, "threads": theirs.threads, "device": theirs.device,
                             "torch": theirs.version, "implementation": "PyTorch eager (experiments.bench_torch)"}
        result["ratio"] = s_theirs / s_ours
    return result


def compile_bench(preset: str, *, batch_size: int | None = None, context: int | None = None,
                  compute_dtype: str = "float32", tokens_per_s: float | None = None) -> dict[str, Any]:
    """Lower-and-compile seconds, XLA's memory analysis and the MFU of our train step.

    ``tokens_per_s`` (from :func:`train_step_bench`) gives the steady-state MFU:
    tokens/s × matmul FLOPs per token / the device's peak for the matmul dtype.
    """
    import jax

    from experiments import peak as peak_lib
    from experiments.train import PRESETS as TRAIN_PRESETS
    from experiments.train import TrainConfig, _train_step, make_optimizer
    from model.cost import train_flops_per_token
    from model.gpt import GPTConfig, abstract_gpt

    overrides = {} if context is None else {"context": context}
    c = GPTConfig.preset(preset, **overrides)
    tc = TrainConfig.preset(preset if preset in TRAIN_PRESETS else "shakespeare-char", compute_dtype=compute_dtype)
    batch_size = tc.batch_size if batch_size is None else batch_size
    from flax import nnx

    graphdef, params = nnx.split(abstract_gpt(c, seed=0), nnx.Param)
    opt_state = jax.eval_shape(make_optimizer(tc).init, params)
    batch = (jax.ShapeDtypeStruct((1, batch_size, c.context), "int32"),) * 2
    t = time.perf_counter()
    lowered = _train_step.lower(graphdef, tc, None, params, opt_state, batch)
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    memory: dict[str, Any] = {}
    analysis = compiled.memory_analysis()
    if analysis is not None:
        for name in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
                     "generated_code_size_in_bytes"):
            memory[name] = int(getattr(analysis, name, 0) or 0)
        memory["peak_bytes"] = (memory["argument_size_in_bytes"] + memory["output_size_in_bytes"]
                                - memory["alias_size_in_bytes"] + memory["temp_size_in_bytes"])
    flops = train_flops_per_token(c.vocab_size, c.context, c.d_model, c.n_heads, c.d_ff, c.n_layers,
                                  tie_embeddings=c.tie_embeddings, learned_positions=c.positional == "learned",
                                  biases=c.bias)
    matmul = "bfloat16" if compute_dtype == "bfloat16" else None
    peak = peak_lib.peak_flops(dtype=matmul)
    result = {"preset": preset, "batch_size": batch_size, "context": c.context, "compute_dtype": compute_dtype,
              "lower_s": lower_s, "compile_s": compile_s, "memory": memory, "flops_per_token": flops,
              "peak": None if peak is None else peak.to_dict()}
    if tokens_per_s is not None and peak is not None:
        result["achieved_flops_per_s"] = tokens_per_s * flops
        result["mfu"] = tokens_per_s * flops / peak.flops_per_s
    return result


def bench(out_dir: str | os.PathLike = "runs/bench", *, presets: tuple[str, ...] = ("tiny", "shakespeare-char"),
          quick: bool = False, torch_ref: bool = True, attention: bool = True, rounds: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Run the benchmark and write ``<out_dir>/results.json``; returns what it holds.

    ``quick`` is the smallest run that exercises every part (for tests): fewer rounds
    and steps, and attention at toy sizes.
    """
    import jax

    from model.gpt import GPTConfig

    rounds = (2 if quick else 7) if rounds is None else rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds: expected a positive integer, got {rounds!r}")
    for preset in presets:
        GPTConfig.preset(preset)  # an unknown name fails here, before anything is timed
    steps = 3 if quick else 20
    start = time.perf_counter()
    results: dict[str, Any] = {"device": _device(), "quick": quick, "train_step": [], "compile": []}
    cases = [(p, "float32", None, None) for p in presets]
    if jax.default_backend() == "gpu" and not quick:
        cases.append(("gpt2-small", "bfloat16", 8, 1024))
    for preset, dtype, batch, context in cases:
        r = train_step_bench(preset, batch_size=batch, context=context, compute_dtype=dtype, rounds=rounds,
                             steps=steps, torch_ref=torch_ref, progress=progress)
        results["train_step"].append(r)
        _say(progress, "  " + _train_line(r))
        results["compile"].append(compile_bench(preset, batch_size=batch, context=context, compute_dtype=dtype,
                                                tokens_per_s=r["ours"]["tokens_per_s"]))
    if attention:
        from experiments.bench_attention import attention_bench

        _say(progress, "bench: causal attention, forward and backward")
        if quick:
            results["attention"] = attention_bench(batch=1, seq=64, heads=2, head_dim=8, sweep=(32, 64), repeats=2)
        elif jax.default_backend() == "gpu":  # cuDNN's attention takes bfloat16 (or float16), not float32
            import jax.numpy as jnp

            results["attention"] = attention_bench(dtype=jnp.bfloat16)
        else:
            results["attention"] = attention_bench()
    results["seconds"] = time.perf_counter() - start
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, out / "results.json")
    return results


def _train_line(r: dict[str, Any]) -> str:
    ours = f"ours {r['ours']['tokens_per_s']:,.0f} tok/s"
    if r["ratio"] is None:
        return f"{r['preset']}: {ours}; PyTorch skipped: {r['pytorch']['skipped']}"
    return (f"{r['preset']}: {ours}, PyTorch {r['pytorch']['tokens_per_s']:,.0f} tok/s, "
            f"ratio {r['ratio']:.2f}x")


def format_report(results: dict[str, Any]) -> str:
    """The printed tables of :func:`bench`'s results."""
    d = results["device"]
    lines = [(f"device: {d['backend']} ({d['device_kind']}), {d['device_count']} device(s), {d['cpu_count']} CPU "
             f"cores, jax {d['jax']}"), "",
             "train step, tokens/s (ratio = ours / PyTorch; > 1 means ours is faster)",
             (f"{'preset':18s} {'dtype':9s} {'B x T':>9s} {'params':>11s} {'ours':>12s} {'PyTorch':>12s} "
             f"{'ratio':>7s}")]
    for r in results["train_step"]:
        theirs = "skipped" if r["ratio"] is None else f"{r['pytorch']['tokens_per_s']:,.0f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"{r['preset']:18s} {r['compute_dtype']:9s} {r['batch_size']:>4d}x{r['context']:<4d} "
                     f"{r['parameters']:>11,d} {r['ours']['tokens_per_s']:>12,.0f} {theirs:>12s} {ratio:>7s}")
    skipped = {r["pytorch"]["skipped"] for r in results["train_step"] if r["ratio"] is None}
    lines += [f"  PyTorch skipped: {s}" for s in sorted(skipped)]
    torch_rows = [r["pytorch"] for r in results["train_step"] if r["ratio"] is not None]
    if torch_rows:
        lines.append(f"  PyTorch {torch_rows[0]['torch']} on {torch_rows[0]['device']}, "
                     f"{torch_rows[0]['threads']} thread(s); median of {results['train_step'][0]['rounds']} "
                     f"alternating rounds")
    lines += ["", "train step: compile time, memory (XLA memory analysis) and MFU",
              (f"{'preset':18s} {'lower s':>8s} {'compile s':>10s} {'peak MiB':>9s} {'FLOP/token':>12s} "
              f"{'MFU':>7s}  peak FLOP/s")]
    for c in results["compile"]:
        mem = c["memory"].get("peak_bytes")
        mem_s = "-" if mem is None else f"{mem / 2**20:.1f}"
        mfu = "-" if "mfu" not in c else f"{c['mfu']:.1%}"
        peak = "-" if c["peak"] is None else f"{c['peak']['flops_per_s']:.3g} ({c['peak']['source']})"
        lines.append(f"{c['preset']:18s} {c['lower_s']:>8.2f} {c['compile_s']:>10.2f} {mem_s:>9s} "
                     f"{c['flops_per_token']:>12,d} {mfu:>7s}  {peak}")
    if "attention" in results:
        from experiments.bench_attention import format_table

        lines += ["", format_table(results["attention"])]
    lines += ["", f"{results['seconds']:.0f} s in all"]
    return "\n".join(lines)
