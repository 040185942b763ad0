"""The ``tfd`` command line.

``tfd verify [ID ...] [--week N]``
    verify derivations and print one row each; exit status 1 if any check fails.
``tfd derive ID [--latex]`` / ``tfd derive --list``
    print a derivation's statement and steps, or list every id by week.
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

    from experiments.verify import verify

    chosen = _select(args.ids, args.week)
    header = ("id", "week", "title", "steps", "max rel err", "grad err", "sampled", "backend", "dtype", "time", "ok")
    widths = (26, 4, 44, 5, 11, 8, 7, 7, 7, 6, 4)
    print(f"verifying {len(chosen)} derivation(s) on {jax.default_backend()} "
          f"({jax.devices()[0].device_kind}), float32 at matmul precision 'highest'")
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    start = time.perf_counter()
    failed = []
    for d in chosen:
        r = verify(d, symbolic=not args.numeric_only)
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
          f"(tolerance: max relative error <= 1e-5 in float32; integer and boolean outputs exact)")
    for r in failed:
        print(f"\nFAILED {r.id}:")
        for s in r.failed_steps:
            print(f"  step does not hold: {s}")
        if r.numeric_error is not None and not r.numeric_ok:
            print(f"  statement vs implementation: max relative error {r.numeric_error:.3e} > {r.tolerance:.0e}")
        if r.gradients_total and not r.gradient_ok:
            print(f"  stated gradient vs jax autodiff: max relative error {_fmt_err(r.gradient_error)}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfd", description="transformer-derivations: verified transformer equations")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="check every derivation (or the chosen ones) against its implementation")
    v.add_argument("ids", nargs="*", help="derivation ids (default: all)")
    v.add_argument("--week", type=int, help="only the derivations of this study week")
    v.add_argument("--numeric-only", action="store_true", help="skip the symbolic steps (numeric checks only)")
    v.set_defaults(func=cmd_verify)

    d = sub.add_parser("derive", help="print a derivation: statement, steps, gradients")
    d.add_argument("id", nargs="?", help="derivation id")
    d.add_argument("--latex", action="store_true", help="print LaTeX instead of Unicode pretty printing")
    d.add_argument("--list", action="store_true", help="list every derivation id by week")
    d.set_defaults(func=cmd_derive)
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
