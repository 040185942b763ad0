"""Multi-head self-attention (week 8): heads, their concatenation, and the parameter count.

Mirrors ``model/multihead.py``.  Head ``h`` (``h = 0 .. H-1``) owns the columns
``hK .. (h+1)K - 1`` of the projections :math:`W_Q, W_K, W_V` and the rows
``hK .. (h+1)K - 1`` of :math:`W_O`, with head width :math:`K = D/H`.  The
statements write that width as ``D/H`` so they hold for every number of heads
dividing ``D``; a bias row ``b`` (``1 x D``) is added to every position as
:math:`\\mathbf{1}_T b` (``OneMatrix(T, 1) * b``).
"""

from __future__ import annotations

import sympy as sp
from sympy import BlockMatrix, Eq, MatrixSymbol, OneMatrix, sqrt

from derivations.registry import Derivation, Step, register
from derivations.symbolic import D, H, K, T, Concat, Softmax, row

VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.2'


# --- symbols -------------------------------------------------------------------------------------

h = sp.Symbol("h", integer=True, nonnegative=True)
_K = D / H  # the head width K, written D/H so the statements hold for every H dividing D

x = MatrixSymbol("x", T, D)
w_q, w_k, w_v, w_o = (MatrixSymbol(n, D, D) for n in ("w_q", "w_k", "w_v", "w_o"))
b_q, b_k, b_v, b_o = (row(n, D) for n in ("b_q", "b_k", "b_v", "b_o"))
mask = MatrixSymbol("mask", T, T)
y = MatrixSymbol("y", T, D)
ones = OneMatrix(T, 1)


def columns(m, head):
    """Columns ``head*K .. (head+1)*K - 1`` of ``m`` (``K = D/H``): head ``head``'s block."""
    return m[:, head * _K:head * _K + _K]


def rows(m, head):
    """Rows ``head*K .. (head+1)*K - 1`` of ``m``: head ``head``'s block of :math:`W_O`."""
    return m[head * _K:head * _K + _K, :]


def projection(w, b, head):
    r"""Head ``head``'s projection :math:`x W^{(h)} + \mathbf{1} b^{(h)}`, ``[T, K]``."""
    return x * columns(w, head) + ones * columns(b, head)


def head_output(head, m=mask):
    r"""Head ``head``: :math:`\operatorname{softmax}(q_h k_h^\top / \sqrt{K}, M)\, v_h`, ``[T, K]``."""
    q_h, k_h, v_h = projection(w_q, b_q, head), projection(w_k, b_k, head), projection(w_v, b_v, head)
    return Softmax(q_h * k_h.T / sqrt(_K), m) * v_h


_mha = Concat(h, H, head_output(h)) * w_o + ones * b_o

# --- week 8: multi-head attention ---------------------------------------------------------------

_sizes = {"T": 2, "D": 4, "H": 2}  # K = 2: a scale of 1/sqrt(D) instead of 1/sqrt(K) would show
_scores, _mask2, _values, _bias = MatrixSymbol("s", 2, 2), MatrixSymbol("m", 2, 2), MatrixSymbol("v", 2, 2), row("b", 2)
_sdpa_full = (Softmax((x * w_q + ones * b_q) * (x * w_k + ones * b_k).T / sqrt(D), mask)
              * (x * w_v + ones * b_v) * w_o + ones * b_o)

register(Derivation(
    id="multihead.attention",
    week=8,
    title="Multi-head self-attention Concat_h(softmax(q_h k_hᵀ/√K, M) v_h) W_O + b_O",
    statement=Eq(y, _mha),
    implementation="model.multihead.multi_head_attention",
    shapes={"x": "TD", "w_q": "DD", "w_k": "DD", "w_v": "DD", "w_o": "DD",
            "b_q": "D", "b_k": "D", "b_v": "D", "b_o": "D", "mask": "TT", "y": "TD"},
    sizes=_sizes,
    size_args={"n_heads": "H"},
    domains={"mask": "mask"},
    steps=(
        Step(claim="splitting a projection into H column blocks and concatenating them gives back "
                   "the full projection: Concat_h(x W_Q^(h) + 1 b_Q^(h)) = x W_Q + 1 b_Q",
             eq=Eq(Concat(h, H, projection(w_q, b_q, h)), x * w_q + ones * b_q, evaluate=False),
             sizes={"T": 2, "D": 6, "H": 3}, method="expand"),
        Step(claim="with one head (H = 1, K = D) multi-head attention is single-head scaled "
                   "dot-product attention of the projections, followed by W_O",
             eq=Eq(_mha.subs(H, 1), _sdpa_full, evaluate=False),
             sizes={"T": 2, "D": 2}),
        Step(claim="every row of attention weights sums to 1, so a value bias passes through attention: "
                   "softmax(S, M)(V + 1b) = softmax(S, M)V + 1b; in MHA b_V only adds the constant row "
                   "b_V W_O, which could be folded into b_O",
             eq=Eq(Softmax(_scores, _mask2) * (_values + OneMatrix(2, 1) * _bias),
                   Softmax(_scores, _mask2) * _values + OneMatrix(2, 1) * _bias, evaluate=False),
             sizes={}),
    ),
    notes=("H heads attend in parallel, each in its own K = D/H dimensional subspace with its own "
           "query, key and value projections, so each can look for a different relation. Their "
           "outputs are concatenated back to width D and mixed by W_O. The scale is 1/√K, the head "
           "width, not 1/√D."),
    source=VASWANI,
))

