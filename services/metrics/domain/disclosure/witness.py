"""Rule 4 shown without a solver: feasible points found combinatorially, verified exactly.

The exact check (:mod:`.bounds`) asks, for every hidden cell of a component, whether the
values consistent with everything shown span at least 2, or are pinned at 0. Most of the time,
on the municipality totals of the live answers, every hidden cell passes, and that is cheap to
*show*: for each cell an integer point that satisfies every relation and moves the cell by 2
(or one point moving it up and one down), and for a hidden zero that nothing can lift, bounds
propagated along the relations that keep it at 0. Each point is checked against every relation
in integer arithmetic, so a cell shown protected here is protected (its true range spans at
least what the points span); what this cannot show is left to the linear programs, which
decide it exactly. The relations have coefficients ±1 (sums, complements, inequalities,
growing stocks), so moving one cell is repaired along the relations it breaks, one hidden cell
at a time, much as a flow is augmented along a path.

Used as a shortcut that may only say "all protected": when it cannot show every cell of every
component, the caller runs the exact check as before, so the outcome never depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .bounds import Constraint

__all__ = ["all_protected", "shown"]

# Repair steps tried per move before giving up on it, and in all for one component: when
# the search cannot show a cell, the linear programs decide anyway, and a long failing search
# would only add to their cost (measured on small synthetic years where it fails: 2-9 ms with
# these caps, 14-39 ms before; the whole engine there: about 45-65 ms per answer).
BUDGET = 64
TOTAL_BUDGET = 1000


class _Block:
    def __init__(self, n: int, constraints: Sequence[Constraint], truth: Sequence[int]) -> None:
        self.n = n
        self.truth = list(truth)
        self.vars: list[tuple[int, ...]] = []
        self.coefs: list[tuple[int, ...]] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.rows_of: list[list[int]] = [[] for _ in range(n)]
        self.terms_of: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (row, coef)
        self.at_truth: list[int] = []
        self.steps = TOTAL_BUDGET  # repair steps left for the whole component
        for r, c in enumerate(constraints):
            coefs = tuple(int(a) for a in c.coefficients)
            if any(a not in (1, -1) for a in coefs) or any(
                a != b for a, b in zip(coefs, c.coefficients, strict=True)
            ):
                raise ValueError("coefficients other than ±1")
            self.vars.append(c.variables)
            self.coefs.append(coefs)
            self.lower.append(c.lower)
            self.upper.append(c.upper)
            for v, a in zip(c.variables, coefs, strict=True):
                self.rows_of[v].append(r)
                self.terms_of[v].append((r, a))
            self.at_truth.append(
                sum(a * self.truth[v] for v, a in zip(c.variables, coefs, strict=True))
            )

    def _off(self, r: int, value: int) -> int:
        """How far relation ``r`` at ``value`` lies outside its bounds (signed: the change of
        its value that brings it back to the nearest bound), 0 when inside."""
        if value < self.lower[r]:
            return int(self.lower[r] - value)
        if value > self.upper[r]:
            return int(self.upper[r] - value)
        return 0

    def move(self, var: int, amount: int) -> dict[int, int] | None:
        """An integer feasible point truth + delta with delta[var] == amount, or None."""
        if self.truth[var] + amount < 0:
            return None
        budget = [BUDGET]

        def shifted(
            values: dict[int, int], broken: frozenset[int], v: int, step: int
        ) -> tuple[dict[int, int], frozenset[int]]:
            # Only the relations of ``v`` change value: the others keep theirs (and whether
            # they hold).
            values = dict(values)
            now = set(broken)
            for r, a in self.terms_of[v]:
                values[r] = values.get(r, self.at_truth[r]) + a * step
                if self._off(r, values[r]):
                    now.add(r)
                else:
                    now.discard(r)
            return values, frozenset(now)

        def repair(
            delta: dict[int, int],
            values: dict[int, int],
            broken: frozenset[int],
            fixed: frozenset[int],
        ) -> dict[int, int] | None:
            budget[0] -= 1
            self.steps -= 1
            if budget[0] < 0 or self.steps < 0:
                return None
            if not broken:
                return delta
            r = min(broken)
            need = self._off(r, values[r])
            for v, a in zip(self.vars[r], self.coefs[r], strict=True):
                if v in fixed:
                    continue
                step = need * a  # a is ±1: a * step == need
                if self.truth[v] + delta.get(v, 0) + step < 0:
                    continue
                found = repair(
                    {**delta, v: delta.get(v, 0) + step},
                    *shifted(values, broken, v, step),
                    fixed | {v},
                )
                if found is not None:
                    return found
            return None

        point = repair({var: amount}, *shifted({}, frozenset(), var, amount), frozenset({var}))
        if point is None:
            return None
        # The exact verification: every relation of the component, and nothing negative.
        full = [t + point.get(v, 0) for v, t in enumerate(self.truth)]
        if min(full) < 0:
            return None
        for r in range(len(self.vars)):
            value = sum(a * full[v] for v, a in zip(self.vars[r], self.coefs[r], strict=True))
            if not self.lower[r] <= value <= self.upper[r]:
                return None
        return point

    def zero_ceiling(self) -> list[float]:
        """Upper bounds of every variable propagated along the relations (every variable is
        at least 0): a variable whose bound is 0 cannot leave 0 in any feasible point."""
        high = [math.inf] * self.n
        for _ in range(self.n + 1):
            changed = False
            for r in range(len(self.vars)):
                vars_, coefs = self.vars[r], self.coefs[r]
                for j, (v, a) in enumerate(zip(vars_, coefs, strict=True)):
                    # a*x_v <= upper - Σ_{others} min(a_i x_i), or a*x_v >= lower - Σ max(...)
                    if a > 0 and self.upper[r] < math.inf:
                        rest = sum(
                            -high[u] if b < 0 else 0.0
                            for i, (u, b) in enumerate(zip(vars_, coefs, strict=True))
                            if i != j
                        )
                        bound = self.upper[r] - rest
                    elif a < 0 and self.lower[r] > -math.inf:
                        rest = sum(
                            high[u] if b > 0 else 0.0
                            for i, (u, b) in enumerate(zip(vars_, coefs, strict=True))
                            if i != j
                        )
                        bound = rest - self.lower[r]
                    else:
                        continue
                    if bound < high[v]:
                        high[v] = bound
                        changed = True
            if not changed:
                break
        return high


def shown(
    n: int, constraints: Sequence[Constraint], truth: Sequence[int]
) -> tuple[list[int], list[int], set[int]] | None:
    """What the search shows of the variables of a component (``x >= 0``, the
    ``constraints``, ``truth`` a feasible integer point): the lowest and highest value of
    every variable in the feasible points it found, and the zeros pinned at 0. A variable is
    shown protected when its values span at least 2 or it is pinned; the rest is for the
    linear programs (the points found start them). None when the relations are not of the
    kind searched (coefficients other than ±1)."""
    try:
        block = _Block(n, constraints, truth)
    except ValueError:
        return None
    low, high = list(block.truth), list(block.truth)
    pinned: set[int] = set()
    ceiling: list[float] | None = None
    for var in range(n):
        if block.truth[var] == 0 and high[var] == 0:
            # A hidden zero is mostly pinned there by what is shown (an empty month beside
            # its quarter): the bounds say so at once, where every failing move would search.
            ceiling = ceiling or block.zero_ceiling()
            if ceiling[var] <= 0:
                pinned.add(var)
                continue
        for amount in (2, -2, 1, -1):
            if high[var] - low[var] >= 2:
                break
            if (amount > 0 and high[var] - block.truth[var] >= amount) or (
                amount < 0 and block.truth[var] - low[var] >= -amount
            ):
                continue
            point = block.move(var, amount)
            if point is not None:
                for v, d in point.items():
                    value = block.truth[v] + d
                    low[v], high[v] = min(low[v], value), max(high[v], value)
    return low, high, pinned


def all_protected(n: int, constraints: Sequence[Constraint], truth: Sequence[int]) -> bool:
    """Whether every variable of the component is shown protected (:func:`shown`). False
    means "not shown", not "unprotected"."""
    found = shown(n, constraints, truth)
    if found is None:
        return False
    low, high, pinned = found
    return all(high[v] - low[v] >= 2 or v in pinned for v in range(n))
