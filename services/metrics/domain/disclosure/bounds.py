"""Exact bounds of hidden cells by linear programming (HiGHS), for the engine's own check.

Given linear constraints over the hidden cells (the published cells already substituted), the
smallest and largest value each hidden cell can take is a pair of linear programs. A hidden cell
is *protected* when they lie at least 2 apart (domain.md §7 rule 4), or when both are 0 (a zero:
showing it would be allowed, rule 7).

Two things keep this fast enough to run on every release (a year × every breakdown in well under
a second): the model of a connected component is built once and only the objective changes
between solves (HiGHS re-uses the previous basis), and every optimal vertex moves many cells at
once, so a cell whose range seen so far already spans 2 needs no solve of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np

__all__ = ["Constraint", "Range", "ranges"]

# Solver noise: a range of 1.9999999 is a range of 2.
EPS = 1e-6


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
    ) -> None:
        self.n = n
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        # Re-solves after a change of objective start from the last basis, which is still
        # primal feasible: primal simplex, without presolve reshaping the model each time
        # (measured: an order of magnitude faster than dual simplex or presolve here).
        self.highs.setOptionValue("presolve", "off")
        self.highs.setOptionValue("simplex_strategy", 4)
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(constraints)
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.zeros(n) if box is None else box[0]
        lp.col_upper_ = np.full(n, highspy.kHighsInf) if box is None else box[1]
        lp.row_lower_ = np.array([c.lower for c in constraints], dtype=np.float64)
        lp.row_upper_ = np.array([c.upper for c in constraints], dtype=np.float64)
        starts: list[int] = [0]
        index: list[int] = []
        values: list[float] = []
        for c in constraints:
            index.extend(c.variables)
            values.extend(c.coefficients)
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = len(constraints)
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(values, dtype=np.float64)
        self.highs.passModel(lp)
        self._objective: list[int] = []

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

    def optimise(self, var: int, sense: float) -> np.ndarray | None:
        """Minimise ``sense * x[var]``; the optimal point, or None when unbounded."""
        # One column at a time: replacing the whole cost vector costs HiGHS far more.
        for old in self._objective:
            if old != var:
                self.highs.changeColCost(old, 0.0)
        self.highs.changeColCost(var, sense)
        self._objective = [var]
        return self._solve()

    def optimise_sum(self, variables: np.ndarray, sense: float) -> np.ndarray | None:
        """Minimise ``sense * sum(x[variables])``."""
        for old in self._objective:
            self.highs.changeColCost(old, 0.0)
        for var in variables:
            self.highs.changeColCost(int(var), sense)
        self._objective = [int(v) for v in variables]
        return self._solve()


def _restricted(
    constraints: Sequence[Constraint],
    touching: Sequence[Sequence[int]],
    block: np.ndarray,
    point: np.ndarray,
) -> tuple[int, list[Constraint]]:
    """The constraints with every variable outside ``block`` fixed at ``point``
    (``touching[v]``: the constraints variable ``v`` appears in)."""
    local = {int(v): i for i, v in enumerate(block)}
    out = []
    for number in sorted({r for v in local for r in touching[v]}):
        c = constraints[number]
        fixed = 0.0
        variables: list[int] = []
        coefficients: list[float] = []
        for v, coef in zip(c.variables, c.coefficients, strict=True):
            if v in local:
                variables.append(local[v])
                coefficients.append(coef)
            else:
                fixed += coef * point[v]
        out.append(
            Constraint(tuple(variables), tuple(coefficients), c.lower - fixed, c.upper - fixed)
        )
    return len(block), out


def _sweep(
    model: _Model, variables: np.ndarray, low: np.ndarray, high: np.ndarray, into: np.ndarray
) -> None:
    """Move the pending ``variables`` of ``model`` (all up, all down, then one by one) and
    widen ``low``/``high`` (indexed by ``into``, the model's variables in the full problem)."""

    def seen(x: np.ndarray | None) -> None:
        if x is not None:
            np.minimum.at(low, into, x)
            np.maximum.at(high, into, x)

    def pending() -> np.ndarray:
        full = into[variables]
        return variables[high[full] - low[full] < 2 - EPS]

    for sense in (-1.0, 1.0):
        todo = pending()
        if len(todo):
            seen(model.optimise_sum(todo, sense))
    for var in pending():
        for sense in (-1.0, 1.0):
            if high[into[var]] - low[into[var]] >= 2 - EPS:
                break
            seen(model.optimise(int(var), sense))


def ranges(
    n: int,
    constraints: Sequence[Constraint],
    truth: Sequence[float],
    wanted: Sequence[int] | None = None,
    *,
    stop_when_protected: bool = True,
    blocks: Sequence[Sequence[int]] = (),
) -> dict[int, Range]:
    """The range of each wanted variable (all by default) under the constraints and ``x >= 0``.

    ``truth`` is a feasible point (the real values). With ``stop_when_protected`` a variable's
    range is reported as soon as it is known to be protected (then ``low``/``high`` are the
    extremes seen so far, not necessarily the optimum); unprotected ranges are always exact.

    Protection is shown with points found in smaller programs first: within ``blocks`` (the
    other variables held at the truth), then within a box of ±2 around the truth. Points found
    there are feasible, so a range seen there is a range of the cell, and small bounded
    programs solve far faster (measured: tens of times). Only cells that these cannot show
    protected are solved again on the whole, exactly."""
    wanted_vars = np.arange(n) if wanted is None else np.asarray(wanted, dtype=np.int64)
    point = np.asarray(truth, dtype=np.float64)
    low, high = point.copy(), point.copy()
    out: dict[int, Range] = {}
    if stop_when_protected:
        # Small blocks first, the rest held at the truth: a point found there is a point of
        # the whole, and most cells are protected by a few neighbouring rows (a hypercube).
        touching: list[list[int]] = [[] for _ in range(n)]
        for number, c in enumerate(constraints):
            for v in c.variables:
                touching[v].append(number)
        for block in blocks:
            members = np.asarray(sorted(set(block)), dtype=np.int64)
            if not len(members) or (high[members] - low[members] >= 2 - EPS).all():
                continue
            size, restricted = _restricted(constraints, touching, members, point)
            box = (np.maximum(point[members] - 2, 0), point[members] + 2)
            _sweep(_Model(size, restricted, box), np.arange(size), low, high, members)
        if (high[wanted_vars] - low[wanted_vars] < 2 - EPS).any():
            boxed = _Model(n, constraints, (np.maximum(point - 2, 0), point + 2))
            _sweep(boxed, wanted_vars, low, high, np.arange(n))
        for var in wanted_vars[high[wanted_vars] - low[wanted_vars] >= 2 - EPS]:
            out[int(var)] = Range(float(low[var]), float(high[var]))
    exact: _Model | None = None
    for var in wanted_vars:
        if int(var) in out:
            continue
        exact = exact or _Model(n, constraints)
        maximum = exact.optimise(int(var), -1.0)
        minimum = exact.optimise(int(var), 1.0)
        out[int(var)] = Range(
            0.0 if minimum is None else max(0.0, float(minimum[var])),
            math.inf if maximum is None else float(maximum[var]),
        )
    return out
