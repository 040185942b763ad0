"""Presentation MathML for the lesson pages: SymPy's printer, taught the registry's vocabulary.

:func:`to_mathml` turns a statement, step or gradient of :mod:`derivations` into one
``<math>`` element that browsers render natively (no JavaScript, no network).  The
printer is SymPy's :class:`~sympy.printing.mathml.MathMLPresentationPrinter` with
these changes:

* text is real Unicode, escaped as XML: SymPy writes HTML entity names
  (``&InvisibleTimes;``, ``&pi;``) unescaped, which no XML parser accepts;
* Euler's number is ``e`` (upright), not ``&ExponentialE;``, which fonts without
  the double-struck glyph show as a box or an odd letter;
* matrix products, sums and Hadamard products print their factors as written,
  without SymPy's search for a leading minus sign (it expands every symbolic sum
  inside a product: tens of seconds for the LayerNorm Jacobian);
* the objects the derivations use and SymPy cannot print sensibly get a notation:
  ``MatrixSlice`` (``w_q[:, hK : hK + K]``), ``FunctionMatrix``
  (``[f(t, s)]_{t s}``), ``DiagMatrix``, ``Max``/``Min``, ``Mod``, ``Heaviside``,
  ``Piecewise``, ``Subs``, ``Variance``/``Covariance``, undefined functions and
  ``BlockMatrix``.  The matrix functions of :mod:`derivations.symbolic`
  (``softmax``, ``ReLU``, ``GELU``, ``LayerNorm``, ``Concat``, ...) print
  themselves through their ``_mathml_presentation`` methods.

Anything still printed by SymPy's generic fallback (a lower-case class name
followed by its arguments) is recorded in :attr:`LessonMathMLPrinter.fallbacks` and
marked ``data-fallback="ClassName"`` in the markup; :func:`to_mathml` with
``strict=True`` raises on it.  The tests look for the mark on the built pages, which
keeps every registered derivation readable.

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> to_mathml(sp.exp(x), display="inline")
'<math display="inline"><msup><mi mathvariant="normal">e</mi><mi>x</mi></msup></math>'
"""

from __future__ import annotations

import html
from xml.dom.minidom import Text

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE, precedence_traditional

__all__ = ["LessonMathMLPrinter", "UnprintableError", "to_mathml"]

#: Exponents up to this many characters (as SymPy writes them) print as a superscript of e.
_SHORT_EXPONENT = 24


def _precedence(item) -> int:
    """SymPy's traditional precedence, without its minus-sign search on matrix expressions.

    (``precedence_traditional`` negates a matrix product to look for a leading minus,
    which carries out every symbolic sum inside it.)
    """
    if isinstance(item, sp.MatrixExpr):
        if isinstance(item, (sp.MatMul, sp.HadamardProduct)):
            return PRECEDENCE["Mul"]
        if isinstance(item, sp.MatAdd):
            return PRECEDENCE["Add"]
        if isinstance(item, (sp.MatPow, sp.HadamardPower)):
            return PRECEDENCE["Pow"]
        return PRECEDENCE["Atom"]
    return precedence_traditional(item)


class UnprintableError(ValueError):
    """An expression printed through SymPy's generic fallback (``strict=True``)."""


