r"""What training a GPT costs (week 12): matrix-multiply FLOPs per token, and the 6N rule.

Mirrors ``model/cost.py``.  Counting 2 FLOPs per multiply-add, one forward and backward
pass of the GPT of ``model/gpt.py`` over a sequence of T = context positions costs, per token,

.. math:: C = 3\,\bigl(L\,(8D^2 + 4DF + 4TD) + 2DV\bigr)

matrix-multiply FLOPs: per block the four :math:`D \times D` projections and the two FFN
matrices (2 FLOPs per weight entry per position), :math:`QK^\top` and :math:`PV` over the
full :math:`T \times T` scores (2·2TD), the output head (2DV), and a backward pass that
is twice the forward.  ``cost.train_flops`` states it and relates it exactly to the usual
estimate :math:`6N + 12LTD`.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Limit, Matrix, MatrixSymbol, oo

# the statements whose shapes and counts are used below (importing them registers them)
import derivations.block  # noqa: F401
from derivations.gpt import GPT2_SIZES, N, biases, learned_positions, tie_embeddings
from derivations.registry import Derivation, Step, get, register
from derivations.symbolic import D, F, H, L, T, V, explicit, size_symbols, vjp

__all__ = ["approximation", "flops", "forward_per_token", "matmul_parameters", "non_matmul_parameters"]

KAPLAN = 'Kaplan et al., "Scaling Laws for Neural Language Models", 2020, section 2.1 and table 1'
HOFFMANN = 'Hoffmann et al., "Training Compute-Optimal Large Language Models" (Chinchilla), 2022, appendix F'
PALM = 'Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022, appendix B'

WEEK = 12

#: matrix-multiply FLOPs of one forward and backward pass, per token
flops = sp.Symbol("flops", integer=True, nonnegative=True)

_letters = size_symbols()


def _product(m, k, n):
    """FLOPs of an ``[m, k] × [k, n]`` product: m·n dot products of length k, a multiply and an add per term.

    Kept unevaluated (``2·m·k·n`` as written), so a printed step shows which product it counts.
    """
    return sp.Mul(2, m, k, n, evaluate=False)


def _sum(*terms):
    return sp.Add(*terms, evaluate=False)


def _entries(derivation_id: str, names) -> sp.Expr:
    """The number of entries of the named arguments of a registered statement, from their axis letters."""
    d = get(derivation_id)
    return sp.Add(*(sp.Mul(*(_letters[a] for a in d.shapes[n])) for n in names))


# the products of one block over a sequence of T positions, as model/multihead.py and
# model/feedforward.py compute them: x W_Q, x W_K, x W_V and o W_O ([T, D] × [D, D]),
# u W_1 ([T, D] × [D, F]) and a W_2 ([T, F] × [F, D])
_projections = _sum(sp.Mul(4, _product(T, D, D), evaluate=False), _product(T, D, F), _product(T, F, D))
# per head h: Q_h K_hᵀ ([T, K] × [K, T]) and P_h V_h ([T, T] × [T, K]), every one of the T × T scores,
# with the head width K = D/H
_attention = sp.Mul(H, _sum(_product(T, D / H, T), _product(T, T, D / H)), evaluate=False)
# the output head LN_f(h) W_U ([T, D] × [D, V]); W_U = W_Eᵀ when tied, the same product
_head = _product(T, D, V)

#: the weights that enter a product, each once per position: W_Q, W_K, W_V, W_O, W_1, W_2 of each
#: block (shapes from the registered sublayers) and the head W_U (D × V, tied or not)
matmul_parameters = (L * (_entries("block.attention_sublayer", ("w_q", "w_k", "w_v", "w_o"))
                          + _entries("block.ffn_sublayer", ("w_1", "w_2")))
                     + _entries("gpt.logits", ("w_head",)))

#: forward matrix-multiply FLOPs per token
forward_per_token = sp.Add(L * sp.Add(8 * D**2, 4 * D * F, 4 * T * D, evaluate=False), 2 * D * V,
                           evaluate=False)
_train = sp.Mul(3, forward_per_token, evaluate=False)

_n_gpt = get("gpt.param_count").statement.rhs
#: the usual estimate, N the number of parameters (``gpt.param_count``)
approximation = 6 * N + 12 * L * T * D
#: the parameters that enter no product: biases, LayerNorm gains and shifts, W_P, and W_E when untied
non_matmul_parameters = (biases * (L * (4 * D + F + D) + L * 2 * D + D) + L * 2 * D + D
                         + learned_positions * T * D + (1 - tie_embeddings) * V * D)

# the backward pass of a product Y = X W, at T = 2, D = 2, F = 3
_X, _W, _dY = (explicit(MatrixSymbol(n, *s), {}) for n, s in (("X", (2, 2)), ("W", (2, 3)), ("dY", (2, 3))))
_Y = _X * _W
# and of the scores S = Q Kᵀ, at T = 2, K = 2
_Q, _Kt, _dS = (explicit(MatrixSymbol(n, 2, 2), {}) for n in ("q", "k", "dS"))

_gpt2_small = {**{_letters[a]: v for a, v in (("V", 50257), ("T", 1024), ("D", 768), ("F", 3072), ("L", 12))},
               tie_embeddings: 1, learned_positions: 1, biases: 1}
_gpt2_small_n = GPT2_SIZES["gpt2"][2]

register(Derivation(
    id="cost.train_flops",
    week=WEEK,
    title="Training FLOPs per token: C = 3(L(8D² + 4DF + 4TD) + 2DV) = 6N + 12LTD − 6·(parameters in no product)",
    statement=Eq(flops, _train),
    implementation="model.cost.train_flops_per_token",
    shapes={"flops": ""},
    sizes={"V": 7, "T": 4, "D": 4, "H": 2, "F": 8, "L": 2},
    size_args={"vocab_size": "V", "context": "T", "d_model": "D", "n_heads": "H", "d_ff": "F", "n_layers": "L"},
    constants={"tie_embeddings": 0, "learned_positions": 1, "biases": 1},
    steps=(
        Step(claim="the projections of a block over T positions, x W_Q, x W_K, x W_V, o W_O, u W₁ and a W₂, "
                   "cost 2 FLOPs per weight entry per position (weight shapes from the registered sublayers): "
                   "2(4D² + 2DF) = 8D² + 4DF per token",
             eq=Eq(sp.Mul(_projections, 1 / T, evaluate=False), 2 * (_entries("block.attention_sublayer", ("w_q", "w_k", "w_v", "w_o"))
                                          + _entries("block.ffn_sublayer", ("w_1", "w_2"))), evaluate=False),
             method="expand"),
        Step(claim="attention: per head Q_h K_hᵀ and P_h V_h are [T, K]×[K, T] and [T, T]×[T, K] products over "
                   "all T × T scores (the causal mask zeroes weights after the product, it skips none); "
                   "H heads with HK = D cost 2·2TD = 4TD per token",
             eq=Eq(sp.Mul(_attention, 1 / T, evaluate=False), 4 * T * D, evaluate=False)),
        Step(claim="the forward pass per token: L blocks and the head LN_f(h) W_U, [T, D]×[D, V] (tied or "
                   "not, the same product); the embedding lookup is a gather and W_P an addition, no product",
             eq=Eq(sp.Mul(_sum(sp.Mul(L, _sum(_projections, _attention), evaluate=False), _head), 1 / T,
                          evaluate=False), forward_per_token,
                   evaluate=False), method="expand"),
        Step(claim="backward of Y = XW: dX = dY Wᵀ, a [T, F]×[F, D] product, as many multiply-adds as XW",
             eq=Eq(vjp(_Y, _X, _dY), _dY * _W.T, evaluate=False)),
        Step(claim="and dW = Xᵀ dY, a [D, T]×[T, F] product, as many again: the backward pass of every product "
                   "is twice its forward, so C = forward + 2·forward = 3·forward",
             eq=Eq(vjp(_Y, _W, _dY), _X.T * _dY, evaluate=False)),
        Step(claim="the same holds where both factors are activations: for S = QKᵀ, dQ = dS K and dK = dSᵀ Q "
                   "(and for O = PV, dP = dO Vᵀ and dV = Pᵀ dO, attention.backward)",
             eq=Eq(vjp(_Q * _Kt.T, _Q, _dS).row_join(vjp(_Q * _Kt.T, _Kt, _dS)),
                   (_dS * _Kt).row_join(_dS.T * _Q), evaluate=False)),
        Step(claim="with F = 4D: C = 72LD² + 12LTD + 6DV",
             eq=Eq(_train.subs(F, 4 * D), 72 * L * D**2 + 12 * L * T * D + 6 * D * V, evaluate=False),
             method="expand"),
        Step(claim="6 FLOPs per token for each weight that enters a product (2 forward, 4 backward), plus the "
                   "attention products, which hold no weights: C = 6·N_matmul + 12LTD",
             eq=Eq(_train, 6 * matmul_parameters + 12 * L * T * D, evaluate=False), method="expand"),
        Step(claim="every parameter of the GPT (gpt.param_count) either enters a product or enters none: "
                   "N = N_matmul + biases + LayerNorm + W_P (learned) + W_E (untied)",
             eq=Eq(_n_gpt, matmul_parameters + non_matmul_parameters, evaluate=False), method="expand"),
        Step(claim="so 6N + 12LTD, with N every parameter (gpt.param_count), counts 6 FLOPs too many for each "
                   "parameter that enters no product: the biases L(4D + F + D) if any, the LayerNorm gains 2LD + D "
                   "and shifts 2LD + D if any, W_P (TD, learned positions) and, with an untied head, W_E (VD, a gather)",
             eq=Eq(approximation.subs(N, _n_gpt) - _train, 6 * non_matmul_parameters, evaluate=False),
             method="expand"),
        Step(claim="that difference vanishes relative to C as the width grows (F = 4D)",
             eq=Eq(Limit(((approximation.subs(N, _n_gpt) - _train) / _train).subs(F, 4 * D), D, oo), 0,
                   evaluate=False), method="doit"),
        Step(claim="GPT-2 small (T = 1024): C = 854,438,400 FLOPs per token, 6N + 12LTD = 859,885,056 "
                   "(0.64 % more); the attention products are 113,246,208 of C (13 %)",
             eq=Eq(Matrix([[_train.subs(_gpt2_small), approximation.subs({**_gpt2_small, N: _gpt2_small_n}),
                            (12 * L * T * D).subs(_gpt2_small)]]),
                   Matrix([[854_438_400, 859_885_056, 113_246_208]]), evaluate=False)),
    ),
    notes=("A product of an [m, k] and a [k, n] matrix is m·n dot products of length k: m·k·n multiplies "
           "and as many adds, 2mkn FLOPs. A weight matrix applied at every position therefore costs 2 FLOPs "
           "per entry per token forward, and its backward pass, which needs the gradients of both factors, "
           "two products of the same size: 6 per entry per token in all. That is the origin of the rule "
           "C ≈ 6N (Kaplan et al.). It is exact for the weights that enter a product; it counts 6 for every "
           "other parameter too (biases, LayerNorm, the position table, an untied W_E, which is a lookup), "
           "and it leaves out the attention products, which hold no parameters: QKᵀ and PV over all T × T "
           "scores cost 4TD per token forward, 12LTD for training (Hoffmann et al. count them so; "
           "Chowdhery et al. write 6N + 12LHQT). Neither C nor 6N + 12LTD counts the elementwise work "
           "(bias additions, activations, residual additions, LayerNorm arithmetic, softmax, the loss) or "
           "the optimizer update, which XLA's cost analysis of the train step does include (tests/test_cost.py "
           "measures it: 7 % more than C for the tiny preset, about 20 operations per activation entry and "
           "per parameter). The count holds for T = context; the causal mask "
           "makes half the scores useless, but they are computed."),
    source=f"{KAPLAN}; {HOFFMANN}; {PALM}",
))
