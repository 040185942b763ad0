"""The ``tfd`` command line.

``tfd verify [ID ...] [--week N]``
    verify derivations and print one row each; exit status 1 if any check fails.
``tfd derive ID [--latex]`` / ``tfd derive --list``
    print a derivation's statement and steps, or list every id by week.
``tfd info --preset NAME``
    parameters (formula and built model), training FLOPs per token, memory.
``tfd train [--preset shakespeare-char] [--data PATH] [--resume runs/NAME]``
    train a GPT on the built-in Shakespeare corpus (or your text), with checkpoints.
``tfd sample --run runs/NAME --prompt TEXT``
    generate text from a trained run with a KV cache.
``tfd experiment NAME [--scale N]`` / ``tfd experiment --list``
    run one week's experiment into runs/NAME (results.json and figures).
``tfd course``
    verify, train the shared GPT once, run every experiment, write runs/course/index.json.
``tfd lessons [--runs DIR] [--out DIR]``
    build the lesson site (runs/site/index.html and a page per week) from what runs/ holds.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _select(ids: list[str], week: int | None):
    import derivations

    if ids:
        unknown = [i for i in ids if i not in derivations.REGISTRY]
        if unknown:
            raise SystemExit(
                f"tfd: unknown derivation id(s) {', '.join(unknown)}; run `tfd derive --list` for the known ids")
        chosen = [derivations.REGISTRY[i] for i in ids]
    else:
        chosen = list(derivations.REGISTRY.values())
    if week is not None:
        chosen = [d for d in chosen if d.week == week]
        if not chosen:
            weeks = sorted({d.week for d in derivations.REGISTRY.values()})
            raise SystemExit(f"tfd: no derivation for week {week}; weeks with derivations: {weeks}")
    return sorted(chosen, key=lambda d: d.week)


def _fmt_err(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()


def cmd_verify(args) -> int:
    import jax

    from experiments.verify import GRADIENT_TOLERANCE, TOLERANCE, verify

    chosen = _select(args.ids, args.week)
    header = ("id", "week", "title", "steps", "max rel err", "grad err", "sampled", "backend", "dtype", "time", "ok")
    widths = (26, 4, 44, 5, 11, 8, 7, 7, 7 if args.dtype == "float32" else 26, 6, 4)
    print(f"verifying {len(chosen)} derivation(s) on {jax.default_backend()} "
          f"({jax.devices()[0].device_kind}), {args.dtype} inputs at matmul precision 'highest'")
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    start = time.perf_counter()
    failed = []
    for d in chosen:
        r = verify(d, symbolic=not args.numeric_only, dtype=args.dtype)
        steps = "skip" if args.numeric_only else f"{r.steps_proved}/{r.steps_total}"
        sampled = f"{sum(v <= t for _, v, t in r.properties)}/{len(r.properties)}" if r.properties else "-"
        title = d.title if len(d.title) <= widths[2] else d.title[: widths[2] - 1] + "…"
        ok = r.ok or (args.numeric_only and r.error is None and r.numeric_ok and r.gradient_ok and r.properties_ok)
        print(_row((d.id, d.week, title, steps, _fmt_err(r.numeric_error),
                    _fmt_err(r.gradient_error) if r.gradients_total else "-", sampled, r.backend, r.dtype,
                    f"{r.seconds:.1f}s", "ok" if ok else "FAIL"), widths), flush=True)
        if not ok:
            failed.append(r)
    print(f"\n{len(chosen) - len(failed)}/{len(chosen)} derivations verified in {time.perf_counter() - start:.1f} s "
          f"(tolerance: max relative error <= {TOLERANCE[args.dtype]:.0e} in {args.dtype}, gradients "
          f"<= {GRADIENT_TOLERANCE[args.dtype]:.0e}; integer and boolean outputs exact)")
    for r in failed:
        print(f"\nFAILED {r.id}:")
        for s in r.failed_steps:
            print(f"  step does not hold: {s}")
        if r.numeric_error is not None and not r.numeric_ok:
            print(f"  statement vs implementation: max relative error {r.numeric_error:.3e} > {r.tolerance:.0e}")
        if r.gradients_total and not r.gradient_ok:
            print(f"  stated gradient vs jax autodiff: max relative error {_fmt_err(r.gradient_error)} > "
                  f"{r.gradient_tolerance:.0e}")
        for name, value, tol in r.properties:
            if value > tol:
                print(f"  sampled check failed: {name}: {value:.3e} > {tol:.1e}")
        if r.error:
            print("  error: " + r.error.replace("\n", "\n  "))
    return 1 if failed else 0


def cmd_derive(args) -> int:

    import derivations
    from derivations.symbolic import latex, pretty

    if args.list:
        for week, items in derivations.by_week().items():
            print(f"week {week}")
            for d in items:
                print(f"  {d.id:<28} {d.title}")
        return 0
    if not args.id:
        raise SystemExit("tfd derive: give a derivation id, or --list to see them")
    try:
        d = derivations.get(args.id)
    except KeyError as e:
        raise SystemExit(f"tfd derive: {e.args[0]}") from None

    def show(expr) -> str:
        return latex(expr) if args.latex else pretty(expr)

    shapes = ", ".join(f"{n}: [{', '.join(s)}]" if s else f"{n}: scalar" for n, s in d.shapes.items())
    print(f"{d.id} (week {d.week}): {d.title}\n")
    print(show(d.statement))
    print(f"\nshapes: {shapes}")
    if d.constants:
        print("held fixed in the numeric check: " + ", ".join(f"{k} = {v}" for k, v in d.constants.items()))
    print(f"implemented by: {d.implementation}")
    for n, step in enumerate(d.steps, 1):
        where = ("  (checked at " + ", ".join(f"{a} = {v}" for a, v in step.sizes.items()) + ")") if step.sizes else ""
        print(f"\nstep {n}: {step.claim}{where}\n")
        print(show(step.eq))
    for g in d.gradients:
        kind = f"gradient of sum({d.output} * {g.cotangent}) with respect to {g.wrt}" if g.cotangent \
            else f"Jacobian d{d.output}/d{g.wrt}"
        print(f"\n{kind}:\n")
        print(show(g.expr))
    if d.notes:
        print(f"\n{d.notes}")
    if d.source:
        print(f"\nsource: {d.source}")
    return 0


def _train_preset(model_preset: str, train_preset: str | None) -> str:
    from experiments.train import PRESETS as TRAIN_PRESETS

    name = train_preset or model_preset
    if name not in TRAIN_PRESETS:
        raise SystemExit(f"tfd: no training preset named {name!r}; pass --train-preset with one of "
                         f"{', '.join(TRAIN_PRESETS)}")
    return name


def _flops_per_token(c) -> int:
    from model.cost import train_flops_per_token

    return train_flops_per_token(c.vocab_size, c.context, c.d_model, c.n_heads, c.d_ff, c.n_layers,
                                 tie_embeddings=c.tie_embeddings, learned_positions=c.positional == "learned",
                                 biases=c.bias)


def cmd_info(args) -> int:
    from experiments.info import format_info, info
    from experiments.train import TrainConfig
    from model.gpt import GPTConfig

    try:
        config = GPTConfig.preset(args.preset)
        tc = TrainConfig.preset(_train_preset(args.preset, args.train_preset)) if (
            args.train_preset or args.preset in _train_presets()) else None
    except ValueError as e:
        raise SystemExit(f"tfd info: {e}") from None
    print(format_info(info(config, train_config=tc)))
    return 0


def _train_presets():
    from experiments.train import PRESETS as TRAIN_PRESETS

    return TRAIN_PRESETS


def _summary(result: dict, run_dir) -> None:
    keys = [("steps", "steps", "{}"), ("train_loss", "train loss", "{:.4f}"), ("val_loss", "val loss", "{:.4f}"),
            ("tokens_per_s", "tokens/s", "{:.0f}"), ("mfu", "MFU", "{:.1%}")]
    parts = [f"{label} {fmt.format(result[k])}" for k, label, fmt in keys if result.get(k) is not None]
    print(", ".join(parts))
    print(f"run folder: {run_dir} (config.json, metrics.jsonl, checkpoints/, loss.png, loss.svg, results.json)")
    print(f"sample from it: tfd sample --run {run_dir} --prompt \"ROMEO:\"")


def cmd_train(args) -> int:
    from pathlib import Path

    from experiments.runs import open_run, prepare_run, read_configs
    from experiments.train import TrainConfig, TrainingInterrupted, resume, train
    from model.gpt import PRESETS as MODEL_PRESETS
    from model.gpt import GPTConfig

    if args.distributed:
        from experiments.sharding import initialize_distributed

        initialize_distributed()
    try:
        if args.resume:
            run_dir = Path(args.resume)
            if args.data or args.name or args.steps or args.overwrite or args.dtype or args.parallel:
                raise SystemExit("tfd train --resume: the run's own corpus and configs are used; do not combine it "
                                 "with --data, --name, --steps, --overwrite, --dtype or --parallel")
            _, data = open_run(run_dir)
            model_config, _ = read_configs(run_dir)
            print(f"resuming {run_dir}")
            result = resume(run_dir, data, progress=not args.quiet, stop_at=args.stop_at,
                            flops_per_token=_flops_per_token(model_config))
        else:
            if args.preset not in MODEL_PRESETS:
                raise SystemExit(f"tfd train: unknown preset {args.preset!r}; expected one of "
                                 f"{', '.join(MODEL_PRESETS)}")
            train_name = _train_preset(args.preset, args.train_preset)
            run_dir = Path(args.runs_dir) / (args.name or args.preset)
            if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir()) \
                    and not args.overwrite:
                raise SystemExit(f"tfd train: {run_dir} already holds a run with checkpoints; continue it with "
                                 f"`tfd train --resume {run_dir}`, choose another --name, or pass --overwrite")
            kind = args.tokenizer or ("gpt2" if args.preset.startswith("gpt2") else "char")
            print(f"preparing {'the built-in Shakespeare corpus' if args.data is None else args.data} "
                  f"with the {kind} tokenizer into {run_dir}")
            tok, data = prepare_run(run_dir, data=args.data, tokenizer=kind)
            model_config = GPTConfig.preset(args.preset, vocab_size=tok.vocab_size)
            overrides = {"steps": args.steps} if args.steps else {}
            if args.dtype:
                overrides["compute_dtype"] = args.dtype
            if args.parallel:
                overrides["parallel"] = args.parallel
            if args.steps:
                base = TrainConfig.preset(train_name)
                overrides["warmup_steps"] = min(base.warmup_steps, max(args.steps // 10, 0))
            train_config = TrainConfig.preset(train_name, **overrides)
            print(f"model {args.preset}: {model_config}\ntraining {train_name}: {train_config}")
            result = train(model_config, train_config, data, out_dir=run_dir, progress=not args.quiet,
                           stop_at=args.stop_at, overwrite=args.overwrite,
                           flops_per_token=_flops_per_token(model_config))
    except TrainingInterrupted as e:
        where = f"checkpoint at step {e.step} in {e.checkpoint}" if e.checkpoint else "no checkpoint"
        print(f"\ninterrupted at step {e.step}: {where}; continue with `tfd train --resume {e.out_dir}`",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"tfd train: {e}") from None
    _summary(result, run_dir)
    return 0


def cmd_sample(args) -> int:
    import warnings

    from experiments.runs import load_model, open_run
    from model.generate import generate

    try:
        tok, _ = open_run(args.run)
        model, step = load_model(args.run)
        ids = tok.encode(args.prompt)
        if not ids:
            raise ValueError(f"--prompt: expected text that encodes to at least one token, got {args.prompt!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = generate(model, [ids] * args.num_samples, args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"tfd sample: {e}") from None
    print(f"# {args.run}, checkpoint at step {step}", file=sys.stderr)
    for i, row in enumerate(out.tolist()):
        if i:
            print("\n" + "-" * 40)
        print(tok.decode(row))
    return 0


def cmd_experiment(args) -> int:
    from pathlib import Path

    from experiments import weekly

    if args.list or not args.name:
        if not args.list:
            print("tfd experiment: give an experiment name; the known ones are:", file=sys.stderr)
        for name in sorted(weekly.EXPERIMENTS, key=lambda n: (weekly.get(n).WEEK, n)):
            module = weekly.get(name)
            print(f"week {module.WEEK:>2}  {name:<12} {module.TITLE}")
        return 0 if args.list else 2
    try:
        module = weekly.get(args.name)
        out = Path(args.out) if args.out else Path(args.runs_dir) / args.name
        start = time.perf_counter()
        module.run(out, scale=args.scale, seed=args.seed, progress=not args.quiet)
    except ValueError as e:
        raise SystemExit(f"tfd experiment: {e}") from None
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    print(f"{args.name} (week {module.WEEK}) done in {time.perf_counter() - start:.0f} s: {out} holds "
          f"{', '.join(files)}")
    return 0


def cmd_course(args) -> int:
    from experiments.course import run_course

    try:
        index = run_course(args.runs_dir, tiny=args.tiny, progress=not args.quiet, only=args.only or None)
    except ValueError as e:
        raise SystemExit(f"tfd course: {e}") from None
    for week in index["weeks"]:
        for e in week["experiments"]:
            print(f"week {week['week']:>2}  {e['name']:<12} {'ok' if e['ok'] else 'FAILED'}  {e['seconds']:.0f} s")
    v = index["verify"]
    print(f"{v['verified']}/{v['derivations']} derivations verified; {'everything ran' if index['ok'] else 'FAILED'} "
          f"in {index['seconds']:.0f} s; index: {args.runs_dir}/course/index.json")
    return 0 if index["ok"] else 1


def cmd_lessons(args) -> int:
    from pathlib import Path

    from experiments.lessons import build_site

    try:
        index = build_site(args.runs, args.out, progress=not args.quiet)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"tfd lessons: {e}") from None
    site = Path(index).parent
    print(f"lessons: {index}")
    print(f"open it from disk, or serve it with `python -m http.server --directory {site}` and open the "
          f"address it prints")
    if not (Path(args.runs) / "course" / "index.json").is_file():
        print(f"note: {args.runs} holds no course run, so the pages show no verification results or numbers; "
              f"`tfd course --runs-dir {args.runs}` computes them (it rebuilds the site at its end)")
    return 0


def cmd_bench(args) -> int:
    from experiments.bench import bench, format_report

    results = bench(args.out, presets=tuple(args.presets), quick=args.quick, torch_ref=not args.no_torch,
                    attention=not args.no_attention, rounds=args.rounds, progress=not args.quiet)
    print(format_report(results))
    print(f"results: {args.out}/results.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfd", description="transformer-derivations: verified transformer equations")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="check every derivation (or the chosen ones) against its implementation")
    v.add_argument("ids", nargs="*", help="derivation ids (default: all)")
    v.add_argument("--week", type=int, help="only the derivations of this study week")
    v.add_argument("--numeric-only", action="store_true", help="skip the symbolic steps (numeric checks only)")
    v.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="the input dtype of the numeric checks (bfloat16: tolerance 1e-2, gradients 3e-2, "
                        "sampled checks skipped)")
    v.set_defaults(func=cmd_verify)

    d = sub.add_parser("derive", help="print a derivation: statement, steps, gradients")
    d.add_argument("id", nargs="?", help="derivation id")
    d.add_argument("--latex", action="store_true", help="print LaTeX instead of Unicode pretty printing")
    d.add_argument("--list", action="store_true", help="list every derivation id by week")
    d.set_defaults(func=cmd_derive)

    i = sub.add_parser("info", help="parameters, training FLOPs per token and memory of a model preset")
    i.add_argument("--preset", default="gpt2-small", help="model preset (default: gpt2-small)")
    i.add_argument("--train-preset", help="training preset for the per-step figures (default: the same name, "
                                          "when there is one)")
    i.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train a GPT (default: shakespeare-char on the built-in corpus)")
    t.add_argument("--preset", default="shakespeare-char", help="model preset (default: shakespeare-char)")
    t.add_argument("--train-preset", help="training preset (default: the model preset's name)")
    t.add_argument("--data", help="a UTF-8 text file or folder of text files (default: the built-in Shakespeare)")
    t.add_argument("--tokenizer", choices=("char", "gpt2"), help="default: gpt2 for gpt2-* presets, else char")
    t.add_argument("--name", help="run name (default: the preset); the run folder is RUNS_DIR/NAME")
    t.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    t.add_argument("--steps", type=int, help="override the number of optimizer steps")
    t.add_argument("--stop-at", type=int, help="stop after this step with a checkpoint (finish later with --resume)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    t.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that has checkpoints")
    t.add_argument("--dtype", choices=("float32", "bfloat16"),
                   help="compute dtype of the forward and backward pass (bfloat16: mixed precision, float32 state)")
    t.add_argument("--parallel", choices=("none", "dp", "fsdp"),
                   help="spread each step over every device: data parallel, or fully sharded (default: none)")
    t.add_argument("--distributed", action="store_true",
                   help="multi-host: call jax.distributed.initialize() first (one process per host, same command)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--run", required=True, help="the run folder (runs/NAME)")
    s.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    s.add_argument("--max-new-tokens", type=int, default=200)
    s.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding (default 0.8)")
    s.add_argument("--top-k", type=int, default=None, help="keep only the k most probable tokens")
    s.add_argument("--top-p", type=float, default=None, help="nucleus sampling: keep the smallest set with mass >= p")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--num-samples", type=int, default=1)
    s.add_argument("--no-cache", action="store_true", help="recompute the whole window every token")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("experiment", help="run one week's experiment (results.json and figures)")
    e.add_argument("name", nargs="?", help="experiment name (see --list)")
    e.add_argument("--list", action="store_true", help="list the experiments by week")
    e.add_argument("--scale", type=int, default=1, help="1 = the small CPU default; larger for accelerators")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", help="output folder (default: RUNS_DIR/NAME)")
    e.add_argument("--runs-dir", default="runs")
    e.add_argument("--quiet", action="store_true", help="no progress display")
    e.set_defaults(func=cmd_experiment)

    c = sub.add_parser("course", help="verify, train the shared GPT once, run every weekly experiment")
    c.add_argument("--runs-dir", default="runs")
    c.add_argument("--only", nargs="*", help="run only these experiments")
    c.add_argument("--tiny", action="store_true", help="everything at its tiny size (a smoke test)")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_course)

    ls = sub.add_parser("lessons", help="build the lesson site from runs/ (runs nothing)")
    ls.add_argument("--runs", "--runs-dir", dest="runs", default="runs",
                    help="the runs folder to read (default: runs)")
    ls.add_argument("--out", help="where the site goes (default: RUNS/site)")
    ls.add_argument("--quiet", action="store_true", help="do not list what is built")
    ls.set_defaults(func=cmd_lessons)

    b = sub.add_parser("bench", help="train-step tokens/s against PyTorch, attention against JAX's, compile, MFU")
    b.add_argument("--out", default="runs/bench", help="where results.json goes (default: runs/bench)")
    b.add_argument("--presets", nargs="+", default=["tiny", "shakespeare-char"], metavar="PRESET",
                   help="GPT presets of the train-step comparison (default: tiny shakespeare-char)")
    b.add_argument("--rounds", type=int, help="timed rounds per side (default 7; 2 with --quick)")
    b.add_argument("--quick", action="store_true", help="the smallest run that exercises every part")
    b.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    b.add_argument("--no-attention", action="store_true", help="skip the attention comparison")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