class LessonMathMLPrinter(MathMLPresentationPrinter):
    """SymPy's presentation MathML printer with the changes listed in the module docstring.

    Attributes:
        fallbacks: class names printed by the generic fallback, in the order met.
    """

    def __init__(self, settings=None):
        super().__init__(settings)
        self.fallbacks: list[str] = []

        def text_node(data):
            # SymPy passes entity names ("&pi;", "&#x1D7D8") as text: store the characters
            node = Text()
            node.data = html.unescape(str(data))
            node.ownerDocument = self.dom
            return node

        self.dom.createTextNode = text_node

    def doprint(self, expr) -> str:
        """The MathML of ``expr`` as a Unicode string (XML-escaped)."""
        root = self._print(expr)
        operators = ([root] if getattr(root, "tagName", None) == "mo" else []) + list(
            root.getElementsByTagName("mo") if hasattr(root, "getElementsByTagName") else [])
        for mo in operators:
            for node in mo.childNodes:
                if node.nodeType == node.TEXT_NODE and node.data == "-":
                    node.data = "\u2212"  # the minus sign, not the hyphen SymPy writes
        return root.toxml()

    # -- small helpers -------------------------------------------------------------------

    def _el(self, tag: str, *children, text: str | None = None, **attrs):
        e = self.dom.createElement(tag)
        for k, v in attrs.items():
            e.setAttribute(k, v)
        if text is not None:
            e.appendChild(self.dom.createTextNode(text))
        for c in children:
            e.appendChild(c)
        return e

    def _mo(self, text: str, **attrs):
        return self._el("mo", text=text, **attrs)

    def _name(self, text: str):
        """An upright operator name (``max``, ``Var``, ``diag``)."""
        return self._el("mi", text=text, mathvariant="normal")

    def _fenced(self, inner, left="(", right=")"):
        return self._el("mrow", self._mo(left), inner, self._mo(right))

    def _applied(self, name: str, *args):
        """``name(arg, arg, ...)`` with an upright name."""
        return self._el("mrow", self._name(name), self._paren_comma_separated(*args))

    def _joined(self, expr, args, operator: str):
        row = self._el("mrow")
        for n, a in enumerate(args):
            if n:
                row.appendChild(self._mo(operator))
            row.appendChild(self.parenthesize(a, _precedence(expr), False))
        return row

    def parenthesize(self, item, level, strict=False):
        """``item``, in parentheses when it binds less tightly than ``level`` (cheaply for matrices)."""
        prec = _precedence(item)
        if prec < level or (not strict and prec <= level):
            return self._fenced(self._print(item))
        return self._print(item)

    # -- constants and scalars -----------------------------------------------------------

    def _print_Exp1(self, e):
        return self._name("e")

    def _print_exp(self, e):
        # e^x for a short exponent; exp(...) when a superscript would shrink a fraction or sum
        arg = e.args[0]
        if isinstance(arg, (sp.Symbol, MatrixElement, sp.Number)) or (
                not arg.has(sp.Sum) and len(str(arg)) <= _SHORT_EXPONENT):
            return self._el("msup", self._print_Exp1(None), self._print(arg))
        return self._el("mrow", self._name("exp"), self._fenced(self._print(arg)))

    def _print_MatrixElement(self, e):
        # a row vector's entries keep their column index only; a subscripted name is bracketed: (w_1)_{i,j}
        parent = e.parent
        indices = e.indices[1:] if parent.shape[0] == 1 else e.indices
        if isinstance(parent, sp.MatrixSymbol):
            _, supers, subs = self._split_super_sub(parent.name)
            base = self._fenced(self._print(parent)) if supers or subs else self._print(parent)
        else:
            base = self.parenthesize(parent, PRECEDENCE["Atom"], strict=True)
        index = self._el("mrow")
        for n, i in enumerate(indices):
            if n:
                index.appendChild(self._mo(","))
            index.appendChild(self._print(i))
        return self._el("msub", base, index)

    def _print_Max(self, e):
        return self._applied("max", *e.args)

    def _print_Min(self, e):
        return self._applied("min", *e.args)

    def _print_Mod(self, e):
        a, m = e.args
        return self._el("mrow", self.parenthesize(a, PRECEDENCE["Mul"], False), self._mo("mod"),
                        self.parenthesize(m, PRECEDENCE["Mul"], False))

    def _print_Heaviside(self, e):
        # Heaviside(x, 0): the value at 0 is part of the definition, written as a subscript
        head = self._name("Θ") if len(e.args) == 1 else self._el("msub", self._name("Θ"), self._print(e.args[1]))
        return self._el("mrow", head, self._fenced(self._print(e.args[0])))

    def _print_Function(self, e):
        if isinstance(e, AppliedUndef):
            return self._el("mrow", self._print_Symbol(sp.Symbol(e.func.__name__)),
                            self._paren_comma_separated(*e.args))
        return super()._print_Function(e)

    def _print_Piecewise(self, e):
        table = self._el("mtable", columnalign="left left")
        for value, cond in e.args:
            when = self._el("mtext", text="otherwise") if cond is sp.true else self._el(
                "mrow", self._el("mtext", text="if\u00a0"), self._print(cond))
            table.appendChild(self._el("mtr", self._el("mtd", self._print(value)), self._el("mtd", when)))
        return self._el("mrow", self._mo("{"), table)

    def _print_ExprCondPair(self, e):
        return self._el("mrow", self._print(e.expr), self._mo(","), self._print(e.cond))

    def _print_Subs(self, e):
        expr, old, new = e.args
        where = self._el("mrow")
        for n, (o, v) in enumerate(zip(old, new)):
            if n:
                where.appendChild(self._mo(","))
            where.appendChild(self._el("mrow", self._print(o), self._mo("="), self._print(v)))
        return self._el("msub", self._fenced(self._print(expr), "(", ")"), where)

    def _print_Variance(self, e):
        return self._applied("Var", e.args[0])

    def _print_Covariance(self, e):
        return self._applied("Cov", *e.args[:2])

    def _print_Expectation(self, e):
        return self._el("mrow", self._name("E"), self._fenced(self._print(e.args[0]), "[", "]"))

    # -- matrix expressions --------------------------------------------------------------

    def _print_MatMul(self, expr):
        args = list(expr.args)
        row = self._el("mrow")
        if args and args[0] == -1:
            row.appendChild(self._mo("-"))
            args = args[1:]
        for n, a in enumerate(args):
            if n:
                row.appendChild(self._mo("\u2062"))  # invisible times
            if isinstance(a, (sp.Add, sp.MatAdd, sp.HadamardProduct)):
                row.appendChild(self._fenced(self._print(a)))
            else:
                row.appendChild(self.parenthesize(a, PRECEDENCE["Mul"], strict=True))
        return row

    def _print_MatAdd(self, expr):
        row = self._el("mrow")
        for n, a in enumerate(expr.args):
            negative = (isinstance(a, sp.MatMul) and a.args and a.args[0].is_Number and a.args[0] < 0)
            if negative:
                row.appendChild(self._mo("\u2212"))
                coeff = -a.args[0]
                a = sp.MatMul(*a.args[1:]) if coeff == 1 else sp.MatMul(coeff, *a.args[1:])
            elif n:
                row.appendChild(self._mo("+"))
            row.appendChild(self._print(a))
        return row

    def _print_HadamardProduct(self, expr):
        return self._joined(expr, expr.args, "\u2218")

    def _print_HadamardPower(self, expr):
        base = self._fenced(self._print(expr.base))
        return self._el("msup", base, self._el("mrow", self._mo("\u2218"), self._print(expr.exp)))

    def _print_Transpose(self, expr):
        arg = expr.arg
        base = self._print(arg) if isinstance(arg, sp.MatrixSymbol) else self._fenced(self._print(arg))
        return self._el("msup", base, self._mo("T"))

    def _print_MatrixSlice(self, m):
        def bounds(s, dim):
            start, stop, step = s
            row = self._el("mrow")
            if start != 0:
                row.appendChild(self._print(start))
            row.appendChild(self._mo(":"))
            if stop != dim:
                row.appendChild(self._print(stop))
            if step != 1:
                row.appendChild(self._mo(":"))
                row.appendChild(self._print(step))
            return row

        parent = self.parenthesize(m.parent, PRECEDENCE["Atom"], strict=True)
        index = self._el("mrow", self._mo("["), bounds(m.rowslice, m.parent.rows), self._mo(","),
                         bounds(m.colslice, m.parent.cols), self._mo("]"))
        return self._el("mrow", parent, index)

    def _print_FunctionMatrix(self, m):
        lam = m.lamda
        variables = lam.variables
        sub = self._el("mrow")
        for n, v in enumerate(variables):
            if n:
                sub.appendChild(self._mo("\u2063"))  # invisible separator
            sub.appendChild(self._print(v))
        return self._el("msub", self._fenced(self._print(lam.expr), "[", "]"), sub)

    def _print_Lambda(self, e):
        variables = e.variables
        head = self._print(variables[0]) if len(variables) == 1 else self._paren_comma_separated(*variables)
        return self._el("mrow", head, self._mo("\u21a6"), self._print(e.expr))

    def _print_DiagMatrix(self, m):
        return self._applied("diag", m.args[0])

    def _print_DiagonalMatrix(self, m):
        return self._applied("diag", m.args[0])

    def _print_BlockMatrix(self, m):
        return self._print(m.blocks)

    def _print_Identity(self, m):
        return self._el("mi", text="I", mathvariant="normal")

    def _print_ZeroMatrix(self, m):
        return self._el("mn", text="\U0001d7d8")  # double-struck zero: the all-zeros matrix

    def _print_OneMatrix(self, m):
        return self._el("mn", text="\U0001d7d9")  # double-struck one: the all-ones matrix

    # -- the fallback --------------------------------------------------------------------

    def _print_Basic(self, e):
        self.fallbacks.append(type(e).__name__)
        row = super()._print_Basic(e)
        row.setAttribute("data-fallback", type(e).__name__)  # findable in a page, by the tests
        return row


def to_mathml(expr, display: str = "block", *, strict: bool = False) -> str:
    """One ``<math>`` element for a SymPy expression or equality.

    Args:
        expr: a statement, step, gradient or any SymPy expression.
        display: ``"block"`` (its own line, centred) or ``"inline"`` (inside a sentence).
        strict: raise :class:`UnprintableError` if some part was printed by SymPy's
            generic fallback instead of a notation of its own.

    Returns:
        ``<math display="...">...</math>`` (HTML needs no namespace on it), well-formed XML,
        text as Unicode.

    Raises:
        ValueError: ``display`` is neither ``"block"`` nor ``"inline"``.
        UnprintableError: ``strict`` and a fallback was used (the class names are listed).
    """
    if display not in ("block", "inline"):
        raise ValueError(f"display: expected 'block' or 'inline', got {display!r}")
    printer = LessonMathMLPrinter()
    body = printer.doprint(sp.sympify(expr))
    if strict and printer.fallbacks:
        raise UnprintableError(f"no MathML notation for {sorted(set(printer.fallbacks))} in {expr}")
    return f'<math display="{display}">{body}</math>'
