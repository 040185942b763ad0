"""Symbolic proof of derivation steps and float64 references lambdified from statements.

These are the SymPy halves of the verifier: :func:`prove` reduces a step to zero,
:func:`reference` and :func:`gradient_reference` turn a statement or a stated
gradient into a NumPy function of the implementation's arguments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derivations.registry import Derivation, Gradient, Step
from derivations.symbolic import Concat, _substitute_sizes, explicit

__all__ = ["Proof", "prove", "reference", "gradient_reference", "symbol_shape"]


@dataclass(frozen=True)
class Proof:
    """The outcome of :func:`prove`: whether the step holds, what was left, and how long it took."""

    step: Step
    holds: bool
    residual: str
    seconds: float


def _reduce(expr, method: str):
    if method == "expand":
        return sp.expand(expr)
    if method == "trigsimp":
        return sp.trigsimp(sp.expand(expr))
    if method == "expand_trig":
        return sp.simplify(sp.expand_trig(expr))
    if method == "doit":
        return sp.simplify(expr.doit())
    if method == "stats":
        from sympy.stats import Covariance, Expectation, Variance

        moments = (Covariance, Expectation, Variance)
        evaluated = expr.replace(lambda a: isinstance(a, moments), lambda a: a.rewrite(sp.Integral).doit())
        return sp.simplify(evaluated)
    return sp.simplify(expr)


def _is_zero(expr) -> bool:
    if isinstance(expr, sp.ZeroMatrix):
        return True
    if getattr(expr, "is_Matrix", False):
        return all(e == 0 for e in expr)
    return expr == 0


def prove(step: Step) -> Proof:
    """Reduce ``lhs - rhs`` of ``step`` with its method; the step holds when zero is left."""
    start = time.perf_counter()
    lhs, rhs = step.eq.lhs, step.eq.rhs
    try:
        lhs, rhs = explicit(lhs, step.sizes), explicit(rhs, step.sizes)
    except ValueError:  # a matrix identity with symbolic shapes: reduce it as it stands
        if step.sizes:
            raise
    diff = lhs - rhs
    if getattr(diff, "is_Matrix", False) and not isinstance(diff, sp.MatrixExpr):
        residual = diff.applyfunc(lambda e: _reduce(e, step.method))
    elif isinstance(diff, sp.MatrixExpr):
        residual = _reduce(diff, step.method)
        if not isinstance(residual, sp.ZeroMatrix) and step.method != "doit":
            residual = _reduce(diff.doit(), step.method)
    else:
        residual = _reduce(diff, step.method)
    holds = _is_zero(residual)
    return Proof(step, holds, "0" if holds else str(residual)[:300], time.perf_counter() - start)


def symbol_shape(axes: str, sizes) -> tuple[int, ...]:
    """The concrete array shape of a symbol with axis letters ``axes`` (``""`` is a scalar)."""
    return tuple(int(sizes[a]) for a in axes)


def _sympy_arguments(d: Derivation, names, expr) -> list:
    """The SymPy objects standing for ``names`` in ``expr`` at the derivation's sizes."""
    atoms = {str(m): m for m in expr.atoms(sp.MatrixSymbol)}
    atoms.update({str(s): s for s in expr.free_symbols if isinstance(s, sp.Symbol)})
    args = []
    for name in names:
        axes = d.shapes[name]
        if name in atoms:
            args.append(atoms[name])
        elif len(axes) == 0:
            args.append(sp.Symbol(name))
        else:
            rows, cols = (1, d.sizes[axes[0]]) if len(axes) == 1 else symbol_shape(axes, d.sizes)
            args.append(sp.MatrixSymbol(name, rows, cols))
    return args


def _as_sympy_array(x: np.ndarray, axes: str):
    x = np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x)
    if len(axes) == 0:
        return x.item()
    if len(axes) == 1:
        return x.reshape(1, -1)
    return x


