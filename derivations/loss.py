"""The language-modelling objective (week 1): next-token cross-entropy and perplexity.

Mirrors ``model/loss.py``.  The logits ``[T, V]`` score every vocabulary entry at
each of ``T`` positions; the integer targets ``[T]`` (a ``1 x T`` row here) name
the token that actually comes next.  A target indexes a column of the logits, so
the statement uses ``logits[t, targets[0, t]]`` directly.
"""

from __future__ import annotations

import sympy as sp
from sympy import (
    Eq,
    KroneckerDelta,
    Limit,
    Matrix,
    MatrixSymbol,
    OneMatrix,
    exp,
    log,
    oo,
)

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import Softmax, T, V, _MatrixFunction, explicit, row

SHANNON = 'Shannon, "Prediction and Entropy of Printed English", Bell System Technical Journal, 1951'
RADFORD = 'Radford et al., "Improving Language Understanding by Generative Pre-Training", 2018, equation (1)'
GOODFELLOW = "Goodfellow, Bengio and Courville, Deep Learning, sections 6.2.2.3 and 12.4"


class OneHot(_MatrixFunction):
    r"""One-hot rows of integer targets: :math:`\operatorname{onehot}(y)_{tv} = \delta_{v, y_t}`, shape ``[T, V]``.

    ``OneHot(y, V)`` takes a ``1 x T`` row of class indices and the number of classes.
    """

    _name = "onehot"

    def __new__(cls, targets, n_classes):
        return super().__new__(cls, sp.sympify(targets), sp.sympify(n_classes))

    @property
    def shape(self):
        targets, n_classes = self.args
        return (targets.shape[1], n_classes)

    def _entry(self, i, j, **kwargs):
        return KroneckerDelta(j, self.args[0][0, i])


logits = MatrixSymbol("logits", T, V)
targets = row("targets", T)
loss = sp.Symbol("loss")
ppl = sp.Symbol("ppl")
_t = sp.Symbol("t", integer=True)

#: L = (1/T) Σ_t −log softmax(z_t)_{y_t}
cross_entropy = -sp.Sum(log(Softmax(logits)[_t, targets[0, _t]]), (_t, 0, T - 1)) / T

# Steps on one row of V = 3 real logits (real, so that log(exp(z)) = z).
_z = Matrix([[sp.Symbol(f"z_{v}", real=True) for v in range(3)]])
_p = explicit(Softmax(_z), {})
_lse = log(sum(exp(zv) for zv in _z))
_c = sp.Symbol("c", real=True)
_uniform = {logits: _c * OneMatrix(T, V)}

register(Derivation(
    id="loss.cross_entropy",
    week=1,
    title="Next-token cross-entropy (1/T) Σ_t −log softmax(z_t)_{y_t} and its gradient (softmax(z) − onehot(y))/T",
    statement=Eq(loss, cross_entropy),
    implementation="model.loss.cross_entropy",
    shapes={"logits": "TV", "targets": "T", "loss": ""},
    sizes={"T": 3, "V": 5},
    domains={"targets": "index:V"},
    steps=(
        Step(claim="−log softmax(z)_y = logsumexp(z) − z_y, for every target y (V = 3)",
             eq=Eq(Matrix([[-log(_p[0, y]) for y in range(3)]]),
                   Matrix([[_lse - _z[0, y] for y in range(3)]]), evaluate=False), method="expand"),
        Step(claim="−log softmax(z)_y = log(1 + Σ_{v≠y} e^{z_v − z_y}) ≥ log 1 = 0: the loss is never negative",
             eq=Eq(Matrix([[-log(_p[0, y]) for y in range(3)]]),
                   Matrix([[log(1 + sum(exp(_z[0, v] - _z[0, y]) for v in range(3) if v != y))
                            for y in range(3)]]), evaluate=False)),
        Step(claim="the gradient of −log softmax(z)_y with respect to z is softmax(z) − onehot(y) (row y, V = 3)",
             eq=Eq(Matrix(3, 3, lambda y, v: sp.diff(-log(_p[0, y]), _z[0, v])),
                   sp.ones(3, 1) * _p - sp.eye(3), evaluate=False)),
        Step(claim="uniform logits (every z_tv = c) give the loss log V, whatever the targets",
             eq=Eq(cross_entropy.xreplace(_uniform), log(V), evaluate=False), method="doit"),
    ),
    gradients=(
        Gradient(wrt="logits", expr=(Softmax(logits) - OneHot(targets, V)) / T),
    ),
    notes=("A language model turns each position's logits into a distribution over the next token with "
           "a softmax; the loss is the average surprise −log p of the tokens that really came next. "
           "It is 0 only for a certain, correct prediction, and log V for a model that knows nothing. "
           "Its gradient is simply predicted minus observed: softmax(z) − onehot(y), averaged over positions."),
    source=f"{RADFORD}; {GOODFELLOW}",
))

# --- perplexity -------------------------------------------------------------------------------

_q1, _q2 = sp.symbols("p_1 p_2", positive=True)
_big = sp.Symbol("c", positive=True)
_certain = Matrix([[_big, 0, 0]])

register(Derivation(
    id="loss.perplexity",
    week=1,
    title="Perplexity exp(L): the effective number of choices per token",
    statement=Eq(ppl, exp(cross_entropy)),
    implementation="model.loss.perplexity",
    shapes={"logits": "TV", "targets": "T", "ppl": ""},
    sizes={"T": 3, "V": 5},
    domains={"targets": "index:V"},
    steps=(
        Step(claim="uniform logits give perplexity V: the model is choosing among all V tokens",
             eq=Eq(exp(cross_entropy).xreplace(_uniform), V, evaluate=False), method="doit"),
        Step(claim="exp of the mean of −log p is the geometric mean of 1/p (T = 2)",
             eq=Eq(exp(-(log(_q1) + log(_q2)) / 2), 1 / sp.sqrt(_q1 * _q2), evaluate=False)),
        Step(claim="as the target's logit grows the prediction becomes certain and the perplexity falls to 1",
             eq=Eq(Limit(exp(-log(explicit(Softmax(_certain), {})[0, 0])), _big, oo), 1, evaluate=False),
             method="doit"),
    ),
    notes=("Perplexity undoes the log of the cross-entropy: a perplexity of k means the model is, on "
           "average, as unsure as if it chose uniformly among k tokens. It runs from 1 (always right and "
           "certain) to V (uniform guessing) and beyond (confidently wrong)."),
    source=f"{SHANNON}; {GOODFELLOW}",
))
