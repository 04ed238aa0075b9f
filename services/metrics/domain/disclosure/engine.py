"""The suppression engine: a year grid in, one decision per cell and figure out (domain.md §7).

Pure and deterministic: no I/O, no clock, no randomness; ties are broken by the grid's fixed
order of figures, breakdowns, keys and periods. The method, and why:

1. **Primary suppression** (rules 1–3): a subgoal section of a cell about fewer than k people
   hides all its figures; a count shows only when it is at least k and rests on at least k
   distinct people; zeros are hidden like 1..k−1 (rule 7 only *allows* showing them). Both
   sides of a rate are counts of their own, so "both sides hold k" is rule 2 on each side.
2. **Linked figures**: a rate is shown iff both its sides are (so a rate never gives back a
   hidden count, nor a hidden count's complement); a side that is never shown as a count
   (``declined``, ``lonely``) is hidden with its partner, so that the model does not pretend a
   reader knows it. Growth is shown iff participants_unique is and the baseline is known.
3. **Secondary suppression** (rule 4), top-down as in τ-ARGUS's HiTaS: first the municipality
   totals alone over the period hierarchy (they are served live, and must be safe on their
   own), then each breakdown with the totals' decisions as given, never choosing a total. In
   each pass a fixpoint over every equation — a parent and its children: total = Σ keys per
   period, year = Σ quarters and quarter = Σ months per key, whole = part + complement per
   cell — until no equation holds exactly one hidden non-zero cell that is small (a large one
   beside hidden zeros only says that they are zeros). The complementary cell is
   chosen as in the hypercube method (GHMITER): among the visible cells of the equation, the
   one that closes another equation's lone hidden cell or at least opens no new one, then the
   least information lost (smallest value, half when the same cell already lost a linked
   figure), then the fixed order. People counts, which only bound their parent (a person in
   two months), are protected as if they added up: the stronger reader.
4. **Exact check** (rule 4's own test): for the hidden cells of each connected component, the
   smallest and largest value consistent with everything shown, by linear programming over the
   relations that hold for the data (sums, bounds of people counts, stocks that only grow,
   new ≤ unique ≤ attendances, ...). A hidden cell whose range is narrower than 2 (and not
   exactly 0) gets one more complementary cell beside it, and the check repeats: the totals
   alone first, then everything together.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

import numpy as np

from . import witness as search
from .bounds import EPS, Constraint, Range, ranges
from .decisions import Decision, Decisions, Reason, Ref
from .grid import TOTAL, Count, YearGrid, year_periods
from .slabs import Slabs
from .spec import (
    BREAKDOWNS,
    FIGURES,
    GROWTH,
    RATES,
    STATISTICS,
    VALID_INEQUALITIES,
    FigureSpec,
)
from .tables import Tables

__all__ = ["suppress", "unsuppressed"]

RATE_DIGITS = 4

# Components of the exact check with at least this many hidden cells are first shown
# protected by points built along the tables (:mod:`.tables`); below, their programs are
# cheaper than the search (measured on a demo-sized year: components of 1,800 cells, ~0.1 s
# of programs per round either way).
TABLES_FROM = 2000

# When the tables' moves leave at most this many cells of a component, they are shown with
# programs over a few periods each (:mod:`.slabs`, ~5-80 ms a cell) before the programs over
# the whole component; when they leave more (a year of small cells: seed 4 of the synthetic
# years left 1,085 of 3,201 hidden zeros), the whole component's programs, which move many
# cells at once, are cheaper than a slab's program per cell (measured without this limit:
# seed 4 9.5 s -> 12 s, seed 2 9.7 s -> 32 s).
SLAB_CELLS = 64

# Components of the exact check with fewer hidden cells than this share one program.
SMALL_COMPONENT = 200

# Results remembered per set of relations (:meth:`_Relations.remembered`).
MEMO_SIZE = 4096

_T = TypeVar("_T")

# At most this many cells left by the search of a small program are solved exactly at once.
FEW_LEFT = 8


@dataclass(frozen=True)
class Equation:
    """parent = Σ children ("sum"), max(children) <= parent <= Σ children ("sub"), or only
    parent <= Σ children ("latest")."""

    parent: int
    children: tuple[int, ...]
    relation: str

    @property
    def cells(self) -> tuple[int, ...]:
        return (self.parent, *self.children)


Scope = Literal["total", "everything"]

Row = tuple[tuple[int, ...], tuple[float, ...], float, float]


class _Relations:
    """The relations of one scope, in the order of :meth:`_Model.constraints`, also flattened
    (every (row, cell, coefficient) entry in row order) so that what the exact check asks of
    all of them at once — the value of every relation, which hold a hidden cell, the hidden
    cells they tie into components — is a few array operations, not a loop over Python
    tuples per round (on the totals' grid that loop was most of suppression's cost)."""

    def __init__(self, rows: list[Row], cells_in_model: int) -> None:
        self.rows = rows
        self.cells_in_model = cells_in_model
        lengths = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        self.row_of_entry = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        self.cells = np.fromiter(
            itertools.chain.from_iterable(r[0] for r in rows), dtype=np.int64, count=lengths.sum()
        )
        self.coefs = np.fromiter(
            itertools.chain.from_iterable(r[1] for r in rows), dtype=np.float64, count=lengths.sum()
        )
        self.lower = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
        self.upper = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
        # What the exact check derives from these relations alone and the hidden cells (and
        # shown values) it is given: the live totals' relations are shared by every answer
        # of a year, and between two answers most of it is the same again.
        self._memo: dict[Any, Any] = {}
        # Only relations shared by many answers remember (a release's model is decided once,
        # and remembering its large components' programs would only hold memory).
        self.shared = False

    def remembered(self, key: Any, make: Callable[[], _T]) -> _T:
        """``make()``, or what it gave before for ``key``; a few thousand kept at most."""
        if not self.shared:
            return make()
        if key in self._memo:
            return cast(_T, self._memo[key])
        found = make()
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = found
        return found

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Σ coefficient × x per relation (exact: integer counts, well below 2**53)."""
        return np.bincount(
            self.row_of_entry, weights=self.coefs * x[self.cells], minlength=len(self.rows)
        )


