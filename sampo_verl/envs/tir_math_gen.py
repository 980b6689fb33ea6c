"""Offline TIR-Math problems: a seeded generator of math problems that need computation.

``problem(seed, kinds, difficulty)`` draws a kind and a difficulty level (1-5) from ``seed`` (or
takes them from the arguments), then the problem's content from a generator seeded by (seed, kind,
level), so a problem's id names it completely. Kinds:

- ``arithmetic``: nested chains of +, -, *, / over integers (exact rationals from level 3 on);
- ``word``: shopping bills with discount and tax, average speeds over several legs, savings plans;
- ``linear``: one linear equation, from ``ax + b = c`` to fractional coefficients on both sides;
- ``system``: 2 to 4 linear equations with a unique (integer, then rational) solution;
- ``modular``: large powers, sums of powers and products of powers modulo m;
- ``counting``: binomials, committees, arrangements of letters, coin probabilities, lattice paths;
- ``series``: arithmetic, geometric (integer or fractional ratio) and polynomial sums, telescoping sums;
- ``gcd_lcm``: gcd / lcm of several numbers, smallest solution of a system of congruences.

Every problem carries its ground truth as a canonical string (an integer, or a reduced fraction
``a/b``) and the expert's program: Python (standard library only) that computes the answer and prints
exactly that string. The harder levels need longer programs (elimination, loops), so solution
lengths vary widely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np

from sampo_verl.envs.tir_math_algebra import linear, system
from sampo_verl.envs.tir_math_draw import Draw, canonical, signed

KINDS = ("arithmetic", "word", "linear", "system", "modular", "counting", "series", "gcd_lcm")
LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Problem:
    """One generated problem; ``program`` prints ``answer`` (and nothing else)."""

    id: str
    kind: str
    level: int
    question: str
    answer: str
    program: str


# arithmetic ----------------------------------------------------------------------------------------


def arithmetic(d: Draw, level: int) -> tuple[str, Fraction, str]:
    ops = "+-*" if level < 3 else "+-*/"
    magnitude = (99, 999, 999, 9999, 9999)[level - 1]
    first = d.randint(2, magnitude)
    expr, py, value = str(first), f"F({first})", Fraction(first)
    steps = 0
    while steps < 2 * level:
        op, number = d.pick(ops), d.randint(2, magnitude if d.rng.random() < 0.5 else 99)
        inner, inner_py = (expr, py) if steps == 0 else (f"({expr})", f"({py})")
        if d.rng.random() < 0.5:
            expr, py, value = f"{inner} {op} {number}", f"{inner_py} {op} F({number})", _apply(op, value, number)
        elif op != "/" or value != 0:
            expr, py, value = f"{number} {op} {inner}", f"F({number}) {op} {inner_py}", _apply(op, number, value)
        else:
            continue
        steps += 1
    question = f"Compute the exact value of {expr}."
    if "/" not in ops:
        return question, value, f"print({expr})\n"
    return question, value, f"from fractions import Fraction as F\n\nprint({py})\n"


def _apply(op: str, a: int | Fraction, b: int | Fraction) -> Fraction:
    if op == "+":
        return Fraction(a) + b
    if op == "-":
        return Fraction(a) - b
    if op == "*":
        return Fraction(a) * b
    return Fraction(a) / b


# word problems -------------------------------------------------------------------------------------

ITEMS = ("notebook", "pen", "backpack", "calculator", "lamp", "mug", "folder", "stapler", "ruler", "marker")
NAMES = ("Maria", "Omar", "Lena", "Kenji", "Ama", "Lucas", "Priya", "Tomas")


def word(d: Draw, level: int) -> tuple[str, Fraction, str]:
    return d.pick((shopping, travel, savings))(d, level)


def shopping(d: Draw, level: int) -> tuple[str, Fraction, str]:
    name, items = d.pick(NAMES), d.sample(ITEMS, level + 1)
    prices = {item: Fraction(d.randint(50, 4999), 100) for item in items}
    counts = {item: d.randint(1, 3 * level + 2) for item in items}
    parts = [f"{counts[i]} {i}{'s' if counts[i] > 1 else ''} at ${float(prices[i]):.2f} each" for i in items]
    question = f"{name} buys " + ", ".join(parts[:-1]) + f" and {parts[-1]}."
    total = sum(prices[i] * counts[i] for i in items)
    lines = [
        "from fractions import Fraction",
        "",
        "items = {" + ", ".join(f'"{i}": ({counts[i]}, Fraction("{float(prices[i]):.2f}"))' for i in items) + "}",
        "total = sum(count * price for count, price in items.values())",
    ]
    if level >= 3:
        discount = d.pick((5, 10, 15, 20, 25))
        question += f" The store takes {discount}% off the whole order."
        total *= 1 - Fraction(discount, 100)
        lines.append(f"total *= 1 - Fraction({discount}, 100)  # discount")
    if level >= 4:
        tax = d.randint(3, 9)
        question += f" Then a sales tax of {tax}% is added to the discounted price."
        total *= 1 + Fraction(tax, 100)
        lines.append(f"total *= 1 + Fraction({tax}, 100)  # tax")
    question += f" How many dollars does {name} pay in total? Give the exact value."
    return question, total, "\n".join([*lines, "print(total)", ""])


def travel(d: Draw, level: int) -> tuple[str, Fraction, str]:
    legs = [(d.randint(20, 120), d.randint(10, 180)) for _ in range(level + 1)]
    parts = [f"{minutes} minutes at {speed} km/h" for speed, minutes in legs]
    question = (
        "A car drives " + ", then ".join(parts) + ". What is its average speed over the whole trip, in km/h? "
        "Give the exact value."
    )
    distance = sum(Fraction(speed * minutes, 60) for speed, minutes in legs)
    value = distance / Fraction(sum(minutes for _, minutes in legs), 60)
    program = (
        "from fractions import Fraction\n\n"
        f"legs = {legs}  # (km/h, minutes)\n"
        "distance = sum(Fraction(speed * minutes, 60) for speed, minutes in legs)\n"
        "hours = Fraction(sum(minutes for _, minutes in legs), 60)\n"
        "print(distance / hours)\n"
    )
    return question, value, program


def savings(d: Draw, level: int) -> tuple[str, Fraction, str]:
    name, start, raise_, weeks = d.pick(NAMES), d.randint(5, 50), d.randint(1, 3 * level), d.randint(5, 10 * level + 5)
    every, spend = d.randint(2, 5), d.randint(10, 40)
    question = (
        f"{name} saves ${start} in week 1 and each week saves ${raise_} more than the week before. "
        f"At the end of every {every} weeks (weeks {every}, {2 * every}, ...) {name} spends ${spend} "
        f"of the savings. How many dollars has {name} saved after {weeks} weeks?"
    )
    total = sum(start + raise_ * (week - 1) for week in range(1, weeks + 1)) - spend * (weeks // every)
    program = (
        "total = 0\n"
        f"for week in range(1, {weeks} + 1):\n"
        f"    total += {start} + {raise_} * (week - 1)\n"
        f"    if week % {every} == 0:\n"
        f"        total -= {spend}\n"
        "print(total)\n"
    )
    return question, Fraction(total), program


# modular arithmetic --------------------------------------------------------------------------------


def modular(d: Draw, level: int) -> tuple[str, Fraction, str]:
    if level <= 3:
        a = d.randint(2, (50, 500, 10**6)[level - 1])
        e = d.randint(10, (1000, 10**6, 10**15)[level - 1])
        m = d.randint(7, (1000, 10**5, 10**9 + 7)[level - 1])
        question = f"What is the remainder when {a}^{e} is divided by {m}?"
        return question, Fraction(pow(a, e, m)), f"print(pow({a}, {e}, {m}))\n"
    if level == 4:
        n, p, m = d.randint(1000, 20000), d.randint(2, 6), d.randint(1000, 10**6)
        question = f"What is the remainder when 1^{p} + 2^{p} + 3^{p} + ... + {n}^{p} is divided by {m}?"
        value = sum(pow(k, p, m) for k in range(1, n + 1)) % m
        return question, Fraction(value), f"print(sum(pow(k, {p}, {m}) for k in range(1, {n} + 1)) % {m})\n"
    (a, e1), (b, e2), (c, e3) = ((d.randint(2, 999), d.randint(10**5, 10**12)) for _ in range(3))
    m = d.randint(10**4, 10**9)
    question = f"What is the remainder when ({a}^{e1} + {b}^{e2}) * {c}^{e3} is divided by {m}?"
    value = (pow(a, e1, m) + pow(b, e2, m)) * pow(c, e3, m) % m
    program = (
        f"m = {m}\n"
        f"first = pow({a}, {e1}, m)\n"
        f"second = pow({b}, {e2}, m)\n"
        f"third = pow({c}, {e3}, m)\n"
        "print((first + second) * third % m)\n"
    )
    return question, Fraction(value), program


# counting ------------------------------------------------------------------------------------------

LETTERS = "ABCDEFGH"


def counting(d: Draw, level: int) -> tuple[str, Fraction, str]:
    if level == 1:
        n = d.randint(8, 40)
        k = d.randint(2, n - 2)
        question = f"In how many ways can a team of {k} be chosen from {n} people?"
        return question, Fraction(math.comb(n, k)), f"import math\n\nprint(math.comb({n}, {k}))\n"
    if level in (2, 3):
        men, women = d.randint(5, 15), d.randint(5, 15)
        size = d.randint(3, min(men, women))
        j = d.randint(1, size - 1)
        if level == 2:
            question = (
                f"A club has {men} men and {women} women. In how many ways can a committee of {size} "
                f"with exactly {j} women be chosen?"
            )
            value = math.comb(women, j) * math.comb(men, size - j)
            return (
                question,
                Fraction(value),
                f"import math\n\nprint(math.comb({women}, {j}) * math.comb({men}, {size - j}))\n",
            )
        question = (
            f"A club has {men} men and {women} women. In how many ways can a committee of {size} "
            f"with at least {j} women be chosen?"
        )
        value = sum(math.comb(women, w) * math.comb(men, size - w) for w in range(j, size + 1))
        program = (
            "import math\n\n"
            f"men, women, size = {men}, {women}, {size}\n"
            f"print(sum(math.comb(women, w) * math.comb(men, size - w) for w in range({j}, size + 1)))\n"
        )
        return question, Fraction(value), program
    if level == 4:
        alphabet = LETTERS[: d.randint(3, 6)]
        letters = "".join(d.pick(alphabet) for _ in range(d.randint(7, 12)))
        counts = [letters.count(c) for c in sorted(set(letters))]
        value = math.factorial(len(letters))
        for count in counts:
            value //= math.factorial(count)
        question = f"How many distinct strings can be made by rearranging all the letters of {letters}?"
        program = (
            "import math\nfrom collections import Counter\n\n"
            f'word = "{letters}"\n'
            "count = math.factorial(len(word))\n"
            "for repeats in Counter(word).values():\n"
            "    count //= math.factorial(repeats)\n"
            "print(count)\n"
        )
        return question, Fraction(value), program
    if d.rng.random() < 0.5:
        n = d.randint(10, 40)
        k = d.randint(n // 3, 2 * n // 3)
        question = f"A fair coin is flipped {n} times. What is the probability of getting at least {k} heads?"
        value = Fraction(sum(math.comb(n, i) for i in range(k, n + 1)), 2**n)
        program = (
            "import math\nfrom fractions import Fraction\n\n"
            f"n = {n}\n"
            f"favourable = sum(math.comb(n, i) for i in range({k}, n + 1))\n"
            "print(Fraction(favourable, 2**n))\n"
        )
        return question, value, program
    m, n = d.randint(4, 12), d.randint(4, 12)
    a, b = d.randint(1, m - 1), d.randint(1, n - 1)
    question = (
        f"A path on a grid goes from (0, 0) to ({m}, {n}) using unit steps right or up. How many such paths "
        f"avoid the point ({a}, {b})?"
    )
    value = math.comb(m + n, m) - math.comb(a + b, a) * math.comb(m - a + n - b, m - a)
    program = (
        "import math\n\n"
        f"m, n, a, b = {m}, {n}, {a}, {b}\n"
        "total = math.comb(m + n, m)\n"
        "through = math.comb(a + b, a) * math.comb(m - a + n - b, m - a)\n"
        "print(total - through)\n"
    )
    return question, Fraction(value), program


# sums of sequences ---------------------------------------------------------------------------------


def series(d: Draw, level: int) -> tuple[str, Fraction, str]:
    if level <= 2:
        a, step, n = d.nonzero(50), d.nonzero(15), d.randint(10, (60, 2000)[level - 1])
        question = (
            f"What is the sum of the first {n} terms of the arithmetic sequence {a}, {a + step}, {a + 2 * step}, ...?"
        )
        value = sum(a + step * i for i in range(n))
        return question, Fraction(value), f"print(sum({a} + {step} * i for i in range({n})))\n"
    if level == 3:
        a, r, n = d.randint(1, 20), d.randint(2, 5), d.randint(8, 25)
        question = f"What is the sum of the first {n} terms of the geometric sequence {a}, {a * r}, {a * r * r}, ...?"
        return question, Fraction(sum(a * r**i for i in range(n))), f"print(sum({a} * {r}**i for i in range({n})))\n"
    if level == 4:
        a, n = d.randint(1, 50), d.randint(6, 15)
        q = d.randint(2, 7)
        r = Fraction(d.nonzero(q - 1), q)
        terms = ", ".join(str(a * r**i) for i in range(3))
        question = (
            f"What is the sum of the first {n} terms of the geometric sequence {terms}, ...? Give the exact value."
        )
        value = sum(a * r**i for i in range(n))
        program = (
            "from fractions import Fraction\n\n"
            f"ratio = Fraction({r.numerator}, {r.denominator})\n"
            f"print(sum({a} * ratio**i for i in range({n})))\n"
        )
        return question, value, program
    if d.rng.random() < 0.5:
        coefficients = [d.nonzero(9) for _ in range(4)]
        n = d.randint(20, 500)
        c3, c2, c1, c0 = coefficients
        formula = f"{c3}k^3 {signed(c2)}k^2 {signed(c1)}k {signed(c0)}"
        question = f"What is the sum of {formula} over all integers k from 1 to {n}?"
        value = sum(c3 * k**3 + c2 * k**2 + c1 * k + c0 for k in range(1, n + 1))
        program = f"print(sum({c3}*k**3 {signed(c2)}*k**2 {signed(c1)}*k {signed(c0)} for k in range(1, {n} + 1)))\n"
        return question, Fraction(value), program
    shift, n = d.randint(1, 5), d.randint(10, 200)
    question = (
        f"What is the exact value of the sum of 1/(k(k + {shift})) over all integers k from 1 to {n}? "
        "Give a reduced fraction."
    )
    value = sum(Fraction(1, k * (k + shift)) for k in range(1, n + 1))
    program = (
        "from fractions import Fraction\n\n"
        "total = Fraction(0)\n"
        f"for k in range(1, {n} + 1):\n"
        f"    total += Fraction(1, k * (k + {shift}))\n"
        "print(total)\n"
    )
    return question, value, program


# gcd and lcm ---------------------------------------------------------------------------------------


def gcd_lcm(d: Draw, level: int) -> tuple[str, Fraction, str]:
    if level in (1, 3):
        count, factor_bound, bound = (2, 99, 999) if level == 1 else (4, 9999, 9999)
        factor = d.randint(2, factor_bound)
        numbers = [factor * d.randint(2, bound) for _ in range(count)]
        question = f"What is the greatest common divisor of {', '.join(map(str, numbers))}?"
        return (
            question,
            Fraction(math.gcd(*numbers)),
            f"import math\n\nprint(math.gcd({', '.join(map(str, numbers))}))\n",
        )
    if level in (2, 4):
        count, bound = (3, 100) if level == 2 else (5, 1000)
        numbers = [d.randint(2, bound) for _ in range(count)]
        question = f"What is the least common multiple of {', '.join(map(str, numbers))}?"
        return (
            question,
            Fraction(math.lcm(*numbers)),
            f"import math\n\nprint(math.lcm({', '.join(map(str, numbers))}))\n",
        )
    while True:
        moduli = sorted(d.sample(range(3, 40), d.randint(3, 4)))
        if all(math.gcd(p, q) == 1 for i, p in enumerate(moduli) for q in moduli[i + 1 :]):
            break
    residues = [d.randint(1, m - 1) for m in moduli]
    value, step = 0, 1
    for m, r in zip(moduli, residues):  # sieve: step through the solutions of the congruences so far
        while value % m != r:
            value += step
        step *= m
    congruences = ", ".join(f"N leaves remainder {r} when divided by {m}" for m, r in zip(moduli, residues))
    question = f"What is the smallest positive integer N such that {congruences}?"
    program = (
        f"congruences = {list(zip(residues, moduli))}  # (remainder, modulus)\n"
        "n, step = 0, 1\n"
        "for remainder, modulus in congruences:\n"
        "    while n % modulus != remainder:\n"
        "        n += step\n"
        "    step *= modulus\n"
        "print(n)\n"
    )
    return question, Fraction(value), program


GENERATORS: dict[str, Callable[[Draw, int], tuple[str, Fraction, str]]] = {
    "arithmetic": arithmetic,
    "word": word,
    "linear": linear,
    "system": system,
    "modular": modular,
    "counting": counting,
    "series": series,
    "gcd_lcm": gcd_lcm,
}


def problem(seed: int, kinds: Sequence[str] | None = None, difficulty: int | Sequence[int] | None = None) -> Problem:
    """The problem of ``seed``: kind drawn from ``kinds`` (default all), level from ``difficulty``
    (an int, a list of levels to draw from, or None: 1-5)."""
    kinds = tuple(kinds or KINDS)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown:
        raise ValueError(f"tir_math: unknown problem kinds {unknown}; expected some of {list(KINDS)}")
    levels = tuple(LEVELS if difficulty is None else [difficulty] if isinstance(difficulty, int) else difficulty)
    if not levels or any(level not in LEVELS for level in levels):
        raise ValueError(f"tir_math: difficulty must be levels in {list(LEVELS)}, got {difficulty!r}")
    pick = np.random.default_rng(seed)
    kind, level = kinds[int(pick.integers(len(kinds)))], int(levels[int(pick.integers(len(levels)))])
    draw = Draw(np.random.default_rng([seed, KINDS.index(kind), level]))
    question, value, program = GENERATORS[kind](draw, level)
    return Problem(f"{kind}-{level}-{seed}", kind, level, question, canonical(value), program)
