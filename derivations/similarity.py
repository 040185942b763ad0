"""Similarity of vectors (week 5): the dot product and cosine similarity.

Mirrors ``model/similarity.py``.  A vector of width ``D`` is a ``1 x D`` row
(:func:`derivations.symbolic.row`); its entries are ``a[0, j]``.
"""

from __future__ import annotations

import sympy as sp
from sympy import Eq, Matrix, cos, sin, sqrt

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import D, explicit, jacobian, row

a, b, c_row = row("a", D), row("b", D), row("c", D)
_j, _i = sp.symbols("j i", integer=True)


def dot(u, v, n=D):
    r"""The dot product :math:`\sum_{j=0}^{n-1} u_j v_j` of two rows of width ``n``."""
    return sp.Sum(u[0, _j] * v[0, _j], (_j, 0, n - 1))


def cosine(u, v, n=D):
    r""":math:`u \cdot v / (\lVert u\rVert\,\lVert v\rVert)` with :math:`\lVert u\rVert = \sqrt{u \cdot u}`."""
    return dot(u, v, n) / (sqrt(dot(u, u, n)) * sqrt(dot(v, v, n)))


def lagrange(u, v, n=D):
    r"""Lagrange's sum of squares :math:`\tfrac12 \sum_{i,j} (u_i v_j - u_j v_i)^2`.

    It equals :math:`\sum_{i<j} (u_i v_j - u_j v_i)^2`; the double sum over all pairs avoids
    limits that depend on the outer index.
    """
    return sp.Sum((u[0, _i] * v[0, _j] - u[0, _j] * v[0, _i]) ** 2, (_i, 0, n - 1), (_j, 0, n - 1)) / 2


def _at(expr, n, **vectors):
    """``expr`` at width ``D = n`` with the named rows replaced by explicit ``1 x n`` matrices."""
    sized = expr.xreplace({D: sp.Integer(n)})
    table = {sp.MatrixSymbol(name, 1, n): Matrix([list(v)]) for name, v in vectors.items()}
    return explicit(sized.xreplace(table), {})


# --- the dot product --------------------------------------------------------------------------

s = sp.Symbol("s", real=True)
alpha, beta = sp.symbols("alpha beta", real=True)
alpha_s, beta_s = sp.symbols("alpha_s beta_s", real=True)
r, rho = sp.symbols("r rho", positive=True)

register(Derivation(
    id="similarity.dot",
    week=5,
    title="The dot product a·b = Σ_j a_j b_j: symmetric, bilinear, |a·b| ≤ ‖a‖‖b‖",
    statement=Eq(s, dot(a, b)),
    implementation="model.similarity.dot",
    shapes={"a": "D", "b": "D", "s": ""},
    sizes={"D": 5},
    steps=(
        Step(claim="symmetric: a·b = b·a", eq=Eq(dot(a, b), dot(b, a), evaluate=False), sizes={"D": 3}),
        Step(claim="linear in its first argument: (αa + βc)·b = α a·b + β c·b",
             eq=Eq(dot(alpha_s * a + beta_s * c_row, b), alpha_s * dot(a, b) + beta_s * dot(c_row, b),
                   evaluate=False),
             sizes={"D": 3}, method="expand"),
        Step(claim="Lagrange's identity: ‖a‖²‖b‖² − (a·b)² = ½ Σ_{i,j} (a_i b_j − a_j b_i)², a sum of "
                   "squares, hence ≥ 0: the Cauchy-Schwarz inequality |a·b| ≤ ‖a‖‖b‖",
             eq=Eq(dot(a, a) * dot(b, b) - dot(a, b) ** 2, lagrange(a, b), evaluate=False),
             sizes={"D": 3}, method="expand"),
        Step(claim="in the plane, with a = r(cos α, sin α) and b = ρ(cos β, sin β): "
                   "a·b = rρ cos(α − β) = ‖a‖‖b‖ cos θ",
             eq=Eq(_at(dot(a, b), 2, a=(r * cos(alpha), r * sin(alpha)), b=(rho * cos(beta), rho * sin(beta))),
                   r * rho * cos(alpha - beta), evaluate=False),
             method="expand_trig"),
    ),
    gradients=(
        Gradient(wrt="a", expr=b),
        Gradient(wrt="b", expr=a),
    ),
    notes=("The dot product multiplies matching coordinates and adds them up. It is large when the "
           "two vectors are long and point the same way, zero when they are orthogonal, and negative "
           "when they point apart; its gradient with respect to a is b."),
    source="Strang, Introduction to Linear Algebra, 5th ed., section 1.2",
))