@dataclass(frozen=True)
class _Shape:
    """The connected components of one set of hidden cells (:meth:`_Model._layout`): the
    hidden cells of some relation (``members``, ascending) and the component of each, the
    relations holding a hidden cell (``row_numbers``) and the component of each, both grouped
    by component (``by_component``/``cuts``, ``rows_by_component``/``row_cuts``)."""

    count: int
    members: np.ndarray
    component_of: np.ndarray
    row_component: np.ndarray
    by_component: np.ndarray
    cuts: np.ndarray
    rows_by_component: np.ndarray
    row_cuts: np.ndarray
    row_numbers: np.ndarray


@dataclass(frozen=True)
class _Layout:
    """A :class:`_Shape` with the values: each relation's bounds with the shown cells
    substituted, and whether something shown bounds each component."""

    shape: _Shape
    hidden_key: bytes
    bounded: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


# The relations of the totals' grid per year and scope: its shape is the same for every
# answer (every figure's municipality total over the periods), only its values change.
_SHAPES: dict[tuple[int, str], _Relations] = {}


class _Model:
    """Every base cell of the year as an integer id, and the relations between them."""

    def __init__(self, grid: YearGrid, k: int) -> None:
        self.grid = grid
        self.k = k
        self.periods = year_periods(grid.year)
        self.year_label, self.quarters, self.months = (
            self.periods[0],
            self.periods[1:5],
            self.periods[5:],
        )
        self.index: dict[Ref, int] = {}
        self._by_figure: dict[str, list[tuple[Ref, int]]] = {}
        self.refs: list[Ref] = []
        self.value: list[int] = []
        self.people: list[int] = []
        self.spec: list[FigureSpec] = []
        self.total: list[bool] = []
        self.group: list[int] = []  # the table cell (breakdown, key, period) of each id
        self._groups: dict[tuple[str, str, str], int] = {}
        self.group_members: list[list[int]] = []
        for spec in FIGURES.values():
            for by in (TOTAL, *spec.breakdowns):
                for key in self.keys(by):
                    self._add_row(spec, by, key)
        n = len(self.refs)
        self.hidden = [False] * n
        self.reason: list[Reason | None] = [None] * n
        self.partners: list[list[int]] = [[] for _ in range(n)]
        self.equations: list[Equation] = []
        self.inequalities: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.chains: list[list[int]] = []  # stocks month by month: each <= the next
        self._build_relations()
        self.by_of = [ref[1] for ref in self.refs]
        self.eqs_of: list[list[int]] = [[] for _ in range(n)]
        # The pass an equation belongs to: the breakdown of its non-total cells, or the totals.
        self.pass_of: list[str] = []
        for e, eq in enumerate(self.equations):
            for cell in eq.cells:
                self.eqs_of[cell].append(e)
            self.pass_of.append(max(self.by_of[c] for c in eq.cells))
        # The cells each cell shares an inequality with (for repairs the exact check asks for).
        self.relations_of: list[list[tuple[int, ...]]] = [[] for _ in range(n)]
        for small, large in self.inequalities:
            for cell in (*small, *large):
                self.relations_of[cell].append((*small, *large))
        for chain in self.chains:
            for cell in chain:
                self.relations_of[cell].append(tuple(chain))
        self.nonzero_hidden = [0] * len(self.equations)
        # How many cells are hidden: names the set of hidden cells, which only grows.
        self.hidden_count = 0
        self._layouts: dict[tuple[Scope, int], _Layout | None] = {}
        self.pinned_by: dict[int, list[int]] = {}
        self._relations: dict[Scope, _Relations] = {}
        self._single: dict[
            str, tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], list[list[int]]]
        ] = {}

    # ------------------------------------------------------------------------------ cells

    def keys(self, by: str) -> Sequence[str]:
        return ("",) if by == TOTAL else tuple(self.grid.keys.get(by, ()))

    def _periods_of(self, spec: FigureSpec) -> list[str]:
        # A stock at the end of the period: the quarter is its last month, the year December.
        return self.months if spec.periods == "cumulative" else self.periods

    def _add_row(self, spec: FigureSpec, by: str, key: str) -> None:
        for period in self._periods_of(spec):
            ref = (spec.name, by, key, period)
            count = self._count(spec, by, key, period)
            self.index[ref] = len(self.refs)
            self.refs.append(ref)
            self.value.append(count.value)
            self.people.append(count.people)
            self.spec.append(spec)
            self.total.append(by == TOTAL)
            group = self._groups.setdefault((by, key, period), len(self._groups))
            if group == len(self.group_members):
                self.group_members.append([])
            self.group_members[group].append(len(self.refs) - 1)
            self.group.append(group)
        if spec.periods == "cumulative":
            self.index[(spec.name, by, key, self.year_label)] = self.index[
                (spec.name, by, key, self.months[-1])
            ]
            for q, quarter in enumerate(self.quarters):
                self.index[(spec.name, by, key, quarter)] = self.index[
                    (spec.name, by, key, self.months[3 * q + 2])
                ]

    def _count(self, spec: FigureSpec, by: str, key: str, period: str) -> Count:
        ref = (spec.name, by, key, period)
        if ref in self.grid.counts or spec.complement_of is None:
            return self.grid.count(ref)
        whole, part = spec.complement_of
        rest = max(
            0,
            self.grid.count((whole, by, key, period)).value
            - self.grid.count((part, by, key, period)).value,
        )
        # One record per person (a respondent's latest measurement, an organisation): the
        # complement's people are its value. Figures where that is not so (not_converted: a
        # resident may be referred twice) come from the grid itself.
        return Count(rest, rest)

    def cell(self, figure: str, by: str, key: str, period: str) -> int | None:
        return self.index.get((figure, by, key, period))

    def refs_of(self, figure: str) -> list[tuple[Ref, int]]:
        """Every label of a figure's cells (the quarter and year of a stock too), in order."""
        if not self._by_figure:
            for ref, cell in self.index.items():
                self._by_figure.setdefault(ref[0], []).append((ref, cell))
        return self._by_figure.get(figure, [])

    # -------------------------------------------------------------------------- relations

    def _equation(self, parent: int | None, children: Iterable[int | None], rel: str) -> None:
        kids = tuple(c for c in children if c is not None)
        if parent is not None and kids:
            self.equations.append(Equation(parent, kids, rel))

    def _build_relations(self) -> None:
        for spec in FIGURES.values():
            name = spec.name
            for by in (TOTAL, *spec.breakdowns):
                for key in self.keys(by):
                    if spec.periods == "cumulative":
                        # A stock only grows; what counts partners does not (a partner may
                        # leave the registry), nor does its complement, and the number of
                        # partners is public anyway.
                        if spec.complement_of is None and not spec.public and not spec.shrinks:
                            self.chains.append(
                                [self.index[(name, by, key, m)] for m in self.months]
                            )
                        continue
                    row = {p: self.index[(name, by, key, p)] for p in self.periods}
                    self._equation(
                        row[self.year_label], (row[q] for q in self.quarters), spec.periods
                    )
                    for q, quarter in enumerate(self.quarters):
                        self._equation(
                            row[quarter],
                            (row[m] for m in self.months[3 * q : 3 * q + 3]),
                            spec.periods,
                        )
            for by in spec.breakdowns:
                for period in self._periods_of(spec):
                    self._equation(
                        self.cell(name, TOTAL, "", period),
                        (self.cell(name, by, key, period) for key in self.keys(by)),
                        spec.relation(by),
                    )
            if spec.complement_of and spec.complement_of[0] in FIGURES:
                whole, part = spec.complement_of
                for by in (TOTAL, *spec.breakdowns):
                    for key in self.keys(by):
                        for period in self._periods_of(spec):
                            self._equation(
                                self.cell(whole, by, key, period),
                                (
                                    self.cell(part, by, key, period),
                                    self.cell(name, by, key, period),
                                ),
                                "sum",
                            )
        for rate in RATES.values():
            for ref, cell in self.refs_of(rate.numerator):
                other = self.cell(rate.other, *ref[1:])
                if other is not None and other not in self.partners[cell]:
                    self.partners[cell].append(other)
                    self.partners[other].append(cell)
        for small, large in VALID_INEQUALITIES:
            for by, key, period in self._groups:
                small_ids = [self.cell(f, by, key, period) for f in small]
                large_ids = [self.cell(f, by, key, period) for f in large]
                found_small = tuple(i for i in small_ids if i is not None)
                found_large = tuple(i for i in large_ids if i is not None)
                if len(found_small) == len(small) and len(found_large) == len(large):
                    self.inequalities.append((found_small, found_large))

    # --------------------------------------------------------------------------- suppression

    def hide(self, cell: int, reason: Reason, queue: deque[int] | None = None) -> None:
        if self.hidden[cell]:
            return
        self.hidden[cell] = True
        self.hidden_count += 1
        self.reason[cell] = reason
        if self.value[cell]:
            for e in self.eqs_of[cell]:
                self.nonzero_hidden[e] += 1
        if queue is not None:
            queue.extend(self.eqs_of[cell])
        # A side never shown as a count is known only through its rate: hidden with its partner.
        for other in self.partners[cell]:
            if not self.spec[other].published:
                self.hide(other, "linked", queue)

    def primary(self) -> None:
        k = self.k
        sections: dict[tuple[str, int], int] = {}
        for cell, spec in enumerate(self.spec):
            if spec.section is None:
                continue
            by, key, period = self.refs[cell][1:]
            slot = (spec.section, self.group[cell])
            if slot not in sections:
                given = self.grid.sections.get((spec.section, by, key, period))
                # Without the section's own count: the most people behind any of its figures,
                # a lower bound, so the rule errs on the side of hiding.
                sections[slot] = (
                    given
                    if given is not None
                    else max(
                        self.people[c]
                        for c in self.group_members[self.group[cell]]
                        if self.spec[c].section == spec.section
                    )
                )
        for cell, spec in enumerate(self.spec):
            if spec.public:
                continue
            small_section = (
                spec.section is not None and sections[(spec.section, self.group[cell])] < k
            )
            if small_section or self.value[cell] < k or self.people[cell] < k:
                self.hide(cell, "primary")

    def _candidates(
        self, cells: Iterable[int], free: Callable[[int], bool], public: bool = False
    ) -> list[int]:
        return [
            c
            for c in cells
            if free(c)
            and not self.hidden[c]
            and self.value[c] > 0
            and (public or not self.spec[c].public)
        ]

    def _cost(self, cell: int, equation: int | None) -> tuple[int, float, int]:
        # Hypercube spirit: prefer the cell that closes another equation's lone hidden cell
        # (there it becomes the second), and avoid one that opens new lone cells.
        opens = 0
        for e in self.eqs_of[cell]:
            # Only equations of the cell's own pass: a total is chosen for the totals alone.
            if e == equation or self.pass_of[e] != self.by_of[cell]:
                continue
            if self.nonzero_hidden[e] == 0:
                opens += 1
            elif self.nonzero_hidden[e] == 1:
                opens -= 1
        loss = float(self.value[cell]) if self.spec[cell].published else 0.5 * self.value[cell]
        if any(self.hidden[c] for c in self.group_members[self.group[cell]] if c != cell):
            loss *= 0.5
        return (opens, loss, cell)

    def choose(
        self,
        cells: Iterable[int],
        free: Callable[[int], bool],
        equation: int | None,
        public: bool = False,
    ) -> int | None:
        candidates = self._candidates(cells, free, public)
        if not candidates:
            return None
        return min(candidates, key=lambda c: self._cost(c, equation))

    def fixpoint(self, equations: Iterable[int], by: str) -> None:
        """Until no equation of the pass ``by`` (among those reachable from ``equations``)
        holds exactly one hidden non-zero cell; complementary cells come from that pass."""

        def free(c: int) -> bool:
            return self.by_of[c] == by

        queue: deque[int] = deque(equations)
        stuck: set[int] = set()
        while queue:
            e = queue.popleft()
            if self.nonzero_hidden[e] != 1 or self.pass_of[e] != by or e in stuck:
                continue
            cells = self.equations[e].cells
            lone = next(c for c in cells if self.hidden[c] and self.value[c])
            beside_zeros = any(self.hidden[c] and not self.value[c] for c in cells)
            if beside_zeros and self.value[lone] >= self.k and self.people[lone] >= self.k:
                # A large cell beside hidden zeros: knowing where the mass lies only says that
                # the zeros are zeros (rule 7); whether the large one is pinned by something
                # else is for the exact check.
                continue
            chosen = self.choose(cells, free, e)
            if chosen is None:
                stuck.add(e)  # left to the exact check, which looks further
                continue
            self.hide(chosen, "secondary", queue)

    def _of_pass(
        self, by: str
    ) -> tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], list[list[int]]]:
        """The inequalities and stock chains that hold a cell of the pass ``by``, in order
        (each pass looked at all of them, for every pass and round)."""
        found = self._single.get(by)
        if found is None:
            found = (
                [
                    (small, large)
                    for small, large in self.inequalities
                    if any(self.by_of[c] == by for c in (*small, *large))
                ],
                [chain for chain in self.chains if any(self.by_of[c] == by for c in chain)],
            )
            self._single[by] = found
        return found

    def narrow_inequalities(self, by: str) -> list[tuple[int, list[int]]]:
        """Hidden cells that one relation alone pins to a range narrower than 2: the hidden
        part of ``accepted + declined <= referrals`` when the rest is shown (12 referrals, 11
        accepted: at most one declined), or a month of a stock between two shown months.
        Returns (hidden cell, the shown cells that pin it) for cells of the pass ``by``."""

        def free(c: int) -> bool:
            return self.by_of[c] == by

        found: list[tuple[int, list[int]]] = []
        inequalities, chains = self._of_pass(by)
        for small, large in inequalities:
            if any(self.hidden[c] for c in large):
                continue
            hidden = [c for c in small if self.hidden[c]]
            if not hidden:
                continue
            room = sum(self.value[c] for c in large) - sum(
                self.value[c] for c in small if not self.hidden[c]
            )
            if 0 < room < 2:
                shown = [c for c in (*small, *large) if not self.hidden[c]]
                found.append((hidden[0], shown))
        for chain in chains:
            for i, cell in enumerate(chain):
                if not self.hidden[cell] or not free(cell):
                    continue
                before = next((c for c in reversed(chain[:i]) if not self.hidden[c]), None)
                after = next((c for c in chain[i + 1 :] if not self.hidden[c]), None)
                if after is None:
                    continue
                low = self.value[before] if before is not None else 0
                high = self.value[after]
                if high - low < 2 and high > 0:
                    found.append((cell, [c for c in (before, after) if c is not None]))
        return found

    def settle(self, equations: Iterable[int], by: str) -> None:
        """The fixpoint over the equations of the pass ``by``, then over its single
        relations, until both hold."""

        def free(c: int) -> bool:
            return self.by_of[c] == by

        self.fixpoint(equations, by)
        while True:
            queue: deque[int] = deque()
            for _, shown in self.narrow_inequalities(by):
                chosen = self.choose(shown, free, None)
                if chosen is not None and not self.hidden[chosen]:
                    self.hide(chosen, "secondary", queue)
            if not queue:
                return
            self.fixpoint(queue, by)

    # ------------------------------------------------------------------------- exact check

    def constraints(
        self, include: Callable[[int], bool]
    ) -> list[tuple[tuple[int, ...], tuple[float, ...], float, float]]:
        """The relations over cells that ``include`` admits, as (cells, coefficients, lower,
        upper) with every cell still a variable (visible ones are substituted later)."""
        out: list[tuple[tuple[int, ...], tuple[float, ...], float, float]] = []
        inf = float("inf")
        for eq in self.equations:
            if not all(include(c) for c in eq.cells):
                continue
            coefs = (1.0, *(-1.0 for _ in eq.children))
            if eq.relation == "sum":
                out.append((eq.cells, coefs, 0.0, 0.0))
            else:
                out.append((eq.cells, coefs, -inf, 0.0))  # parent <= Σ children
                if eq.relation == "sub":
                    for child in eq.children:
                        out.append(((child, eq.parent), (1.0, -1.0), -inf, 0.0))  # child <= parent
        for small, large in self.inequalities:
            cells = (*small, *large)
            if all(include(c) for c in cells):
                coefs = (*(1.0 for _ in small), *(-1.0 for _ in large))
                out.append((cells, coefs, -inf, 0.0))
        for chain in self.chains:
            for a, b in itertools.pairwise(chain):
                if include(a) and include(b):
                    out.append(((a, b), (1.0, -1.0), -inf, 0.0))
        return out

    def relations(self, scope: Scope) -> _Relations:
        """The relations of ``scope`` (the totals alone, or everything), built once per model
        and, for a grid of the totals alone (the live answers' grid, the same shape for every
        answer of a year), once per process: they depend on the grid's shape, not its values."""
        found = self._relations.get(scope)
        if found is None:
            key = (self.grid.year, scope) if not any(self.grid.keys.values()) else None
            found = _SHAPES.get(key) if key is not None else None
            if found is None or found.cells_in_model != len(self.refs):
                include = self.include(scope)
                found = _Relations(self.constraints(include), len(self.refs))
                if key is not None:
                    found.shared = True
                    _SHAPES[key] = found
            self._relations[scope] = found
        return found

    def include(self, scope: Scope) -> Callable[[int], bool]:
        if scope == "total":
            return lambda c: self.total[c]
        return lambda c: True

    def violations(self) -> list[str]:
        """The relations the grid's own values break (each a bug of whoever built it)."""
        relations = self.relations("everything")
        totals = relations.sums(np.asarray(self.value, dtype=np.float64))
        broken = np.flatnonzero(
            (totals < relations.lower - 1e-9) | (totals > relations.upper + 1e-9)
        )
        found = []
        for number in broken:
            cells, coefs, lower, upper = relations.rows[number]
            terms = " ".join(
                f"{'+' if c > 0 else '-'} {'/'.join(self.refs[cell])}={self.value[cell]}"
                for cell, c in zip(cells, coefs, strict=True)
            )
            found.append(f"{terms} should lie in [{lower}, {upper}]")
        return found

    def _layout(self, scope: Scope) -> _Layout | None:
        """The connected components of the hidden cells of ``scope`` (None: nothing shown
        bounds any), computed once per set of hidden cells: the exact check's rounds, the
        shortcut and the zeros' round ask the same set again with other cells in doubt. Which
        cells form a component depends on the hidden cells alone, which change seldom between
        two answers of the live totals: the relations (shared by those answers) remember it."""
        key = (scope, self.hidden_count)
        if key in self._layouts:
            return self._layouts[key]
        self._layouts = {k: v for k, v in self._layouts.items() if k[1] == self.hidden_count}
        relations = self.relations(scope)
        hidden = np.asarray(self.hidden, dtype=bool)
        hidden_key = hidden.tobytes()
        shape = relations.remembered(
            ("layout", hidden_key), lambda: self._shape_of(relations, hidden)
        )
        layout: _Layout | None = None
        if shape is not None:
            # Each relation with the shown cells substituted: bounds on the hidden ones alone.
            value = np.asarray(self.value, dtype=np.float64)
            shift = relations.sums(np.where(hidden, 0.0, value))[shape.row_numbers]
            lower = relations.lower[shape.row_numbers] - shift
            upper = relations.upper[shape.row_numbers] - shift
            # Nothing shown bounds a component whose every relation is homogeneous: its
            # feasible counts form a cone, so each cell is either always 0 or unbounded (no
            # look needed).
            homogeneous = ((lower == 0.0) | (lower == -math.inf)) & (
                (upper == 0.0) | (upper == math.inf)
            )
            if not homogeneous.all():  # all: a year without data, for instance
                bounded = (
                    np.bincount(shape.row_component, weights=~homogeneous, minlength=shape.count)
                    > 0
                )
                layout = _Layout(shape, hidden_key, bounded, lower, upper)
        self._layouts[key] = layout
        return layout

    def _shape_of(self, relations: _Relations, hidden: np.ndarray) -> _Shape | None:
        # The hidden entries of the relations, in row order: a relation with none is left out.
        entries = np.flatnonzero(hidden[relations.cells])
        if not len(entries):
            return None
        entry_cell = relations.cells[entries]
        entry_row = relations.row_of_entry[entries]
        starts = np.flatnonzero(np.r_[True, entry_row[1:] != entry_row[:-1]])
        lengths = np.diff(np.r_[starts, len(entries)])
        # Connected components of the hidden cells (two are connected when a relation holds
        # both), each named by its smallest cell: labels spread along the relations (every
        # cell of a relation takes the smallest label among them, and so does the cell that
        # label names) and jump to their label's label, until nothing changes.
        label = np.arange(len(self.refs), dtype=np.int64)
        while True:
            smallest = np.repeat(np.minimum.reduceat(label[entry_cell], starts), lengths)
            spread = label.copy()
            np.minimum.at(spread, entry_cell, smallest)
            np.minimum.at(spread, label[entry_cell], smallest)
            spread = spread[spread[spread]]
            if np.array_equal(spread, label):
                break
            label = spread
        members = np.unique(entry_cell)  # every hidden cell of some relation, ascending
        roots, component_of = np.unique(label[members], return_inverse=True)
        row_component = np.searchsorted(roots, label[entry_cell[starts]])
        by_component = np.argsort(component_of, kind="stable")
        rows_by_component = np.argsort(row_component, kind="stable")
        return _Shape(
            count=len(roots),
            members=members,
            component_of=component_of,
            row_component=row_component,
            by_component=by_component,
            cuts=np.searchsorted(component_of[by_component], np.arange(len(roots) + 1)),
            rows_by_component=rows_by_component,
            row_cuts=np.searchsorted(row_component[rows_by_component], np.arange(len(roots) + 1)),
            row_numbers=entry_row[starts],  # the relations with a hidden cell, in order
        )

    def _component(
        self, scope: Scope, layout: _Layout, number: int
    ) -> tuple[list[int], list[Constraint], list[int]]:
        """Component ``number`` of ``layout``: (engine cells, the relations over them with
        the shown cells substituted, the relation behind each), built once per component
        and bounds (remembered by the relations, like the layout's shape)."""
        shape = layout.shape
        rows_at = shape.rows_by_component[shape.row_cuts[number] : shape.row_cuts[number + 1]]
        key = (
            "component",
            layout.hidden_key,
            number,
            layout.lower[rows_at].tobytes(),
            layout.upper[rows_at].tobytes(),
        )
        relations = self.relations(scope)
        return relations.remembered(key, lambda: self._build_component(relations, layout, number))

    def _build_component(
        self, relations: _Relations, layout: _Layout, number: int
    ) -> tuple[list[int], list[Constraint], list[int]]:
        shape = layout.shape
        rows = relations.rows
        component = [
            int(c)
            for c in shape.members[shape.by_component[shape.cuts[number] : shape.cuts[number + 1]]]
        ]
        local = {c: i for i, c in enumerate(component)}
        hidden_list = self.hidden
        block = []
        numbers = []
        for r in shape.rows_by_component[shape.row_cuts[number] : shape.row_cuts[number + 1]]:
            row_cells, coefs, _, _ = rows[shape.row_numbers[r]]
            block.append(
                Constraint(
                    tuple(local[c] for c in row_cells if hidden_list[c]),
                    tuple(coef for c, coef in zip(row_cells, coefs, strict=True) if hidden_list[c]),
                    float(layout.lower[r]),
                    float(layout.upper[r]),
                )
            )
            numbers.append(int(shape.row_numbers[r]))
        return component, block, numbers

    def _components(
        self,
        scope: Scope,
        only: set[int] | None,
        seen: tuple[np.ndarray, np.ndarray],
    ) -> list[tuple[list[int], list[Constraint], list[int], list[int]]]:
        """The connected components of hidden cells that need a look, in the order of their
        smallest cell: (engine cells, the relations over them with the shown cells
        substituted, the relation behind each, the positions of the cells asked about: among
        ``only``, not yet seen to span 2). A component that nothing shown bounds is left out."""
        layout = self._layout(scope)
        if layout is None:
            return []
        shape = layout.shape
        seen_low, seen_high = seen
        members = shape.members
        asked = (
            np.ones(len(members), dtype=bool)
            if only is None
            else np.isin(members, np.fromiter(only, dtype=np.int64, count=len(only)))
        )
        pending = asked & (seen_high[members] - seen_low[members] < 2 - EPS)
        needed = layout.bounded & (
            np.bincount(shape.component_of, weights=pending, minlength=shape.count) > 0
        )
        batch: list[tuple[list[int], list[Constraint], list[int], list[int]]] = []
        for number in np.flatnonzero(needed):
            component, block, numbers = self._component(scope, layout, int(number))
            mine_at = shape.by_component[shape.cuts[number] : shape.cuts[number + 1]]
            mine = [int(i) for i in np.flatnonzero(pending[mine_at])]
            batch.append((component, block, numbers, mine))
        return batch

    def shown_protected(self, scope: Scope, seen: tuple[np.ndarray, np.ndarray]) -> bool:
        """Whether every hidden cell of ``scope`` that something shown bounds is shown to be
        protected without a solver (:meth:`witness`): then :meth:`unprotected` would find
        none, whatever it is asked about. False: not shown (the exact check decides); the
        points found widen ``seen`` either way."""
        return all(
            not self.witness(component, block, list(range(len(component))), seen)
            for component, block, _, _ in self._components(scope, None, seen)
        )

    def unprotected(
        self,
        scope: Scope,
        only: set[int] | None = None,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[int, Range]:
        """Hidden cells (among ``scope``, and among ``only`` if given) whose exact range is
        narrower than 2. Hiding more cells only widens ranges (a point feasible before, with
        the newly hidden cells at their true values, is feasible after), so a cell once shown
        to be protected needs no second look: ``seen`` carries the lowest and highest value
        of every cell in feasible points found so far under the same relations (``scope``),
        and a cell whose carried range spans 2 is not solved again."""
        if seen is None:
            values = np.asarray(self.value, dtype=np.float64)
            seen = (values.copy(), values.copy())
        batch = [
            (component, block, numbers, left)
            for component, block, numbers, mine in self._components(scope, only, seen)
            if (left := self.witness(component, block, mine, seen))
        ]
        rows = self.relations(scope).rows
        # The small components that need a look, as one program: they share no relation, so
        # one model over all of them (block by block) answers for each, with one model to
        # build and one sweep instead of one per component (the totals' exact check: ~20
        # components of a handful of cells, 22 -> 8 ms a year). A large component keeps a
        # program of its own: merged, its sweep would wait for the others (measured: the
        # exact check of a demo-sized year 19 s -> 45 s of CPU).
        found: dict[int, Range] = {}
        small = [part for part in batch if len(part[0]) < SMALL_COMPONENT]
        for component, block, numbers, mine in batch:
            if len(component) >= SMALL_COMPONENT:
                self._check(component, block, numbers, mine, seen, found, rows)
        if small:
            merged: list[int] = []  # the variables of the program, by engine cell
            constraints: list[Constraint] = []
            row_of: list[int] = []  # the engine's relation behind each constraint
            wanted: list[int] = []
            for component, block, numbers, mine in small:
                offset = len(merged)
                merged.extend(component)
                constraints.extend(
                    Constraint(
                        tuple(offset + v for v in c.variables), c.coefficients, c.lower, c.upper
                    )
                    for c in block
                )
                row_of.extend(numbers)
                wanted.extend(offset + i for i in mine)
            self._check(merged, constraints, row_of, wanted, seen, found, rows)
        return found

    def witness(
        self,
        component: list[int],
        block: list[Constraint],
        mine: list[int],
        seen: tuple[np.ndarray, np.ndarray],
    ) -> list[int]:
        """Of the cells asked about (``mine``, positions in ``component``), those that the
        search without a solver (:mod:`.witness`) does not show protected: the rest needs no
        program. Its points are feasible points of the same relations, so they widen ``seen``
        like the programs' own. On the live totals the search shows most hidden cells of a
        component whose few pinned ones need the programs (measured on a year of 1M events
        with a small December: the exact check 8.7 -> 2 ms an answer)."""
        if len(component) >= TABLES_FROM:
            # A component of a release's size has the tables and slabs for this (_check).
            return mine
        found = _shown(tuple(block), tuple(self.value[c] for c in component))
        if found is None:
            return mine
        low, high, pinned = found
        seen_low, seen_high = seen
        ids = np.asarray(component, dtype=np.int64)
        np.minimum.at(seen_low, ids, np.asarray(low, dtype=np.float64))
        np.maximum.at(seen_high, ids, np.asarray(high, dtype=np.float64))
        return [
            i
            for i in mine
            if i not in pinned and seen_high[component[i]] - seen_low[component[i]] < 2 - EPS
        ]

    def _check(
        self,
        cells: list[int],
        constraints: list[Constraint],
        row_of: list[int],
        wanted: list[int],
        seen: tuple[np.ndarray, np.ndarray],
        found: dict[int, Range],
        rows: Sequence[tuple[tuple[int, ...], tuple[float, ...], float, float]],
    ) -> None:
        """One program over ``cells`` (engine cells; ``row_of`` names the relation behind
        each constraint): the unprotected ones among ``wanted`` into ``found``."""
        seen_low, seen_high = seen
        ids = np.asarray(cells, dtype=np.int64)
        low, high = seen_low[ids], seen_high[ids]
        truth = [float(self.value[c]) for c in cells]
        tables = self._table_points(cells, constraints, wanted, low, high)
        # What the search (:meth:`witness`) left of a small program is mostly pinned (the
        # live totals: a month's conversions between its shown quarter and months): its
        # exact range at once, two programs a cell, instead of the box's programs first,
        # which could only show what the search could not (measured on the live totals of
        # a year of 1M events: 14 programs -> 6).
        stop = len(cells) >= SMALL_COMPONENT or len(wanted) > FEW_LEFT
        if tables is None and len(cells) < SMALL_COMPONENT:
            spans, seen_after = _small_ranges(
                tuple(constraints), tuple(truth), tuple(wanted), stop, low.tobytes(), high.tobytes()
            )
            low = np.frombuffer(seen_after[0], dtype=np.float64)
            high = np.frombuffer(seen_after[1], dtype=np.float64)
        else:
            spans = ranges(
                len(cells),
                constraints,
                truth,
                wanted,
                stop_when_protected=stop,
                seen=(low, high),
                lift=None if tables is None else lambda x: tables.show_from(x, wanted, low, high),
            )
        seen_low[ids], seen_high[ids] = low, high
        for i, span in spans.items():
            if not span.protected:
                found[cells[i]] = span
                # What pins it: the shown cells of the binding relations.
                self.pinned_by[cells[i]] = sorted(
                    {c for b in span.binding for c in rows[row_of[b]][0] if not self.hidden[c]}
                )

    def _table_points(
        self,
        cells: list[int],
        constraints: list[Constraint],
        wanted: list[int],
        low: np.ndarray,
        high: np.ndarray,
    ) -> Tables | None:
        """Widen ``low``/``high`` (per variable of the program over ``cells``) with feasible
        points built along the tables' dimensions (:mod:`.tables`), one or two per pending
        cell, before the programs: each is verified exactly, and what they show needs no
        program (most hidden zeros of a year's largest components)."""
        pending = [i for i in wanted if high[i] - low[i] < 2 - EPS]
        if len(cells) < TABLES_FROM or not pending:
            return None
        refs = [self.refs[c] for c in cells]
        bys = sorted({ref[1] for ref in refs})
        tables = Tables(
            refs,
            constraints,
            [self.value[c] for c in cells],
            {b: self.keys(b) for b in bys},
            self.periods,
        )
        tables.show(pending, low, high)
        # What the tables' moves leave (municipality totals, zeros whose moves need another
        # period move per figure): small programs over a few periods each (:mod:`.slabs`)
        # instead of programs over the whole component.
        left = [i for i in pending if high[i] - low[i] < 2 - EPS]
        if 0 < len(left) <= SLAB_CELLS:
            position = {p: i for i, p in enumerate(self.periods)}
            Slabs(
                [position[ref[3]] for ref in refs], constraints, [self.value[c] for c in cells]
            ).show(left, low, high)
        return tables


# The search and the programs of small components, by what they are given: pure functions of
# it, and a live answer asks the same components again and again (of a year's totals, the
# months of organisations with trained staff, or the referral months, which most events do
# not change). Bounded: a few thousand small components' results.
@functools.lru_cache(maxsize=4096)
def _shown(
    block: tuple[Constraint, ...], truth: tuple[int, ...]
) -> tuple[list[int], list[int], set[int]] | None:
    return search.shown(len(truth), block, truth)


@functools.lru_cache(maxsize=1024)
def _small_ranges(
    constraints: tuple[Constraint, ...],
    truth: tuple[float, ...],
    wanted: tuple[int, ...],
    stop_when_protected: bool,
    low: bytes,
    high: bytes,
) -> tuple[dict[int, Range], tuple[bytes, bytes]]:
    """:func:`.bounds.ranges` of a small program, with the extremes seen (as bytes, so that
    the arguments are hashable) before and after."""
    seen = (
        np.frombuffer(low, dtype=np.float64).copy(),
        np.frombuffer(high, dtype=np.float64).copy(),
    )
    spans = ranges(
        len(truth), constraints, truth, wanted, stop_when_protected=stop_when_protected, seen=seen
    )
    return spans, (seen[0].tobytes(), seen[1].tobytes())


def _protect(model: _Model, exact: bool) -> list[int]:
    """Secondary suppression and the exact check; the cells it could not protect."""
    passes: dict[str, list[int]] = {}
    for e, owner in enumerate(model.pass_of):
        passes.setdefault(owner, []).append(e)
    present = set(model.by_of)
    for by in (TOTAL, *BREAKDOWNS):
        if by in present:  # a breakdown the grid does not hold has nothing to settle
            model.settle(passes.get(by, []), by)

    def helpers(cell: int) -> Callable[[int], bool]:
        """Who may protect ``cell``: a total by another total in the totals' own check, by a
        cell of any breakdown later; a breakdown cell by a cell of its own breakdown."""
        if model.total[cell]:
            return (
                (lambda c: model.total[c]) if scope == "total" else (lambda c: not model.total[c])
            )
        return lambda c: model.by_of[c] == model.by_of[cell]

    left: list[int] = []
    # The totals alone first (they are published live, on their own; cheap), then, when asked
    # for, everything together.
    scopes: tuple[Scope, ...] = ("total", "everything") if exact else ("total",)
    for scope in scopes:
        # The extremes seen so far under these relations: valid while cells are only hidden.
        values = np.asarray(model.value, dtype=np.float64)
        seen = (values.copy(), values.copy())
        if scope == "total" and model.shown_protected(scope, seen):
            # Every hidden total is shown protected by exact integer points (or pinned at
            # 0): the check below would find nothing to repair, so it is not run. The live
            # answers' usual case; its linear programs were most of suppression's cost.
            continue
        # The hidden cells that hold someone first: a hidden empty cell is mostly narrow only
        # because a parent is (every neighbourhood's retained below a municipality's hidden 1),
        # and widens with it. Then every hidden cell, zeros too: a reader cannot tell a cell
        # known to be 0 or 1 from one that is 1.
        only: set[int] | None = {c for c, h in enumerate(model.hidden) if h and model.value[c]}
        zeros_checked = False
        while True:
            hidden_before = {c for c, h in enumerate(model.hidden) if h}
            unsafe = model.unprotected(scope, only, seen)
            if not unsafe:
                if zeros_checked:
                    break
                zeros_checked, only = True, None
                continue
            progress = False
            for cell in sorted(unsafe):
                if not model.hidden[cell]:
                    continue
                free = helpers(cell)
                # The shown cells of the relations that pin it first, then its neighbours.
                chosen = model.choose(model.pinned_by.get(cell, []), free, None)
                neighbours = {c for e in model.eqs_of[cell] for c in model.equations[e].cells}
                neighbours.update(c for cells in model.relations_of[cell] for c in cells)
                if chosen is None:
                    chosen = model.choose(sorted(neighbours), free, None)
                if chosen is None:
                    # Further out: any cell of the same figure and breakdown.
                    table = [
                        c
                        for c in range(len(model.refs))
                        if model.refs[c][:2] == model.refs[cell][:2]
                    ]
                    chosen = model.choose(table, free, None)
                if chosen is None:
                    # Nothing else left to hide: only a figure of public record (the number
                    # of partners) still pins the cell, e.g. a registry of one partner beside
                    # its hidden "with trained staff" in {0, 1}. Hiding that figure too is
                    # the last resort: a release never goes out with a cell unprotected.
                    chosen = model.choose(sorted(neighbours), free, None, public=True)
                if chosen is None:
                    continue
                queue: deque[int] = deque()
                model.hide(chosen, "secondary", queue)
                model.settle(queue, model.by_of[chosen])
                progress = True
            if not progress:
                left.extend(c for c in sorted(unsafe) if c not in left)
                break
            # Next round: the cells still in doubt, and the ones hidden since.
            only = set(unsafe) | {c for c, h in enumerate(model.hidden) if h} - hidden_before
    return left


def suppress(
    grid: YearGrid, k: int = 10, *, exact: bool = False, secondary: bool = True
) -> Decisions:
    """One decision per cell and figure of the year: base counts, rates, statistics, growth.

    The exact check of rule 4 (linear programming) always runs over the municipality totals,
    which are published live and on their own. With ``exact`` it also runs over every
    breakdown and repairs what it finds; that costs far more than everything else (seconds to
    a minute for a year of the demo's size, see docs/disclosure.md), so it is for cutting a
    release, not for answering a request.

    ``secondary=False`` applies rules 1–3 alone (no secondary suppression, no exact check):
    never for publishing; the disclosure audit's own test uses it to show that the audit
    finds what that leaves open."""
    if k < 1:
        raise ValueError("k must be at least 1")
    model = _Model(grid, k)
    # A year without any count (the baseline year before the programme's data, asked with
    # every live answer for its growth baselines): every relation holds at 0 and nothing is
    # small but not empty, so there is nothing to check or protect beyond rules 1-3.
    empty = not any(model.value)
    broken = [] if empty else model.violations()
    if broken:
        raise ValueError(
            "the grid contradicts the relations between its figures (a bug of the query "
            "layer?): " + "; ".join(broken[:5])
        )
    model.primary()
    left = _protect(model, exact) if secondary and not empty else []
    return _decisions(model, grid, left)


def unsuppressed(grid: YearGrid) -> Decisions:
    """Every figure as it is, without disclosure control: a count of at least 1 is shown (an
    empty one is hidden, as "nothing"), a rate, mean or median whenever it has a case. For
    tests and benchmarks that compare figures with hand-computed or unsuppressed ones
    (``VERBINDING_DISCLOSURE_CONTROL=off``), never for publishing."""
    model = _Model(grid, 1)
    for cell in range(len(model.refs)):
        if model.value[cell] == 0 and not model.spec[cell].public:
            model.hidden[cell] = True
            model.reason[cell] = "primary"
    return _decisions(model, grid, [], control=False)


def _decisions(
    model: _Model, grid: YearGrid, left: list[int], *, control: bool = True
) -> Decisions:
    """The decisions of a settled model: every base count, then the figures derived from
    them (rates, statistics, growth). Without ``control`` a rate is shown whenever it has a
    case and a statistic whenever it rests on anyone (disclosure control off)."""
    k = model.k
    figures: dict[Ref, Decision] = {}
    for ref, cell in model.index.items():
        hidden = model.hidden[cell]
        figures[ref] = Decision(None if hidden else model.value[cell], hidden, model.reason[cell])
    for rate in RATES.values():
        for ref, cell in model.refs_of(rate.numerator):
            other = model.cell(rate.other, *ref[1:])
            if other is None:
                continue
            out = (rate.name, *ref[1:])
            n, rest = model.value[cell], model.value[other]
            if not control:
                figures[out] = (
                    Decision(round(n / (n + rest), RATE_DIGITS), False)
                    if n + rest > 0
                    else Decision(None, True, "primary")
                )
            elif model.hidden[cell] or model.hidden[other]:
                primary = "primary" in (model.reason[cell], model.reason[other])
                figures[out] = Decision(None, True, "primary" if primary else "linked")
            else:
                figures[out] = Decision(round(n / (n + rest), RATE_DIGITS), False)
    for stat in STATISTICS.values():
        for (name, by, key, period), value in grid.statistics.items():
            if name != stat.name:
                continue
            support = model.cell(stat.support, by, key, period)
            if support is None:
                continue
            small = model.people[support] < k or (control and model.reason[support] == "primary")
            figures[(name, by, key, period)] = (
                Decision(None, True, "primary") if small else Decision(round(value, 2), False)
            )
    baselines: dict[tuple[str, str, str], int] = {}
    for (by, key, period), base in grid.baselines.items():
        unique = model.cell("participants_unique", by, key, period)
        if unique is None:
            continue
        shown = not model.hidden[unique]
        known = (
            base.public
            or base.visible
            or (base.same_cell and shown)
            or (not control and base.value > 0)
        )
        if known:
            baselines[(by, key, period)] = base.value
        if not shown or not known or base.value <= 0:
            figures[(GROWTH, by, key, period)] = Decision(None, True, "linked")
        else:
            growth = round(model.value[unique] / base.value - 1, RATE_DIGITS)
            figures[(GROWTH, by, key, period)] = Decision(growth, False)
    return Decisions(
        k=k,
        year=grid.year,
        figures=figures,
        baselines=baselines,
        unprotected=tuple(model.refs[c] for c in left),
    )
