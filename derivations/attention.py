"""Attention as similarity (week 6) and scaled dot-product attention (week 7).

Mirrors ``model/attention.py``.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, HadamardProduct, Limit, Matrix, MatrixSymbol, OneMatrix, oo, sqrt
from sympy.stats import Covariance, Normal, Uniform, Variance

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import K, S, T, Softmax, explicit, jacobian, row, vjp

VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.1'

q = MatrixSymbol("q", T, K)
k = MatrixSymbol("k", S, K)
v = MatrixSymbol("v", S, K)
mask = MatrixSymbol("mask", T, S)
tau = sp.Symbol("tau", positive=True)

# --- week 6: scores as pairwise dot products -------------------------------------------

x_TS = MatrixSymbol("x", T, S)
_t, _s, _j = sp.symbols("t s j", integer=True)

register(Derivation(
    id="attention.scores",
    week=6,
    title="Attention scores are pairwise dot products QKᵀ",
    statement=Eq(x_TS, q * k.T),
    implementation="model.attention.scores",
    shapes={"q": "TK", "k": "SK", "x": "TS"},
    sizes={"T": 3, "S": 4, "K": 2},
    steps=(
        Step(claim="entry (t, s) of QKᵀ is the dot product of query row t and key row s",
             eq=Eq(q * k.T, sp.FunctionMatrix(T, S, sp.Lambda(
                 (_t, _s), sp.Sum(q[_t, _j] * k[_s, _j], (_j, 0, K - 1)))), evaluate=False),
             sizes={"T": 2, "S": 3, "K": 2}),
        Step(claim="the scores are linear in each query: scaling query t by c scales row t by c",
             eq=Eq(sp.diag(sp.Symbol("c"), 1) * q * k.T,
                   (sp.diag(sp.Symbol("c"), 1) * q) * k.T, evaluate=False),
             sizes={"T": 2, "S": 2, "K": 2}, method="expand"),
    ),
    notes=("Each query is compared with each key by a dot product; a large score means the "
           "two vectors point the same way. Row t of X holds query t's similarity to every key."),
    source=VASWANI,
))

# --- week 6: softmax --------------------------------------------------------------------

x_row = row("x", S)
s_row = row("s", S)
_sm = Softmax(x_row / tau)
_c = sp.Symbol("c", real=True)
_x3 = explicit(row("x", S), {"S": 3})
_sm3 = explicit(Softmax(_x3 / tau), {})
_d1, _d2 = sp.symbols("delta1 delta2", positive=True)
_gap = Matrix([[0, -_d1, -_d2]])  # the maximum first, the others delta below it (shift invariance)
_g3 = explicit(row("g", S), {"S": 3})
_sm3_unit = explicit(Softmax(_x3), {})

register(Derivation(
    id="attention.softmax",
    week=6,
    title="Softmax with temperature: a probability row, shift invariant, Jacobian (diag(s) − s sᵀ)/τ",
    statement=Eq(s_row, _sm),
    implementation="model.attention.softmax",
    shapes={"x": "S", "s": "S"},
    sizes={"S": 5},
    constants={"tau": 0.7},
    steps=(
        Step(claim="the weights of a row sum to 1",
             eq=Eq(Softmax(x_row / tau) * OneMatrix(S, 1), OneMatrix(1, 1), evaluate=False),
             sizes={"S": 4}),
        Step(claim="adding a constant c to every score leaves the softmax unchanged",
             eq=Eq(Softmax(x_row + _c * OneMatrix(1, S)), Softmax(x_row), evaluate=False),
             sizes={"S": 3}),
        Step(claim="the Jacobian ds/dx is (diag(s) − sᵀs)/τ (s a row vector)",
             eq=Eq(jacobian(_sm3, _x3), (sp.diag(*_sm3) - _sm3.T * _sm3) / tau, evaluate=False),
             sizes={"S": 3}),
        Step(claim="as τ → 0⁺ the softmax becomes the one-hot argmax",
             eq=Eq(explicit(Softmax(_gap / tau), {}).applyfunc(lambda e: Limit(e, tau, 0, "+")),
                   Matrix([[1, 0, 0]]), evaluate=False),
             method="doit"),
        Step(claim="as τ → ∞ the softmax becomes uniform, 1/S each",
             eq=Eq(explicit(Softmax(_x3 / tau), {}).applyfunc(lambda e: Limit(e, tau, oo)),
                   Matrix([[sp.Rational(1, 3)] * 3]), evaluate=False),
             method="doit"),
        Step(claim="backward pass: the gradient of g·s with respect to x is s ∘ (g − (g·s)1)",
             eq=Eq(vjp(_sm3_unit, _x3, _g3),
                   HadamardProduct(_sm3_unit, _g3 - (_g3 * _sm3_unit.T)[0, 0] * sp.ones(1, 3)).doit(),
                   evaluate=False),
             sizes={"S": 3}),
    ),
    gradients=(
        Gradient(wrt="x", expr=(sp.DiagMatrix(_sm.T) - _sm.T * _sm) / tau),
    ),
    notes=("Softmax turns a row of scores into weights that are positive and sum to 1. "
           "The temperature τ sharpens (τ < 1) or flattens (τ > 1) the distribution."),
    source="Bridle, 1990; Goodfellow, Bengio and Courville, Deep Learning, section 6.2.2.3",
))

# --- week 7: why 1/sqrt(K) ----------------------------------------------------------------

s_TS = MatrixSymbol("s", T, S)
_qn, _kn, _qn2, _kn2 = (Normal(n, 0, 1) for n in ("q_1", "k_1", "q_2", "k_2"))
_qu, _ku = (Uniform(n, -sqrt(3), sqrt(3)) for n in ("u_1", "w_1"))

register(Derivation(
    id="attention.scaled_scores",
    week=7,
    title="Scaled scores QKᵀ/√K have unit variance: Var(q·k) = K",
    statement=Eq(s_TS, q * k.T / sqrt(K)),
    implementation="model.attention.scaled_scores",
    shapes={"q": "TK", "k": "SK", "s": "TS"},
    sizes={"T": 3, "S": 4, "K": 2},
    steps=(
        Step(claim="one term q_i k_i of independent N(0, 1) entries has variance 1",
             eq=Eq(Variance(_qn * _kn), 1, evaluate=False), method="stats"),
        Step(claim="the same for uniform entries on [−√3, √3] (zero mean, unit variance): not a Gaussian fact",
             eq=Eq(Variance(_qu * _ku), 1, evaluate=False), method="stats"),
        Step(claim="different terms are uncorrelated: Cov(q_1 k_1, q_2 k_2) = 0",
             eq=Eq(Covariance(_qn * _kn, _qn2 * _kn2), 0, evaluate=False), method="stats"),
        Step(claim="so Var(q·k) = K·Var(q_i k_i) + K(K − 1)·Cov = K",
             eq=Eq(K * Variance(_qn * _kn) + K * (K - 1) * Covariance(_qn * _kn, _qn2 * _kn2), K,
                   evaluate=False), method="stats"),
        Step(claim="and Var(q·k/√K) = Var(q·k)/K = 1",
             eq=Eq((K * Variance(_qn * _kn) + K * (K - 1) * Covariance(_qn * _kn, _qn2 * _kn2)) / sqrt(K) ** 2,
                   1, evaluate=False), method="stats"),
    ),
    notes=("Without the scale the scores grow like √K, the softmax saturates towards one-hot "
           "and its gradient vanishes. Dividing by √K keeps the scores at unit variance for any head width."),
    source=VASWANI + ", footnote 4",
))

# --- week 7: scaled dot-product attention with a mask --------------------------------------

o = MatrixSymbol("o", T, K)
_X23 = MatrixSymbol("x", 2, 3)
_M23 = Matrix([[1, 0, 1], [1, 1, 0]])
_big = sp.Symbol("c", positive=True)

register(Derivation(
    id="attention.sdpa",
    week=7,
    title="Scaled dot-product attention softmax(QKᵀ/√K, M) V",
    statement=Eq(o, Softmax(q * k.T / sqrt(K), mask) * v),
    implementation="model.attention.sdpa",
    shapes={"q": "TK", "k": "SK", "v": "SK", "mask": "TS", "o": "TK"},
    sizes={"T": 3, "S": 4, "K": 2},
    domains={"mask": "mask"},
    steps=(
        Step(claim="an all-ones mask is no mask",
             eq=Eq(Softmax(_X23, OneMatrix(2, 3)), Softmax(_X23), evaluate=False)),
        Step(claim="masked weights are exactly 0",
             eq=Eq(HadamardProduct(Softmax(_X23, _M23), sp.ones(2, 3) - _M23), sp.zeros(2, 3), evaluate=False)),
        Step(claim="every row of masked weights still sums to 1",
             eq=Eq(Softmax(_X23, _M23) * OneMatrix(3, 1), OneMatrix(2, 1), evaluate=False)),
        Step(claim="the 0/1 mask equals adding −c to masked scores and letting c → ∞",
             eq=Eq(explicit(Softmax(_X23 + (_M23 - sp.ones(2, 3)) * _big), {}).applyfunc(
                 lambda e: Limit(e, _big, oo)), Softmax(_X23, _M23), evaluate=False),
                 sizes={"T": 2, "S": 3}, method="doit"),
    ),
    notes=("Each output row is a weighted average of the value rows; the weights are the "
           "softmax of the scaled scores of that query. A mask removes keys a query may not see."),
    source=VASWANI + ", equation (1)",
))

# --- week 7: the causal mask --------------------------------------------------------------

_causal = sp.FunctionMatrix(T, S, sp.Lambda((_t, _s), sp.Piecewise((1, _s <= _t + S - T), (0, True))))
_q3, _k3, _v3 = (explicit(MatrixSymbol(n, 3, 1), {}) for n in ("q", "k", "v"))
_o3 = explicit(Softmax(_q3 * _k3.T, explicit(_causal, {"T": 3, "S": 3})) * _v3, {})
_future = [(t, s) for t in range(3) for s in range(3) if s > t]

register(Derivation(
    id="attention.causal_mask",
    week=7,
    title="The causal mask: position t attends to positions s ≤ t only",
    statement=Eq(mask, _causal),
    implementation="model.attention.causal_mask",
    shapes={"mask": "TS"},
    sizes={"T": 3, "S": 5},
    size_args={"n_queries": "T", "n_keys": "S"},
    steps=(
        Step(claim="with S = T the mask is the lower triangle",
             eq=Eq(_causal, Matrix(3, 3, lambda i, j: 1 if j <= i else 0), evaluate=False),
             sizes={"T": 3, "S": 3}),
        Step(claim="causal attention output at t does not depend on keys after t",
             eq=Eq(Matrix([[sp.diff(_o3[t, 0], _k3[s, 0]) for t, s in _future]]),
                   sp.zeros(1, len(_future)), evaluate=False), sizes={"T": 3, "S": 3}),
        Step(claim="nor on values after t",
             eq=Eq(Matrix([[sp.diff(_o3[t, 0], _v3[s, 0]) for t, s in _future]]),
                   sp.zeros(1, len(_future)), evaluate=False), sizes={"T": 3, "S": 3}),
    ),
    notes=("A language model predicts position t + 1 from positions up to t, so attention must "
           "not look ahead. The mask zeroes the weights of future keys."),
    source=VASWANI + ", section 3.2.3",
))

# --- week 7: the backward pass of attention -------------------------------------------------

dO = MatrixSymbol("dO", T, K)
_P = Softmax(q * k.T / sqrt(K))
_dP = dO * v.T
_dS = HadamardProduct(_P, _dP - HadamardProduct(_dP, _P) * OneMatrix(S, 1) * OneMatrix(1, S))
_small = {"T": 2, "S": 2, "K": 1}
_qs, _ks, _vs, _dOs = (explicit(m, _small) for m in (q, k, v, dO))
_os = explicit(Softmax(q * k.T / sqrt(K)) * v, _small)

register(Derivation(
    id="attention.backward",
    week=7,
    title="The backward pass of attention: dV = Pᵀ dO, dS = P ∘ (dP − rowsum(dP ∘ P)), dQ, dK",
    statement=Eq(o, _P * v),
    implementation="model.attention.sdpa",
    shapes={"q": "TK", "k": "SK", "v": "SK", "o": "TK", "dO": "TK"},
    sizes={"T": 3, "S": 4, "K": 2},
    steps=(
        Step(claim="dV = Pᵀ dO", eq=Eq(vjp(_os, _vs, _dOs), explicit(_P.T * dO, _small), evaluate=False),
             sizes=_small),
        Step(claim="dQ = dS K / √K with dP = dO Vᵀ and dS = P ∘ (dP − rowsum(dP ∘ P))",
             eq=Eq(vjp(_os, _qs, _dOs), explicit(_dS * k / sqrt(K), _small), evaluate=False), sizes=_small),
        Step(claim="dK = dSᵀ Q / √K",
             eq=Eq(vjp(_os, _ks, _dOs), explicit(_dS.T * q / sqrt(K), _small), evaluate=False), sizes=_small),
    ),
    gradients=(
        Gradient(wrt="v", expr=_P.T * dO, cotangent="dO"),
        Gradient(wrt="q", expr=_dS * k / sqrt(K), cotangent="dO"),
        Gradient(wrt="k", expr=_dS.T * q / sqrt(K), cotangent="dO"),
    ),
    notes=("Given the gradient dO of the loss with respect to the output, these formulas give "
           "the gradients with respect to Q, K and V; FlashAttention's backward pass computes exactly these."),
    source="Dao et al., \"FlashAttention\", NeurIPS 2022, appendix B.2",
))