# --- week 8: the concatenation and the output projection -----------------------------------

o = MatrixSymbol("o", T, D)
_heads3 = [MatrixSymbol(f"a_{n}", 2, 2) for n in range(3)]
_w63 = MatrixSymbol("w", 6, 3)

register(Derivation(
    id="multihead.concat_identity",
    week=8,
    title="The output projection head by head: Concat(o_0, …, o_{H−1}) W_O = Σ_h o_h W_O^(h)",
    statement=Eq(y, Concat(h, H, columns(o, h)) * w_o + ones * b_o),
    implementation="model.multihead.output_projection",
    shapes={"o": "TD", "w_o": "DD", "b_o": "D", "y": "TD"},
    sizes={"T": 2, "D": 6, "H": 3},
    size_args={"n_heads": "H"},
    steps=(
        Step(claim="for any heads a_0, a_1, a_2: [a_0 | a_1 | a_2] W = a_0 W^(0) + a_1 W^(1) + a_2 W^(2), "
                   "W^(h) the row blocks of W",
             eq=Eq(BlockMatrix([_heads3]) * _w63,
                   sum((a * _w63[2 * n:2 * n + 2, :] for n, a in enumerate(_heads3)), sp.ZeroMatrix(2, 3)),
                   evaluate=False),
             sizes={}, method="expand"),
        Step(claim="in general, with o_h the column block h of o: Concat_h(o_h) W_O = Σ_h o_h W_O^(h)",
             eq=Eq(Concat(h, H, columns(o, h)) * w_o, sp.Sum(columns(o, h) * rows(w_o, h), (h, 0, H - 1)),
                   evaluate=False),
             sizes={"T": 2, "D": 4, "H": 2}, method="expand"),
        Step(claim="the head blocks of o, side by side, are o itself",
             eq=Eq(Concat(h, H, columns(o, h)), o, evaluate=False),
             sizes={"T": 2, "D": 6, "H": 2}, method="expand"),
    ),
    notes=("Concatenating the heads and multiplying by W_O is the same as letting each head write "
           "into the output through its own K rows of W_O and adding the results: the heads act "
           "independently and additively. The implementation computes the sum over heads."),
    source=VASWANI + "; Elhage et al., \"A Mathematical Framework for Transformer Circuits\", 2021",
))

# --- week 8: parameter count ------------------------------------------------------------------

N = sp.Symbol("N", integer=True, nonnegative=True)

register(Derivation(
    id="multihead.param_count",
    week=8,
    title="Parameters of multi-head attention: N = 4D² + 4D, whatever the number of heads",
    statement=Eq(N, 4 * D**2 + 4 * D),
    implementation="model.multihead.param_count",
    shapes={"N": ""},
    sizes={"D": 8, "H": 2},
    size_args={"d_model": "D", "n_heads": "H"},
    steps=(
        Step(claim="four projections W_Q, W_K, W_V, W_O, each a D × D matrix and a bias of D",
             eq=Eq(sum(sp.Mul(*m.shape) + sp.Mul(*b.shape) for m, b in
                       ((w_q, b_q), (w_k, b_k), (w_v, b_v), (w_o, b_o))), 4 * D**2 + 4 * D, evaluate=False)),
        Step(claim="counted per head: H heads with D × K query, key and value blocks and K biases each, "
                   "plus W_O and b_O; with K = D/H the count does not depend on H",
             eq=Eq((3 * H * (D * K + K) + D**2 + D).subs(K, D / H), 4 * D**2 + 4 * D, evaluate=False)),
    ),
    notes=("Splitting the width into heads does not add parameters: H heads of width D/H use the same "
           "D × D projection matrices as one head of width D."),
    source=VASWANI,
))
