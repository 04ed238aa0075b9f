"""Small programs over the cells of a few periods, every other cell held at its truth.

After the points built along the tables (:mod:`.tables`) a few hidden cells of a year's
largest component are left, and each cost the exact check a program over the whole component
(thousands of cells, dual simplex from scratch: 0.3-0.6 s a solve on a demo-sized year). On
that year they were municipality totals (a move on a total takes every breakdown of its figure
with it, and the funnel's figures with that) and hidden zeros of the organisation breakdown
whose moves need another period move per figure: moves of shapes the tables' search does not
build, but which stay within a month, its quarter and the year (or the months of one quarter).

A *slab* is the set of cells of a few periods. Every relation of the component is kept; the
cells outside the slab are held at their true values (substituted, so each relation becomes a
bound on the slab's cells alone), and the slab's cells are free (``x >= 0``; the cells asked
about boxed to ±2 around the truth, as in :mod:`.bounds`). A point of that program, with the
cells outside at their truth, is a point of the whole component: it is checked against every
relation of the component (within the solver's tolerance, as a program's point is) before it
counts. So a cell is shown protected here only by a feasible point, as by the programs over
the whole component, and whatever this does not show is left to them exactly as before.

A slab of a month is the month, its quarter and the year (a move up the period tree), then
the quarter with its three months (moves between the months of a quarter); of a quarter, the
quarter, its months and the year; then, for both, the cell's quarter and one other quarter
with all their months (each other quarter in turn: four hidden zeros of the demo-sized year
needed one). The year's cells and the cells no slab shows are left to the programs over the
whole component. The engine uses slabs only when the tables leave few cells (``SLAB_CELLS``):
a slab's program shows about one cell, the whole component's programs many at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .bounds import EPS, Constraint, _Model

__all__ = ["Slabs"]

# A slab's point counts when every relation holds within this (a program's point holds
# within HiGHS's primal feasibility tolerance, 1e-7, per relation).
_TOLERANCE = 1e-6

# Tiers of slabs tried (see Slabs.slab).
TIERS = 5


class Slabs:
    """The hidden cells of one program (``periods_of``: the position of each cell's period in
    ``year_periods``: the year, Q1-Q4, then the months) and its ``constraints`` (the shown
    cells substituted)."""

    def __init__(
        self, periods_of: Sequence[int], constraints: Sequence[Constraint], truth: Sequence[float]
    ) -> None:
        self.n = len(periods_of)
        self.period = np.asarray(periods_of, dtype=np.int64)
        self.truth = np.asarray(truth, dtype=np.float64)
        lengths = np.fromiter(
            (len(c.variables) for c in constraints), dtype=np.int64, count=len(constraints)
        )
        self.entry_row = np.repeat(np.arange(len(constraints), dtype=np.int64), lengths)
        self.entry_var = np.fromiter(
            (v for c in constraints for v in c.variables), dtype=np.int64, count=lengths.sum()
        )
        self.entry_coef = np.fromiter(
            (a for c in constraints for a in c.coefficients), dtype=np.float64, count=lengths.sum()
        )
        self.lower = np.fromiter((c.lower for c in constraints), np.float64, len(constraints))
        self.upper = np.fromiter((c.upper for c in constraints), np.float64, len(constraints))
        self.rows = len(constraints)
        self.at_truth = self._sums(self.truth)

    def _sums(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(
            self.entry_row, weights=self.entry_coef * x[self.entry_var], minlength=self.rows
        )

    @staticmethod
    def slab(period: int, tier: int) -> frozenset[int] | None:
        """The periods of a cell's slab of a tier (0-4), or None: left to the programs. A
        month: with its quarter and the year; its quarter's months; then with another
        quarter and that quarter's months too (three tiers, the quarters in order). A
        quarter: with its months and the year; then with another quarter and its months."""
        if period == 0:
            return None
        quarter = period if period <= 4 else 1 + (period - 5) // 3

        def months(q: int) -> set[int]:
            return {5 + 3 * (q - 1) + m for m in range(3)}

        if period >= 5 and tier == 0:
            return frozenset({0, quarter, period})
        if tier <= 1:
            return frozenset({0, quarter, *months(quarter)}) if period >= 5 or tier == 0 else None
        others = [q for q in (1, 2, 3, 4) if q != quarter]
        other = others[tier - 2] if tier - 2 < len(others) else None
        if other is None:
            return None
        return frozenset({0, quarter, other, *months(quarter), *months(other)})

    def show(self, pending: Sequence[int], low: np.ndarray, high: np.ndarray) -> None:
        """Widen ``low``/``high`` (the extremes seen per variable) with feasible points of the
        slabs' programs for the ``pending`` variables that do not span 2 yet."""
        for tier in range(TIERS):
            groups: dict[frozenset[int], list[int]] = {}
            for v in pending:
                if high[v] - low[v] >= 2 - EPS:
                    continue
                periods = self.slab(int(self.period[v]), tier)
                if periods is not None:
                    groups.setdefault(periods, []).append(int(v))
            for periods, variables in sorted(groups.items(), key=lambda g: g[1][0]):
                self._solve(periods, variables, low, high)

    def _solve(
        self, periods: frozenset[int], variables: list[int], low: np.ndarray, high: np.ndarray
    ) -> None:
        free = np.isin(self.period, np.fromiter(periods, dtype=np.int64, count=len(periods)))
        columns = np.flatnonzero(free)
        column_of = np.full(self.n, -1, dtype=np.int64)
        column_of[columns] = np.arange(len(columns))
        # The relations that hold a cell of the slab, with the cells outside substituted.
        mine = free[self.entry_var]
        rows, row_of_entry = np.unique(self.entry_row[mine], return_inverse=True)
        inside = np.bincount(
            self.entry_row[mine],
            weights=self.entry_coef[mine] * self.truth[self.entry_var[mine]],
            minlength=self.rows,
        )
        outside = (self.at_truth - inside)[rows]
        starts = np.searchsorted(row_of_entry, np.arange(len(rows) + 1))
        box_low, box_high = np.zeros(len(columns)), np.full(len(columns), np.inf)
        asked = column_of[np.asarray(variables, dtype=np.int64)]
        box_low[asked] = np.maximum(self.truth[variables] - 2, 0)
        box_high[asked] = self.truth[variables] + 2
        model = _Model(
            len(columns),
            (),
            (box_low, box_high),
            rows=(
                self.lower[rows] - outside,
                self.upper[rows] - outside,
                starts,
                column_of[self.entry_var[mine]],
                self.entry_coef[mine],
            ),
            dual_first=True,
        )

        def seen(x: np.ndarray | None) -> None:
            if x is not None:
                point = self.truth.copy()
                point[columns] = x
                self._count(point, low, high)

        def pending() -> list[int]:
            return [v for v in variables if high[v] - low[v] < 2 - EPS]

        todo = pending()
        if len(todo) > 1:
            # Every cell asked about towards the side of its box with more room at once (a
            # hidden zero up), then each on its own from that basis.
            up = np.asarray(
                [
                    column_of[v]
                    for v in todo
                    if self.truth[v] + 2 - high[v] >= low[v] - max(self.truth[v] - 2, 0)
                ],
                dtype=np.int64,
            )
            seen(model.optimise_mixed(up, column_of[np.asarray(todo, dtype=np.int64)], 0))
        for v in pending():
            for sense in (-1.0, 1.0):
                if high[v] - low[v] >= 2 - EPS:
                    break
                if (sense < 0 and high[v] >= self.truth[v] + 2 - EPS) or (
                    sense > 0 and low[v] <= max(self.truth[v] - 2, 0) + EPS
                ):
                    continue
                seen(model.optimise(int(column_of[v]), sense))

    def _count(self, point: np.ndarray, low: np.ndarray, high: np.ndarray) -> bool:
        """Widen ``low``/``high`` with ``point`` if it satisfies every relation of the
        component and x >= 0 (within the solver's tolerance); whether it counted."""
        sums = self._sums(point)
        if (
            (point < -_TOLERANCE).any()
            or (sums < self.lower - _TOLERANCE).any()
            or (sums > self.upper + _TOLERANCE).any()
        ):
            return False
        np.minimum(low, point, out=low)
        np.maximum(high, point, out=high)
        return True
