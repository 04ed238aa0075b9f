"""Exact bounds of hidden cells by linear programming (HiGHS), for the engine's own check.

Given linear constraints over the hidden cells (the published cells already substituted), the
smallest and largest value each hidden cell can take is a pair of linear programs. A hidden cell
is *protected* when they lie at least 2 apart (domain.md §7 rule 4), or when both are 0 (a zero:
showing it would be allowed, rule 7).

What keeps this affordable: the model of a connected component is built once and only the
objective changes between solves; the search bounds the cells asked about to ±2 around the
truth (further proves nothing) and leaves the others free; every optimal vertex moves many
cells at once, so a cell whose range seen so far already spans 2 needs no solve of its own.
Objectives over many cells send each pending cell towards the side with more room and are
solved by dual simplex from the slack basis: after such a change of objective the previous
basis is far from the new optimum (primal simplex from it took 8,000-15,000 iterations on the
largest component of a demo-sized year), and dual simplex from scratch was cheaper there than
interior point with crossover (0.24 s against 0.41 s a solve) with a vertex that settles more
cells. Objectives of one cell stay with primal simplex from the previous basis, which is near
(a few hundred iterations).
The extremes seen may be carried over between calls (``seen``): hiding more cells only widens
ranges, so a point seen before stays a feasible point of the later model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import highspy
import numpy as np

__all__ = ["Constraint", "Range", "ranges"]

# Solver noise: a range of 1.9999999 is a range of 2.
EPS = 1e-6

# When no more cells than this are pending, the programs over many cells stop and each is
# moved on its own: a program of one cell starts from the last basis (primal simplex, ~60 ms
# on the largest component of a demo-sized year), one of many from scratch (dual simplex,
# ~0.3 s there) and settles few when few are left.
FEW = 8


@dataclass(frozen=True)
class Constraint:
    """``lower <= sum(coef * x[var]) <= upper`` over the variables (hidden cells) of a model."""

    variables: tuple[int, ...]
    coefficients: tuple[float, ...]
    lower: float
    upper: float


@dataclass(frozen=True)
class Range:
    low: float
    high: float  # math.inf when unbounded
    # For an exact range: the constraints that bind at its ends (non-zero dual values), which
    # are what pins the cell.
    binding: tuple[int, ...] = ()

    @property
    def protected(self) -> bool:
        return self.high - self.low >= 2 - EPS or self.high <= EPS

    @property
    def exact(self) -> bool:
        return self.high - self.low <= EPS


class _Model:
    def __init__(
        self,
        n: int,
        constraints: Sequence[Constraint],
        box: tuple[np.ndarray, np.ndarray] | None = None,
        *,
        rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
        dual_first: bool = False,
    ) -> None:
        """A program over ``n`` variables and ``constraints`` or, given ``rows``, over the
        same in row-wise arrays (lower, upper, starts, variables, coefficients), which is
        cheaper for a program built from arrays (:mod:`.slabs`). With ``dual_first`` its first
        solve is by dual simplex whatever the objective: without a basis to start from, primal
        simplex on one cell's objective took 1.45 s on the largest component of a demo-sized
        year, dual simplex 0.5 s. Not for the exact programs, whose duals name what pins a
        cell (the repair's first choice) and must stay as they were."""
        self.n = n
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        # Re-solves of one cell start from the last basis, which is still primal feasible:
        # primal simplex, without presolve reshaping the model each time (measured: an order
        # of magnitude faster than dual simplex or presolve there). Many cells: _method.
        self.highs.setOptionValue("presolve", "off")
        self.highs.setOptionValue("simplex_strategy", 4)
        if rows is None:
            starts: list[int] = [0]
            index: list[int] = []
            values: list[float] = []
            for c in constraints:
                index.extend(c.variables)
                values.extend(c.coefficients)
                starts.append(len(index))
            rows = (
                np.array([c.lower for c in constraints], dtype=np.float64),
                np.array([c.upper for c in constraints], dtype=np.float64),
                np.array(starts, dtype=np.int32),
                np.array(index, dtype=np.int32),
                np.array(values, dtype=np.float64),
            )
        row_lower, row_upper, row_starts, row_index, row_values = rows
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(row_lower)
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.zeros(n) if box is None else box[0]
        lp.col_upper_ = np.full(n, highspy.kHighsInf) if box is None else box[1]
        lp.row_lower_ = row_lower
        lp.row_upper_ = row_upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = len(row_lower)
        lp.a_matrix_.start_ = np.asarray(row_starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.asarray(row_index, dtype=np.int32)
        lp.a_matrix_.value_ = np.asarray(row_values, dtype=np.float64)
        self.highs.passModel(lp)
        self._objective: list[int] = []
        self._many = False
        self._fresh = dual_first

    def _solve(self) -> np.ndarray | None:
        self.highs.run()
        status = self.highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return np.asarray(self.highs.getSolution().col_value)
        if status in (
            highspy.HighsModelStatus.kUnbounded,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            return None
        raise ValueError(
            "the published figures contradict each other (the model is "
            f"{self.highs.modelStatusToString(status)}); the grid is inconsistent"
        )

    def binding(self) -> list[int]:
        """The constraints with a non-zero dual value at the last optimum."""
        duals = np.asarray(self.highs.getSolution().row_dual)
        return [int(i) for i in np.nonzero(np.abs(duals) > 1e-7)[0]]

    def _method(self, many: bool) -> None:
        """Dual simplex from scratch for an objective over many cells, primal simplex from the
        last basis for one cell (see the module's docstring)."""
        many, self._fresh = many or self._fresh, False
        if many:
            # The last basis is far from the new optimum (primal simplex from it: 8,000-15,000
            # iterations); dual simplex from the slack basis needs ~4,700 on the largest
            # component of a demo-sized year and is cheaper than interior point with
            # crossover (0.24 s against 0.41 s a solve, measured) and its vertex settles more
            # cells (280 against 248 of 1,826 hidden zeros lifted to 2 in the first program).
            self.highs.clearSolver()
        if many != self._many:
            self.highs.setOptionValue("simplex_strategy", 1 if many else 4)
            self._many = many

    def optimise(self, var: int, sense: float) -> np.ndarray | None:
        """Minimise ``sense * x[var]``; the optimal point, or None when unbounded."""
        self._method(False)
        # One column at a time: replacing the whole cost vector costs HiGHS far more.
        for old in self._objective:
            if old != var:
                self.highs.changeColCost(old, 0.0)
        self.highs.changeColCost(var, sense)
        self._objective = [var]
        return self._solve()

    def optimise_mixed(self, up: np.ndarray, variables: np.ndarray, seed: int) -> np.ndarray | None:
        """Maximise ``variables`` in ``up`` and minimise the others of ``variables``, with
        weights that differ per ``seed`` (deterministic)."""
        self._method(len(variables) > 1)
        for old in self._objective:
            self.highs.changeColCost(old, 0.0)
        ups = {int(v) for v in up}
        for i, var in enumerate(variables):
            weight = 1.0 + ((i * 7919 + seed * 104729) % 5) / 4
            self.highs.changeColCost(int(var), -weight if int(var) in ups else weight)
        self._objective = [int(v) for v in variables]
        return self._solve()

    def optimise_sum(self, variables: np.ndarray, sense: float) -> np.ndarray | None:
        """Minimise ``sense * sum(x[variables])``."""
        self._method(len(variables) > 1)
        for old in self._objective:
            self.highs.changeColCost(old, 0.0)
        for var in variables:
            self.highs.changeColCost(int(var), sense)
        self._objective = [int(v) for v in variables]
        return self._solve()


def _sweep(
    model: _Model,
    variables: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    into: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
    lift: Callable[[np.ndarray], None] | None = None,
) -> set[int]:
    """Move the pending ``variables`` of ``model`` (many at once, each towards its side with
    more room, while that settles a good share) and widen ``low``/``high`` (indexed by
    ``into``, the model's variables in the full problem).
    Returns the variables shown to be fixed at zero (protected: a zero may be shown)."""

    def seen(x: np.ndarray | None) -> None:
        if x is not None:
            np.minimum.at(low, into, x)
            np.maximum.at(high, into, x)
            if lift is not None:
                lift(x)

    def pending() -> np.ndarray:
        full = into[variables]
        return variables[high[full] - low[full] < 2 - EPS]

    # Many cells at once, each towards the side of its box with more room (a hidden zero,
    # which cannot go below 0, always up; ties alternate per round), while that still
    # settles a good share (a vertex moves many cells; one cell per program is the expensive
    # last resort).
    rounds = 0
    while len(todo := pending()) > FEW:
        before = len(todo)
        full = into[todo]
        room_up = box[1][full] - high[full]
        room_down = low[full] - box[0][full]
        up = todo[(room_up > room_down) | ((room_up == room_down) & (rounds % 2 == 0))]
        seen(model.optimise_mixed(up, todo, rounds))
        rounds += 1
        if rounds >= 2 and before - len(pending()) < max(2, before // 50):
            break
    # Cells that cannot leave zero (a hidden empty cell beside shown ones): most of a year of
    # small cells. Maximising the sum of the candidates moves every one that can move; when
    # the maximum is zero, none can: all of them are zeros at once, not one program each.
    zero = set()
    candidates = pending()
    candidates = candidates[high[into[candidates]] <= EPS]
    while len(candidates):
        x = model.optimise_sum(candidates, -1.0)
        if x is None:
            break
        seen(x)
        moved = x[candidates] > EPS
        if not moved.any():
            zero = {int(v) for v in candidates}
            break
        candidates = candidates[~moved]
    return zero


def _groups(
    model: _Model,
    pending: Callable[[], np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
) -> None:
    """The pending variables in ever smaller groups, each moved at once (towards the side of
    its box with more room; a hidden zero up). What is left after the sweep mostly competes
    for the same room (hidden zeros that can each reach 2, but not all at once: a vertex that
    maximises their sum settles few), and a small group competes less. Stops when a group
    settles fewer cells than the two programs one by one would cost."""
    groups = 2
    while len(todo := pending()) and groups <= len(todo):
        settled = 0
        for g in range(groups):
            part = todo[g::groups]
            part = part[high[part] - low[part] < 2 - EPS]
            if not len(part):
                continue
            up = part[box[1][part] - high[part] >= low[part] - box[0][part]]
            x = model.optimise_mixed(up, part, groups + g)
            if x is not None:
                np.minimum(low, x, out=low)
                np.maximum(high, x, out=high)
            settled += int((high[part] - low[part] >= 2 - EPS).sum())
        if settled < 2 * groups:
            return
        groups *= 2


def _one_by_one(
    model: _Model,
    variables: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
) -> None:
    """Each pending variable up and down on its own: the expensive last resort. A direction
    in which a point seen already reaches the box's edge is not solved (it cannot go
    further): most of these are hidden zeros, whose lowest value is 0 from the start."""
    for var in variables:
        for sense in (-1.0, 1.0):
            if high[var] - low[var] >= 2 - EPS:
                break
            if (sense < 0 and high[var] >= box[1][var] - EPS) or (
                sense > 0 and low[var] <= box[0][var] + EPS
            ):
                continue
            x = model.optimise(int(var), sense)
            if x is not None:
                np.minimum(low, x, out=low)
                np.maximum(high, x, out=high)


def ranges(
    n: int,
    constraints: Sequence[Constraint],
    truth: Sequence[float],
    wanted: Sequence[int] | None = None,
    *,
    stop_when_protected: bool = True,
    seen: tuple[np.ndarray, np.ndarray] | None = None,
    lift: Callable[[np.ndarray], None] | None = None,
) -> dict[int, Range]:
    """The range of each wanted variable (all by default) under the constraints and ``x >= 0``.

    ``truth`` is a feasible point (the real values). With ``stop_when_protected`` a variable's
    range is reported as soon as it is known to be protected (then ``low``/``high`` are the
    extremes seen so far, not necessarily the optimum); unprotected ranges are always exact.

    Protection is shown with points found within a box that holds the wanted variables within
    ±2 of the truth, first moving many cells at once (each towards its side with more room),
    then in smaller groups, then one by one. Points found there are feasible, so a range seen
    there is a range of the cell, and bounded programs solve far faster (measured: about ten
    times). Only cells that the box cannot show protected are solved again without it,
    exactly (with the constraints that pin them).

    ``seen`` (lowest, highest value per variable) are extremes of feasible points found
    before, for instance in an earlier check of the same cells before more of their neighbours
    were hidden; they start the search and are widened in place. ``lift``, if given, is called
    with every point the sweep's programs find and may widen them further from it (the
    engine's points built along the tables, :mod:`.tables`)."""
    wanted_vars = np.arange(n) if wanted is None else np.asarray(wanted, dtype=np.int64)
    point = np.asarray(truth, dtype=np.float64)
    low, high = (point.copy(), point.copy()) if seen is None else seen
    out: dict[int, Range] = {}
    if stop_when_protected:
        if (high[wanted_vars] - low[wanted_vars] < 2 - EPS).any():
            # Within the box, a cell that cannot rise above zero cannot anywhere: the truth is
            # feasible and the feasible set convex, so any rise far away is a small rise near
            # the truth. The box bounds the cells asked about (more than 2 from the truth
            # proves nothing more), not the others: a hidden zero lifted to 2 may need a
            # neighbour to give way by more than 2, and with every other cell held within ±2
            # the zeros competed for that room (the zeros' round of the largest component of a
            # demo-sized year: 32 programs of many cells, 12.5 s; without: 19, 5.6 s).
            box = (np.zeros(n), np.full(n, math.inf))
            box[0][wanted_vars] = np.maximum(point[wanted_vars] - 2, 0)
            box[1][wanted_vars] = point[wanted_vars] + 2
            boxed = _Model(n, constraints, box, dual_first=True)
            zero = _sweep(boxed, wanted_vars, low, high, np.arange(n), box, lift)
            for var in zero:
                out[var] = Range(0.0, 0.0)

            def pending() -> np.ndarray:
                left = wanted_vars[high[wanted_vars] - low[wanted_vars] < 2 - EPS]
                return np.asarray([v for v in left if int(v) not in zero], dtype=np.int64)

            _groups(boxed, pending, low, high, box)
            _one_by_one(boxed, pending(), low, high, box)
        for var in wanted_vars[high[wanted_vars] - low[wanted_vars] >= 2 - EPS]:
            out[int(var)] = Range(float(low[var]), float(high[var]))
    exact: _Model | None = None
    for var in wanted_vars:
        if int(var) in out:
            continue
        exact = exact or _Model(n, constraints)
        maximum = exact.optimise(int(var), -1.0)
        binding = set(exact.binding()) if maximum is not None else set()
        minimum = exact.optimise(int(var), 1.0)
        binding.update(exact.binding())
        out[int(var)] = Range(
            0.0 if minimum is None else max(0.0, float(minimum[var])),
            math.inf if maximum is None else float(maximum[var]),
            tuple(sorted(binding)),
        )
    return out