# --- cosine similarity ------------------------------------------------------------------------

c = sp.Symbol("c", real=True)
k1, k2 = sp.symbols("k_1 k_2", positive=True)
_cos = cosine(a, b)
_norm2 = dot(a, a) * dot(b, b)
_unit_a, _unit_b = (cos(alpha), sin(alpha)), (cos(beta), sin(beta))
_diff = _at(dot(a - b, a - b), 2, a=_unit_a, b=_unit_b)
_grad_a = b / (sqrt(dot(a, a)) * sqrt(dot(b, b))) - _cos * a / dot(a, a)
_a3 = explicit(row("a", 3), {})

register(Derivation(
    id="similarity.cosine",
    week=5,
    title="Cosine similarity a·b/(‖a‖‖b‖): bounded by ±1, blind to length",
    statement=Eq(c, _cos),
    implementation="model.similarity.cosine_similarity",
    shapes={"a": "D", "b": "D", "c": ""},
    sizes={"D": 4},
    steps=(
        Step(claim="1 − cos² = (‖a‖²‖b‖² − (a·b)²)/(‖a‖²‖b‖²) = ½ Σ_{i,j}(a_i b_j − a_j b_i)² / (‖a‖²‖b‖²), "
                   "a sum of squares over a positive number, so cos² ≤ 1: −1 ≤ cos(a, b) ≤ 1",
             eq=Eq(1 - _cos ** 2, lagrange(a, b) / _norm2, evaluate=False), sizes={"D": 3}),
        Step(claim="scaling a by k₁ > 0 and b by k₂ > 0 leaves the cosine unchanged",
             eq=Eq(cosine(k1 * a, k2 * b), _cos, evaluate=False), sizes={"D": 3}),
        Step(claim="reversing a reverses the sign: cos(−a, b) = −cos(a, b)",
             eq=Eq(cosine(-a, b), -_cos, evaluate=False), sizes={"D": 3}),
        Step(claim="law of cosines: ‖a − b‖² = ‖a‖² + ‖b‖² − 2‖a‖‖b‖ cos(a, b)",
             eq=Eq(dot(a - b, a - b), dot(a, a) + dot(b, b) - 2 * sqrt(dot(a, a)) * sqrt(dot(b, b)) * _cos,
                   evaluate=False),
             sizes={"D": 3}, method="expand"),
        Step(claim="for unit vectors a = (cos α, sin α), b = (cos β, sin β): ‖a − b‖² = 2 − 2 cos(a, b), "
                   "and cos(a, b) = cos(α − β), the cosine of the angle between them",
             eq=Eq(Matrix([[_diff, _at(_cos, 2, a=_unit_a, b=_unit_b)]]),
                   Matrix([[2 - 2 * _at(_cos, 2, a=_unit_a, b=_unit_b), cos(alpha - beta)]]), evaluate=False),
             method="trigsimp"),
        Step(claim="the gradient is ∂cos/∂a = b/(‖a‖‖b‖) − cos(a, b) a/‖a‖²",
             eq=Eq(jacobian(Matrix([[_at(_cos, 3)]]), _a3), _at(_grad_a, 3), evaluate=False)),
        Step(claim="and it is orthogonal to a (∂cos/∂a · a = 0), as it must be for a function of "
                   "the direction of a only",
             eq=Eq(_grad_a * a.T, sp.ZeroMatrix(1, 1), evaluate=False), sizes={"D": 3}),
    ),
    gradients=(
        Gradient(wrt="a", expr=_grad_a),
    ),
    notes=("Cosine similarity compares directions only: it is the dot product of the two vectors "
           "scaled to unit length, the cosine of the angle between them. Word embeddings are "
           "compared this way. For a zero vector the ratio is undefined; the implementation "
           "returns 0 there, and the numeric check never samples one."),
    source="Manning, Raghavan and Schütze, Introduction to Information Retrieval, 2008, section 6.3.1",
))
