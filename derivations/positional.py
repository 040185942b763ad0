"""Positional encoding (week 10): the sinusoidal encoding, shifts as rotations, relative similarity;
rotary position embedding (RoPE) and its relative scores.

Mirrors ``model/positional.py``.  Positions ``p`` are a 1-D array ``[T]``, in SymPy a
``1 x T`` row; column ``j`` of the encoding uses the frequency
``ω = base^(−2⌊j/2⌋/D)``, with the sine in even and the cosine in odd columns.  RoPE
turns the column pair ``(2i, 2i + 1)`` of a head vector ``[K]`` at position ``p`` by the
angle ``p θᵢ``, ``θᵢ = base^(−2i/K)``: the same geometric frequencies, over the head width.
"""

from __future__ import annotations

import sympy as sp
from sympy import (Eq, FunctionMatrix, Identity, Lambda, Matrix, MatrixSymbol, Mod, OneMatrix, Piecewise,
                   Sum, ZeroMatrix, cos, floor, sin)

from derivations.registry import Derivation, Gradient, Step, register
from derivations.symbolic import D, K, S, T, explicit, row, vjp

VASWANI = 'Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5'

base = sp.Symbol("base", positive=True)
p = row("p", T)
_t, _s, _j, _i = sp.symbols("t s j i", integer=True, nonnegative=True)


def omega(j):
    """The angular frequency of column ``j``: ``base^(−2⌊j/2⌋/D)`` (columns 2i and 2i + 1 share it)."""
    return base ** (-2 * floor(j / 2) / D)


def _angle(position, j):
    # expanded, so an angle of a sum of positions is a sum of angles, which expand_trig splits at once
    return sp.expand(position * omega(j))


def encoding(positions):
    """PE of a ``1 x T`` row of positions: a ``T x D`` matrix, sine in even and cosine in odd columns."""
    return FunctionMatrix(T, D, Lambda((_t, _j), Piecewise(
        (sin(_angle(positions[0, _t], _j)), Eq(Mod(_j, 2), 0)),
        (cos(_angle(positions[0, _t], _j)), True))))


def rotation(k):
    """R(k): block-diagonal, the 2x2 block of frequency ω being ((cos kω, sin kω), (−sin kω, cos kω))."""
    return FunctionMatrix(D, D, Lambda((_t, _s), Piecewise(
        (cos(_angle(k, _t)), Eq(_t, _s)),
        (sin(_angle(k, _t)), Eq(_s, _t + 1) & Eq(Mod(_t, 2), 0)),
        (-sin(_angle(k, _s)), Eq(_t, _s + 1) & Eq(Mod(_s, 2), 0)),
        (0, True))))


def _rot2(angle):
    return Matrix([[cos(angle), sin(angle)], [-sin(angle), cos(angle)]])


pe = MatrixSymbol("pe", T, D)
PE = encoding(p)

# --- the encoding ---------------------------------------------------------------------------

_w0, _w1 = base ** 0, base ** sp.Rational(-2, 4)   # the two frequencies at D = 4
_q = sp.Symbol("q", real=True)
_i_any = sp.Symbol("i", integer=True, nonnegative=True)

register(Derivation(
    id="positional.sinusoidal",
    week=10,
    title="Sinusoidal encoding PE(p, 2i) = sin(p/base^{2i/D}), PE(p, 2i+1) = cos(p/base^{2i/D})",
    statement=Eq(pe, PE, evaluate=False),
    implementation="model.positional.sinusoidal_encoding",
    shapes={"p": "T", "pe": "TD"},
    sizes={"T": 5, "D": 6},
    domains={"p": "position"},
    constants={"base": 10000.0},
    size_args={"d_model": "D"},
    steps=(
        Step(claim="at D = 4, a position q is encoded as (sin qω₀, cos qω₀, sin qω₁, cos qω₁), ω_i = base^{−2i/D}",
             eq=Eq(encoding(Matrix([[_q]])),
                   Matrix([[sin(_q * _w0), cos(_q * _w0), sin(_q * _w1), cos(_q * _w1)]]), evaluate=False),
             sizes={"T": 1, "D": 4}),
        Step(claim="position 0 is encoded as (0, 1, 0, 1, …)",
             eq=Eq(encoding(ZeroMatrix(1, T)), Matrix([[0, 1, 0, 1]]), evaluate=False), sizes={"T": 1, "D": 4}),
        Step(claim="the frequencies form a geometric sequence: ω_{i+1} / ω_i = base^{−2/D}",
             eq=Eq(omega(2 * _i_any + 2) / omega(2 * _i_any), base ** (-2 / D), evaluate=False), method="expand"),
        Step(claim="every encoding has the same length: ‖PE(p)‖² = D/2 (one sin² + cos² per frequency)",
             eq=Eq(PE * PE.T, OneMatrix(T, T) * D / 2, evaluate=False), sizes={"T": 1, "D": 6}, method="trigsimp"),
    ),
    notes=("Each pair of columns is a point going round the unit circle as the position grows, at "
           "its own speed ω_i; the speeds fall geometrically from 1 radian per position to "
           "about 1/base, so nearby positions differ in the fast columns and distant ones in the "
           "slow columns, like the digits of a clock. The encoding is added to the token embeddings."),
    source=VASWANI,
))

