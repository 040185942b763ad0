r"""GPT as a decoder-only model (week 12, the epilogue): embedding, output head, parameter count.

Mirrors ``model/gpt.py``.  A GPT maps token ids to next-token logits:

.. math:: x^{(0)} = \operatorname{onehot}(\mathrm{tokens})\, W_E + W_P, \qquad
          x^{(l)} = \operatorname{Block}_l(x^{(l-1)}), \qquad
          z = \operatorname{LN}_f(x^{(L)})\, W_U

The blocks are the verified pre-LN block of week 11 (``block.attention_sublayer``,
``block.ffn_sublayer``) with the causal mask of week 7; this module states the two
ends (``gpt.embedding``, ``gpt.logits``) and counts the parameters of the whole model
(``gpt.param_count``), building the count from the verified counts of its parts.
With a tied head (GPT-2) :math:`W_U = W_E^\top`.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, FunctionMatrix, Lambda, Limit, Matrix, MatrixSymbol, Sum, oo

# the parts whose verified statements the counts below are built from (importing them registers them)
import derivations.block
import derivations.feedforward
import derivations.multihead  # noqa: F401
from derivations.loss import OneHot
from derivations.registry import Derivation, Gradient, Step, get, register
from derivations.symbolic import D, F, L, LayerNorm, T, V, explicit, row, size_symbols, vjp

__all__ = ["GPT2_SIZES", "N", "biases", "learned_positions", "tie_embeddings"]

RADFORD_2018 = 'Radford et al., "Improving Language Understanding by Generative Pre-Training", 2018, equation (2)'
RADFORD_2019 = 'Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2), 2019, section 2.3'
PRESS_WOLF = 'Press and Wolf, "Using the Output Embedding to Improve Language Models", EACL 2017'
KAPLAN = 'Kaplan et al., "Scaling Laws for Neural Language Models", 2020, section 2.1'

WEEK = 12

# --- the embedding ------------------------------------------------------------------------------

tokens = row("tokens", T)
wte = MatrixSymbol("wte", V, D)
wpe = MatrixSymbol("wpe", T, D)
x = MatrixSymbol("x", T, D)
dX = MatrixSymbol("dX", T, D)
_a, _b = sp.symbols("a b", integer=True, nonnegative=True)
_w32 = MatrixSymbol("w", 3, 2)
_repeat = Matrix([[_a, _b, _a]])  # the same token a at positions 0 and 2
_x_repeat = explicit(OneHot(_repeat, V) * wte + wpe, {"V": 3, "D": 2, "T": 3})
_grad_small = {"T": 3, "V": 2, "D": 2}
_tok110 = Matrix([[1, 1, 0]])
_wte_s, _wpe_s, _dX_s = (explicit(m, _grad_small) for m in (wte, wpe, dX))
_x_s = explicit(OneHot(_tok110, 2) * _wte_s + _wpe_s, {})

register(Derivation(
    id="gpt.embedding",
    week=WEEK,
    title="The input of a GPT: token embedding plus position embedding, x = onehot(tokens) W_E + W_P",
    statement=Eq(x, OneHot(tokens, V) * wte + wpe),
    implementation="model.gpt.embed",
    shapes={"tokens": "T", "wte": "VD", "wpe": "TD", "x": "TD", "dX": "TD"},
    sizes={"T": 3, "V": 5, "D": 2},
    domains={"tokens": "index:V"},
    steps=(
        Step(claim="a one-hot row picks a row: for tokens (2, 0, 2), onehot(tokens) W is rows 2, 0, 2 of W",
             eq=Eq(OneHot(Matrix([[2, 0, 2]]), 3) * _w32,
                   Matrix.vstack(*(explicit(_w32, {})[r, :] for r in (2, 0, 2))), evaluate=False)),
        Step(claim="the same token at positions 0 and 2 differs only by its position vectors: "
                   "x_0 − x_2 = W_P[0] − W_P[2], whatever the token",
             eq=Eq(_x_repeat[0, :] - _x_repeat[2, :],
                   explicit(wpe, {"T": 3, "D": 2})[0, :] - explicit(wpe, {"T": 3, "D": 2})[2, :], evaluate=False)),
        Step(claim="backward: a token at two positions collects both gradients; for tokens (1, 1, 0) "
                   "row 1 of dW_E is dX_0 + dX_1 and row 0 is dX_2",
             eq=Eq(vjp(_x_s, _wte_s, _dX_s), Matrix.vstack(_dX_s[2, :], _dX_s[0, :] + _dX_s[1, :]),
                   evaluate=False)),
        Step(claim="and the gradient of the position table is the cotangent itself: dW_P = dX",
             eq=Eq(vjp(_x_s, _wpe_s, _dX_s), _dX_s, evaluate=False)),
    ),
    gradients=(
        Gradient(wrt="wte", expr=OneHot(tokens, V).T * dX, cotangent="dX"),
        Gradient(wrt="wpe", expr=dX, cotangent="dX"),
    ),
    notes=("The token at position t is looked up in the embedding table W_E (a row per vocabulary entry) "
           "and the vector of position t is added; the blocks see nothing else. Without W_P only the causal "
           "mask would tell positions apart: unmasked attention is permutation equivariant. The lookup is "
           "a product with a one-hot matrix, so the gradient of W_E is onehotᵀ dX: only rows of tokens "
           "that occur are updated, each with the sum over the positions where it occurs."),
    source=f"{RADFORD_2018}; {RADFORD_2019}",
))

# --- the output head -----------------------------------------------------------------------------

h = MatrixSymbol("h", T, D)
ln_f_gamma, ln_f_beta = row("ln_f_gamma", D), row("ln_f_beta", D)
w_head = MatrixSymbol("w_head", D, V)
z = MatrixSymbol("z", T, V)
eps = sp.Symbol("eps", positive=True)
_u = MatrixSymbol("u", T, D)
_t, _v, _j = sp.symbols("t v j", integer=True)
# folding the final LayerNorm's gain and bias into the head, at T = 1, D = 2, V = 2
_hs = explicit(MatrixSymbol("h", 1, 2), {})
_g = Matrix([[sp.Symbol("gamma_0"), sp.Symbol("gamma_1")]])
_bt = Matrix([[sp.Symbol("beta_0"), sp.Symbol("beta_1")]])
_W = explicit(MatrixSymbol("W", 2, 2), {})

register(Derivation(
    id="gpt.logits",
    week=WEEK,
    title="The output head: the final LayerNorm, then logits z = LN_f(h) W_U (tied: W_U = W_Eᵀ)",
    statement=Eq(z, LayerNorm(h, ln_f_gamma, ln_f_beta, eps) * w_head),
    implementation="model.gpt.lm_logits",
    shapes={"h": "TD", "ln_f_gamma": "D", "ln_f_beta": "D", "w_head": "DV", "z": "TV"},
    sizes={"T": 2, "D": 3, "V": 4},
    constants={"eps": 1e-5},
    steps=(
        Step(claim="with the tied head W_U = W_Eᵀ, the logit of token v at position t is the dot product "
                   "of the final state u_t = LN_f(h)_t with the embedding of v: z_tv = Σ_j u_tj W_E[v, j]",
             eq=Eq(_u * wte.T, FunctionMatrix(T, V, Lambda((_t, _v), Sum(_u[_t, _j] * wte[_v, _j], (_j, 0, D - 1)))),
                   evaluate=False),
             sizes={"T": 2, "V": 3, "D": 2}),
        Step(claim="the final LayerNorm's gain and bias can be folded into the head: "
                   "LN(h; γ, β) W = LN(h; 1, 0) (diag(γ) W) + 1 (β W)",
             eq=Eq(explicit(LayerNorm(_hs, _g, _bt, eps), {}) * _W,
                   explicit(LayerNorm(_hs, sp.ones(1, 2), sp.zeros(1, 2), eps), {}) * (sp.diag(*_g) * _W)
                   + sp.ones(1, 1) * (_bt * _W), evaluate=False)),
    ),
    notes=("After the last block the residual stream is normalised once more (GPT-2 added this "
           "LayerNorm, which pre-LN needs since the stream itself is never normalised) and mapped to one "
           "score per vocabulary entry; softmax of a row gives the distribution of the next token. GPT-2 "
           "ties the head to the input embedding, so a token is predicted when the final state points "
           "the way that token's embedding points, and the V × D matrix is stored once."),
    source=f"{RADFORD_2019}; {PRESS_WOLF}",
))

# --- the parameter count --------------------------------------------------------------------------

N = sp.Symbol("N", integer=True, nonnegative=True)
#: 1 for a head tied to the token embedding, 0 for a head of its own
tie_embeddings = sp.Symbol("tie_embeddings", integer=True, nonnegative=True)
#: 1 for a learned position table W_P, 0 for the sinusoidal encoding (no parameters)
learned_positions = sp.Symbol("learned_positions", integer=True, nonnegative=True)
#: 1 for biases in every projection and LayerNorm (GPT-2), 0 for none
biases = sp.Symbol("biases", integer=True, nonnegative=True)

_n_attention = get("multihead.param_count").statement.rhs      # 4D² + 4D
_n_ffn = get("feedforward.param_count").statement.rhs          # 2DF + F + D
_n_layer_norms = 2 * (2 * D)                                   # two LayerNorms, gain and bias each
_n_layer_biased = sp.Add(_n_attention, _n_ffn, _n_layer_norms, evaluate=False)
# a block's weights and LayerNorm gains, plus its biases (attention 4D, FFN F + D, LayerNorms 2D) when present
_n_layer = sp.Add(4 * D**2, 2 * D * F, 2 * D, biases * (F + 7 * D), evaluate=False)

_n_gpt = sp.Add(V * D, learned_positions * T * D, L * _n_layer, D, biases * D, (1 - tie_embeddings) * D * V,
                evaluate=False)

_letters = size_symbols()


def _entries(derivation_id: str, names) -> sp.Expr:
    """The number of entries of the named arguments of a registered statement, from their axis letters."""
    d = get(derivation_id)
    return sp.Add(*(sp.Mul(*(_letters[a] for a in d.shapes[n])) for n in names))


def _parameters(derivation_id: str, inputs, *, bias: bool) -> tuple[str, ...]:
    """The parameters of a registered statement (its arguments that are not ``inputs``): biases or the rest."""
    return tuple(n for n in get(derivation_id).arguments
                 if n not in inputs and n.startswith(("b_", "beta")) == bias)


def _block_entries(*, bias: bool) -> sp.Expr:
    return (_entries("block.attention_sublayer", _parameters("block.attention_sublayer", ("x", "mask"), bias=bias))
            + _entries("block.ffn_sublayer", _parameters("block.ffn_sublayer", ("x",), bias=bias)))


_block_weights, _block_biases = _block_entries(bias=False), _block_entries(bias=True)
_model_parameters = (_entries("gpt.embedding", ("wte",)) + learned_positions * _entries("gpt.embedding", ("wpe",))
                     + L * (_block_weights + biases * _block_biases) + _entries("gpt.logits", ("ln_f_gamma",))
                     + biases * _entries("gpt.logits", ("ln_f_beta",))
                     + (1 - tie_embeddings) * _entries("gpt.logits", ("w_head",)))

#: GPT-2's released checkpoints (tied head, learned positions, V = 50257, T = 1024, F = 4D): D, L, N
GPT2_SIZES = {
    "gpt2": (768, 12, 124_439_808),
    "gpt2-medium": (1024, 24, 354_823_168),
    "gpt2-large": (1280, 36, 774_030_080),
    "gpt2-xl": (1600, 48, 1_557_611_200),
}
_gpt2 = {V: 50257, T: 1024, tie_embeddings: 1, learned_positions: 1, biases: 1}

register(Derivation(
    id="gpt.param_count",
    week=WEEK,
    title="Parameters of a GPT: N = VD + TD + L(4D² + 2DF + 2D + F + 7D) + 2D (+ VD untied)",
    statement=Eq(N, _n_gpt, evaluate=False),
    implementation="model.gpt.param_count",
    shapes={"N": ""},
    sizes={"V": 11, "T": 5, "D": 8, "H": 2, "F": 12, "L": 3},
    size_args={"vocab_size": "V", "context": "T", "d_model": "D", "n_heads": "H", "d_ff": "F", "n_layers": "L"},
    constants={"tie_embeddings": 1, "learned_positions": 1, "biases": 1},
    steps=(
        Step(claim="a block with biases holds the parameters of its two verified sublayers: LN₁, W_Q…b_O, "
                   "LN₂, W₁…b₂, that is attention's 4D² + 4D, the FFN's 2DF + F + D and 2·2D for the two "
                   "LayerNorms",
             eq=Eq(_block_weights + _block_biases, _n_layer.subs(biases, 1), evaluate=False), method="expand"),
        Step(claim="the same sum as the verified counts of the parts (multihead.param_count, "
                   "feedforward.param_count)",
             eq=Eq(_n_layer_biased, _n_layer.subs(biases, 1), evaluate=False), method="expand"),
        Step(claim="without biases a block keeps its weight matrices and the two LayerNorm gains: 4D² + 2DF + 2D",
             eq=Eq(_block_weights, _n_layer.subs(biases, 0), evaluate=False), method="expand"),
        Step(claim="with F = 4D a block has 12D² + 13D parameters",
             eq=Eq(_n_layer.subs({F: 4 * D, biases: 1}), 12 * D**2 + 13 * D, evaluate=False), method="expand"),
        Step(claim="the model: W_E [V, D], W_P [T, D] if learned, L blocks, LN_f (D, 2D with its bias) and "
                   "W_U [D, V] if untied",
             eq=Eq(_model_parameters, _n_gpt, evaluate=False), method="expand"),
        Step(claim="tying the head saves exactly VD parameters (38.6M of GPT-2's 163M untied)",
             eq=Eq(_n_gpt.subs(tie_embeddings, 0) - _n_gpt.subs(tie_embeddings, 1), V * D, evaluate=False),
             method="expand"),
        Step(claim="at GPT-2's shapes the formula gives the sizes of the released checkpoints: "
                   "124,439,808 (gpt2), 354,823,168 (medium), 774,030,080 (large), 1,557,611,200 (xl)",
             eq=Eq(Matrix([[_n_gpt.subs({**_gpt2, D: d, F: 4 * d, L: n_layers}) for d, n_layers, _ in GPT2_SIZES.values()]]),
                   Matrix([[n for _, _, n in GPT2_SIZES.values()]]), evaluate=False)),
        Step(claim="without the embeddings the count approaches 12·L·D² as D grows (Kaplan et al.'s N ≈ 12 L D²)",
             eq=Eq(Limit(L * _n_layer.subs(F, 4 * D) / (12 * L * D**2), D, oo), 1, evaluate=False),
             method="doit"),
    ),
    notes=("Most of a large GPT's parameters are in its blocks, 12D² per block with F = 4D; the embedding "
           "adds VD, which weighs most in small models (a third of GPT-2 small). Tying the head to the "
           "embedding stores that V × D matrix once. The number of heads does not change the count. The GPT-2 "
           "paper's table 2 gives the shapes with sizes 117M, 345M, 762M and 1542M; the released checkpoints "
           "hold the numbers of step 5, which the formula gives exactly."),
    source=f"{RADFORD_2019}, table 2 (the shapes); {KAPLAN}",
))

