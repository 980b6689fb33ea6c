"""The offline TIR-Math generator: determinism, knobs, answers recomputed independently from the question."""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy
from sympy.functions.combinatorial.numbers import nP
from sympy.ntheory.modular import crt
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from sampo_verl.envs.tir_math_gen import KINDS, LEVELS, canonical, problem

MATH = standard_transformations + (implicit_multiplication_application, convert_xor)
SEEDS = range(12)


def ints(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


def powmod(base: int, exponent: int, modulus: int) -> int:
    """Square and multiply, written out (not Python's pow)."""
    result, base = 1, base % modulus
    while exponent:
        if exponent & 1:
            result = result * base % modulus
        base, exponent = base * base % modulus, exponent >> 1
    return result


def solve_arithmetic(q: str) -> Fraction:
    (expr,) = re.fullmatch(r"Compute the exact value of (.*)\.", q).groups()
    return Fraction(str(parse_expr(expr)))  # sympy divides integers exactly


def solve_word(q: str) -> Fraction:
    if "buys" in q:
        items = re.findall(r"(\d+) \w+? at \$(\d+\.\d\d) each", q)
        total = sum(int(count) * Fraction(price) for count, price in items)
        if off := re.search(r"takes (\d+)% off", q):
            total = total * (100 - int(off[1])) / 100
        if tax := re.search(r"sales tax of (\d+)%", q):
            total = total * (100 + int(tax[1])) / 100
        return total
    if "drives" in q:
        legs = [(int(m), int(s)) for m, s in re.findall(r"(\d+) minutes at (\d+) km/h", q)]
        return Fraction(sum(m * s for m, s in legs), sum(m for m, _ in legs))  # distance / time; the 60s cancel
    start, raise_, every, spend, weeks = ints(re.sub(r"week 1|weeks \d+, \d+", "", q))
    saved = weeks * start + raise_ * weeks * (weeks - 1) // 2  # arithmetic series in closed form
    return Fraction(saved - spend * (weeks // every))


def solve_linear(q: str) -> Fraction:
    left, right = re.fullmatch(r"Solve for x: (.*) = (.*)\. Give the exact value of x\.", q).groups()
    (x,) = sympy.solve(sympy.Eq(parse_expr(left, transformations=MATH), parse_expr(right, transformations=MATH)))
    return Fraction(str(x))


def solve_system(q: str) -> Fraction:
    system, asked = re.fullmatch(r"Solve the system (.*)\. What is the exact value of (.*)\?", q).groups()
    equations = [sympy.Eq(*(parse_expr(s, transformations=MATH) for s in e.split(" = "))) for e in system.split("; ")]
    (solution,) = sympy.solve(equations, sympy.symbols("x y z w")[: len(equations)], dict=True)
    return Fraction(str(parse_expr(asked, transformations=MATH).subs(solution)))


def solve_modular(q: str) -> Fraction:
    numbers = ints(q)
    if "+ ... +" in q:
        k = sympy.Symbol("k")
        _, p, *_, n, _, m = numbers
        return Fraction(int(sympy.summation(k**p, (k, 1, n))) % m)  # Faulhaber, exactly
    if len(numbers) == 3:
        a, e, m = numbers
        return Fraction(powmod(a, e, m))
    a, e1, b, e2, c, e3, m = numbers
    return Fraction((powmod(a, e1, m) + powmod(b, e2, m)) * powmod(c, e3, m) % m)


def lattice_paths(m: int, n: int, blocked: tuple[int, int]) -> int:
    """Dynamic programming over the grid (not the binomial formula)."""
    paths = np.zeros((m + 1, n + 1), dtype=object)
    for i in range(m + 1):
        for j in range(n + 1):
            if (i, j) == blocked:
                paths[i, j] = 0
            elif i == j == 0:
                paths[i, j] = 1
            else:
                paths[i, j] = (paths[i - 1, j] if i else 0) + (paths[i, j - 1] if j else 0)
    return int(paths[m, n])


def solve_counting(q: str) -> Fraction:
    numbers = ints(q)
    if q.startswith("In how many ways"):
        k, n = numbers
        return Fraction(int(sympy.binomial(n, k)))
    if "club" in q:
        men, women, size, j = numbers
        counts = range(j, j + 1) if "exactly" in q else range(j, size + 1)
        return Fraction(sum(int(sympy.binomial(women, w) * sympy.binomial(men, size - w)) for w in counts))
    if "rearranging" in q:
        (word,) = re.search(r"letters of (\w+)\?", q).groups()
        return Fraction(int(nP(word, len(word))))  # permutations of a multiset, counted by sympy
    if "coin" in q:
        n, k = numbers
        return Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n)
    _, _, m, n, a, b = numbers
    return Fraction(lattice_paths(m, n, (a, b)))


def solve_series(q: str) -> Fraction:
    k = sympy.Symbol("k")
    if "arithmetic" in q:
        n, a, a2, _ = ints(q)
        return Fraction(n * (2 * a + (n - 1) * (a2 - a)), 2)
    if "geometric" in q:
        n = ints(q)[0]
        terms = re.search(r"sequence (.*), \.\.\.\?", q)[1].split(", ")
        a, r = Fraction(terms[0]), Fraction(terms[1]) / Fraction(terms[0])
        return a * (r**n - 1) / (r - 1)
    if "1/(k(k +" in q:
        shift, _, n = ints(q.split("1/(k(k + ")[1])
        return Fraction(str(sympy.summation(1 / (k * (k + shift)), (k, 1, n))))
    formula, n = re.fullmatch(r"What is the sum of (.*) over all integers k from 1 to (\d+)\?", q).groups()
    return Fraction(int(sympy.summation(parse_expr(formula, transformations=MATH), (k, 1, int(n)))))


def solve_gcd_lcm(q: str) -> Fraction:
    if "greatest common divisor" in q:
        return Fraction(int(sympy.gcd_list(ints(q))))
    if "least common multiple" in q:
        return Fraction(int(sympy.lcm_list(ints(q))))
    pairs = re.findall(r"remainder (\d+) when divided by (\d+)", q)
    residues, moduli = [int(r) for r, _ in pairs], [int(m) for _, m in pairs]
    value, modulus = crt(moduli, residues)
    return Fraction(int(value) or int(modulus))


SOLVERS = {
    "arithmetic": solve_arithmetic,
    "word": solve_word,
    "linear": solve_linear,
    "system": solve_system,
    "modular": solve_modular,
    "counting": solve_counting,
    "series": solve_series,
    "gcd_lcm": solve_gcd_lcm,
}


@pytest.mark.parametrize("kind", KINDS)
def test_answers_equal_an_independent_computation_from_the_question(kind):
    for level in LEVELS:
        for seed in SEEDS:
            p = problem(seed, [kind], level)
            assert (p.kind, p.level, p.id) == (kind, level, f"{kind}-{level}-{seed}")
            assert p.answer == canonical(SOLVERS[kind](p.question)), p.question


# one level-1 problem of each kind, worked by hand
HAND = [
    ("arithmetic", 0, "(89 - 77) - 16", "-4"),  # 12 - 16
    ("word", 0, "Priya saves $42 in week 1", "560"),  # 15 * (42 + 56) / 2 = 735, minus 7 * 25
    ("linear", 0, "12x + 26 = -82", "-9"),  # 12x = -108
    ("system", 1, "-4x - 3y = -53; -2x + 5y = 45", "11"),  # 2 * second - first: 13y = 143; y asked
    ("modular", 1, "31^835 is divided by 10", "1"),  # 31 = 1 (mod 10)
    ("counting", 1, "team of 6 be chosen from 13", "1716"),  # 13! / (6! 7!)
    ("series", 0, "first 11 terms of the arithmetic sequence 49, 62", "1254"),  # 11 * (49 + 179) / 2
    ("gcd_lcm", 0, "14833, 86086", "91"),  # Euclid: 11921, 2912, 273, 182, 91
]


@pytest.mark.parametrize("kind,seed,excerpt,answer", HAND)
def test_hand_computed_problems(kind, seed, excerpt, answer):
    p = problem(seed, [kind], 1)
    assert excerpt in p.question and p.answer == answer


def test_problems_are_deterministic_and_varied():
    assert [problem(s) for s in range(50)] == [problem(s) for s in range(50)]
    drawn = [problem(s) for s in range(400)]
    assert len({p.question for p in drawn}) >= 395  # a few small spaces (e.g. C(n, k), n <= 40) repeat
    assert {p.kind for p in drawn} == set(KINDS) and {p.level for p in drawn} == set(LEVELS)
    assert {problem(s, ["modular", "series"], [2, 4]).kind for s in range(40)} == {"modular", "series"}
    assert {problem(s, difficulty=[2, 4]).level for s in range(40)} == {2, 4}
    # the content depends on (seed, kind, level) only: the id names the problem
    seed = next(s for s in range(100) if problem(s, ["linear", "system"], [3]).kind == "linear")
    assert problem(seed, ["linear", "system"], [3]) == problem(seed, ["linear"], 3)


def test_answers_are_canonical_and_programs_use_the_standard_library_only():
    for seed in range(300):
        p = problem(seed)
        assert re.fullmatch(r"-?\d+(/\d+)?", p.answer) and Fraction(p.answer).denominator != 0
        assert str(Fraction(p.answer)) == p.answer  # reduced
        imported = set(re.findall(r"^(?:from|import) (\w+)", p.program, re.MULTILINE))
        assert imported <= {"math", "fractions", "collections"}


@pytest.mark.parametrize("bad", [{"kinds": ["calculus"]}, {"difficulty": 6}, {"difficulty": []}])
def test_unknown_kinds_and_levels_are_refused(bad):
    with pytest.raises(ValueError, match="tir_math"):
        problem(0, **bad)
