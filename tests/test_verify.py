"""Every registered derivation, checked by the one verifier that `tfd verify` uses (DESIGN.md item 4)."""

import pytest
import sympy as sp
from sympy import Eq, MatrixSymbol, sqrt

import derivations
from derivations.check import prove
from derivations.registry import Derivation, Step
from derivations.symbolic import K, S, T, Softmax
from experiments.verify import verify


@pytest.mark.parametrize("d", list(derivations.REGISTRY.values()), ids=lambda d: d.id)
def test_derivation_verifies(d):
    r = verify(d)
    assert r.error is None, r.error
    assert r.steps_proved == r.steps_total, "steps that do not hold:\n" + "\n".join(r.failed_steps)
    assert r.numeric_ok, f"statement vs jit-compiled implementation: {r.numeric_error:.3e} > {r.tolerance}"
    assert r.gradient_ok, f"stated gradient vs jax autodiff: {r.gradient_error}"
    bad = [(n, v, t) for n, v, t in r.properties if v > t]
    assert not bad, f"sampled checks failed: {bad}"
    if r.dtype == "float32":
        assert r.tolerance == 1e-5
    else:  # counts and masks: exact
        assert r.dtype in ("int32", "int64", "bool") and r.tolerance == 0.0


# The checks can fail: a wrong statement, a wrong step and a wrong gradient are caught.

q, k, v, o = MatrixSymbol("q", T, K), MatrixSymbol("k", S, K), MatrixSymbol("v", S, K), MatrixSymbol("o", T, K)
_shapes = {"q": "TK", "k": "SK", "v": "SK", "o": "TK"}


def test_a_statement_that_misses_the_scale_fails_the_numeric_check():
    wrong = Derivation(id="attention.unscaled", week=7, title="missing 1/sqrt(K)",
                       statement=Eq(o, Softmax(q * k.T) * v), implementation="model.attention.sdpa",
                       shapes=_shapes, sizes={"T": 2, "S": 3, "K": 4})
    r = verify(wrong)
    assert r.error is None, r.error
    assert not r.ok and r.numeric_error > 1e-3


def test_a_false_step_does_not_prove():
    x = MatrixSymbol("x", 1, 3)
    false = Step(claim="softmax is linear (false)", eq=Eq(Softmax(2 * x), 2 * Softmax(x), evaluate=False))
    assert not prove(false).holds
    true = Step(claim="softmax is shift invariant", eq=Eq(Softmax(x + sp.ones(1, 3)), Softmax(x), evaluate=False))
    assert prove(true).holds


def test_a_wrong_gradient_fails():
    from derivations.registry import Gradient

    dO = MatrixSymbol("dO", T, K)
    p = Softmax(q * k.T / sqrt(K))
    wrong = Derivation(id="attention.wrong_grad", week=7, title="dV without the transpose",
                       statement=Eq(o, p * v), implementation="model.attention.sdpa",
                       shapes={**_shapes, "dO": "TK"}, sizes={"T": 2, "S": 2, "K": 2},
                       gradients=(Gradient(wrt="v", expr=p * dO, cotangent="dO"),))
    r = verify(wrong, symbolic=False)
    assert r.error is None, r.error
    assert r.numeric_ok and not r.gradient_ok


# bfloat16: the same checks at the stated bfloat16 tolerances (the whole registry runs under -m slow).

@pytest.mark.parametrize("name", ["attention.sdpa", "attention.backward"])
def test_bfloat16_inputs_verify_at_the_bfloat16_tolerance(name):
    r = verify(derivations.get(name), symbolic=False, dtype="bfloat16")
    assert r.error is None, r.error
    assert (r.tolerance, r.gradient_tolerance) == (1e-2, 3e-2)
    assert r.numeric_ok and r.gradient_ok, (r.numeric_error, r.gradient_error)
    assert r.numeric_error > 1e-5, "bfloat16 inputs must round: an error at float32 size means they were not used"
    assert r.dtype.startswith("bfloat16 in") and not r.properties


def test_a_statement_that_misses_the_scale_fails_in_bfloat16_too():
    wrong = Derivation(id="attention.unscaled", week=7, title="missing 1/sqrt(K)",
                       statement=Eq(o, Softmax(q * k.T) * v), implementation="model.attention.sdpa",
                       shapes=_shapes, sizes={"T": 2, "S": 3, "K": 4})
    r = verify(wrong, dtype="bfloat16")
    assert r.error is None, r.error
    assert not r.ok and r.numeric_error > 1e-2


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match=r"dtype: expected one of \('float32', 'bfloat16'\), got 'float16'"):
        verify(derivations.get("attention.sdpa"), dtype="float16")


@pytest.mark.slow
@pytest.mark.parametrize("d", list(derivations.REGISTRY.values()), ids=lambda d: d.id)
def test_derivation_verifies_in_bfloat16(d):
    r = verify(d, symbolic=False, dtype="bfloat16")
    assert r.error is None, r.error
    assert r.numeric_ok, f"bfloat16: {r.numeric_error:.3e} > {r.tolerance}"
    assert r.gradient_ok, f"bfloat16 gradient: {r.gradient_error} > {r.gradient_tolerance}"
