"""Layer normalisation (week 11): zero mean, unit variance, invariances and the Jacobian.

Mirrors ``model/normalization.py``.  The statement normalises one row ``x`` of
width ``D`` (a ``1 x D`` row here, a 1-D array ``[D]`` in the model), so the
stated Jacobian is the full ``D x D`` matrix; the model applies the same map to
every row of ``[..., D]``.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Identity, OneMatrix, ZeroMatrix

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import D, LayerNorm, explicit, jacobian, row

BA = 'Ba, Kiros and Hinton, "Layer Normalization", arXiv:1607.06450, 2016, equation (4)'

x = row("x", D)
y = row("y", D)
gamma = row("gamma", D)
beta = row("beta", D)
eps = sp.Symbol("eps", positive=True)

# The row statistics written out, for the stated Jacobian (the same sums LayerNorm uses).
_l, _m = sp.symbols("l m", integer=True)
mu = sp.Sum(x[0, _l], (_l, 0, D - 1)) / D
var = sp.Sum((x[0, _m] - mu) ** 2, (_m, 0, D - 1)) / D
sigma = sp.sqrt(var + eps)
# Built with the MatMul/MatAdd constructors, not * and +: those call doit(), which tries to
# evaluate the symbolic sums over D (seconds, for no gain).
x_hat = sp.MatMul(1 / sigma, sp.MatAdd(x, sp.MatMul(-mu, OneMatrix(1, D))))
#: d x_hat / d x for one row: (I − 11ᵀ/D − x̂ᵀx̂/D)/σ, rows = outputs (x̂ is a row, so x̂ᵀx̂ is the outer product)
J_hat = sp.MatMul(1 / sigma, sp.MatAdd(Identity(D), sp.MatMul(-1 / D, OneMatrix(D, D)),
                                       sp.MatMul(-1 / D, sp.Transpose(x_hat), x_hat)))
#: the affine version scales output row j by gamma_j
J = sp.MatMul(sp.DiagMatrix(sp.Transpose(gamma)), J_hat)

_ones, _zeros = OneMatrix(1, D), ZeroMatrix(1, D)
_c = sp.Symbol("c", real=True)
_a = sp.Symbol("a", positive=True)
_s = sp.Symbol("sigma", positive=True)
_xhat0 = LayerNorm(x, _ones, _zeros, 0)

# The Jacobian step at D = 3.  Differentiating first and then writing eps = σ² − var(x)
# (σ > 0 a free symbol: a change of variables, one σ for every eps > −var) removes the
# square root, so the identity becomes one of rational functions that expands quickly.
_s3 = {"D": 3}
_x3 = explicit(x, _s3)
_var3 = explicit(var, _s3)
_J_lhs = jacobian(explicit(LayerNorm(x, gamma, beta, eps), _s3), _x3).subs(eps, _s ** 2 - _var3)
_J_rhs = explicit(J, _s3).subs(eps, _s ** 2 - _var3)

register(Derivation(
    id="normalization.layer_norm",
    week=11,
    title="Layer normalisation γ ∘ (x − μ)/√(σ² + ε) + β: zero mean, unit variance, invariances, Jacobian",
    statement=Eq(y, LayerNorm(x, gamma, beta, eps)),
    implementation="model.normalization.layer_norm",
    shapes={"x": "D", "gamma": "D", "beta": "D", "y": "D"},
    sizes={"D": 4},
    constants={"eps": 1e-5},
    steps=(
        Step(claim="before the affine map (γ = 1, β = 0) the normalised row has zero mean",
             eq=Eq(LayerNorm(x, _ones, _zeros, eps) * OneMatrix(D, 1), ZeroMatrix(1, 1), evaluate=False),
             sizes={"D": 4}, method="expand"),
        Step(claim="and, with ε = 0, unit (biased) variance: the mean of its squares is 1",
             eq=Eq(_xhat0 * _xhat0.T / D, OneMatrix(1, 1), evaluate=False), sizes={"D": 4}),
        Step(claim="adding a constant c to every input leaves the output unchanged",
             eq=Eq(LayerNorm(x + _c * OneMatrix(1, D), gamma, beta, eps), LayerNorm(x, gamma, beta, eps),
                   evaluate=False), sizes={"D": 3}),
        Step(claim="with ε = 0, scaling the input by a > 0 leaves the output unchanged",
             eq=Eq(LayerNorm(_a * x, gamma, beta, 0), LayerNorm(x, gamma, beta, 0), evaluate=False),
             sizes={"D": 3}),
        Step(claim=("the Jacobian is diag(γ)(I − 11ᵀ/D − x̂ᵀx̂/D)/σ with σ = √(var + ε), "
                    "x̂ = (x − μ)/σ (checked at D = 3, writing ε = σ² − var)"),
             eq=Eq(_J_lhs, _J_rhs, evaluate=False), method="expand"),
    ),
    gradients=(
        Gradient(wrt="x", expr=J),
    ),
    notes=("LayerNorm rescales each position's vector to zero mean and unit variance across its D "
           "features, then applies a learned gain γ and bias β. It does not care about a common offset "
           "or (up to ε) a common scale of its input, which keeps activations in a steady range as "
           "layers are stacked. Its Jacobian projects out the mean direction 1 and the direction x̂ "
           "itself, then divides by σ: the gradient never changes the row's mean or its scale."),
    source=BA,
))
