"""The verifier: walks the registry and checks every derivation against its implementation.

For each derivation it (a) proves every step symbolically, (b) evaluates the
statement in float64 from the SymPy expression and compares it with the
jit-compiled model function at ``jax.default_matmul_precision("highest")``,
(c) compares every stated gradient with ``jax.vjp``/``jax.jacfwd`` of the
implementation, and (d) runs the sampled checks of ``experiments.properties``.
The tests and ``tfd verify`` both call :func:`verify`.
"""

from __future__ import annotations

import functools
import importlib
import time
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from derivations.check import gradient_reference, prove, reference, symbol_shape
from derivations.registry import Derivation
from experiments.properties import for_derivation

__all__ = ["DTYPES", "GRADIENT_TOLERANCE", "TOLERANCE", "Result", "resolve", "sample_inputs", "verify", "verify_all", "relative_error"]

#: Max relative error allowed between the float64 SymPy reference and the
#: implementation, by the dtype of the implementation's output: about 10x float32 /
#: bfloat16 epsilon times the few roundings of a small expression.  Integer and
#: boolean outputs must match exactly.  Never loosened to pass.
TOLERANCE: dict[str, float] = {"float32": 1e-5, "bfloat16": 1e-2, "float64": 1e-12}

#: the input dtypes :func:`verify` can run the numeric checks in (``tfd verify --dtype``)
DTYPES = ("float32", "bfloat16")

#: Max relative error of a stated gradient, by input dtype.  In float32 it is the
#: value tolerance.  In bfloat16 every product of the forward pass and of the backward
#: pass is rounded to an 8-bit significand (unit roundoff u = 2⁻⁸ ≈ 3.9e-3), and a
#: gradient chains about twice as many roundings as the value: 3e-2 is about 8u.
GRADIENT_TOLERANCE: dict[str, float] = {"float32": TOLERANCE["float32"], "bfloat16": 3e-2}


@dataclass
class Result:
    """The outcome of verifying one derivation."""

    id: str
    week: int
    title: str
    steps_proved: int = 0
    steps_total: int = 0
    failed_steps: list[str] = field(default_factory=list)
    numeric_error: float | None = None
    gradient_error: float | None = None
    gradients_total: int = 0
    properties: list[tuple[str, float, float]] = field(default_factory=list)
    tolerance: float = TOLERANCE["float32"]
    gradient_tolerance: float = GRADIENT_TOLERANCE["float32"]
    backend: str = ""
    dtype: str = "float32"
    seconds: float = 0.0
    error: str | None = None

    @property
    def numeric_ok(self) -> bool:
        return self.numeric_error is not None and self.numeric_error <= self.tolerance

    @property
    def gradient_ok(self) -> bool:
        return self.gradients_total == 0 or (
            self.gradient_error is not None and self.gradient_error <= self.gradient_tolerance)

    @property
    def properties_ok(self) -> bool:
        return all(value <= tol for _, value, tol in self.properties)

    @property
    def ok(self) -> bool:
        return (self.error is None and self.steps_proved == self.steps_total and self.numeric_ok
                and self.gradient_ok and self.properties_ok)


def resolve(dotted: str) -> Callable:
    """The function named by a dotted path such as ``model.attention.sdpa``."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise LookupError(f"implementation {dotted!r} not found: {e}") from None


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|: the error relative to the size of the result."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: implementation gave {actual.shape}, reference {expected.shape}")
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(actual - expected), initial=0.0) / scale)


def _seed(derivation_id: str) -> int:
    return zlib.crc32(derivation_id.encode())


def _sample(rng: np.random.Generator, domain: str, shape: tuple[int, ...], sizes) -> np.ndarray:
    if domain == "normal":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "mask":
        m = rng.random(shape) < 0.6
        rows = m.reshape(-1, shape[-1])
        rows[np.arange(rows.shape[0]), rng.integers(0, shape[-1], rows.shape[0])] = True
        return rows.reshape(shape)
    if domain == "causal":
        t, s = shape
        return np.arange(s)[None, :] <= np.arange(t)[:, None] + (s - t)
    if domain.startswith("index:"):
        return rng.integers(0, int(sizes[domain.split(":", 1)[1]]), shape)
    if domain == "position":
        return rng.integers(0, 64, shape)
    raise ValueError(f"unknown domain {domain!r}")


def sample_inputs(d: Derivation, rng: np.random.Generator, dtype: str = "float32") -> tuple[dict, dict]:
    """Random inputs for ``d``: (arrays for JAX in ``dtype``/bool/int32, the same values for SymPy in float64).

    Floating inputs are rounded to ``dtype`` first, so the reference sees exactly the
    values the implementation gets and the error measured is that of the computation.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    jax_in, ref_in = {}, {}
    for name in d.arguments:
        shape = symbol_shape(d.shapes[name], d.sizes)
        value = _sample(rng, d.domains.get(name, "normal"), shape, d.sizes)
        if value.dtype.kind == "f":
            rounded = jnp.asarray(value.astype(np.float32), dtype=dtype)
            jax_in[name], ref_in[name] = rounded, np.asarray(rounded.astype(jnp.float32), dtype=np.float64)
        elif value.dtype.kind == "b":
            jax_in[name], ref_in[name] = jnp.asarray(value), value.astype(np.float64)
        else:
            jax_in[name], ref_in[name] = jnp.asarray(value, dtype=jnp.int32), value.astype(np.int64)
    return jax_in, ref_in


