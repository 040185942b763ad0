"""The position-wise feed-forward network (week 9): ReLU, GELU (exact and tanh), position-wise, parameter count.

Mirrors ``model/feedforward.py``.  Parameters ``w_1 [D, F]``, ``b_1 [F]``, ``w_2 [F, D]``,
``b_2 [D]``; a bias row is added to every position as ``1 b`` with ``1`` a ``T x 1``
column of ones.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, HadamardProduct, Limit, Matrix, MatrixSymbol, OneMatrix, erf, exp, oo, pi, sqrt
from sympy.stats import Normal, density

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import D, F, T, Elementwise, Gelu, Relu, UnitStep, explicit, row, vjp

VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.3, equation (2)'
HENDRYCKS = 'Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016, section 2'


class NormalCdf(Elementwise):
    r"""The standard normal CDF entrywise, :math:`\Phi(x) = \tfrac12\bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr)`."""

    _name = "Φ"

    @staticmethod
    def scalar(x):
        return (1 + erf(x / sqrt(2))) / 2


class NormalPdf(Elementwise):
    r"""The standard normal density entrywise, :math:`\varphi(x) = e^{-x^2/2} / \sqrt{2\pi}`."""

    _name = "φ"

    @staticmethod
    def scalar(x):
        return exp(-x ** 2 / 2) / sqrt(2 * pi)


#: the cubic coefficient of the tanh approximation of GELU, as published (a fitted value, not a Taylor coefficient)
GELU_TANH_CUBIC = sp.Float("0.044715")


def _gelu_tanh_inner(x, cubic=GELU_TANH_CUBIC):
    """The argument of tanh in the approximation: √(2/π) (x + 0.044715 x³)."""
    return sqrt(2 / pi) * (x + cubic * x ** 3)


class GeluTanh(Elementwise):
    r"""The tanh approximation of GELU entrywise, :math:`\tfrac{x}{2}\bigl(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715 x^3))\bigr)`."""

    _name = "GELU_tanh"

    @staticmethod
    def scalar(x):
        return x / 2 * (1 + sp.tanh(_gelu_tanh_inner(x)))

    def _latex(self, printer):
        return r"\operatorname{GELU}_{\tanh}\left(%s\right)" % printer._print(self.args[0])


class GeluTanhPrime(Elementwise):
    r"""The derivative of :class:`GeluTanh` entrywise.

    .. math:: \tfrac12(1 + \tanh u) + \tfrac{x}{2}(1 - \tanh^2 u)\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\, x^2),
              \quad u = \sqrt{2/\pi}\,(x + 0.044715 x^3)
    """

    _name = "GELU_tanh'"

    def _latex(self, printer):
        return r"\operatorname{GELU}_{\tanh}'\left(%s\right)" % printer._print(self.args[0])

    @staticmethod
    def scalar(x):
        t = sp.tanh(_gelu_tanh_inner(x))
        return (1 + t) / 2 + x / 2 * (1 - t ** 2) * sqrt(2 / pi) * (1 + 3 * GELU_TANH_CUBIC * x ** 2)


x = MatrixSymbol("x", T, D)
y = MatrixSymbol("y", T, D)
dy = MatrixSymbol("dy", T, D)
w_1 = MatrixSymbol("w_1", D, F)
w_2 = MatrixSymbol("w_2", F, D)
b_1 = row("b_1", F)
b_2 = row("b_2", D)
ones = OneMatrix(T, 1)

h = x * w_1 + ones * b_1          # the hidden pre-activations [T, F]
ffn_relu = Relu(h) * w_2 + ones * b_2
ffn_gelu = Gelu(h) * w_2 + ones * b_2

#: sizes of the numeric checks: small, since the gradients are expanded entry by entry
FFN_SIZES = {"T": 2, "D": 3, "F": 4}
#: sizes at which the backward steps are expanded
_BACK = {"T": 2, "D": 2, "F": 2}


def _kink_at_zero(expr):
    """Take ReLU'(0) = 0: SymPy's derivative of Max(0, z) is Heaviside(z) with H(0) = 1/2 undecided.

    ``jax.nn.relu`` and ``UnitStep`` both use 0 at the kink, a valid subgradient.
    """
    return expr.replace(lambda a: isinstance(a, sp.Heaviside), lambda a: sp.Heaviside(a.args[0], 0))


_explicit_memo: dict = {}


def _backward(ffn_expr, wrt, sizes):
    """The gradient of sum(FFN ∘ dy) with respect to ``wrt``, differentiated entry by entry."""
    key = (ffn_expr, tuple(sorted(sizes.items())))
    if key not in _explicit_memo:  # each FFN is expanded once for all its backward steps
        _explicit_memo[key] = explicit(ffn_expr, sizes)
    return _kink_at_zero(vjp(_explicit_memo[key], explicit(wrt, sizes), explicit(dy, sizes)))


# --- ReLU FFN ---------------------------------------------------------------------------

_relu_dh = HadamardProduct(UnitStep(h), dy * w_2.T)   # dL/dh, the gradient at the hidden layer

register(Derivation(
    id="feedforward.relu",
    week=9,
    title="The feed-forward network FFN(x) = max(0, x W₁ + b₁) W₂ + b₂ and its backward pass",
    statement=Eq(y, ffn_relu, evaluate=False),
    implementation="model.feedforward.feed_forward",
    shapes={"x": "TD", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD", "dy": "TD"},
    sizes=FFN_SIZES,
    steps=(
        Step(claim="backward to the input: dx = (H(h) ∘ dy W₂ᵀ) W₁ᵀ with h = x W₁ + 1 b₁ and ReLU' = H",
             eq=Eq(_backward(ffn_relu, x, _BACK), explicit(_relu_dh * w_1.T, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
        Step(claim="backward to the first layer: dW₁ = xᵀ (H(h) ∘ dy W₂ᵀ)",
             eq=Eq(_backward(ffn_relu, w_1, _BACK), explicit(x.T * _relu_dh, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
        Step(claim="backward to the second layer: dW₂ = ReLU(h)ᵀ dy",
             eq=Eq(_backward(ffn_relu, w_2, _BACK), explicit(Relu(h).T * dy, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
        Step(claim="backward to the biases: db₁ = 1ᵀ (H(h) ∘ dy W₂ᵀ), the column sums over positions",
             eq=Eq(_backward(ffn_relu, b_1, _BACK), explicit(ones.T * _relu_dh, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
    ),
    gradients=(
        Gradient(wrt="x", expr=_relu_dh * w_1.T, cotangent="dy"),
        Gradient(wrt="w_1", expr=x.T * _relu_dh, cotangent="dy"),
    ),
    notes=("Two affine maps with a ReLU between them, applied with the same weights at every "
           "position: the input of width D is lifted to a hidden width F (4D in the paper), cut at "
           "zero, and projected back to D. In the backward pass the ReLU becomes a 0/1 gate H(h): "
           "gradient flows only through the hidden units that were active."),
    source=VASWANI,
))

# --- GELU ---------------------------------------------------------------------------------

xg = MatrixSymbol("x", T, F)
yg = MatrixSymbol("y", T, F)
dyg = MatrixSymbol("dy", T, F)
z = sp.Symbol("z", real=True)
_s = sp.Symbol("s", real=True)
u = sp.Symbol("u", positive=True)
_gelu = Gelu.scalar
_Z = Normal("Z", 0, 1)
_dgelu = NormalCdf(xg) + HadamardProduct(xg, NormalPdf(xg))

register(Derivation(
    id="feedforward.gelu",
    week=9,
    title="GELU(x) = x Φ(x) = x/2 (1 + erf(x/√2)), with GELU'(x) = Φ(x) + x φ(x)",
    statement=Eq(yg, Gelu(xg), evaluate=False),
    implementation="model.feedforward.gelu",
    shapes={"x": "TF", "y": "TF", "dy": "TF"},
    sizes={"T": 3, "F": 4},
    steps=(
        Step(claim=("x/2 (1 + erf(x/√2)) is x times Φ(x) = P(Z ≤ x) for Z ~ N(0, 1): half the mass below 0 "
                    "plus the integral of the density φ from 0 to x"),
             eq=Eq(z * (sp.Rational(1, 2) + sp.Integral(density(_Z)(_s), (_s, 0, z))), _gelu(z), evaluate=False),
             method="doit"),
        Step(claim="Φ' is the standard normal density φ(x) = e^{−x²/2}/√(2π)",
             eq=Eq(sp.Derivative(NormalCdf.scalar(z), z), NormalPdf.scalar(z), evaluate=False), method="doit"),
        Step(claim="the derivative: GELU'(x) = Φ(x) + x φ(x)",
             eq=Eq(sp.Derivative(_gelu(z), z), NormalCdf.scalar(z) + z * NormalPdf.scalar(z), evaluate=False),
             method="doit"),
        Step(claim="GELU(x) − GELU(−x) = x: the odd part of GELU is x/2, like ReLU's",
             eq=Eq(_gelu(z) - _gelu(-z), z, evaluate=False)),
        Step(claim="as x → +∞, GELU(x) − x → 0: GELU becomes the identity",
             eq=Eq(Limit(_gelu(z) - z, z, oo), 0, evaluate=False), method="doit"),
        Step(claim="as x → −∞, GELU(x) → 0: GELU becomes zero, like ReLU",
             eq=Eq(Limit(_gelu(z), z, -oo), 0, evaluate=False), method="doit"),
        Step(claim="for u > 0: GELU(u) − ReLU(u) = −u Φ(−u)",
             eq=Eq(_gelu(u) - sp.Max(0, u), -u * NormalCdf.scalar(-u), evaluate=False)),
        Step(claim="and GELU(−u) − ReLU(−u) = −u Φ(−u): GELU − ReLU = −|x| Φ(−|x|), an even dip near 0",
             eq=Eq(_gelu(-u) - sp.Max(0, -u), -u * NormalCdf.scalar(-u), evaluate=False)),
    ),
    gradients=(
        Gradient(wrt="x", expr=HadamardProduct(_dgelu, dyg), cotangent="dy"),
    ),
    notes=("GELU weights its input by the probability Φ(x) that a standard normal variable is "
           "below it: a smooth ReLU that is 0 far to the left and the identity far to the right, "
           "and that dips slightly below zero (minimum ≈ −0.17 near x ≈ −0.75). This is the exact "
           "erf form; GPT-2's code uses a tanh approximation of it."),
    source=HENDRYCKS,
))

# --- GELU FFN -------------------------------------------------------------------------------

_gelu_dh = HadamardProduct(NormalCdf(h) + HadamardProduct(h, NormalPdf(h)), dy * w_2.T)

register(Derivation(
    id="feedforward.gelu_ffn",
    week=9,
    title="The GELU feed-forward network GELU(x W₁ + b₁) W₂ + b₂",
    statement=Eq(y, ffn_gelu, evaluate=False),
    implementation="model.feedforward.feed_forward_gelu",
    shapes={"x": "TD", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD", "dy": "TD"},
    sizes=FFN_SIZES,
    steps=(
        Step(claim="backward to the input: dx = ((Φ(h) + h ∘ φ(h)) ∘ dy W₂ᵀ) W₁ᵀ",
             eq=Eq(_backward(ffn_gelu, x, _BACK), explicit(_gelu_dh * w_1.T, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
        Step(claim="backward to the second layer: dW₂ = GELU(h)ᵀ dy",
             eq=Eq(_backward(ffn_gelu, w_2, _BACK), explicit(Gelu(h).T * dy, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
    ),
    gradients=(
        Gradient(wrt="x", expr=_gelu_dh * w_1.T, cotangent="dy"),
        Gradient(wrt="w_2", expr=Gelu(h).T * dy, cotangent="dy"),
    ),
    notes=("The same network with GELU in place of ReLU, as in BERT and GPT-2. The hard 0/1 gate "
           "of the ReLU backward pass becomes the smooth gate Φ(h) + h φ(h), so units just below "
           "zero still pass some gradient."),
    source=HENDRYCKS + '; Devlin et al., "BERT", NAACL 2019',
))

# --- GELU, tanh approximation -----------------------------------------------------------------

_w = sp.Symbol("w", real=True)
_a = sp.Symbol("a", real=True)
_gelu_tanh = GeluTanh.scalar
_sigmoid = lambda v: 1 / (1 + exp(-v))  # noqa: E731  the logistic function σ


def _gate(x, cubic):
    """½(1 + tanh(√(2/π)(x + a x³))): the approximation of Φ(x) that GELU_tanh uses, with cubic coefficient a."""
    return (1 + sp.tanh(_gelu_tanh_inner(x, cubic))) / 2


def _at_zero(expr, order):
    """The ``order``-th derivative of ``expr`` in z at z = 0, unevaluated until the step is proved."""
    return sp.Subs(sp.Derivative(expr, (z, order)), z, 0)


#: (4 − π)/(6π) ≈ 0.045540: the cubic coefficient that would match Φ to third order at 0
_TAYLOR_CUBIC = (4 - pi) / (6 * pi)

register(Derivation(
    id="feedforward.gelu_tanh",
    week=9,
    title="GELU_tanh(x) = x/2 (1 + tanh(√(2/π)(x + 0.044715 x³))) = x σ(2√(2/π)(x + 0.044715 x³))",
    statement=Eq(yg, GeluTanh(xg), evaluate=False),
    implementation="model.feedforward.gelu_tanh",
    shapes={"x": "TF", "y": "TF", "dy": "TF"},
    sizes={"T": 3, "F": 4},
    steps=(
        Step(claim=("½(1 + tanh w) = σ(2w) = 1/(1 + e^{−2w}), with tanh w written as (eʷ − e⁻ʷ)/(eʷ + e⁻ʷ): "
                    "the tanh gate is a logistic gate"),
             eq=Eq(((1 + sp.tanh(_w)) / 2).rewrite(exp), _sigmoid(2 * _w), evaluate=False)),
        Step(claim="so GELU_tanh(x) = x σ(2√(2/π)(x + 0.044715 x³)), the form the code evaluates",
             eq=Eq(_gelu_tanh(z).rewrite(exp), z * _sigmoid(2 * _gelu_tanh_inner(z)), evaluate=False)),
        Step(claim=("the derivative: GELU_tanh'(x) = ½(1 + tanh u) + x/2 (1 − tanh² u) √(2/π)(1 + 3·0.044715 x²), "
                    "u = √(2/π)(x + 0.044715 x³)"),
             eq=Eq(sp.Derivative(_gelu_tanh(z), z), GeluTanhPrime.scalar(z), evaluate=False), method="doit"),
        Step(claim="the gate matches Φ to first order at 0: its slope there is φ(0) = 1/√(2π), which fixes √(2/π)",
             eq=Eq(_at_zero(_gate(z, _a), 1), _at_zero(NormalCdf.scalar(z), 1), evaluate=False), method="doit"),
        Step(claim="and to second order whatever a (both gates minus ½ are odd)",
             eq=Eq(_at_zero(_gate(z, _a) - NormalCdf.scalar(z), 2), 0, evaluate=False), method="doit"),
        Step(claim=("the third derivatives at 0 differ by 6(a − (4 − π)/(6π))/√(2π): a Taylor match would need "
                    "a = (4 − π)/(6π) ≈ 0.04554, not 0.044715"),
             eq=Eq(_at_zero(_gate(z, _a) - NormalCdf.scalar(z), 3), 6 * (_a - _TAYLOR_CUBIC) / sqrt(2 * pi),
                   evaluate=False), method="doit"),
        Step(claim="GELU_tanh(x) − GELU_tanh(−x) = x: the same odd part x/2 as the exact GELU",
             eq=Eq(_gelu_tanh(z) - _gelu_tanh(-z), z, evaluate=False)),
        Step(claim=("as x → −∞, GELU_tanh(x) → 0, like ReLU; with the odd part, GELU_tanh(x) − x → 0 "
                    "as x → +∞"),
             eq=Eq(Limit(_gelu_tanh(z), z, -oo), 0, evaluate=False), method="doit"),
    ),
    gradients=(
        Gradient(wrt="x", expr=HadamardProduct(GeluTanhPrime(xg), dyg), cotangent="dy"),
    ),
    notes=("GELU with the normal CDF Φ(x) replaced by ½(1 + tanh(√(2/π)(x + 0.044715 x³))), the form in "
           "GPT-2's released code and weights. The linear coefficient √(2/π) makes the gate's slope at 0 "
           "equal to Φ'(0); the cubic 0.044715 is not the Taylor value (4 − π)/(6π) ≈ 0.04554 but a fit "
           "over the whole line: measured on a grid of step 10⁻⁵ over [−10, 10] (float64), 0.044715 is "
           "the coefficient that minimises max |gate − Φ| (1.789·10⁻⁴; the Taylor value gives 3.13·10⁻⁴), "
           "and max |GELU_tanh − GELU| = 4.73·10⁻⁴, at |x| ≈ 2.70. The difference is even, since both "
           "have odd part x/2. A model trained with one form should be run with the same form."),
    source=HENDRYCKS + "; Radford et al., GPT-2, 2019: the gelu function of the released code",
))

# --- GELU_tanh FFN ------------------------------------------------------------------------------

ffn_gelu_tanh = GeluTanh(h) * w_2 + ones * b_2
_gelu_tanh_dh = HadamardProduct(GeluTanhPrime(h), dy * w_2.T)

register(Derivation(
    id="feedforward.gelu_tanh_ffn",
    week=9,
    title="The GPT-2 feed-forward network GELU_tanh(x W₁ + b₁) W₂ + b₂",
    statement=Eq(y, ffn_gelu_tanh, evaluate=False),
    implementation="model.feedforward.feed_forward_gelu_tanh",
    shapes={"x": "TD", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD", "dy": "TD"},
    sizes=FFN_SIZES,
    steps=(
        Step(claim="backward to the input: dx = (GELU_tanh'(h) ∘ dy W₂ᵀ) W₁ᵀ",
             eq=Eq(_backward(ffn_gelu_tanh, x, _BACK), explicit(_gelu_tanh_dh * w_1.T, _BACK), evaluate=False),
             sizes=_BACK, method="expand"),
    ),
    gradients=(
        Gradient(wrt="x", expr=_gelu_tanh_dh * w_1.T, cotangent="dy"),
    ),
    notes=("The FFN of GPT-2 as released: the same network as feedforward.gelu_ffn with the tanh "
           "approximation in place of the exact GELU. Loading GPT-2's weights into the erf form changes "
           "every hidden activation by up to 4.7·10⁻⁴."),
    source='Radford et al., "Language Models are Unsupervised Multitask Learners", 2019, and its released code',
))

# --- position-wise ----------------------------------------------------------------------------

_t, _d, _j, _f = sp.symbols("t d j f", integer=True, nonnegative=True)
_row_form = sp.FunctionMatrix(T, D, sp.Lambda((_t, _d), sp.Sum(
    sp.Max(0, sp.Sum(x[_t, _j] * w_1[_j, _f], (_j, 0, D - 1)) + b_1[0, _f]) * w_2[_f, _d],
    (_f, 0, F - 1)) + b_2[0, _d]))

_POS = {"T": 3, "D": 2, "F": 2}
_x3 = explicit(x, _POS)
_w1, _w2, _b1, _b2 = (explicit(m, _POS) for m in (w_1, w_2, b_1, b_2))


def _ffn_rows(rows: Matrix) -> Matrix:
    """The ReLU FFN of an explicit matrix of rows, at the sizes of ``_POS``."""
    hidden = rows * _w1 + sp.ones(rows.rows, 1) * _b1
    return hidden.applyfunc(lambda e: sp.Max(0, e, evaluate=False)) * _w2 + sp.ones(rows.rows, 1) * _b2


_P = Matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0]])   # a cyclic permutation of 3 positions
_swap = Matrix([[0, 1, 0], [1, 0, 0], [0, 0, 1]])

register(Derivation(
    id="feedforward.position_wise",
    week=9,
    title="Position-wise: row t of FFN(x) is FFN(x_t), so FFN(P x) = P FFN(x)",
    statement=Eq(y, _row_form, evaluate=False),
    implementation="model.feedforward.feed_forward",
    shapes={"x": "TD", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "TD"},
    sizes=FFN_SIZES,
    steps=(
        Step(claim="the matrix form max(0, x W₁ + 1 b₁) W₂ + 1 b₂ is this entry form",
             eq=Eq(ffn_relu, _row_form, evaluate=False), sizes={"T": 2, "D": 2, "F": 2}, method="expand"),
        Step(claim="row t of FFN(x) equals FFN applied to row t alone (here t = 1 of 3)",
             eq=Eq(_ffn_rows(_x3)[1, :], _ffn_rows(_x3[1, :]), evaluate=False), method="expand"),
        Step(claim="a cyclic shift P of the positions commutes with the FFN: FFN(P x) = P FFN(x)",
             eq=Eq(_ffn_rows(_P * _x3), _P * _ffn_rows(_x3), evaluate=False), method="expand"),
        Step(claim="and so does a swap of two positions, since P 1 = 1 for every permutation",
             eq=Eq(_ffn_rows(_swap * _x3), _swap * _ffn_rows(_x3), evaluate=False), method="expand"),
    ),
    notes=("Entry (t, d) of the output involves row t of x only: the FFN mixes the features of one "
           "position and never looks at another position. Reordering the positions therefore "
           "reorders the outputs in the same way, and the whole sequence can be processed as a "
           "batch of independent rows. Mixing across positions is attention's job."),
    source=VASWANI,
))

# --- parameter count ---------------------------------------------------------------------------

N = sp.Symbol("N", integer=True, positive=True)
_n_ffn = 2 * D * F + F + D
_params = (w_1, b_1, w_2, b_2)
_entries = sp.Add(*(sp.Mul(*m.shape, evaluate=False) for m in _params), evaluate=False)
_SMALL = {"D": 3, "F": 5}
_counted = sum(len(explicit(m, _SMALL)) for m in _params)   # entries of the explicit matrices

register(Derivation(
    id="feedforward.param_count",
    week=9,
    title="The FFN has N = 2DF + F + D parameters",
    statement=Eq(N, _n_ffn, evaluate=False),
    implementation="model.feedforward.param_count",
    shapes={"N": ""},
    sizes={"D": 8, "F": 32},
    size_args={"d_model": "D", "d_ff": "F"},
    steps=(
        Step(claim="N counts the entries of W₁ [D, F], b₁ [F], W₂ [F, D] and b₂ [D]",
             eq=Eq(_entries, _n_ffn, evaluate=False), method="expand"),
        Step(claim="at D = 3, F = 5 the explicit matrices W₁, b₁, W₂, b₂ have 2·3·5 + 5 + 3 = 38 entries",
             eq=Eq(sp.Integer(_counted), _n_ffn, evaluate=False), sizes=_SMALL),
        Step(claim="with the paper's F = 4D, N = 8D² + 5D",
             eq=Eq(sp.Subs(_n_ffn, F, 4 * D), 8 * D ** 2 + 5 * D, evaluate=False), method="doit"),
        Step(claim=("next to attention's 4D² + 4D (W_Q, W_K, W_V, W_O and their biases), the FFN "
                    "holds 2/3 of a layer's parameters as D grows"),
             eq=Eq(Limit((_n_ffn / (_n_ffn + 4 * D ** 2 + 4 * D)).subs(F, 4 * D), D, oo),
                   sp.Rational(2, 3), evaluate=False), method="doit"),
    ),
    notes=("Each weight matrix has D·F entries and each bias one entry per output unit. With "
           "D = 512 and F = 2048 (the base model of the paper) that is 2,099,712 parameters per layer."),
    source=VASWANI,
))
