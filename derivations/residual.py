"""Residual connections (week 11): y = x + F(x) and its Jacobian I + ∂F/∂x.

Mirrors ``model/residual.py``.  To be concrete the sublayer ``F`` is the ReLU
feed-forward network of week 9, applied at one position: ``x`` is a single row of
width ``D`` (a ``1 x D`` row here, a 1-D array ``[D]`` in the model), so the full
Jacobian is a ``D x D`` matrix whose rows are the outputs (the layout of
``jax.jacfwd``).  With row vectors, ``y = x W`` has Jacobian ``Wᵀ``, which is why
the transposes appear in ``I + W₂ᵀ diag(H(x W₁ + b₁)) W₁ᵀ``.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Identity, Matrix, MatrixSymbol

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import D, F, Relu, UnitStep, explicit, jacobian, row

HE = 'He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, equation (1)'
HE_IDENTITY = 'He, Zhang, Ren and Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016, equation (5)'

x = row("x", D)
y = row("y", D)
w_1 = MatrixSymbol("w_1", D, F)
w_2 = MatrixSymbol("w_2", F, D)
b_1 = row("b_1", F)
b_2 = row("b_2", D)

#: the sublayer: the ReLU FFN at one position
sublayer = Relu(x * w_1 + b_1) * w_2 + b_2
#: its Jacobian ∂F/∂x (rows = outputs); ReLU'(z) is the unit step H(z), with H(0) = 0
J_F = w_2.T * sp.DiagMatrix(UnitStep(x * w_1 + b_1).T) * w_1.T


def _kink_at_zero(expr):
    """Take ReLU'(0) = 0 as ``jax.nn.relu`` does: SymPy differentiates Max(0, z) to Heaviside(z) with H(0) = 1/2."""
    return expr.replace(lambda a: isinstance(a, sp.Heaviside), lambda a: sp.Heaviside(a.args[0], 0))


# Step 1: any differentiable sublayer, at D = 3, as three undefined functions of the inputs.
_x3 = explicit(x, {"D": 3})
_f3 = Matrix([[sp.Function(f"f_{j}")(*_x3) for j in range(3)]])

# Step 2: the FFN sublayer, at D = 2, F = 3.
_small = {"D": 2, "F": 3}
_y_small = explicit(x + sublayer, _small)

# Step 3: three stacked residual layers; J_l is the Jacobian of sublayer l at its own input.
_Js = [MatrixSymbol(f"J_{n}", 2, 2) for n in (1, 2, 3)]
_I2 = Identity(2)
_J1, _J2, _J3 = _Js

register(Derivation(
    id="residual.connection",
    week=11,
    title="The residual connection y = x + F(x) and its Jacobian I + ∂F/∂x",
    statement=Eq(y, x + sublayer),
    implementation="model.residual.residual_feed_forward",
    shapes={"x": "D", "w_1": "DF", "b_1": "F", "w_2": "FD", "b_2": "D", "y": "D"},
    sizes={"D": 4, "F": 6},
    steps=(
        Step(claim="for any differentiable sublayer F the Jacobian of x + F(x) is I + ∂F/∂x (D = 3)",
             eq=Eq(jacobian(_x3 + _f3, _x3), sp.eye(3) + jacobian(_f3, _x3), evaluate=False)),
        Step(claim=("for the ReLU FFN, ∂F/∂x = W₂ᵀ diag(H(x W₁ + b₁)) W₁ᵀ, so the residual layer has "
                    "Jacobian I + W₂ᵀ diag(H(x W₁ + b₁)) W₁ᵀ (rows = outputs; D = 2, F = 3)"),
             eq=Eq(_kink_at_zero(jacobian(_y_small, explicit(x, _small))),
                   explicit(Identity(D) + J_F, _small), evaluate=False),
             sizes=_small, method="expand"),
        Step(claim=("through three residual layers the chain rule gives (I + J₃)(I + J₂)(I + J₁): the "
                    "identity path I, one term per layer, and the products of the longer paths"),
             eq=Eq((_I2 + _J3) * (_I2 + _J2) * (_I2 + _J1),
                   _I2 + _J1 + _J2 + _J3 + _J2 * _J1 + _J3 * _J1 + _J3 * _J2 + _J3 * _J2 * _J1,
                   evaluate=False),
             sizes={}, method="expand"),
    ),
    gradients=(
        Gradient(wrt="x", expr=Identity(D) + J_F),
    ),
    notes=("A residual connection adds the sublayer's output to its input, so the sublayer only has to "
           "learn a correction. Its Jacobian is I + ∂F/∂x: the gradient reaching x always contains the "
           "gradient at y unchanged, whatever F does, and through a stack of L such layers the product "
           "of (I + J_l) keeps a path made of the identity alone. That is why deep transformers train."),
    source=f"{HE}; {HE_IDENTITY}",
))