def _bound(d: Derivation) -> Callable:
    fn = resolve(d.implementation)
    static = {**d.constants, **{arg: int(d.sizes[letter]) for arg, letter in d.size_args.items()}}
    return functools.partial(fn, **static)


def _check_gradients(d: Derivation, f: Callable, jax_in: dict, ref_in: dict, rng) -> float:
    worst = 0.0
    out_shape = symbol_shape(d.shapes[d.output], d.sizes)
    for g in d.gradients:
        expected_fn = gradient_reference(d, g)
        others = {n: a for n, a in jax_in.items() if n != g.wrt}

        def of_wrt(x, others=others, g=g):
            return f(**others, **{g.wrt: x})

        if g.cotangent:
            primal_dtype = jax.eval_shape(of_wrt, jax_in[g.wrt]).dtype
            cot = jnp.asarray(rng.standard_normal(out_shape).astype(np.float32), dtype=primal_dtype)
            pull = jax.jit(lambda x, c: jax.vjp(of_wrt, x)[1](c)[0])
            actual = pull(jax_in[g.wrt], cot)
            expected = expected_fn(**ref_in, **{g.cotangent: np.asarray(cot.astype(jnp.float32), np.float64)})
        else:
            jac = jax.jit(jax.jacfwd(of_wrt))(jax_in[g.wrt])
            actual = np.asarray(jac).reshape(expected_fn(**ref_in).shape)
            expected = expected_fn(**ref_in)
        worst = max(worst, relative_error(actual, expected))
    return worst


def verify(d: Derivation, *, symbolic: bool = True, dtype: str = "float32") -> Result:
    """Verify one derivation: steps, statement, gradients and sampled checks (see the module docstring).

    ``dtype="bfloat16"`` runs the numeric and gradient checks with bfloat16 inputs
    against the float64 reference of the same (rounded) inputs, at the bfloat16
    tolerance ``TOLERANCE["bfloat16"]`` whatever dtype the output is promoted to;
    the sampled checks are float32 checks and are skipped.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {DTYPES}, got {dtype!r}")
    start = time.perf_counter()
    r = Result(id=d.id, week=d.week, title=d.title, steps_total=len(d.steps),
               gradients_total=len(d.gradients), backend=jax.default_backend())
    try:
        if symbolic:
            for step in d.steps:
                proof = prove(step)
                if proof.holds:
                    r.steps_proved += 1
                else:
                    r.failed_steps.append(f"{step.claim}: residual {proof.residual}")
        rng = np.random.default_rng(_seed(d.id))
        jax_in, ref_in = sample_inputs(d, rng, dtype)
        with jax.default_matmul_precision("highest"):
            f = _bound(d)
            actual = jax.jit(f)(**jax_in)
            r.dtype = str(jnp.asarray(actual).dtype)
            # integer and boolean outputs (counts, masks) must match exactly
            r.tolerance = TOLERANCE[r.dtype] if r.dtype in TOLERANCE else 0.0
            r.gradient_tolerance = r.tolerance
            if dtype != "float32" and r.tolerance:
                r.tolerance, r.dtype = TOLERANCE[dtype], f"{dtype} in, {r.dtype} out"
                r.gradient_tolerance = GRADIENT_TOLERANCE[dtype]
            r.numeric_error = relative_error(actual, reference(d)(**ref_in))
            if d.gradients:
                r.gradient_error = _check_gradients(d, f, jax_in, ref_in, rng)
            for prop in for_derivation(d.id) if dtype == "float32" else ():
                value, tol = prop.fn(np.random.default_rng(_seed(d.id + prop.name)))
                r.properties.append((prop.name, float(value), float(tol)))
    except Exception as e:  # reported as a failed row, never swallowed silently
        r.error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    r.seconds = time.perf_counter() - start
    return r


def verify_all(derivations: Iterable[Derivation], **kwargs) -> list[Result]:
    """Verify each derivation in turn."""
    return [verify(d, **kwargs) for d in derivations]
