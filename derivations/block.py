r"""The pre-LN transformer block (week 11): its two residual sublayers and the whole block.

Mirrors ``model/block.py``.  The block is

.. math:: h = x + \operatorname{MHA}(\operatorname{LN}_1(x)), \qquad
          y = h + \operatorname{FFN}(\operatorname{LN}_2(h))

Each line is registered as its own derivation, with its own steps and numeric
check: ``block.attention_sublayer`` (:math:`x \mapsto h`) and ``block.ffn_sublayer``
(:math:`h \mapsto y`); ``model.block.transformer_block`` is the second applied to
the first.  The whole block is registered too (``block.pre_ln``): its numeric
reference is evaluated node by node (``derivations.check``), which keeps it cheap,
whereas expanding it into one scalar expression per entry (tens of thousands of
terms even at ``T = D = 2``) takes SymPy minutes.  Symbolic proofs about the whole
block stay at the level of the parts (its identity path, below); its causality is
checked by sampling the jit-compiled block (``experiments/properties/block.py``).

The head ``h`` (``h = 0 .. H-1``) owns columns ``hK .. (h+1)K - 1`` of
:math:`W_Q, W_K, W_V`, as in ``derivations/multihead.py``; ``K = D/H``.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Matrix, MatrixSymbol, OneMatrix, ZeroMatrix, sqrt

from derivations.registry import Derivation, Step, register
from derivations.symbolic import Concat, D, F, H, LayerNorm, Relu, Softmax, T, row

VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, sections 3.1-3.3'
XIONG = 'Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020, figure 1 (b)'
RADFORD = 'Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019, section 2.3'

x = MatrixSymbol("x", T, D)
y = MatrixSymbol("y", T, D)
mask = MatrixSymbol("mask", T, T)
gamma_1, beta_1, gamma_2, beta_2 = (row(n, D) for n in ("gamma_1", "beta_1", "gamma_2", "beta_2"))
w_q, w_k, w_v, w_o = (MatrixSymbol(n, D, D) for n in ("w_q", "w_k", "w_v", "w_o"))
b_q, b_k, b_v, b_o = (row(n, D) for n in ("b_q", "b_k", "b_v", "b_o"))
w_1 = MatrixSymbol("w_1", D, F)
w_2 = MatrixSymbol("w_2", F, D)
b_1 = row("b_1", F)
b_2 = row("b_2", D)
eps = sp.Symbol("eps", positive=True)

_h = sp.Symbol("h", integer=True, nonnegative=True)  # the head index, bound by Concat
_K = D / H  # the head width K


def _columns(m, head):
    """Columns ``head*K .. (head+1)*K - 1`` of ``m``: head ``head``'s block."""
    return m[:, head * _K:head * _K + _K]


def attention(z, m=mask):
    r"""Multi-head self-attention of ``z`` ``[T, D]``.

    :math:`\operatorname{Concat}_h(\operatorname{softmax}(q_h k_h^\top/\sqrt K, M)\, v_h)\, W_O + \mathbf 1 b_O`
    with :math:`q_h = z W_Q^{(h)} + \mathbf 1 b_Q^{(h)}` and so on.
    """
    n = OneMatrix(z.shape[0], 1)

    def project(w, b):
        return z * _columns(w, _h) + n * _columns(b, _h)

    head = Softmax(project(w_q, b_q) * project(w_k, b_k).T / sqrt(_K), m) * project(w_v, b_v)
    return Concat(_h, H, head) * w_o + n * b_o


def feed_forward(z):
    r"""The position-wise ReLU FFN of ``z`` ``[T, D]``: :math:`\max(0, z W_1 + \mathbf 1 b_1) W_2 + \mathbf 1 b_2`."""
    n = OneMatrix(z.shape[0], 1)
    return Relu(z * w_1 + n * b_1) * w_2 + n * b_2


def attention_sublayer(z, m=mask):
    r""":math:`z + \operatorname{MHA}(\operatorname{LN}_1(z))`."""
    return z + attention(LayerNorm(z, gamma_1, beta_1, eps), m)


def ffn_sublayer(z):
    r""":math:`z + \operatorname{FFN}(\operatorname{LN}_2(z))`."""
    return z + feed_forward(LayerNorm(z, gamma_2, beta_2, eps))


#: the whole pre-LN block, for the lessons and the identity-path step (never expanded)
pre_ln_block = ffn_sublayer(attention_sublayer(x))

# Small concrete pieces for the steps (T = 2, D = 2).
_c = sp.Symbol("c", real=True)
_causal2 = Matrix([[1, 0], [1, 1]])
_first = Matrix([[1, 0]])           # picks row 0
_swap = Matrix([[0, 1], [1, 0]])    # exchanges the two positions
_ATT_STEP = {"T": 2, "D": 2, "H": 1}
_FFN_STEP = {"T": 2, "D": 2, "F": 1}

# --- the attention sublayer ----------------------------------------------------------------------

