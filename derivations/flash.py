"""Online softmax and blockwise (FlashAttention) attention (week 7).

Mirrors ``model/flash.py``.  Attention reads the keys one block at a time and keeps,
for every query, three running quantities: a running maximum :math:`m`, a running
sum :math:`\\ell` and an accumulator :math:`o`.  When block :math:`j` (scores
:math:`y`, values :math:`w`) arrives, with a new maximum :math:`m'`,

.. math::
    \\ell' = e^{m - m'}\\,\\ell + \\sum_{s \\in j} e^{y_s - m'}, \\qquad
    o' = e^{m - m'}\\,o + \\sum_{s \\in j} e^{y_s - m'}\\, w_s ,

and after the last block the output is :math:`o / \\ell`.  The invariant is
:math:`\\ell = e^{-m} \\sum_{\\text{seen}} e^{x_s}` and :math:`o = e^{-m} \\sum_{\\text{seen}}
e^{x_s} v_s`: it holds for *any* running values :math:`m` (softmax is shift invariant),
so the proofs below need no ``Max``.  The maximum is chosen only so that no
:math:`e^{(\\cdot)}` overflows: every exponent is then at most 0.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, HadamardProduct, IndexedBase, Matrix, MatrixSymbol, OneMatrix, Sum, exp, log, sqrt

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import K, S, Softmax, T, explicit

DAO = ('Dao et al., "FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness", '
       "NeurIPS 2022, algorithm 1")
DAO2 = 'Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning", 2023'
MILAKOV = 'Milakov and Gimelshein, "Online normalizer calculation for softmax", 2018'


def recurrence(x, v, blocks, maxima, weights=None):
    """Run the online-softmax recurrence over ``x`` (a ``1 x S`` row) and ``v`` (``S x K``).

    ``blocks`` gives the block lengths (summing to S) and ``maxima`` one running
    maximum per block: any symbols.  ``weights`` (``1 x S``, optional) multiplies
    each term, as a 0/1 mask does.  Returns the final ``(ell, o)`` with ``o`` a ``1 x K`` row.
    """
    ell, o, m, start = sp.Integer(0), sp.zeros(1, v.shape[1]), None, 0
    for length, m_new in zip(blocks, maxima):
        keys = range(start, start + length)
        scale = 0 if m is None else exp(m - m_new)
        term = [exp(x[0, s] - m_new) * (1 if weights is None else weights[0, s]) for s in keys]
        ell = scale * ell + sum(term)
        o = scale * o + sum((t * v[s, :] for t, s in zip(term, keys)), sp.zeros(1, v.shape[1]))
        m, start = m_new, start + length
    return ell, o


# --- online softmax: the recurrence over key blocks ------------------------------------------

s_TS = MatrixSymbol("s", T, S)
v = MatrixSymbol("v", S, K)
o = MatrixSymbol("o", T, K)

_m, _m_new, _L, _A = sp.symbols("m m' L A", real=True)
_n = sp.Symbol("n", integer=True, positive=True)
_j = sp.Symbol("j", integer=True)
_y, _w = IndexedBase("y"), IndexedBase("w")
_x4, _v4 = explicit(MatrixSymbol("x", 1, 4), {}), explicit(MatrixSymbol("v", 4, 1), {})
_x3, _v3 = explicit(MatrixSymbol("x", 1, 3), {}), explicit(MatrixSymbol("v", 3, 1), {})
_M3 = explicit(MatrixSymbol("M", 1, 3), {})
_maxima = sp.symbols("m_1 m_2 m_3", real=True)
_ell3, _o3 = recurrence(_x4, _v4, (2, 1, 1), _maxima)
_ell_m, _o_m = recurrence(_x3, _v3, (2, 1), _maxima[:2], weights=_M3)

register(Derivation(
    id="flash.online_softmax",
    week=7,
    title="Online softmax: a running max m, sum ℓ and accumulator o over key blocks give softmax(s) v exactly",
    statement=Eq(o, Softmax(s_TS) * v),
    implementation="model.flash.online_softmax",
    shapes={"s": "TS", "v": "SK", "o": "TK"},
    sizes={"T": 2, "S": 5, "K": 2},  # blocks of 2 keys: 2 + 2 + 1, the last one padded
    constants={"block_size": 2},
    steps=(
        Step(claim=("the running sum keeps its invariant: if ℓ = e^{−m} L, then after a block of any n "
                    "scores y_j and for any new running value m', e^{m−m'} ℓ + Σ_j e^{y_j − m'} "
                    "= e^{−m'} (L + Σ_j e^{y_j})"),
             eq=Eq(exp(_m - _m_new) * exp(-_m) * _L + Sum(exp(_y[_j] - _m_new), (_j, 0, _n - 1)),
                   exp(-_m_new) * (_L + Sum(exp(_y[_j]), (_j, 0, _n - 1))), evaluate=False)),
        Step(claim=("so does the accumulator (one column of V; the columns are independent): if "
                    "o = e^{−m} A, then e^{m−m'} o + Σ_j e^{y_j − m'} w_j = e^{−m'} (A + Σ_j e^{y_j} w_j)"),
             eq=Eq(exp(_m - _m_new) * exp(-_m) * _A + Sum(exp(_y[_j] - _m_new) * _w[_j], (_j, 0, _n - 1)),
                   exp(-_m_new) * (_A + Sum(exp(_y[_j]) * _w[_j], (_j, 0, _n - 1))), evaluate=False)),
        Step(claim=("three key blocks (2 + 1 + 1 keys) with arbitrary running values m₁, m₂, m₃: "
                    "the final o/ℓ is softmax(x) v (one column of V)"),
             eq=Eq(_o3 / _ell3, explicit(Softmax(_x4) * _v4, {}), evaluate=False)),
        Step(claim=("with a 0/1 mask M multiplying each term (a masked score is −∞, e^{−∞} = 0), "
                    "the recurrence over two blocks gives the masked softmax(x, M) v"),
             eq=Eq(_o_m / _ell_m, explicit(Softmax(_x3, _M3) * _v3, {}), evaluate=False)),
    ),
    notes=("Softmax needs the whole row for its denominator, yet the row can be read a block at a "
           "time: keep the largest score seen so far m, the sum ℓ of e^{s−m} and the weighted sum o "
           "of the values; when a new block raises the maximum to m', multiply ℓ and o by "
           "e^{m−m'} before adding the block's terms. At the end o/ℓ is exactly softmax(s) v. "
           "The factor e^{−m} cancels in o/ℓ, which is why any running value is correct; taking "
           "the maximum keeps every exponent ≤ 0, so nothing overflows."),
    source=MILAKOV + "; " + DAO,
))

# --- blockwise causal attention ---------------------------------------------------------------

q = MatrixSymbol("q", T, K)
k = MatrixSymbol("k", S, K)
dO = MatrixSymbol("dO", T, K)
_t, _s = sp.symbols("t s", integer=True)
_causal = sp.FunctionMatrix(T, S, sp.Lambda((_t, _s), sp.Piecewise((1, _s <= _t + S - T), (0, True))))
_P = Softmax(q * k.T / sqrt(K), _causal)
_O = _P * v
# FlashAttention-2's backward: D = rowsum(dO ∘ O) replaces rowsum(dP ∘ P)
_D = HadamardProduct(dO, _O) * OneMatrix(K, 1) * OneMatrix(1, S)
_dS = HadamardProduct(_P, dO * v.T - _D)

_Pany = MatrixSymbol("P", 2, 3)
_dO23, _v32 = MatrixSymbol("dO", 2, 2), MatrixSymbol("v", 3, 2)
_xr = explicit(MatrixSymbol("x", 1, 3), {})
_lse = _m + log(sum(exp(_xr[0, l] - _m) for l in range(3)))
_x44, _v44 = MatrixSymbol("x", 4, 4), MatrixSymbol("v", 4, 2)


def _tril(n: int) -> Matrix:
    """The n x n lower triangle of ones: the causal mask with S = T."""
    return Matrix(n, n, lambda i, j: 1 if j <= i else 0)


register(Derivation(
    id="flash.attention",
    week=7,
    title="Blockwise causal attention: softmax(QKᵀ/√K, M) V by tiles, storing only O and the log-sum-exp",
    statement=Eq(o, _P * v),
    implementation="model.flash.flash_attention",
    shapes={"q": "TK", "k": "SK", "v": "SK", "o": "TK", "dO": "TK"},
    sizes={"T": 3, "S": 3, "K": 2},  # tiles of 2, both axes padded to 4; the tile above the diagonal is skipped
    constants={"block_size": 2, "causal": True},
    steps=(
        Step(claim=("the backward pass recomputes the weights from the stored log-sum-exp "
                    "lse = m + log Σ_l e^{x_l − m}: e^{x_s − lse} = softmax(x)_s, for any m"),
             eq=Eq(_xr.applyfunc(lambda e: exp(e - _lse)), explicit(Softmax(_xr), {}), evaluate=False)),
        Step(claim=("rowsum(dP ∘ P) = rowsum(dO ∘ O) with dP = dO Vᵀ and O = P V, for any weights P: "
                    "the backward pass needs O, not the T × S matrix P"),
             eq=Eq(HadamardProduct(_dO23 * _v32.T, _Pany) * OneMatrix(3, 1),
                   HadamardProduct(_dO23, _Pany * _v32) * OneMatrix(2, 1), evaluate=False),
             method="expand"),
        Step(claim=("a tile above the causal diagonal contributes nothing: with T = S = 4 and tiles of 2, "
                    "the first two query rows equal attention over the first key block alone"),
             eq=Eq(explicit(Softmax(_x44, _tril(4)) * _v44, {})[0:2, :],
                   explicit(Softmax(_x44[0:2, 0:2], _tril(2)) * _v44[0:2, :], {}), evaluate=False)),
    ),
    gradients=(
        Gradient(wrt="v", expr=_P.T * dO, cotangent="dO"),
        Gradient(wrt="q", expr=_dS * k / sqrt(K), cotangent="dO"),
        Gradient(wrt="k", expr=_dS.T * q / sqrt(K), cotangent="dO"),
    ),
    notes=("The queries and keys are cut into tiles; each (query block, key block) tile updates the "
           "running max, sum and accumulator of its queries (flash.online_softmax), and tiles "
           "entirely above the causal diagonal are skipped. Only O and the log-sum-exp per query "
           "are kept for the backward pass, which recomputes each tile's weights and uses "
           "D = rowsum(dO ∘ O): memory O(T·K) instead of O(T·S)."),
    source=DAO + "; " + DAO2 + ", algorithm 2",
))