# --- shifts are rotations -------------------------------------------------------------------

R = MatrixSymbol("R", D, D)
k = sp.Symbol("k", real=True)
_a, _b, _w, _p = sp.symbols("a b omega p", real=True)

register(Derivation(
    id="positional.shift_rotation",
    week=10,
    title="A shift is a rotation: PE(p + k) = R(k) PE(p), R(k) block-diagonal and independent of p",
    statement=Eq(R, rotation(k), evaluate=False),
    implementation="model.positional.shift_rotation",
    shapes={"k": "", "R": "DD"},
    sizes={"D": 6},
    domains={"k": "position"},
    constants={"base": 10000.0},
    size_args={"d_model": "D"},
    steps=(
        Step(claim="for one frequency ω, the 2x2 rotation by kω maps (sin ωp, cos ωp) to (sin ω(p+k), cos ω(p+k))",
             eq=Eq(_rot2(_w * k) * Matrix([sin(_w * _p), cos(_w * _p)]),
                   Matrix([sin(_w * _p + _w * k), cos(_w * _p + _w * k)]), evaluate=False),
             method="expand_trig"),
        Step(claim="so at D = 4, R(k) PE(p)ᵀ = PE(p + k)ᵀ for every position p and offset k",
             eq=Eq(rotation(k) * encoding(Matrix([[_p]])).T, encoding(Matrix([[_p + k]])).T, evaluate=False),
             sizes={"T": 1, "D": 4}, method="trigsimp"),
        Step(claim="R(k) is orthogonal, R(k) R(k)ᵀ = I: a shift keeps the length of the encoding",
             eq=Eq(rotation(k) * rotation(k).T, Identity(D), evaluate=False), sizes={"D": 4}, method="trigsimp"),
        Step(claim="R(0) = I: no shift, no change",
             eq=Eq(rotation(0), Identity(D), evaluate=False), sizes={"D": 4}),
        Step(claim="R(a) R(b) = R(a + b): two shifts compose into one",
             eq=Eq(rotation(_a) * rotation(_b), rotation(_a + _b), evaluate=False), sizes={"D": 4},
             method="expand_trig"),
    ),
    notes=("The paper chose sinusoids because 'for any fixed offset k, PE(p + k) can be represented "
           "as a linear function of PE(p)'. The linear function is R(k): it turns each sin/cos pair "
           "by the angle kω_i, the same for every p, so a layer can learn to attend to 'k positions "
           "back' with one matrix. RoPE applies the same rotations to queries and keys."),
    source=VASWANI,
))

# --- relative positions ---------------------------------------------------------------------

G = MatrixSymbol("G", T, T)
_closed = FunctionMatrix(T, T, Lambda((_t, _s), Sum(
    cos((p[0, _t] - p[0, _s]) / base ** (2 * _i / D)), (_i, 0, D / 2 - 1))))
_c = sp.Symbol("c", real=True)
_PEc = encoding(p + _c * OneMatrix(1, T))