register(Derivation(
    id="block.attention_sublayer",
    week=11,
    title="Pre-LN attention sublayer h = x + MHA(LN₁(x), M)",
    statement=Eq(y, attention_sublayer(x)),
    implementation="model.block.attention_sublayer",
    shapes={"x": "TD", "gamma_1": "D", "beta_1": "D",
            "w_q": "DD", "w_k": "DD", "w_v": "DD", "w_o": "DD",
            "b_q": "D", "b_k": "D", "b_v": "D", "b_o": "D", "mask": "TT", "y": "TD"},
    sizes={"T": 2, "D": 2, "H": 2},
    constants={"eps": 1e-5},
    size_args={"n_heads": "H"},
    domains={"mask": "mask"},
    steps=(
        Step(claim="with W_O = 0 and b_O = 0 the sublayer is the identity: the residual path carries x through",
             eq=Eq(attention_sublayer(x).subs({w_o: ZeroMatrix(D, D), b_o: ZeroMatrix(1, D)}), x,
                   evaluate=False), sizes=_ATT_STEP, method="expand"),
        Step(claim=("with the causal mask the output at position 0 is the sublayer applied to position 0 "
                    "alone: nothing after it is seen (T = D = 2)"),
             eq=Eq(_first * attention_sublayer(x, _causal2), attention_sublayer(_first * x, Matrix([[1]])),
                   evaluate=False), sizes=_ATT_STEP, method="expand"),
    ),
    notes=("The first half of a pre-LN transformer block: normalise each position, let the positions "
           "exchange information by multi-head attention, and add the result to the input. The input "
           "itself travels on unchanged along the residual stream; attention only writes a correction. "
           "Putting LayerNorm before the sublayer (pre-LN, as in GPT-2) rather than after the addition "
           "(post-LN, the original transformer) leaves the residual path free of normalisation, which "
           "keeps gradients well scaled at initialisation and lets deep stacks train without warm-up."),
    source=f"{XIONG}; {RADFORD}; {VASWANI}",
))

# --- the feed-forward sublayer ------------------------------------------------------------------

register(Derivation(
    id="block.ffn_sublayer",
    week=11,
    title="Pre-LN feed-forward sublayer y = h + FFN(LN₂(h)), which completes the block",
    statement=Eq(y, ffn_sublayer(x)),
    implementation="model.block.ffn_sublayer",
    shapes={"x": "TD", "gamma_2": "D", "beta_2": "D",
            "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD"},
    sizes={"T": 2, "D": 2, "F": 3},
    constants={"eps": 1e-5},
    steps=(
        Step(claim="with W₂ = 0 and b₂ = 0 the sublayer is the identity",
             eq=Eq(ffn_sublayer(x).subs({w_2: ZeroMatrix(F, D), b_2: ZeroMatrix(1, D)}), x, evaluate=False),
             sizes=_FFN_STEP, method="expand"),
        Step(claim=("the whole block y = h + FFN(LN₂(h)), h = x + MHA(LN₁(x)) is the identity when both "
                    "sublayers write nothing (W_O, b_O, W₂, b₂ = 0): the residual stream alone"),
             eq=Eq(pre_ln_block.subs({w_o: ZeroMatrix(D, D), b_o: ZeroMatrix(1, D),
                                      w_2: ZeroMatrix(F, D), b_2: ZeroMatrix(1, D)}), x, evaluate=False),
             sizes={**_ATT_STEP, **_FFN_STEP}, method="expand"),
        Step(claim="the sublayer is position-wise: exchanging the two positions exchanges the outputs (T = D = 2)",
             eq=Eq(_swap * ffn_sublayer(x), ffn_sublayer(_swap * x), evaluate=False),
             sizes=_FFN_STEP, method="expand"),
        Step(claim="adding c to every entry of the input adds exactly c to the output (T = D = 2)",
             eq=Eq(ffn_sublayer(x + _c * OneMatrix(T, D)), ffn_sublayer(x) + _c * OneMatrix(T, D),
                   evaluate=False), sizes=_FFN_STEP, method="expand"),
    ),
    notes=("The second half of a pre-LN block: normalise each position again and pass it through the "
           "position-wise FFN, adding the result to the residual stream. Applied to the output h of the "
           "attention sublayer it completes the block y = h + FFN(LN₂(h)), h = x + MHA(LN₁(x)). A "
           "transformer is L such blocks in a row; with every sublayer silent the block is the identity, "
           "so a deep stack starts close to the identity map and each block learns a small correction."),
    source=f"{XIONG}; {RADFORD}; {VASWANI}",
))

# --- the whole block ------------------------------------------------------------------------------

register(Derivation(
    id="block.pre_ln",
    week=11,
    title="The pre-LN transformer block y = h + FFN(LN₂(h)), h = x + MHA(LN₁(x), M)",
    statement=Eq(y, pre_ln_block),
    implementation="model.block.transformer_block",
    shapes={"x": "TD", "gamma_1": "D", "beta_1": "D",
            "w_q": "DD", "w_k": "DD", "w_v": "DD", "w_o": "DD",
            "b_q": "D", "b_k": "D", "b_v": "D", "b_o": "D", "mask": "TT",
            "gamma_2": "D", "beta_2": "D", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD"},
    sizes={"T": 3, "D": 4, "H": 2, "F": 6},
    constants={"eps": 1e-5},
    size_args={"n_heads": "H"},
    domains={"mask": "mask"},
    notes=("The whole block, checked as one statement: the reference evaluates the SymPy expression node "
           "by node (LayerNorm, the heads, their concatenation, the FFN), so the block is compared with "
           "the jit-compiled transformer_block at T = 3, D = 4, H = 2, F = 6. Its steps are those of its "
           "two sublayers (block.attention_sublayer, block.ffn_sublayer); a symbolic causality proof of "
           "the whole block takes about a minute, so causality is checked by jax.jacfwd instead."),
    source=f"{XIONG}; {RADFORD}",
))
