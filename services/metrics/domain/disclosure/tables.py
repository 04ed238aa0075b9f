"""Feasible points of the exact check built along the tables' dimensions, verified exactly.

The exact check (:mod:`.bounds`) shows a hidden cell protected by feasible points in which it
lies 2 apart (a hidden zero: one point that lifts it to 2). On a year of every breakdown most
of its cost was the hidden zeros of the largest components: a linear program over thousands
of cells lifts only about a fifth of the pending zeros to 2 per solve, because in one point the
zeros compete for the same room, although each of them alone can reach 2 (see
docs/benchmarks.md). A point per cell does not compete, and in these tables one is cheap to
find.

A cell is (figure, breakdown, key, period), and every relation runs along one dimension with
the others fixed: the periods (year = Σ quarters, quarter = Σ months), the keys of one
breakdown (total = Σ keys) and the figures of one table cell (a complement: whole = part +
rest; inequalities such as contacted <= accepted). A move that is a product
``u_figure ⊗ u_key ⊗ u_period`` of vectors that each keep their own dimension's sums (a path
up the period tree, or +1 on one month and -1 on another of its quarter; +h on the cell's key
and -h spread over other keys of the breakdown; figures chosen so that every complement still
adds up) keeps every sum of the tables, whatever the values. Such a move is tried for each
pending cell, the keys that give way chosen among those with room; the point it gives is then
checked against every relation of the component and x >= 0 in integer arithmetic, and only a
point that passes is counted. So a cell is shown protected here only by a feasible point (what
the programs would accept as well), and whatever this does not show is left to the programs
exactly as before: it only ever saves them work. Cells left are tried again from points that
already moved many cells (a sum of the moves found, kept while it stays feasible; a point a
program found, whose own values count and are checked within the solver's tolerance, as that
point is): cells lifted there can give way.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .bounds import EPS, Constraint
from .grid import TOTAL
from .spec import FIGURES, VALID_INEQUALITIES

__all__ = ["Tables", "figure_moves", "period_moves"]

# Product moves tried per cell and amount before the cell is left to the programs (a failing
# cell costs about this many small array operations; 400 showed no more cells of the
# demo-sized year, only slower).
TRIES = 24
# Points made of many moves, from which the hidden zeros left are tried again (the first in
# the reverse order of the moves, the next in their order).
RICH_POINTS = 2
# After this many cells, the search goes on only while it shows at least a third of them.
CHECK_AFTER = 64
# Patterns whose room is computed at once.
BATCH = 4
# First moves by 1 tried for a move by 2 made of two (each followed by one search for the second).
FIRSTS = 3

# From the truth (integers) every check is exact; from a program's point (see show_from) the
# point itself holds within the solver's tolerance, and this keeps its rounding from failing
# a move: an integer move adds exact integers to every relation's value.
_NOISE = 1e-7

# Room of the "no entry" row of a padded pattern: more than any move asks.
_ROOM = 1 << 40

Move = tuple[tuple[str, int], ...]  # (label, ±1) per entry, the cell's own first


@functools.cache
def _figure_family() -> tuple[list[tuple[str, str, str]], list[tuple[tuple[str, ...], ...]]]:
    sums = [
        (spec.complement_of[0], spec.complement_of[1], spec.name)
        for spec in FIGURES.values()
        if spec.complement_of and spec.complement_of[0] in FIGURES
    ]
    return sums, [tuple(pair) for pair in VALID_INEQUALITIES]


_FIGURE_MOVES: dict[str, list[Move]] = {}


def figure_moves(figure: str) -> list[Move]:
    """Vectors over the figures related to ``figure`` (±1 per figure, +1 on it) that keep
    every complement (whole = part + rest) adding up, fewest figures first; among equals,
    those that change fewer inequalities (which are checked on the point anyway)."""
    found = _FIGURE_MOVES.get(figure)
    if found is not None:
        return found
    sums, inequalities = _figure_family()
    # The figures tied to this one by a complement or an inequality, transitively.
    family = {figure}
    while True:
        more = set(family)
        for whole, part, rest in sums:
            if family & {whole, part, rest}:
                more |= {whole, part, rest}
        for small, large in inequalities:
            if family & {*small, *large}:
                more |= {*small, *large}
        if more == family:
            break
        family = more
    others = sorted(family - {figure})
    moves: list[tuple[int, bool, int, Move]] = []
    for signs in itertools.product((0, 1, -1), repeat=len(others)):
        u = {figure: 1, **{f: s for f, s in zip(others, signs, strict=True) if s}}
        if len(u) > 6:
            continue
        if any(u.get(w, 0) != u.get(p, 0) + u.get(r, 0) for w, p, r in sums):
            continue
        changed = sum(
            1
            for small, large in inequalities
            if sum(u.get(f, 0) for f in small) != sum(u.get(f, 0) for f in large)
        )
        entries = ((figure, 1), *((f, u[f]) for f in others if f in u))
        moves.append((changed, min(u.values()) < 0, len(u), entries))
    # An inequality of the data is mostly tight (accepted + declined = referrals, in fact):
    # a move that changes one moves it up for some key, so those come last; moves up only
    # (no figure falls for the cell's own key, which is mostly 0 around a hidden zero) first.
    moves.sort(key=lambda m: m[:3])
    found = [m[3] for m in moves[:16]]
    _FIGURE_MOVES[figure] = found
    return found


_PATTERNS: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


@functools.cache
def _figures_of(by: str) -> dict[str, int]:
    """The figures with breakdown ``by``, numbered (the rows of its table)."""
    names = sorted(spec.name for spec in FIGURES.values() if by == TOTAL or by in spec.breakdowns)
    return {f: i for i, f in enumerate(names)}


@functools.cache
def _pieces(move: Move) -> dict[str, int]:
    """The figures of a figure move grouped by the complements that tie them (whole = part +
    rest holding two of them): each group, moved on its own, still keeps every complement."""
    sums, _ = _figure_family()
    names = [f for f, _ in move]
    piece = {f: i for i, f in enumerate(names)}
    for _ in names:
        for triple in sums:
            tied = {piece[f] for f in triple if f in piece}
            for f in names:
                if piece[f] in tied:
                    piece[f] = min(tied)
    order = {p: i for i, p in enumerate(sorted(set(piece.values())))}
    return {f: order[piece[f]] for f in names}


def period_moves(periods: Sequence[str], period: str) -> list[Move]:
    """Vectors over the periods (the year, Q1-Q4, the months: ``year_periods``) with +1 on
    ``period`` that keep year = Σ quarters and quarter = Σ months, fewest periods first."""
    year, quarters, months = periods[0], list(periods[1:5]), list(periods[5:])
    quarter_of = {m: quarters[i // 3] for i, m in enumerate(months)}
    months_of = {q: months[3 * i : 3 * i + 3] for i, q in enumerate(quarters)}
    out: list[Move] = []
    if period in quarter_of:
        q = quarter_of[period]
        out.extend(((period, 1), (m, -1)) for m in months_of[q] if m != period)
        out.append(((period, 1), (q, 1), (year, 1)))
        for other in quarters:
            if other != q:
                out.extend(((period, 1), (q, 1), (other, -1), (m, -1)) for m in months_of[other])
    elif period in months_of:
        for m in months_of[period]:
            out.append(((period, 1), (m, 1), (year, 1)))
        for other in quarters:
            if other != period:
                for m in months_of[period]:
                    out.extend(
                        ((period, 1), (m, 1), (other, -1), (n, -1)) for n in months_of[other]
                    )
    elif period == year:
        out.extend(((year, 1), (q, 1), (m, 1)) for q in quarters for m in months_of[q])
    return out


class Tables:
    """The hidden cells of one program (``cells``: engine cells; ``refs`` their (figure,
    breakdown, key, period)) and its ``constraints`` (the shown cells substituted), for
    points built along the tables' dimensions."""

    def __init__(
        self,
        refs: Sequence[tuple[str, str, str, str]],
        constraints: Sequence[Constraint],
        truth: Sequence[float],
        keys: Mapping[str, Sequence[str]],
        periods: Sequence[str],
    ) -> None:
        self.refs = refs
        self.keys = keys
        self.periods = list(periods)
        self.period_at = {p: i for i, p in enumerate(self.periods)}
        self.key_at = {by: {k: i for i, k in enumerate(ks)} for by, ks in keys.items()}
        n = len(refs)
        # The point the search starts from (the truth, or a point it was shifted to), the
        # value of every relation there, and the relations of each variable (by variable).
        self.truth = np.asarray(truth, dtype=np.float64)
        self.lower = np.asarray([c.lower for c in constraints], dtype=np.float64)
        self.upper = np.asarray([c.upper for c in constraints], dtype=np.float64)
        variables = [v for c in constraints for v in c.variables]
        coefficients = [a for c in constraints for a in c.coefficients]
        self.exact = all(a == int(a) for a in coefficients)
        row_of = np.repeat(
            np.arange(len(constraints), dtype=np.int64), [len(c.variables) for c in constraints]
        )
        order = np.argsort(np.asarray(variables, dtype=np.int64), kind="stable")
        self.entry_row = row_of[order]
        self.entry_coef = np.asarray(coefficients, dtype=np.float64)[order]
        self.start = np.searchsorted(
            np.asarray(variables, dtype=np.int64)[order], np.arange(n + 1, dtype=np.int64)
        )
        self.at_truth = np.bincount(
            row_of,
            weights=np.asarray(coefficients, dtype=np.float64)
            * self.truth[np.asarray(variables, dtype=np.int64)],
            minlength=len(constraints),
        )
        # Per breakdown, a table of every (figure, period) by key: the variable of the cell
        # (-1 where it is not a hidden cell of this program: shown, or in another component,
        # so it cannot move) and its value (-1 there). The last row stands for "no entry" of a
        # padded pattern: present, with room enough.
        self.figure_at: dict[str, dict[str, int]] = {}
        self.var: dict[str, np.ndarray] = {}
        self.value: dict[str, np.ndarray] = {}
        width = len(self.periods)
        for by in sorted({ref[1] for ref in refs}):
            if by not in keys:
                continue
            self.figure_at[by] = _figures_of(by)
            cells = len(self.figure_at[by]) * width
            height = cells + len(VALID_INEQUALITIES) * width + 1
            self.var[by] = np.full((height, len(keys[by])), -1, np.int64)
            self.value[by] = np.full((height, len(keys[by])), -1.0)
            self.value[by][cells:] = _ROOM
        # Where each variable sits in those tables (for moving the point): table, row, key.
        self.tables = sorted(self.var)
        self.home = np.full((n, 3), -1, dtype=np.int64)
        for v, (figure, by, key, period) in enumerate(refs):
            if by in self.var and period in self.period_at and key in self.key_at[by]:
                row = self.figure_at[by][figure] * width + self.period_at[period]
                self.var[by][row, self.key_at[by][key]] = v
                self.value[by][row, self.key_at[by][key]] = self.truth[v]
                self.home[v] = (self.tables.index(by), row, self.key_at[by][key])
        # Below the cells, per inequality between figures (small <= large) and period, the
        # slack of each key's inequality (upper - value): a move that raises it needs that
        # much, like a cell that falls needs its value. Where unknown, room enough (the
        # point is checked anyway).
        self.slack_home = np.full((len(constraints), 3), -1, dtype=np.int64)
        for r, c in enumerate(constraints):
            if c.upper == math.inf or c.lower != -math.inf or not c.variables:
                continue
            groups = {refs[v][1:] for v in c.variables}
            if len(groups) != 1:
                continue
            ((by, key, period),) = groups
            if by not in self.var or period not in self.period_at:
                continue
            terms = {(refs[v][0], int(a)) for v, a in zip(c.variables, c.coefficients, strict=True)}
            matches = [
                i
                for i, (small, large) in enumerate(VALID_INEQUALITIES)
                if terms <= {*((f, 1) for f in small), *((f, -1) for f in large)}
            ]
            if len(matches) != 1:
                continue
            row = (len(self.figure_at[by]) + matches[0]) * width + self.period_at[period]
            self.slack_home[r] = (self.tables.index(by), row, self.key_at[by][key])
            self.value[by][row, self.key_at[by][key]] = c.upper - self.at_truth[r]

    def patterns(
        self, by: str, figure: str, period: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every product of a figure move and a period move for this cell, as rows of the
        breakdown's table and signs (padded with the "no entry" row and 0), in the order
        they are tried; and per entry the piece of the figure move it belongs to (-1 for
        padding). They depend on the cell's figure and the position of its period in the
        year, not on the year: kept for the process."""
        position = self.period_at[period]
        key = (by, figure, str(position))
        found = _PATTERNS.get(key)
        if found is not None:
            return found
        at = self.figure_at[by]
        width = len(self.periods)
        dummy = (len(at) + len(VALID_INEQUALITIES)) * width
        moves = period_moves(self.periods, period)
        # (period moves, entries) of positions and signs, padded with -1 and 0.
        entries = max((len(m) for m in moves), default=0)
        p_at = np.full((len(moves), entries), -1, dtype=np.int64)
        p_sign = np.zeros((len(moves), entries), dtype=np.int64)
        for i, pmove in enumerate(moves):
            p_at[i, : len(pmove)] = [self.period_at[p] for p, _ in pmove]
            p_sign[i, : len(pmove)] = [sign for _, sign in pmove]
        fmoves = [m for m in figure_moves(figure) if all(f in at for f, _ in m)]
        # (figure moves, entries) likewise, padded to the longest figure move.
        most = max((len(m) for m in fmoves), default=0)
        f_at = np.full((len(fmoves), most), -1, dtype=np.int64)
        f_sign = np.zeros((len(fmoves), most), dtype=np.int64)
        f_piece = np.full((len(fmoves), most), -1, dtype=np.int64)
        for i, fmove in enumerate(fmoves):
            piece = _pieces(fmove)
            f_at[i, : len(fmove)] = [at[f] for f, _ in fmove]
            f_sign[i, : len(fmove)] = [sign for _, sign in fmove]
            f_piece[i, : len(fmove)] = [piece[f] for f, _ in fmove]
        # Every (figure move, period move), figure moves outermost; entries (figure, period).
        shape = (len(fmoves) * len(moves), most * entries)
        padded = (f_at[:, None, :, None] < 0) | (p_at[None, :, None, :] < 0)
        cell_rows = np.where(
            padded, dummy, f_at[:, None, :, None] * width + p_at[None, :, None, :]
        ).reshape(shape)
        cell_signs = np.where(
            padded, 0, f_sign[:, None, :, None] * p_sign[None, :, None, :]
        ).reshape(shape)
        cell_parts = np.where(
            padded, -1, f_piece[:, None, :, None] + 0 * p_at[None, :, None, :]
        ).reshape(shape)
        # The inequalities' slack rows: per figure move, how much each inequality's
        # small - large side changes; the row changes by that × the period move's sign, so it
        # is an entry of sign -(that) (room needed where the sign is negative for the cell's
        # own key, positive for a key that gives way, as for cells).
        change = np.zeros((len(fmoves), len(VALID_INEQUALITIES)), dtype=np.int64)
        for i, fmove in enumerate(fmoves):
            u = dict(fmove)
            for q, (small, large) in enumerate(VALID_INEQUALITIES):
                change[i, q] = sum(u.get(f, 0) for f in small) - sum(u.get(f, 0) for f in large)
        slack_shape = (len(fmoves) * len(moves), len(VALID_INEQUALITIES) * entries)
        none = (change[:, None, :, None] == 0) | (p_at[None, :, None, :] < 0)
        slack_rows = np.where(
            none,
            dummy,
            (len(at) + np.arange(len(VALID_INEQUALITIES)))[None, None, :, None] * width
            + p_at[None, :, None, :]
            + 0 * change[:, None, :, None],
        ).reshape(slack_shape)
        slack_signs = np.where(
            none, 0, -change[:, None, :, None] * p_sign[None, :, None, :]
        ).reshape(slack_shape)
        # Kept narrow: as int64 the patterns of a release's exact check (every breakdown of
        # two years of a million events) held 200 MiB for the life of the process, and the
        # metrics service cuts releases itself. Row numbers are at most the "no entry" row,
        # signs are 0, ±1 or a small sum of them, pieces a move's few parts; every use indexes
        # with them, compares them or multiplies them by a move's size (1 or 2).
        rows = np.concatenate([cell_rows, slack_rows], axis=1)
        signs = np.concatenate([cell_signs, slack_signs], axis=1)
        parts = np.concatenate([cell_parts, np.full(slack_shape, -1, dtype=np.int64)], axis=1)
        assert dummy < 2**15
        assert int(np.abs(signs).max(initial=0)) < 2**6
        assert int(parts.max(initial=0)) < 2**7
        found = (rows.astype(np.int16), signs.astype(np.int8), parts.astype(np.int8))
        _PATTERNS[key] = found
        return found

    def show(self, pending: Sequence[int], low: np.ndarray, high: np.ndarray) -> None:
        """Widen ``low``/``high`` (the extremes seen per variable) with feasible points for the
        ``pending`` variables: a product move from the truth for each (up and down by 2, or
        by 1 each way; a hidden zero up by 2); then, for the hidden zeros left, a move from a
        point that adds up many of the moves found (each added only while the sum stays
        feasible): that point has lifted cells around them, which can now give way."""
        base = self.truth.copy()
        found: list[dict[int, int]] = []

        def widen(delta: Mapping[int, int]) -> None:
            moved = np.fromiter(delta.keys(), dtype=np.int64, count=len(delta))
            value = base[moved] + np.fromiter(delta.values(), dtype=np.float64, count=len(delta))
            np.minimum.at(low, moved, value)
            np.maximum.at(high, moved, value)

        def spans(v: int) -> bool:
            return bool(high[v] - low[v] >= 2 - EPS)

        tried = shown = 0
        for v in pending:
            if spans(v):
                continue
            if tried >= CHECK_AFTER and shown * 3 < tried:
                # Mostly cells no such move shows (hidden zeros pinned at 0 by what is
                # shown, in a year of small cells): one program over all of them is cheaper.
                return
            tried += 1
            truth = int(base[v])
            for amount in (2, -2, 1, -1) if truth else (2,):
                if spans(v):
                    break
                if truth + amount < 0 or (
                    high[v] - truth >= amount if amount > 0 else truth - low[v] >= -amount
                ):
                    continue
                delta = self.move(v, amount)
                if delta is not None:
                    found.append(delta)
                    widen(delta)
            shown += spans(v)
        for again in range(RICH_POINTS):
            left = [v for v in pending if not spans(v)]
            if not left:
                return
            rich: dict[int, int] = {}
            for delta in found[::-1] if again % 2 == 0 else found:
                if self.feasible(delta):
                    self._shift(delta, 1)
                    for u, d in delta.items():
                        rich[u] = rich.get(u, 0) + d
            try:
                tried = shown = 0
                for v in left:
                    if spans(v):
                        continue
                    if tried >= CHECK_AFTER and shown * 3 < tried:
                        break
                    tried += 1
                    now = int(base[v]) + rich.get(v, 0)
                    # Up to 2 above the lowest value seen, or down to 2 below the highest.
                    for amount in (int(low[v]) + 2 - now, int(high[v]) - 2 - now):
                        if spans(v):
                            break
                        if now + amount < 0:
                            continue
                        delta = self.move(v, amount) if amount else {}
                        if delta is not None:
                            point = dict(rich)
                            for u, d in delta.items():
                                point[u] = point.get(u, 0) + d
                            widen(point)
                    shown += spans(v)
            finally:
                self._shift(rich, -1)

    def show_from(
        self, point: np.ndarray, pending: Sequence[int], low: np.ndarray, high: np.ndarray
    ) -> None:
        """Widen ``low``/``high`` with moves of the ``pending`` variables that do not span 2
        yet from ``point``, a feasible point a program found (not necessarily integer): it
        has moved many cells at once, and cells it lifted can give way."""
        left = [v for v in pending if high[v] - low[v] < 2 - EPS]
        if not left:
            return
        saved = (
            self.truth.copy(),
            self.at_truth.copy(),
            {b: t.copy() for b, t in self.value.items()},
        )
        shift = np.asarray(point, dtype=np.float64) - self.truth
        moved = np.flatnonzero(shift)
        self._shift(dict(zip(moved.tolist(), shift[moved].tolist(), strict=True)), 1)
        try:
            for v in left:
                now = self.truth[v]
                for amount in (
                    math.ceil(low[v] + 2 - now - _NOISE),
                    math.floor(high[v] - 2 - now + _NOISE),
                ):
                    if high[v] - low[v] >= 2 - EPS:
                        break
                    if not amount or now + amount < -_NOISE:
                        continue
                    delta = self.move(v, amount)
                    if delta is not None:
                        for u, d in delta.items():
                            value = float(point[u]) + d
                            low[u] = min(low[u], value)
                            high[u] = max(high[u], value)
        finally:
            self.truth, self.at_truth, self.value = saved

    def _changes(self, delta: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The variables and amounts of ``delta``, and the change of every relation."""
        moved = np.fromiter(delta.keys(), dtype=np.int64, count=len(delta))
        amounts = np.fromiter(delta.values(), dtype=np.float64, count=len(delta))
        first, last = self.start[moved], self.start[moved + 1]
        counts = last - first
        at = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        change = np.bincount(
            self.entry_row[at],
            weights=self.entry_coef[at] * np.repeat(amounts, counts),
            minlength=len(self.at_truth),
        )
        return moved, amounts, change

    def feasible(self, delta: Mapping[int, int]) -> bool:
        """Whether the point + delta satisfies every relation and x >= 0 (from the truth:
        integer arithmetic, exact in floating point at these magnitudes)."""
        if not delta:
            return True
        moved, amounts, change = self._changes(delta)
        if (moved < 0).any() or (self.truth[moved] + amounts < -_NOISE).any():
            return False
        touched = np.flatnonzero(change)
        value = self.at_truth[touched] + change[touched]
        return bool(
            (value >= self.lower[touched] - _NOISE).all()
            and (value <= self.upper[touched] + _NOISE).all()
        )

    def move(self, v: int, amount: int) -> dict[int, int] | None:
        """A feasible point truth + delta with delta[v] == amount, built as a product move
        (see the module's docstring) or, for a move by 2, as two moves by 1 (each with keys
        of their own that give way: the second one from the point the first reached), or
        None when none of the few tried is feasible."""
        found = next(self._products(v, amount), None)
        if found is not None or abs(amount) != 2:
            return found
        for first in itertools.islice(self._products(v, amount // 2), FIRSTS):
            self._shift(first, 1)
            try:
                second = next(self._products(v, amount // 2), None)
            finally:
                self._shift(first, -1)
            if second is None:
                continue
            both = dict(first)
            for u, d in second.items():
                both[u] = both.get(u, 0) + d
            if self.feasible(both):
                return both
        return None

    def _shift(self, delta: Mapping[int, int], sign: int) -> None:
        """Move the point the search starts from by ``sign`` × delta (and back)."""
        if not delta:
            return
        moved, amounts, change = self._changes(delta)
        self.truth[moved] += sign * amounts
        self.at_truth += sign * change
        home = self.home[moved]
        touched = np.flatnonzero(change)
        slack = self.slack_home[touched]
        for number, by in enumerate(self.tables):
            mine = home[:, 0] == number
            np.add.at(self.value[by], (home[mine, 1], home[mine, 2]), sign * amounts[mine])
            mine = slack[:, 0] == number
            np.add.at(
                self.value[by], (slack[mine, 1], slack[mine, 2]), -sign * change[touched[mine]]
            )

    def _products(self, v: int, amount: int) -> Iterator[dict[int, int]]:
        """Feasible product moves with delta[v] == amount, in the order tried."""
        if not self.exact or amount == 0:
            return
        figure, by, key, period = self.refs[v]
        if by not in self.var or period not in self.period_at:
            return
        k = self.key_at[by][key]
        rows, signs, parts = self.patterns(by, figure, period)
        if not len(rows):
            return
        table = self.value[by]
        signs = signs if amount > 0 else -signs
        size = abs(amount)
        if by == TOTAL:
            yield from self._totals(rows, signs, size)
            return
        # The cell's own key moves by size × signs: present everywhere, and with room where
        # that is negative.
        own = table[rows, k]
        fits = ((own >= 0) & ((signs >= 0) | (own >= size))).all(axis=1)
        fitting = np.flatnonzero(fits)[:TRIES]
        cells = self.var[by]
        # A few patterns at a time: most cells are shown by one of the first.
        for start in range(0, len(fitting), BATCH):
            yield from self._batch(
                fitting[start : start + BATCH], rows, signs, parts, table, cells, k, size
            )

    def _batch(
        self,
        tried: np.ndarray,
        rows: np.ndarray,
        signs: np.ndarray,
        parts: np.ndarray,
        table: np.ndarray,
        cells: np.ndarray,
        k: int,
        size: int,
    ) -> Iterator[dict[int, int]]:
        # Room of every other key for every pattern tried at once (one set of keys giving way
        # for the whole pattern): a key giving way by c moves by -c × signs, so it needs room
        # where signs > 0.
        blocks = table[rows[tried]]  # (patterns, entries, keys)
        present = (blocks >= 0).all(axis=1)
        room = np.where(signs[tried][:, :, None] > 0, blocks, _ROOM).min(axis=1)
        room = np.where(present, np.minimum(room, size), 0)
        room[:, k] = 0
        whole = room.sum(axis=1) >= size
        limit = (cells.shape[0] - 1) - len(VALID_INEQUALITIES) * len(self.periods)
        for at, j in enumerate(tried.tolist()):
            moving = (signs[j] != 0) & (rows[j] < limit)
            own_cells = cells[rows[j][moving], k].tolist()
            own_moves = (signs[j][moving] * size).tolist()
            # One set of keys giving way for the whole pattern; else chosen per piece of the
            # figure move (figures that a complement ties together give way in the same
            # key; others may in different keys).
            splits = [None] if whole[at] else []
            if parts[j].max() > 0:
                splits.append(parts[j])
            for pieces in splits:
                givers = self._give(blocks[at], signs[j], pieces, k, size, room[at])
                if givers is None:
                    continue
                delta = dict(zip(own_cells, own_moves, strict=True))
                for mine, chosen in givers:
                    mine = mine & moving
                    fall = (-signs[j][mine]).tolist()
                    for other, c in chosen:
                        delta.update(
                            zip(
                                cells[rows[j][mine], other].tolist(),
                                [f * c for f in fall],
                                strict=True,
                            )
                        )
                if self.feasible(delta):
                    yield delta
                    break

    def _totals(self, rows: np.ndarray, signs: np.ndarray, size: int) -> Iterator[dict[int, int]]:
        """Moves of a municipality total: the pattern on the total and, in every breakdown
        of its figures, on keys that take it up (the same sign: room where that is
        negative), so that each breakdown still adds up to its total."""
        table, cells = self.value[TOTAL], self.var[TOTAL]
        own = table[rows, 0]
        fits = ((own >= 0) & ((signs >= 0) | (own >= size))).all(axis=1)
        width = len(self.periods)
        figures = list(self.figure_at[TOTAL])
        limit = len(figures) * width
        for j in np.flatnonzero(fits)[:TRIES].tolist():
            moving = (signs[j] != 0) & (rows[j] < limit)
            entries = rows[j][moving]
            sign = signs[j][moving]
            figure = [figures[r // width] for r in entries.tolist()]
            delta = dict(zip(cells[entries, 0].tolist(), (sign * size).tolist(), strict=True))
            ok = True
            for by in sorted({b for f in figure for b in FIGURES[f].breakdowns}):
                mine = np.asarray([by in FIGURES[f].breakdowns for f in figure])
                if by not in self.var:
                    ok = False
                    break
                at = self.figure_at[by]
                local = np.asarray(
                    [
                        at[f] * width + r % width
                        for f, r in zip(figure, entries.tolist(), strict=True)
                        if by in FIGURES[f].breakdowns
                    ],
                    dtype=np.int64,
                )
                block = self.value[by][local]
                present = (block >= 0).all(axis=0)
                room = np.where((sign[mine] < 0)[:, None], block, _ROOM).min(axis=0)
                room = np.where(present, np.minimum(room, size), 0)
                chosen = self._givers(room, size)
                if chosen is None:
                    ok = False
                    break
                for key, c in chosen:
                    delta.update(
                        zip(
                            self.var[by][local, key].tolist(),
                            (sign[mine] * c).tolist(),
                            strict=True,
                        )
                    )
            if ok and self.feasible(delta):
                yield delta

    def _give(
        self,
        block: np.ndarray,
        signs: np.ndarray,
        pieces: np.ndarray | None,
        k: int,
        size: int,
        room: np.ndarray,
    ) -> list[tuple[np.ndarray, list[tuple[int, int]]]] | None:
        """The keys that give way for one pattern (by -c × signs: room where signs > 0), the
        same keys for the whole pattern (``room``: theirs, computed already) or chosen per
        piece of the figure move (``pieces``), as (entries, [(key, c)])."""
        if pieces is None:
            chosen = self._givers(room, size)
            return None if chosen is None else [(signs == signs, chosen)]
        givers: list[tuple[np.ndarray, list[tuple[int, int]]]] = []
        for piece in range(int(pieces.max()) + 1):
            mine = pieces == piece
            present = (block[mine] >= 0).all(axis=0)
            room = np.where((signs[mine] > 0)[:, None], block[mine], _ROOM).min(axis=0)
            room = np.where(present, np.minimum(room, size), 0)
            room[k] = 0
            chosen = self._givers(room, size)
            if chosen is None:
                return None
            givers.append((mine, chosen))
        return givers

    @staticmethod
    def _givers(room: np.ndarray, size: int) -> list[tuple[int, int]] | None:
        """Keys that give way by ``size`` in all, each within its room: one key with room
        enough if there is one (the first such), else units from the keys with most room."""
        enough = np.flatnonzero(room >= size)
        if len(enough):
            return [(int(enough[0]), size)]
        order = np.argsort(-room, kind="stable")
        out: list[tuple[int, int]] = []
        left = size
        for key in order.tolist():
            if left == 0 or room[key] <= 0:
                break
            c = min(left, math.floor(room[key] + _NOISE))
            if c <= 0:
                break
            out.append((key, c))
            left -= c
        return out if left == 0 else None