register(Derivation(
    id="positional.relative",
    week=10,
    title="PE(p)·PE(q) = Σᵢ cos((p − q)/base^{2i/D}) depends only on p − q",
    statement=Eq(G, _closed, evaluate=False),
    implementation="model.positional.encoding_gram",
    shapes={"p": "T", "G": "TT"},
    sizes={"T": 5, "D": 6},
    domains={"p": "position"},
    constants={"base": 10000.0},
    size_args={"d_model": "D"},
    steps=(
        Step(claim="one frequency: sin a sin b + cos a cos b = cos(a − b)",
             eq=Eq(sin(_a) * sin(_b) + cos(_a) * cos(_b), cos(_a - _b), evaluate=False), method="expand_trig"),
        Step(claim="so at T = 2, D = 4 the Gram matrix PE PEᵀ is the sum of cosines of the differences",
             eq=Eq(PE * PE.T, _closed, evaluate=False), sizes={"T": 2, "D": 4}, method="trigsimp"),
        Step(claim="shifting every position by c leaves PE(p)·PE(q) unchanged (entry (0, 1) at D = 4)",
             eq=Eq((_PEc * _PEc.T)[0, 1], (PE * PE.T)[0, 1], evaluate=False), sizes={"T": 2, "D": 4},
             method="trigsimp"),
    ),
    notes=("The similarity of two encodings depends on how far apart the positions are, not on "
           "where they are: G is constant along its diagonals, with D/2 on the main one. Plotted "
           "against p − q it is a sum of cosines of falling frequencies: highest at 0 and "
           "decaying, with ripples, as the distance grows."),
    source=VASWANI,
))

# --- rotary position embedding (RoPE) ----------------------------------------------------------

SU = 'Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, section 3.4'

x = MatrixSymbol("x", T, K)
y = MatrixSymbol("y", T, K)
dy = MatrixSymbol("dy", T, K)
_u = sp.Symbol("u", integer=True, nonnegative=True)


def theta(j):
    """The angle per position of column ``j`` of a head: ``base^(−2⌊j/2⌋/K)`` (columns 2i and 2i + 1 share it)."""
    return base ** (-2 * floor(j / 2) / K)


def _rotated_entry(v, r, j, position):
    """Entry (r, j) of row r of ``v`` rotated pair by pair by ``position`` · θ.

    Column 2i gets v₂ᵢ cos − v₂ᵢ₊₁ sin, column 2i + 1 gets v₂ᵢ sin + v₂ᵢ₊₁ cos: with
    ``partner = j + 1 − 2 (j mod 2)`` (the other column of the pair) and ``sign = 2 (j mod 2) − 1``
    that is v_j cos + sign · v_partner sin.
    """
    angle = sp.expand(position * theta(j))
    parity = Mod(j, 2)
    return v[r, j] * cos(angle) + (2 * parity - 1) * v[r, j + 1 - 2 * parity] * sin(angle)


def rope(v, positions):
    """RoPE of the rows of ``v`` ``[n, K]``, row r at position ``positions[0, r]`` (a ``1 x n`` row)."""
    return FunctionMatrix(v.shape[0], K, Lambda((_t, _j), _rotated_entry(v, _t, _j, positions[0, _t])))


def _rot2_rope(angle):
    """The 2x2 rotation RoPE applies to a column pair (x₂ᵢ, x₂ᵢ₊₁)ᵀ: counter-clockwise by ``angle``."""
    return Matrix([[cos(angle), -sin(angle)], [sin(angle), cos(angle)]])


_ROW4 = {"T": 1, "K": 4}
_x4 = explicit(x, _ROW4)
_th1 = base ** sp.Rational(-1, 2)   # θ₁ at K = 4
_pairs = Matrix.hstack((_rot2_rope(_q) * _x4[:, 0:2].T).T, (_rot2_rope(_q * _th1) * _x4[:, 2:4].T).T)
# the entries x[0, j] as plain symbols: trigsimp does not collect sin² + cos² with matrix-entry factors
_plain = {_x4[0, j]: sp.Symbol(f"x_{j}", real=True) for j in range(4)}
_at_q = Matrix([[_q]])

