"""SymPy building blocks shared by every derivation: axis letters and matrix functions.

The statements in this package are written with ``MatrixSymbol`` operands whose
shapes are the axis letters of the legend (``T``, ``S``, ``D``, ...), so they read
like the paper.  The functions a transformer needs beyond matrix algebra
(row-wise softmax, elementwise ReLU/GELU, LayerNorm, head concatenation) are
``MatrixExpr`` subclasses defined here: each one knows its shape, prints as the
paper writes it, and defines its entries with elementary SymPy functions
(``exp``, ``Sum``, ``erf``, ``Max``) in ``_entry``.  That last part is what makes a
statement checkable: :func:`explicit` fixes the axis sizes, expands every matrix
into its entries and leaves a matrix of ordinary scalar expressions that
``lambdify`` turns into float64 NumPy code.  The numeric reference is therefore
computed from the mathematics, not from a second hand-written implementation.

Examples
--------
>>> from sympy import MatrixSymbol, sqrt
>>> q, k = MatrixSymbol("q", T, K), MatrixSymbol("k", S, K)
>>> Softmax(q * k.T / sqrt(K)).shape
(T, S)
>>> explicit(Softmax(q * k.T), {"T": 1, "S": 2, "K": 1})[0, 0]
exp(k[0, 0]*q[0, 0])/(exp(k[0, 0]*q[0, 0]) + exp(k[1, 0]*q[0, 0]))
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy import Dummy, MatrixExpr, MatrixSymbol, Sum, exp, sqrt
from sympy.printing.latex import LatexPrinter
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm

__all__ = [
    "AXES",
    "B", "T", "S", "D", "H", "K", "F", "V", "L", "C",
    "Softmax", "Elementwise", "Relu", "Gelu", "UnitStep", "LayerNorm", "Concat",
    "row", "explicit", "size_symbols", "jacobian", "vjp", "pretty", "latex",
]

#: The axis letters: one legend for SymPy symbols, einsum strings, shapes and names.
AXES: dict[str, str] = {
    "B": "batch",
    "T": "query positions",
    "S": "key/value positions",
    "D": "model width",
    "H": "heads",
    "K": "head width (d_k = D / H)",
    "F": "feed-forward hidden width",
    "V": "vocabulary",
    "L": "layers",
    "C": "classes",
}

B, T, S, D, H, K, F, V, L, C = (sp.Symbol(a, integer=True, positive=True) for a in AXES)


def size_symbols() -> dict[str, sp.Symbol]:
    """The axis letters as SymPy symbols, keyed by letter."""
    return {a: sp.Symbol(a, integer=True, positive=True) for a in AXES}


def row(name: str, n) -> MatrixSymbol:
    """A row vector ``1 x n``: the SymPy form of a 1-D array of length ``n``."""
    return MatrixSymbol(name, 1, n)


class _MatrixFunction(MatrixExpr):
    """A matrix-valued function of matrix arguments, defined entry by entry."""

    _name = "f"

    @property
    def shape(self):
        return self.args[0].shape

    def _latex(self, printer):
        inner = ", ".join(printer._print(a) for a in self.args)
        return r"\operatorname{%s}\left(%s\right)" % (self._name, inner)

    def _sympystr(self, printer):
        return "%s(%s)" % (self._name, ", ".join(printer._print(a) for a in self.args))

    def _pretty(self, printer):
        inner = prettyForm(*printer._print_seq(self.args, delimiter=", ").parens())
        return prettyForm(*inner.left(self._name))

    def _mathml_presentation(self, printer):
        mrow = printer.dom.createElement("mrow")
        mi = printer.dom.createElement("mi")
        mi.setAttribute("mathvariant", "normal")
        mi.appendChild(printer.dom.createTextNode(self._name))
        mrow.appendChild(mi)
        mfenced = printer.dom.createElement("mrow")
        for ch, part in (("(", None), (None, self.args), (")", None)):
            if ch:
                mo = printer.dom.createElement("mo")
                mo.appendChild(printer.dom.createTextNode(ch))
                mfenced.appendChild(mo)
            else:
                for n, a in enumerate(part):
                    if n:
                        comma = printer.dom.createElement("mo")
                        comma.appendChild(printer.dom.createTextNode(","))
                        mfenced.appendChild(comma)
                    mfenced.appendChild(printer._print(a))
        mrow.appendChild(mfenced)
        return mrow


class Softmax(_MatrixFunction):
    r"""Row-wise softmax, optionally masked.

    .. math:: \operatorname{softmax}(X)_{ij} = \frac{e^{X_{ij}}}{\sum_l e^{X_{il}}}

    With a 0/1 mask ``M`` of the same shape, the masked form used by attention is

    .. math:: \operatorname{softmax}(X, M)_{ij} = \frac{M_{ij} e^{X_{ij}}}{\sum_l M_{il} e^{X_{il}}}

    which equals setting masked scores to :math:`-\infty` before the softmax.
    """

    _name = "softmax"

    def __new__(cls, x, mask=None):
        args = (sp.sympify(x),) if mask is None else (sp.sympify(x), sp.sympify(mask))
        return super().__new__(cls, *args)

    def _entry(self, i, j, **kwargs):
        x = self.args[0]
        l = Dummy("l", integer=True)
        n = x.shape[1]
        if len(self.args) == 2:
            m = self.args[1]
            return m[i, j] * exp(x[i, j]) / Sum(m[i, l] * exp(x[i, l]), (l, 0, n - 1))
        return exp(x[i, j]) / Sum(exp(x[i, l]), (l, 0, n - 1))


class Elementwise(_MatrixFunction):
    """A scalar function applied to every entry; subclasses define :meth:`scalar`."""

    @staticmethod
    def scalar(x):
        raise NotImplementedError

    def _entry(self, i, j, **kwargs):
        return self.scalar(self.args[0][i, j])


class Relu(Elementwise):
    r"""Rectified linear unit, :math:`\max(0, x)` entrywise."""

    _name = "ReLU"

    @staticmethod
    def scalar(x):
        return sp.Max(0, x)


class Gelu(Elementwise):
    r"""Gaussian error linear unit (exact form), :math:`x\,\Phi(x) = \tfrac{x}{2}(1 + \operatorname{erf}(x/\sqrt{2}))`."""

    _name = "GELU"

    @staticmethod
    def scalar(x):
        return x / 2 * (1 + sp.erf(x / sqrt(2)))


class UnitStep(Elementwise):
    r"""Heaviside step entrywise, the derivative of ReLU: :math:`\mathbb{1}[x > 0]`."""

    _name = "H"

    @staticmethod
    def scalar(x):
        return sp.Heaviside(x, 0)


class LayerNorm(_MatrixFunction):
    r"""Row-wise layer normalisation with gain and bias (row vectors of width ``D``).

    .. math:: \operatorname{LN}(x)_{tj} = \gamma_j \frac{x_{tj} - \mu_t}{\sqrt{\sigma_t^2 + \epsilon}} + \beta_j,
              \quad \mu_t = \tfrac1D \sum_l x_{tl},\ \sigma_t^2 = \tfrac1D \sum_l (x_{tl} - \mu_t)^2
    """

    _name = "LayerNorm"

    def __new__(cls, x, gamma, beta, eps):
        return super().__new__(cls, *(sp.sympify(a) for a in (x, gamma, beta, eps)))

    def _entry(self, i, j, **kwargs):
        x, gamma, beta, eps = self.args
        n = x.shape[1]
        l = Dummy("l", integer=True)
        mu = Sum(x[i, l], (l, 0, n - 1)) / n
        var = Sum((x[i, l] - mu) ** 2, (l, 0, n - 1)) / n
        return gamma[0, j] * (x[i, j] - mu) / sqrt(var + eps) + beta[0, j]


class Concat(MatrixExpr):
    r"""Concatenation along columns of ``count`` blocks ``block(h)`` of equal shape.

    ``Concat(h, H, head_h)`` is :math:`[\,\mathrm{head}_0 \mid \dots \mid \mathrm{head}_{H-1}\,]`,
    where ``head_h`` is a matrix expression in the index symbol ``h``.
    """

    def __new__(cls, index, count, block):
        return super().__new__(cls, index, sp.sympify(count), block)

    @property
    def shape(self):
        index, count, block = self.args
        return (block.shape[0], block.shape[1] * count)

    def _entry(self, i, j, **kwargs):
        index, count, block = self.args
        width = block.shape[1]
        h, c = divmod(int(j), int(width))
        return block.subs(index, h).as_explicit()[i, c]

    @property
    def free_symbols(self):
        """The head index is bound, as the index of a ``Sum`` is: it is no argument."""
        index, count, block = self.args
        return (block.free_symbols - {index}) | count.free_symbols

    @property
    def bound_symbols(self):
        return [self.args[0]]

    def _mathml_presentation(self, printer):
        index, count, block = self.args
        dom = printer.dom

        def element(tag, *children, text=None, **attrs):
            e = dom.createElement(tag)
            for k, v in attrs.items():
                e.setAttribute(k, v)
            if text is not None:
                e.appendChild(dom.createTextNode(text))
            for c in children:
                e.appendChild(c)
            return e

        name = element("msubsup", element("mi", text="Concat", mathvariant="normal"),
                       element("mrow", printer._print(index), element("mo", text="="), element("mn", text="0")),
                       printer._print(count - 1))
        return element("mrow", name, element("mo", text="("), printer._print(block), element("mo", text=")"))

    def _latex(self, printer):
        index, count, block = self.args
        return r"\operatorname{Concat}_{%s=0}^{%s}\left(%s\right)" % (
            printer._print(index), printer._print(count - 1), printer._print(block))

    def _sympystr(self, printer):
        index, count, block = self.args
        return "Concat(%s, (%s, 0, %s))" % (printer._print(block), index, printer._print(count - 1))

    def _pretty(self, printer):
        index, count, block = self.args
        inner = prettyForm(*printer._print(block).parens())
        label = "Concat[%s=0..%s]" % (index, count - 1)
        return prettyForm(*inner.left(label))


def _substitute_sizes(expr, sizes: Mapping[str, int]):
    table = size_symbols()
    unknown = set(sizes) - set(table)
    if unknown:
        raise ValueError(f"unknown axis letters {sorted(unknown)}; expected letters from {''.join(AXES)}")
    return expr.xreplace({table[a]: sp.Integer(int(n)) for a, n in sizes.items()})


def _is_explicit(e) -> bool:
    return isinstance(e, sp.MatrixBase)


def _unroll(expr):
    """Write every ``Sum`` with integer limits as the plain sum of its terms.

    The values are identical; it spares SymPy's general summation algorithms,
    which are slow on the softmax and LayerNorm sums of an expanded matrix.
    """
    def concrete(a):
        return isinstance(a, Sum) and all(lo.is_Integer and hi.is_Integer for _, lo, hi in a.limits)

    def terms(a):
        out = a.function
        for var, lo, hi in a.limits:
            out = sp.Add(*[out.xreplace({var: sp.Integer(n)}) for n in range(int(lo), int(hi) + 1)])
        return out

    return expr.replace(concrete, terms)


def _expand(e, memo: dict):
    """Bottom-up expansion: every operand is made explicit before its parent, once."""
    if e in memo:
        return memo[e]
    if isinstance(e, MatrixSymbol):
        r = e.as_explicit()
    elif isinstance(e, Concat):
        index, count, block = e.args
        r = sp.ImmutableMatrix(sp.Matrix.hstack(
            *[_expand(block.xreplace({index: sp.Integer(h)}), memo) for h in range(int(count))]))
    elif e.is_Atom or _is_explicit(e) and not e.free_symbols:
        r = e
    else:
        args = [_expand(a, memo) for a in e.args]
        r = e if all(a is b for a, b in zip(args, e.args)) else e.func(*args)
        if isinstance(r, MatrixExpr) and not _is_explicit(r) and all(sp.sympify(n).is_Integer for n in r.shape):
            if isinstance(r, _MatrixFunction):
                r = r.as_explicit().applyfunc(_unroll)
            else:
                done = r.doit()
                r = done if _is_explicit(done) else done.as_explicit()
    memo[e] = r
    return r


def explicit(expr, sizes: Mapping[str, int]):
    """Fix the axis sizes and expand ``expr`` into an explicit matrix (or scalar) of entries.

    Every ``MatrixSymbol`` becomes a matrix of its entries ``q[i, j]``, every
    matrix function is expanded through its ``_entry`` and finite sums are carried out.
    Operands are expanded before the expressions that use them, each once, so
    nested expressions (a softmax inside a matrix product inside a Hadamard
    product) cost what their size says, not exponentially more.
    """
    e = _substitute_sizes(sp.sympify(expr), sizes)
    if isinstance(e, sp.Equality):
        return sp.Eq(explicit(e.lhs, {}), explicit(e.rhs, {}), evaluate=False)
    e = _expand(e, {})
    if _is_explicit(e):
        return sp.ImmutableMatrix(e.applyfunc(lambda a: a.doit()))
    if isinstance(e, MatrixExpr):
        return sp.ImmutableMatrix(e.as_explicit().applyfunc(lambda a: a.doit()))
    return e.doit()


def jacobian(out, wrt) -> sp.Matrix:
    """Jacobian of an explicit matrix ``out`` with respect to an explicit matrix ``wrt``.

    Both are flattened row-major, so the result is ``[size(out), size(wrt)]``:
    the layout ``jax.jacfwd`` gives after reshaping.
    """
    return sp.Matrix(list(out)).jacobian(list(wrt))


def vjp(out, wrt, cotangent) -> sp.Matrix:
    """Gradient of ``sum(out * cotangent)`` with respect to ``wrt``, shaped like ``wrt``.

    All three are explicit matrices; ``out`` and ``cotangent`` have the same shape.
    """
    total = sum(o * c for o, c in zip(out, cotangent))
    return sp.Matrix(wrt.shape[0], wrt.shape[1], [sp.diff(total, w) for w in wrt])


class _PrettyPrinter(PrettyPrinter):
    """SymPy's pretty printer, with slices of symbolic bounds printed as ``w[:, hK:hK + K]``.

    (SymPy's own ``_print_MatrixSlice`` fails on bounds that are expressions.)
    """

    def _print_MatrixSlice(self, m):
        def bounds(s, dim):
            start, stop, step = s
            text = ("" if start == 0 else sp.sstr(start)) + ":" + ("" if stop == dim else sp.sstr(stop))
            return text if step == 1 else f"{text}:{sp.sstr(step)}"

        parent = self._print(m.parent)
        index = f"[{bounds(m.rowslice, m.parent.rows)}, {bounds(m.colslice, m.parent.cols)}]"
        return prettyForm(*parent.right(index))


def pretty(expr) -> str:
    """Unicode pretty printing of a statement, step or gradient (``tfd derive``)."""
    return _PrettyPrinter({"use_unicode": True}).doprint(expr)


class _LatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer, without the sign extraction that evaluates matrix products.

    (SymPy's ``_print_MatMul`` negates the product to look for a leading minus sign,
    which carries out every symbolic sum inside it: seconds for a LayerNorm Jacobian.)
    """

    def _print_MatMul(self, expr):
        parts = []
        for a in expr.args:
            text = self._print(a)
            if isinstance(a, (sp.Add, sp.MatAdd, sp.HadamardProduct)):
                text = r"\left(%s\right)" % text
            parts.append(text)
        return " ".join(parts)


def latex(expr) -> str:
    """LaTeX of a statement, step or gradient (``tfd derive --latex``, the lessons)."""
    return _LatexPrinter().doprint(expr)
