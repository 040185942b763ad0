r"""BERT as a bidirectional encoder (week 12, the epilogue) and its sentence embeddings (week 5).

Mirrors ``model/bert.py``.  A BERT maps token ids to one vector per position:

.. math:: x^{(0)} = \operatorname{LN}_E\bigl(\operatorname{onehot}(\mathrm{tokens})\, W_E + W_P
                    + \operatorname{onehot}(\mathrm{types})\, W_T\bigr), \qquad
          x^{(l)} = \operatorname{Layer}_l\bigl(x^{(l-1)}, m\bigr)

with the post-LN layer of the original transformer,

.. math:: u = \operatorname{LN}_1\bigl(x + \operatorname{MHA}(x, \mathbf 1 m)\bigr), \qquad
          y = \operatorname{LN}_2\bigl(u + \operatorname{FFN}_{\mathrm{GELU}}(u)\bigr)

where :math:`m` (``1 x T``) is the padding mask: 1 for a real token, 0 for padding.  Every
query may attend to every real key (:math:`\mathbf 1 m`, no causal mask): the encoder is
bidirectional.  The attention and its symbols are those of the pre-LN block
(``derivations.block.attention``: ``w_q .. b_o``, ``gamma_1 .. beta_2``, ``w_1 .. b_2``),
the FFN is the GELU network of ``feedforward.gelu_ffn``; only the place of the
LayerNorms differs from ``block.pre_ln``.

A sentence encoder (Sentence-BERT) reads one vector off the last layer: the mean of the
real positions (``bert.mean_pooling``), scaled to unit length (``bert.normalize``), so
that the cosine similarity of two sentences (``similarity.cosine``) is the dot product
of their embeddings.  ``bert.pooler`` is BERT's own sentence vector, the tanh layer on
the ``[CLS]`` position used by its pre-training and classification heads.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Matrix, MatrixSymbol, OneMatrix, ZeroMatrix, sqrt

from derivations.block import (
    attention,
    b_1,
    b_2,
    b_o,
    beta_1,
    beta_2,
    eps,
    gamma_1,
    gamma_2,
    w_1,
    w_2,
    w_o,
    x,
    y,
)
from derivations.loss import OneHot
from derivations.registry import Derivation, Gradient, Step, register
from derivations.similarity import cosine, dot
from derivations.symbolic import (
    C,
    D,
    Elementwise,
    F,
    Gelu,
    LayerNorm,
    T,
    V,
    explicit,
    jacobian,
    row,
)

__all__ = [
    "Tanh",
    "attention_sublayer",
    "embedding",
    "feed_forward_gelu",
    "ffn_sublayer",
    "mean_pool",
    "normalize",
    "post_ln_layer",
]

DEVLIN = ('Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", '
          "NAACL 2019, section 3 and figure 2")
VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.1 (LayerNorm(x + Sublayer(x)))'
REIMERS = ('Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", '
           "EMNLP 2019, section 3 (MEAN pooling)")
WANG = ('Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained '
        'Transformers", NeurIPS 2020 (the 6-layer, 384-wide encoder of all-MiniLM-L6-v2)')

WEEK = 12
#: sentence embeddings compared by cosine similarity belong to the week of embeddings and similarity
SENTENCE_WEEK = 5


class Tanh(Elementwise):
    r"""The hyperbolic tangent entrywise, :math:`\tanh x = (e^x - e^{-x})/(e^x + e^{-x})`."""

    _name = "tanh"

    @staticmethod
    def scalar(x):
        return sp.tanh(x)


# --- the embedding ------------------------------------------------------------------------------

tokens = row("tokens", T)
token_types = row("token_types", T)
wte = MatrixSymbol("wte", V, D)
wpe = MatrixSymbol("wpe", T, D)
wtt = MatrixSymbol("wtt", C, D)
gamma, beta = row("gamma", D), row("beta", D)


def _embedding_sum(tok, typ, n_types=C, positions=wpe):
    r""":math:`\operatorname{onehot}(\mathrm{tok}) W_E + W_P + \operatorname{onehot}(\mathrm{typ}) W_T`, before the LayerNorm."""
    return OneHot(tok, V) * wte + positions + OneHot(typ, n_types) * wtt


def embedding(tok=tokens, typ=token_types):
    r"""The input of the first layer, :math:`\operatorname{LN}_E(\operatorname{onehot}(\mathrm{tok}) W_E + W_P + \operatorname{onehot}(\mathrm{typ}) W_T)`."""
    return LayerNorm(_embedding_sum(tok, typ), gamma, beta, eps)


_E = {"T": 2, "V": 3, "D": 2, "C": 2}
_tok20, _typ10 = Matrix([[2, 0]]), Matrix([[1, 0]])
_wte, _wpe, _wtt = (explicit(m, _E) for m in (wte, wpe, wtt))
_zeros2 = Matrix([[0, 0]])
_c = sp.Symbol("c", real=True)
_E1 = {"T": 1, "V": 2, "D": 3, "C": 2}
_tok1, _typ1 = Matrix([[1]]), Matrix([[0]])

register(Derivation(
    id="bert.embedding",
    week=WEEK,
    title="BERT's input: x = LN(onehot(tokens) W_E + W_P + onehot(types) W_T)",
    statement=Eq(x, embedding()),
    implementation="model.bert.embed",
    shapes={"tokens": "T", "token_types": "T", "wte": "VD", "wpe": "TD", "wtt": "CD",
            "gamma": "D", "beta": "D", "x": "TD"},
    sizes={"T": 3, "V": 5, "D": 4, "C": 2},
    constants={"eps": 1e-12},
    domains={"tokens": "index:V", "token_types": "index:C"},
    steps=(
        Step(claim=("three lookups added: for tokens (2, 0) with types (1, 0) the rows before the LayerNorm are "
                    "W_E[2] + W_P[0] + W_T[1] and W_E[0] + W_P[1] + W_T[0]"),
             eq=Eq(_embedding_sum(_tok20, _typ10),
                   Matrix.vstack(_wte[2, :] + _wpe[0, :] + _wtt[1, :], _wte[0, :] + _wpe[1, :] + _wtt[0, :]),
                   evaluate=False),
             sizes=_E, method="expand"),
        Step(claim=("a single sentence has every type 0: its type embedding is the row W_T[0] at every position, "
                    "which folds into the position table, W_P' = W_P + 1 W_T[0] (GPT's embedding with shifted "
                    "positions, then a LayerNorm)"),
             eq=Eq(embedding(tokens, _zeros2),
                   LayerNorm(OneHot(tokens, V) * wte + (wpe + OneMatrix(T, 1) * wtt[0:1, :]), gamma, beta, eps),
                   evaluate=False),
             sizes=_E, method="expand"),
        Step(claim=("adding the same number c to every entry of a table (here W_T) changes nothing: the LayerNorm "
                    "removes each row's mean (one position, D = 3)"),
             eq=Eq(LayerNorm(OneHot(_tok1, V) * wte + wpe + OneHot(_typ1, C) * (wtt + _c * OneMatrix(C, D)),
                             gamma, beta, eps),
                   embedding(_tok1, _typ1), evaluate=False),
             sizes=_E1),
    ),
    notes=("Each position carries three learned vectors added together: its token's row of W_E, its "
           "position's row of W_P (learned, up to 512 positions) and its segment's row of W_T (sentence A "
           "or B of a pair; C = 2 types). Unlike GPT, BERT normalises the sum at once, so every layer "
           "starts from rows of mean 0 and variance about 1 (before the gain and bias). A single sentence "
           "has every type 0, and its segment row is then just a shift of the position table."),
    source=f"{DEVLIN}, figure 2",
))

# --- the post-LN encoder layer ---------------------------------------------------------------------

mask = row("mask", T)


def feed_forward_gelu(z):
    r"""The GELU FFN of ``z`` ``[n, D]``: :math:`\operatorname{GELU}(z W_1 + \mathbf 1 b_1) W_2 + \mathbf 1 b_2`."""
    n = OneMatrix(z.shape[0], 1)
    return Gelu(z * w_1 + n * b_1) * w_2 + n * b_2


def attention_sublayer(z, m=mask):
    r""":math:`\operatorname{LN}_1(z + \operatorname{MHA}(z, \mathbf 1 m))`: key ``s`` is seen where :math:`m_s = 1`."""
    return LayerNorm(z + attention(z, OneMatrix(z.shape[0], 1) * m), gamma_1, beta_1, eps)


def ffn_sublayer(z):
    r""":math:`\operatorname{LN}_2(z + \operatorname{FFN}_{\mathrm{GELU}}(z))`."""
    return LayerNorm(z + feed_forward_gelu(z), gamma_2, beta_2, eps)


def post_ln_layer(z, m=mask):
    r"""The post-LN layer :math:`\operatorname{LN}_2(u + \operatorname{FFN}(u))`, :math:`u = \operatorname{LN}_1(z + \operatorname{MHA}(z, \mathbf 1 m))`."""
    return ffn_sublayer(attention_sublayer(z, m))


_silent = {w_o: ZeroMatrix(D, D), b_o: ZeroMatrix(1, D), w_2: ZeroMatrix(F, D), b_2: ZeroMatrix(1, D)}
_unit = {gamma_1: OneMatrix(1, D), beta_1: ZeroMatrix(1, D), gamma_2: OneMatrix(1, D), beta_2: ZeroMatrix(1, D),
         eps: 0}
_ones_D, _zeros_D = OneMatrix(1, D), ZeroMatrix(1, D)
_first = Matrix([[1, 0]])   # picks position 0 of 2

register(Derivation(
    id="bert.post_ln",
    week=WEEK,
    title="The post-LN encoder layer y = LN₂(u + FFN(u)), u = LN₁(x + MHA(x, 1m)), m the padding mask",
    statement=Eq(y, post_ln_layer(x)),
    implementation="model.bert.post_ln_layer",
    shapes={"x": "TD", "mask": "T", "gamma_1": "D", "beta_1": "D",
            "w_q": "DD", "w_k": "DD", "w_v": "DD", "w_o": "DD",
            "b_q": "D", "b_k": "D", "b_v": "D", "b_o": "D",
            "gamma_2": "D", "beta_2": "D", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD"},
    sizes={"T": 3, "D": 4, "H": 2, "F": 6},
    constants={"eps": 1e-12},
    size_args={"n_heads": "H"},
    domains={"mask": "mask"},
    steps=(
        Step(claim=("with both sublayers silent (W_O, b_O, W₂, b₂ = 0) the layer is LN₂(LN₁(x)), for every size: "
                    "not the identity, as the pre-LN block is (block.ffn_sublayer); the residual stream itself "
                    "is normalised after every sublayer"),
             eq=Eq(post_ln_layer(x).subs(_silent).doit(),
                   LayerNorm(LayerNorm(x, gamma_1, beta_1, eps), gamma_2, beta_2, eps), evaluate=False),
             method="doit"),
        Step(claim=("with unit gains, zero biases and ε = 0 that is LN(x) itself: normalising a normalised row "
                    "changes nothing (D = 2)"),
             eq=Eq(LayerNorm(LayerNorm(x, _ones_D, _zeros_D, 0), _ones_D, _zeros_D, 0),
                   LayerNorm(x, _ones_D, _zeros_D, 0), evaluate=False),
             sizes={"T": 1, "D": 2}),
        Step(claim=("the output rows are normalised whatever the FFN adds: with γ₂ = 1 and β₂ = 0 each row of "
                    "LN₂(u + FFN(u)) sums to 0 (one position, D = 2, F = 1)"),
             eq=Eq(LayerNorm(x + feed_forward_gelu(x), _ones_D, _zeros_D, eps) * OneMatrix(D, 1), ZeroMatrix(T, 1),
                   evaluate=False),
             sizes={"T": 1, "D": 2, "F": 1}, method="expand"),
        Step(claim=("a padded key is invisible: with the mask m = (1, 0), row 0 of MHA(x, 1m) is the attention of "
                    "position 0 alone; LN₁, the residual and the FFN sublayer act row by row, so row 0 of the "
                    "layer is the layer applied to x₀ alone (T = 2, D = 2)"),
             eq=Eq(_first * attention(x, OneMatrix(2, 1) * Matrix([[1, 0]])), attention(_first * x, Matrix([[1]])),
                   evaluate=False),
             sizes={"T": 2, "D": 2, "H": 1}, method="expand"),
    ),
    notes=("BERT's layer is the original transformer's: each sublayer's output is added to its input and the "
           "sum is normalised, LN(x + Sublayer(x)). The pre-LN block of GPT-2 normalises only the input of "
           "each sublayer and leaves the residual stream alone, so a silent pre-LN block is the identity; a "
           "silent post-LN layer still normalises. The attention is bidirectional: no causal mask, every "
           "position sees every real token, and padding is hidden by a mask over keys only, so a sentence gets "
           "the same vectors alone or padded in a batch (sampled in experiments/properties/bert.py). The FFN "
           "uses the exact GELU. The numeric check uses BERT's ε = 1e-12."),
    source=f"{DEVLIN}; {VASWANI}",
))

# --- BERT's pooler ---------------------------------------------------------------------------------

h = MatrixSymbol("h", T, D)
w_pool = MatrixSymbol("w_pool", D, D)
b_pool = row("b_pool", D)
pooled = row("pooled", D)
dpooled = row("dpooled", D)
_pooler = Tanh(h[0:1, :] * w_pool + b_pool)
_z = sp.Symbol("z", real=True)
_P = {"T": 2, "D": 2}
_h2 = explicit(h, _P)
_pool2 = explicit(_pooler, _P)

register(Derivation(
    id="bert.pooler",
    week=WEEK,
    title="BERT's pooler: tanh(h₀ W_pool + b_pool), the [CLS] position through a tanh layer",
    statement=Eq(pooled, _pooler),
    implementation="model.bert.pooler",
    shapes={"h": "TD", "w_pool": "DD", "b_pool": "D", "pooled": "D", "dpooled": "D"},
    sizes={"T": 3, "D": 4},
    steps=(
        Step(claim="only the first position ([CLS]) enters: the derivative with respect to the other rows is 0 (T = D = 2)",
             eq=Eq(jacobian(_pool2, _h2[1, :]), sp.zeros(2, 2), evaluate=False)),
        Step(claim="tanh z = 2σ(2z) − 1, a rescaled logistic function, so every entry lies in (−1, 1)",
             eq=Eq(sp.tanh(_z).rewrite(sp.exp), 2 / (1 + sp.exp(-2 * _z)) - 1, evaluate=False)),
        Step(claim="tanh' = 1 − tanh²: the gradient of the bias is (1 − p ∘ p) ∘ dp",
             eq=Eq(sp.Derivative(sp.tanh(_z), _z), 1 - sp.tanh(_z) ** 2, evaluate=False), method="doit"),
    ),
    gradients=(
        Gradient(wrt="b_pool",
                 expr=sp.HadamardProduct(OneMatrix(1, D) - sp.HadamardProduct(_pooler, _pooler), dpooled),
                 cotangent="dpooled"),
    ),
    notes=("BERT's pre-training reads the whole input off the first position, the [CLS] token, through one "
           "dense layer with tanh (its next-sentence head, and classifiers fine-tuned on it). Sentence "
           "encoders such as all-MiniLM-L6-v2 do not use it: they average all real positions instead "
           "(bert.mean_pooling)."),
    source=f"{DEVLIN}, section 3 (the [CLS] representation)",
))

# --- sentence embeddings: masked mean pooling ----------------------------------------------------

p = row("p", D)
_t = sp.Symbol("t", integer=True)


def mean_pool(hidden=h, m=mask, n=T):
    r""":math:`\sum_t m_t h_t / \sum_t m_t`, the mean of the rows of ``hidden`` where ``m`` is 1."""
    return sp.MatMul(1 / sp.Sum(m[0, _t], (_t, 0, n - 1)), m * hidden)


_h2x2 = explicit(MatrixSymbol("h", 2, 2), {})
_r = Matrix([[sp.Symbol("r_0"), sp.Symbol("r_1")]])        # a padded row
_m = Matrix([[sp.Symbol("m_0"), sp.Symbol("m_1")]])
_k = sp.Symbol("k", positive=True)
_v = Matrix([[sp.Symbol("v_0"), sp.Symbol("v_1")]])


def _pool(hidden, m):
    """Masked mean of an explicit matrix of rows with an explicit mask row."""
    return explicit(mean_pool(hidden, m, hidden.rows), {})


register(Derivation(
    id="bert.mean_pooling",
    week=SENTENCE_WEEK,
    title="Mean pooling p = Σ_t m_t h_t / Σ_t m_t: the average of the real positions",
    statement=Eq(p, mean_pool()),
    implementation="model.bert.mean_pooling",
    shapes={"h": "TD", "mask": "T", "p": "D"},
    sizes={"T": 4, "D": 3},
    domains={"mask": "mask"},
    steps=(
        Step(claim="with every position real (m = 1) it is the plain mean over positions, (1/T) 1ᵀh",
             eq=Eq(mean_pool(h, OneMatrix(1, T)), OneMatrix(1, T) * h / T, evaluate=False),
             sizes={"T": 3, "D": 2}),
        Step(claim="a padded position (m = 0) contributes nothing, whatever its row r: padding a batch leaves p unchanged",
             eq=Eq(_pool(Matrix.vstack(_h2x2, _r), Matrix.hstack(_m, Matrix([[0]]))), _pool(_h2x2, _m),
                   evaluate=False)),
        Step(claim="only the ratios of the weights matter: scaling the mask by k > 0 leaves p unchanged",
             eq=Eq(_pool(_h2x2, _k * _m), _pool(_h2x2, _m), evaluate=False)),
        Step(claim="it is an average: when every row is the same vector v, p = v",
             eq=Eq(_pool(Matrix.vstack(_v, _v), _m), _v, evaluate=False)),
    ),
    notes=("A sentence encoder turns the vectors of the last layer, one per token, into one vector for the "
           "sentence by averaging the positions of real tokens (the [CLS] and [SEP] markers included) and "
           "ignoring padding. Padding a sentence to the length of a batch therefore changes neither the vectors "
           "of its real tokens (padded keys are masked in attention) nor their mean. Sentence-BERT found the "
           "mean better than the [CLS] vector for similarity."),
    source=REIMERS,
))

# --- sentence embeddings: unit length --------------------------------------------------------------

e = row("e", D)
min_norm = sp.Symbol("min_norm", positive=True)


def normalize(u, n=D, floor=min_norm):
    r""":math:`u / \max(\lVert u\rVert_2, \text{floor})`."""
    return sp.MatMul(1 / sp.Max(sqrt(dot(u, u, n)), floor), u)


def _unit(u, n=D):
    r""":math:`u / \lVert u\rVert_2` (for :math:`\lVert u\rVert_2` above the floor)."""
    return sp.MatMul(1 / sqrt(dot(u, u, n)), u)


_a, _b = row("a", D), row("b", D)

register(Derivation(
    id="bert.normalize",
    week=SENTENCE_WEEK,
    title="Unit-length sentence embeddings e = p / max(‖p‖, ε): cosine similarity becomes a dot product",
    statement=Eq(e, normalize(p)),
    implementation="model.bert.l2_normalize",
    shapes={"p": "D", "e": "D"},
    sizes={"D": 5},
    constants={"min_norm": 1e-12},
    steps=(
        Step(claim="above the floor the result has unit length: e·e = 1",
             eq=Eq(dot(_unit(p), _unit(p)), 1, evaluate=False), sizes={"D": 3}),
        Step(claim=("scaling by k > 0 changes nothing, so the division by the number of real tokens in the mean "
                    "does not matter: the embedding is that of the masked sum Σ m_t h_t"),
             eq=Eq(_unit(_k * p), _unit(p), evaluate=False), sizes={"D": 3}),
        Step(claim="the dot product of two unit-length embeddings is the cosine similarity of the pooled vectors",
             eq=Eq(dot(_unit(_a), _unit(_b)), cosine(_a, _b), evaluate=False), sizes={"D": 3}),
    ),
    notes=("all-MiniLM-L6-v2 ends with a Normalize layer: the pooled vector is divided by its Euclidean length, "
           "or by ε = 1e-12 when it is shorter (as torch.nn.functional.normalize does), so a zero vector stays "
           "zero instead of becoming NaN. Two sentences are then compared by the dot product of their "
           "embeddings, which is the cosine similarity of week 5, and a search over many sentences is one "
           "matrix product."),
    source=f"{REIMERS}; Manning, Raghavan and Schütze, Introduction to Information Retrieval, 2008, section 6.3.1",
))