register(Derivation(
    id="positional.rotary",
    week=10,
    title="RoPE: (x₂ᵢ, x₂ᵢ₊₁) at position p turned by the angle p θᵢ, θᵢ = base^{−2i/K}",
    statement=Eq(y, rope(x, p), evaluate=False),
    implementation="model.positional.rotary",
    shapes={"x": "TK", "p": "T", "y": "TK", "dy": "TK"},
    sizes={"T": 3, "K": 6},
    domains={"p": "position"},
    constants={"base": 10000.0},
    steps=(
        Step(claim=("at K = 4 a vector at position q is turned pair by pair: (x₀, x₁) by the angle q θ₀ = q, "
                    "(x₂, x₃) by q θ₁ = q/√base"),
             eq=Eq(rope(x, _at_q), _pairs, evaluate=False), sizes=_ROW4),
        Step(claim="position 0 is no rotation: RoPE(x, 0) = x",
             eq=Eq(rope(x, ZeroMatrix(1, T)), x, evaluate=False), sizes={"T": 2, "K": 4}),
        Step(claim="a rotation keeps the length of every vector: ‖RoPE(x, q)‖² = ‖x‖² (K = 4)",
             eq=Eq(explicit(rope(x, _at_q) * rope(x, _at_q).T, _ROW4).xreplace(_plain),
                   explicit(x * x.T, _ROW4).xreplace(_plain), evaluate=False), method="trigsimp"),
        Step(claim=("RoPE turns a row x by the shift rotation of the sinusoidal encoding (positional.shift_rotation "
                    "with D = K): RoPE(x, q) = x R(q), so rotating by q and then by s is rotating by q + s, "
                    "since R(q) R(s) = R(q + s)"),
             eq=Eq(rope(x, _at_q), x * rotation(_q).xreplace({D: K}), evaluate=False), sizes=_ROW4),
        Step(claim="backward pass: the gradient of dy · RoPE(x, p) with respect to x is RoPE(dy, −p), the inverse rotation",
             eq=Eq(vjp(explicit(rope(x, p), _ROW4), _x4, explicit(dy, _ROW4)), rope(dy, -p), evaluate=False),
             sizes=_ROW4),
    ),
    gradients=(
        Gradient(wrt="x", expr=rope(dy, -p), cotangent="dy"),
    ),
    notes=("RoPE encodes position by turning each query and key instead of adding a vector to the "
           "embedding: the pair of columns (2i, 2i + 1) of a head vector at position p is rotated by "
           "p θᵢ, with the geometric frequencies of the sinusoidal encoding. Rotations keep lengths "
           "and compose by adding angles, so R(p)ᵀ R(s) = R(s − p): the score of a query and a key "
           "depends on their offset only (positional.rotary_relative). In the statement, column j is "
           "paired with column j + 1 − 2 (j mod 2), the other column of its pair, and the sign "
           "2 (j mod 2) − 1 is − for the first column of a pair and + for the second."),
    source=SU,
))

# --- RoPE scores depend on the offset only ---------------------------------------------------------

q = MatrixSymbol("q", T, K)
k_keys = MatrixSymbol("k", S, K)
s = row("s", S)
g = MatrixSymbol("g", T, S)
_relative_form = FunctionMatrix(T, S, Lambda((_t, _u), Sum(
    q[_t, _j] * _rotated_entry(k_keys, _u, _j, s[0, _u] - p[0, _t]), (_j, 0, K - 1))))
_q2, _k2 = Matrix(sp.symbols("q_0 q_1", real=True)), Matrix(sp.symbols("k_0 k_1", real=True))
_ps, _pp, _om = sp.symbols("s p omega", real=True)
_ONE = {"T": 1, "S": 1, "K": 4}

register(Derivation(
    id="positional.rotary_relative",
    week=10,
    title="RoPE scores depend on the offset only: ⟨R(p) q, R(s) k⟩ = ⟨q, R(s − p) k⟩",
    statement=Eq(g, _relative_form, evaluate=False),
    implementation="model.positional.rotary_scores",
    shapes={"q": "TK", "p": "T", "k": "SK", "s": "S", "g": "TS"},
    sizes={"T": 2, "S": 3, "K": 4},
    domains={"p": "position", "s": "position"},
    constants={"base": 10000.0},
    steps=(
        Step(claim=("for one pair of columns: R(a)ᵀ R(b) = R(b − a), a function of the difference b − a only, "
                    "unchanged when both angles move by the same amount"),
             eq=Eq(_rot2_rope(_a).T * _rot2_rope(_b), _rot2_rope(_b - _a), evaluate=False), method="expand_trig"),
        Step(claim="so for one pair: (R(pω) q)·(R(sω) k) = q·(R((s − p)ω) k), for any positions p, s",
             eq=Eq((_rot2_rope(_pp * _om) * _q2).T * (_rot2_rope(_ps * _om) * _k2),
                   _q2.T * (_rot2_rope((_ps - _pp) * _om) * _k2), evaluate=False), method="expand_trig"),
        Step(claim="at K = 4 the scores of the rotated query and key are this relative form, summed over the pairs",
             eq=Eq(rope(q, p) * rope(k_keys, s).T, _relative_form, evaluate=False), sizes=_ONE,
             method="expand_trig"),
    ),
    notes=("Rotate every query by its position's angles and every key by its own: the dot product "
           "sees only the difference of the angles, (s − p) θᵢ per pair, so the attention score of a "
           "query at p and a key at s depends on the content and the offset s − p, never on where "
           "the pair sits in the sequence. The implementation rotates q and k and takes the dot "
           "products, as attention does; the statement is the relative form."),
    source=SU + ", equations (14)-(16)",
))