def _is_composite(e) -> bool:
    """A matrix expression with operands of its own (not a symbol, not an explicit constant matrix)."""
    return (isinstance(e, sp.MatrixExpr) and not isinstance(e, sp.MatrixSymbol)
            and not (isinstance(e, sp.MatrixBase) and not e.free_symbols))


def _staged(expr, args: list, memo: dict) -> Callable:
    """Evaluate a matrix expression node by node: ``env -> float64 array``.

    Each node is expanded with its composite operands replaced by placeholder
    symbols, lambdified, and fed the operands' values.  The numbers are those of
    the fully expanded expression; the cost grows with the number of nodes, not
    with the size of the expression once everything is substituted, so composed
    statements (a block of LayerNorm, attention and FFN) stay cheap.
    """
    if expr in memo:
        return memo[expr]
    if isinstance(expr, Concat):
        index, count, block = expr.args
        parts = [_staged(block.xreplace({index: sp.Integer(h)}), args, memo) for h in range(int(count))]

        def run(env, parts=parts):
            return np.hstack([np.asarray(p(env), dtype=np.float64) for p in parts])
    else:
        operands, placeholders, new_args = [], [], []
        for a in expr.args:
            if _is_composite(a):
                ph = sp.MatrixSymbol(f"_operand{len(memo)}_{len(placeholders)}", *a.shape)
                placeholders.append(ph)
                operands.append(_staged(a, args, memo))
                new_args.append(ph)
            else:
                new_args.append(a)
        node = expr.func(*new_args) if placeholders else expr
        fn = sp.lambdify(list(args) + placeholders, explicit(node, {}), modules=["numpy"], cse=True)

        def run(env, fn=fn, operands=operands):
            return np.asarray(fn(*env, *[o(env) for o in operands]), dtype=np.float64)
    memo[expr] = run
    return run


def _lambdify(d: Derivation, names, expr) -> Callable[..., np.ndarray]:
    sized = _substitute_sizes(expr, d.sizes)
    constants = {s: d.constants[str(s)] for s in sized.free_symbols
                 if isinstance(s, sp.Symbol) and str(s) in d.constants}
    sized = sized.subs(constants)
    args = _sympy_arguments(d, names, sized)
    if _is_composite(sized):
        staged = _staged(sized, args, {})

        def fn(*values):
            return staged(values)
    else:
        fn = sp.lambdify(args, explicit(sized, {}), modules=["numpy"], cse=True)

    def evaluate(**arrays):
        values = [_as_sympy_array(arrays[n], d.shapes[n]) for n in names]
        return np.asarray(fn(*values), dtype=np.float64)

    evaluate.__name__ = f"reference_{d.id.replace('.', '_')}"
    return evaluate


def reference(d: Derivation) -> Callable[..., np.ndarray]:
    """A float64 NumPy function of the derivation's arguments computing the statement's right side.

    It is built by expanding the statement at ``d.sizes`` into scalar entries
    (node by node, see :func:`_staged`) and lambdifying them, so it shares no code
    with the implementation it checks.
    The result has the output's concrete shape.
    """
    fn = _lambdify(d, d.arguments, d.statement.rhs)
    shape = symbol_shape(d.shapes[d.output], d.sizes)

    def evaluate(**arrays):
        return fn(**arrays).reshape(shape)

    return evaluate


def gradient_reference(d: Derivation, g: Gradient) -> Callable[..., np.ndarray]:
    """A float64 NumPy function computing the stated gradient ``g`` of ``d``.

    With a cotangent the result has the shape of ``g.wrt``; without, it is the
    Jacobian ``[size(output), size(wrt)]``.
    """
    names = d.arguments + ((g.cotangent,) if g.cotangent else ())
    fn = _lambdify(d, names, g.expr)
    wrt_shape = symbol_shape(d.shapes[g.wrt], d.sizes)
    out_size = int(np.prod(symbol_shape(d.shapes[d.output], d.sizes), dtype=int))
    shape = wrt_shape if g.cotangent else (out_size, int(np.prod(wrt_shape, dtype=int)))

    def evaluate(**arrays):
        return fn(**arrays).reshape(shape)

    return evaluate
