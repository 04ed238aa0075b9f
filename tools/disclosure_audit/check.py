"""Rule 4 of domain.md §7, applied to the reader's model: for every count that something hides,
the smallest and largest value consistent with everything published.

A *disclosure* is a count whose range is narrower than 2 (known exactly or to within ±1), and
which is either hidden by some publication or small (below k): a hidden cell given away, or a
small count that a rate or a difference reveals although no figure shows it. A range of
exactly [0, 0] is a zero, which may be shown (rule 7), so it is no disclosure. For each one the
report names the published figures and relations that pin it (those with a non-zero dual value
at the optimum), and says whether linear algebra alone (the equalities, without the bounds)
already determines it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

from services.metrics.domain.disclosure.bounds import Constraint, ranges
from tools.disclosure_audit.model import Model, Variable, build
from tools.disclosure_audit.published import Published

__all__ = ["Disclosure", "Report", "audit"]

EPS = 1e-6
# How far a bound may lie from a whole number and still be that number: the published rates
# are rounded to 4 decimals, so a count recovered from one comes with an error of that order.
ROUNDING = 0.01
# Linear algebra on a component up to this many variables (dense; beyond it, the LP verdict).
ALGEBRA_LIMIT = 2500
EVIDENCE = 10


@dataclass(frozen=True)
class Disclosure:
    variable: Variable
    low: float
    high: float
    hidden: bool  # hidden by some publication (else: a small count nothing shows)
    exact_by_algebra: bool | None  # None: not computed (too large a component)
    evidence: tuple[str, ...]

    def describe(self) -> str:
        # Counts are whole numbers: a reader rounds the range inwards.
        low, high = math.ceil(self.low - ROUNDING), math.floor(self.high + ROUNDING)
        value = f"= {low}" if low == high else f"between {low} and {high}"
        how = {True: "; linear algebra alone gives it", False: "", None: ""}[self.exact_by_algebra]
        what = "hidden count" if self.hidden else "small count (shown nowhere)"
        lines = [f"DISCLOSURE {self.variable} {value} ({what}{how})", "  given away by:"]
        lines += [f"    - {e}" for e in self.evidence]
        return "\n".join(lines)


@dataclass
class Report:
    year: int
    k: int
    published: int
    checked: int
    disclosures: list[Disclosure] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disclosures and not self.conflicts

    def describe(self) -> str:
        lines = [d.describe() for d in self.disclosures]
        lines += [f"CONFLICT {c}" for c in self.conflicts]
        lines.append(
            f"{self.year}: {self.published} published figures, {self.checked} hidden or "
            f"derived counts checked, {len(self.disclosures)} disclosures"
            + (f", {len(self.conflicts)} conflicting figures" if self.conflicts else "")
            + f" (k = {self.k})"
        )
        return "\n".join(lines)


class _Program:
    """One component's linear program over its unknown counts (x >= 0)."""

    def __init__(self, n: int, rows: Sequence[tuple[list[tuple[int, float]], float, float]]):
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.n = n
        self.highs.addVars(n, np.zeros(n), np.full(n, highspy.kHighsInf))
        for terms, lower, upper in rows:
            idx = np.array([v for v, _ in terms], dtype=np.int32)
            val = np.array([c for _, c in terms], dtype=np.float64)
            self.highs.addRow(
                -highspy.kHighsInf if lower == -float("inf") else lower,
                highspy.kHighsInf if upper == float("inf") else upper,
                len(idx),
                idx,
                val,
            )
        self.objective: int | None = None

    def centre(self, box: float) -> tuple[str, np.ndarray]:
        """A point inside the feasible region, away from its faces where it can be: the mean
        of a few vertices (everything up, everything down, two mixed directions) within a
        box. Held at such a point, the other counts leave a block room to move, which the
        small programs of the range search need; a vertex would pin them."""
        inner = highspy.Highs()
        inner.setOptionValue("output_flag", False)
        inner.passModel(self.highs.getLp())
        everything = np.arange(self.n, dtype=np.int32)
        inner.changeColsBounds(self.n, everything, np.zeros(self.n), np.full(self.n, box))
        directions = np.ones((4, self.n))
        directions[1] = -1.0
        directions[2, 1::2] = -1.0
        directions[3, 0::2] = -1.0
        points = []
        for costs in directions:
            inner.changeColsCost(self.n, everything, costs)
            inner.run()
            if inner.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return self.solve(None, 1.0)[:2]
            points.append(np.asarray(inner.getSolution().col_value))
        return "optimal", np.mean(points, axis=0)

    def solve(self, var: int | None, sense: float) -> tuple[str, np.ndarray, np.ndarray]:
        if self.objective is not None:
            self.highs.changeColCost(self.objective, 0.0)
        if var is not None:
            self.highs.changeColCost(var, sense)
        self.objective = var
        self.highs.run()
        status = self.highs.getModelStatus()
        solution = self.highs.getSolution()
        name = {
            highspy.HighsModelStatus.kOptimal: "optimal",
            highspy.HighsModelStatus.kUnbounded: "unbounded",
            highspy.HighsModelStatus.kInfeasible: "infeasible",
        }.get(status, self.highs.modelStatusToString(status))
        return name, np.asarray(solution.col_value), np.asarray(solution.row_dual)


