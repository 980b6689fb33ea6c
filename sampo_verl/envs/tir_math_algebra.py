"""TIR-Math's algebra problems: one linear equation (``linear``) and systems of 2 to 4 linear equations
with a unique solution (``system``), each with the expert's program."""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, Sequence

from sampo_verl.envs.tir_math_draw import Draw, signed

# linear equations ----------------------------------------------------------------------------------


def linear(d: Draw, level: int) -> tuple[str, Fraction, str]:
    while True:
        left, right, left_py, right_py, f_left, f_right = _linear_sides(d, level)
        slope = (f_left(Fraction(1)) - f_left(Fraction(0))) - (f_right(Fraction(1)) - f_right(Fraction(0)))
        if slope:
            break
    value = (f_right(Fraction(0)) - f_left(Fraction(0))) / slope
    program = (
        "from fractions import Fraction as F\n\n"
        "def left(x):\n"
        f"    return {left_py}\n\n"
        "def right(x):\n"
        f"    return {right_py}\n\n"
        "# both sides are linear in x: left(x) - right(x) = a*x + b\n"
        "b = left(F(0)) - right(F(0))\n"
        "a = left(F(1)) - right(F(1)) - b\n"
        "print(-b / a)\n"
    )
    return f"Solve for x: {left} = {right}. Give the exact value of x.", value, program


Linear = Callable[[Fraction], Fraction]


def _linear_sides(d: Draw, level: int) -> tuple[str, str, str, str, Linear, Linear]:
    """(left, right) in math notation, in Python, and as functions of x."""
    if level == 1:
        a, b, x = d.nonzero(12), d.nonzero(50), d.nonzero(20)
        c = a * x + b
        return f"{a}x {signed(b)}", str(c), f"{a}*x {signed(b)}", str(c), lambda x: a * x + b, lambda x: Fraction(c)
    if level == 2:
        a, b, c, e = d.nonzero(15), d.nonzero(60), d.nonzero(15), d.nonzero(60)
        return (
            f"{a}x {signed(b)}", f"{c}x {signed(e)}", f"{a}*x {signed(b)}", f"{c}*x {signed(e)}",
            lambda x: a * x + b, lambda x: c * x + e,
        )  # fmt: skip
    if level == 3:
        p, q, r, s, t, u = (
            d.randint(2, 12),
            d.randint(1, 20),
            d.nonzero(40),
            d.randint(2, 12),
            d.randint(1, 20),
            d.nonzero(40),
        )
        return (
            f"{p}(x - {q}) {signed(r)}", f"{s}({t} - x) {signed(u)}",
            f"{p}*(x - {q}) {signed(r)}", f"{s}*({t} - x) {signed(u)}",
            lambda x: p * (x - q) + r, lambda x: s * (t - x) + u,
        )  # fmt: skip
    if level == 4:
        a, b, c, e = (Fraction(d.nonzero(15), d.randint(2, 13)) for _ in range(4))
        return (
            f"({_frac(a)})x {_signed_frac(b)}", f"({_frac(c)})x {_signed_frac(e)}",
            f"{_py_frac(a)}*x {_signed_py_frac(b)}", f"{_py_frac(c)}*x {_signed_py_frac(e)}",
            lambda x: a * x + b, lambda x: c * x + e,
        )  # fmt: skip
    a, b, c, e, f, g = (
        d.randint(2, 15),
        d.randint(1, 30),
        d.randint(2, 12),
        d.randint(2, 15),
        d.randint(1, 30),
        d.randint(2, 12),
    )
    h, k, u = d.nonzero(9), Fraction(d.nonzero(15), d.randint(2, 13)), d.nonzero(20)
    return (
        f"({a}x + {b})/{c} + ({e}x - {f})/{g}", f"{h}x {_signed_frac(k)} {signed(u)}",
        f"({a}*x + {b})/{c} + ({e}*x - {f})/{g}", f"{h}*x {_signed_py_frac(k)} {signed(u)}",
        lambda x: (a * x + b) / c + (e * x - f) / g, lambda x: h * x + k + u,
    )  # fmt: skip


def _frac(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _signed_frac(value: Fraction) -> str:
    return f"- {_frac(-value)}" if value < 0 else f"+ {_frac(value)}"


def _py_frac(value: Fraction) -> str:
    return f"F({value.numerator}, {value.denominator})"


def _signed_py_frac(value: Fraction) -> str:
    return f"- {_py_frac(-value)}" if value < 0 else f"+ {_py_frac(value)}"


# systems of linear equations -----------------------------------------------------------------------

VARIABLES = ("x", "y", "z", "w")
ELIMINATION = """from fractions import Fraction

A = {matrix}
b = {rhs}
n = len(A)
M = [[Fraction(v) for v in row] + [Fraction(r)] for row, r in zip(A, b)]
for col in range(n):
    pivot = next(i for i in range(col, n) if M[i][col] != 0)
    M[col], M[pivot] = M[pivot], M[col]
    for i in range(n):
        if i != col and M[i][col] != 0:
            factor = M[i][col] / M[col][col]
            M[i] = [vi - factor * vc for vi, vc in zip(M[i], M[col])]
solution = [M[i][n] / M[i][i] for i in range(n)]
print({target})
"""


def system(d: Draw, level: int) -> tuple[str, Fraction, str]:
    n, bound = (2, 2, 3, 3, 4)[level - 1], (5, 9, 7, 9, 9)[level - 1]
    while True:
        matrix = [[d.randint(-bound, bound) for _ in range(n)] for _ in range(n)]
        if determinant(matrix) != 0 and all(any(row) for row in matrix):
            break
    if level in (1, 2, 3):
        solution = [Fraction(d.randint(-12, 12)) for _ in range(n)]
        rhs = [sum(a * s for a, s in zip(row, solution)) for row in matrix]
    else:
        rhs = [Fraction(d.randint(-40, 40)) for _ in range(n)]
        solution = solve_linear(matrix, rhs)
    names = VARIABLES[:n]
    equations = "; ".join(f"{_linear_form(row, names)} = {int(r)}" for row, r in zip(matrix, rhs))
    if level <= 2:
        index = d.randint(0, n - 1)
        asked, value, target = names[index], solution[index], f"solution[{index}]"
    else:
        asked, value, target = " + ".join(names), sum(solution), "sum(solution)"
    question = f"Solve the system {equations}. What is the exact value of {asked}?"
    program = ELIMINATION.format(matrix=matrix, rhs=[int(r) for r in rhs], target=target)
    return question, value, program


def _linear_form(row: list[int], names: Sequence[str]) -> str:
    terms = []
    for coefficient, name in zip(row, names):
        if coefficient == 0:
            continue
        magnitude = "" if abs(coefficient) == 1 else str(abs(coefficient))
        sign = ("-" if coefficient < 0 else "") if not terms else ("- " if coefficient < 0 else "+ ")
        terms.append(f"{sign}{magnitude}{name}")
    return " ".join(terms)


def solve_linear(matrix: list[list[int]], rhs: list[Fraction]) -> list[Fraction]:
    """The exact solution of ``matrix @ x = rhs`` (sympy; the matrix must be regular)."""
    import sympy  # a dependency of math-verify; imported here, not with the environment registry

    solution = sympy.Matrix(matrix).LUsolve(sympy.Matrix([sympy.Rational(r.numerator, r.denominator) for r in rhs]))
    return [Fraction(int(v.p), int(v.q)) for v in solution]


def determinant(matrix: list[list[int]]) -> int:
    import sympy

    return int(sympy.Matrix(matrix).det())
