"""The draws TIR-Math's problem generators share: integers from one seeded generator (:class:`Draw`) and
how numbers are written in questions and answers."""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np


def canonical(value: int | Fraction) -> str:
    """The canonical answer string: ``12``, ``-3/4`` (reduced)."""
    return str(Fraction(value))


class Draw:
    """Integer draws from one ``np.random.Generator`` (bounds inclusive, Python ints out)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def randint(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def nonzero(self, bound: int) -> int:
        value = self.randint(1, bound)
        return -value if self.rng.random() < 0.5 else value

    def pick(self, options: Sequence):
        return options[int(self.rng.integers(len(options)))]

    def sample(self, options: Sequence, k: int) -> list:
        return [options[i] for i in self.rng.choice(len(options), size=k, replace=False)]


def signed(value: int | Fraction, first: bool = False) -> str:
    """``value`` as a term of a sum: ``+ 3`` / ``- 3`` (``-3`` / ``3`` when first)."""
    if first:
        return str(value)
    return f"- {-value}" if value < 0 else f"+ {value}"