def audit(
    published: Sequence[Published], year: int, k: int, *, additive_lists: bool = False
) -> Report:
    """Every disclosure of the year's published figures (see the module's docstring)."""
    model = build(published, year, k, additive_lists=additive_lists)
    report = Report(year, k, len(published), 0, conflicts=list(model.conflicts))
    known = {v: value for v, (value, _) in model.shown.items()}
    # A count hidden in one place and shown in another: one decision per cell (rule 5) broken.
    for v in sorted(model.hidden & known.keys()):
        report.disclosures.append(
            Disclosure(
                model.variables[v], known[v], known[v], True, True,
                (f"shown: {model.shown[v][1]}", "hidden elsewhere: one decision per cell broken"),
            )
        )  # fmt: skip
    rows = _substituted(model, known, report)
    parent = list(range(len(model.variables)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for terms, *_ in rows:
        for v, _ in terms[1:]:
            a, b = find(terms[0][0]), find(v)
            if a != b:
                parent[max(a, b)] = min(a, b)
    components: dict[int, list[int]] = {}
    for v in range(len(model.variables)):
        if v not in known:
            components.setdefault(find(v), []).append(v)
    rows_of: dict[int, list[int]] = {}
    for number, (terms, *_) in enumerate(rows):
        rows_of.setdefault(find(terms[0][0]), []).append(number)
    wanted = (model.hidden | model.mentioned) - known.keys()
    report.checked = len(wanted) + len(model.hidden & known.keys())
    for root, members in components.items():
        targets = [v for v in members if v in wanted]
        if targets:
            _component(model, rows, rows_of.get(root, []), members, targets, report)
    report.disclosures.sort(key=lambda d: d.variable)
    return report


def _substituted(
    model: Model, known: dict[int, float], report: Report
) -> list[tuple[list[tuple[int, float]], float, float, tuple[str, ...]]]:
    """The rows with the shown counts put in, each with what a reader needs for it: the
    relation or publication, and the shown counts it took. Rows left without unknowns must
    hold."""
    out = []
    for row in model.rows:
        shift = sum(c * known[v] for v, c in row.terms if v in known)
        terms = [(v, c) for v, c in row.terms if v not in known]
        lower, upper = row.lower - shift, row.upper - shift
        if not terms:
            if lower > EPS or upper < -EPS:
                report.conflicts.append(f"{row.why}: does not hold for the shown figures")
            continue
        used = tuple(model.shown[v][1] + f" = {known[v]:g}" for v, _ in row.terms if v in known)
        out.append((terms, lower, upper, (row.why, *(f"published {u}" for u in used))))
    return out


def _component(
    model: Model,
    rows: list[tuple[list[tuple[int, float]], float, float, tuple[str, ...]]],
    numbers: list[int],
    members: list[int],
    targets: list[int],
    report: Report,
) -> None:
    local = {v: i for i, v in enumerate(members)}
    mine = [rows[n] for n in numbers]
    program = _Program(
        len(members), [([(local[v], c) for v, c in terms], lo, hi) for terms, lo, hi, _ in mine]
    )
    box = 10 * max((value for value, _ in model.shown.values()), default=0) + 100
    status, point = program.centre(box)
    if status != "optimal":
        report.conflicts.append(
            f"the figures about {model.variables[members[0]]} and {len(members) - 1} other "
            f"counts contradict each other ({status})"
        )
        return
    point = np.maximum(point, 0.0)
    constraints = [
        Constraint(
            tuple(local[v] for v, _ in terms),
            tuple(c for _, c in terms),
            lo,
            hi,
        )
        for terms, lo, hi, _ in mine
    ]
    wanted = [local[v] for v in targets]
    found = ranges(len(members), constraints, point.tolist(), wanted)
    k = model.k
    for i, span in found.items():
        v = members[i]
        hidden = v in model.hidden
        # Counts are whole numbers: a reader rounds the range inwards (a rate's rounding
        # leaves 2.9996 .. 3.0004, which is 3).
        if (
            span.protected
            or math.floor(span.high + ROUNDING) == 0  # a zero, which may be shown
            or (not hidden and math.ceil(span.low - ROUNDING) >= k)
        ):
            continue
        evidence = _evidence(program, i, [w for *_, w in mine])
        algebra = _algebra(mine, local, i) if len(members) <= ALGEBRA_LIMIT else None
        report.disclosures.append(
            Disclosure(
                model.variables[v],
                round(span.low, 6),
                round(span.high, 6),
                hidden,
                algebra,
                evidence,
            )
        )


def _evidence(program: _Program, var: int, why: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The rows that bind at the maximum and the minimum of ``var``, and the shown counts
    they took."""
    found: list[str] = []
    for sense in (-1.0, 1.0):
        status, _, duals = program.solve(var, sense)
        if status != "optimal":
            continue
        for number in np.nonzero(np.abs(duals) > 1e-7)[0]:
            for line in why[number]:
                if line not in found:
                    found.append(line)
    return tuple(found[:EVIDENCE]) + ((f"... and {len(found) - EVIDENCE} more",) if len(found) > EVIDENCE else ())  # fmt: skip


def _algebra(
    rows: list[tuple[list[tuple[int, float]], float, float, tuple[str, ...]]],
    local: dict[int, int],
    var: int,
) -> bool:
    """Whether the equalities alone determine ``var``: its unit vector lies in their row
    space (least squares leaves no residual)."""
    equalities = [terms for terms, lo, hi, _ in rows if lo == hi]
    if not equalities:
        return False
    a = np.zeros((len(equalities), len(local)))
    for r, terms in enumerate(equalities):
        for v, c in terms:
            a[r, local[v]] = c
    target = np.zeros(len(local))
    target[var] = 1.0
    y, *_ = np.linalg.lstsq(a.T, target, rcond=None)
    return bool(np.linalg.norm(a.T @ y - target) < 1e-6)
