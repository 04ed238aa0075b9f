"""The reader's model: every underlying count as a variable, constrained by what is published and
by the relations that hold between the counts.

Written from the definitions of domain.md §6 on purpose, not taken from the suppression engine:
an audit that shared the engine's model would share its mistakes. Only relations that hold for
the data are used (a person can attend in two months, so the unique participants of a quarter
are at most the sum of its months, not equal to it); the option ``additive_lists`` adds the
assumption of a reader who takes every person to have one role and every referral one signal.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tools.disclosure_audit.published import TOTAL, Published

__all__ = ["FAMILIES", "RATES", "Model", "Row", "Variable", "build"]

# Rounding of published rates and growth (4 decimals): the true ratio lies within ± half a unit.
HALF_UNIT = 0.00005


@dataclass(frozen=True, order=True)
class Variable:
    figure: str
    by: str
    key: str
    period: str

    def __str__(self) -> str:
        where = "municipality" if not self.by else f"{self.by}={self.key}"
        return f"{self.figure} {where} {self.period}"


@dataclass(frozen=True)
class Row:
    """``lower <= sum(coefficient * variable) <= upper``, and why a reader knows it."""

    terms: tuple[tuple[int, float], ...]
    lower: float
    upper: float
    why: str


# Counts that stand for each other's neighbours: publishing one figure of a family for a
# breakdown brings in the variables of the whole family (the other side of a rate, its
# denominator, the counts it is bounded by).
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("participants_unique", "participants_new", "retained", "attendances", "no_shows", "registrations", "cancellations"),
    ("referrals", "accepted", "declined", "contacted", "converted", "not_converted", "referrals_retained"),
    ("people_trained", "organisations_with_trained_staff", "partners", "organisations_without_trained_staff"),
    ("measurements", "lonely", "not_lonely", "severe", "not_severe", "emotional_measured", "emotional", "not_emotional", "social_measured", "social", "not_social"),
    ("outcome_pairs", "improved", "not_improved"),
)  # fmt: skip

# How a figure adds up over the periods of a year: "sum" (each event or person counts in
# exactly one month: events, and new participants at their first session), "sub" (a person
# in two months: the quarter lies between its largest month and the sum), "latest" (people's
# latest answer in the period: the quarter is at most the sum of its months), "stock" (at the
# end of the period: the quarter is its last month, and the stock only grows), "level" (a
# number at the end of the period that may also shrink: partners, and those with trained staff,
# since a partner may leave the registry).
PERIODS: dict[str, str] = {
    "participants_unique": "sub", "participants_new": "sum", "retained": "sum",
    "attendances": "sum", "no_shows": "sum", "registrations": "sum", "cancellations": "sum",
    "referrals": "sum", "accepted": "sum", "declined": "sum", "converted": "sum", "not_converted": "sum",
    "contacted": "sum", "referrals_retained": "sum",
    "people_trained": "stock", "organisations_with_trained_staff": "level",
    "partners": "level", "organisations_without_trained_staff": "level",
    "outcome_pairs": "latest", "improved": "latest", "not_improved": "latest",
}  # fmt: skip
for _name in FAMILIES[3]:
    PERIODS[_name] = "latest"

# How the keys of a breakdown add up to the total: "sum" unless a person or a record can sit
# under two keys. Participants are counted per key of each of their records (two categories,
# two organisations, a move to another neighbourhood); new participants carry the keys of
# their first session, which the definition leaves to the implementation, so they are taken
# as overlapping too. A referral carries several signals, a trained person may be recorded
# under two roles.
OVERLAPPING: dict[str, set[str]] = {
    "participants_unique": {"*"},
    "participants_new": {"*"},
    "retained": {"*"},
    "referrals": {"signal"},
    "people_trained": {"role"},
}
LIST_BREAKDOWNS = {"role", "signal"}

# A published rate: (numerator, the counts its denominator sums, the other side).
RATES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "attendance_rate": ("attendances", ("attendances", "no_shows"), "no_shows"),
    "referral_acceptance_rate": ("accepted", ("accepted", "declined"), "declined"),
    "referral_conversion": ("converted", ("referrals",), "not_converted"),
    "prevalence_lonely": ("lonely", ("measurements",), "not_lonely"),
    "prevalence_severe": ("severe", ("measurements",), "not_severe"),
    "prevalence_emotional": ("emotional", ("emotional_measured",), "not_emotional"),
    "prevalence_social": ("social", ("social_measured",), "not_social"),
    "improved_share": ("improved", ("outcome_pairs",), "not_improved"),
    "organisations_with_trained_staff_share": (
        "organisations_with_trained_staff",
        ("partners",),
        "organisations_without_trained_staff",
    ),
}
# Within one cell: whole = part + rest.
SPLITS: tuple[tuple[str, str, str], ...] = (
    ("referrals", "converted", "not_converted"),
    ("measurements", "lonely", "not_lonely"),
    ("measurements", "severe", "not_severe"),
    ("emotional_measured", "emotional", "not_emotional"),
    ("social_measured", "social", "not_social"),
    ("outcome_pairs", "improved", "not_improved"),
    ("partners", "organisations_with_trained_staff", "organisations_without_trained_staff"),
)
# Within one cell: sum(smaller) <= sum(larger).
BOUNDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("participants_new",), ("participants_unique",)),
    (("participants_unique",), ("attendances",)),
    (("retained",), ("participants_new",)),
    (("accepted", "declined"), ("referrals",)),
    # The S3 funnel: a referral counts in every stage up to the furthest it reached.
    (("contacted",), ("accepted",)),
    (("converted",), ("contacted",)),
    (("referrals_retained",), ("converted",)),
    (("severe",), ("lonely",)),
    (("organisations_with_trained_staff",), ("people_trained",)),
)
GROWTH = "growth_vs_baseline"
BASELINE = "participants_unique (baseline year)"
COUNTED = {name for family in FAMILIES for name in family} - {
    "declined", "not_converted", "not_lonely", "not_severe", "not_emotional", "not_social",
    "not_improved", "lonely", "severe", "emotional", "social", "emotional_measured",
    "social_measured", "improved", "partners", "organisations_without_trained_staff",
}  # fmt: skip


def year_periods(year: int) -> list[str]:
    return (
        [f"{year:04d}"]
        + [f"{year:04d}-Q{q}" for q in range(1, 5)]
        + [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    )


@dataclass
class Model:
    year: int
    k: int
    variables: list[Variable] = field(default_factory=list)
    index: dict[Variable, int] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    # Variables a publication hides (a suppressed count, or a side of a suppressed rate).
    hidden: set[int] = field(default_factory=set)
    # Variables shown exactly somewhere, with the value and where.
    shown: dict[int, tuple[float, str]] = field(default_factory=dict)
    # Variables some publication is about (the ones worth a bound).
    mentioned: set[int] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)

    def var(self, figure: str, by: str, key: str, period: str) -> int:
        v = Variable(figure, by, key, period)
        if v not in self.index:
            self.index[v] = len(self.variables)
            self.variables.append(v)
        return self.index[v]

    def row(self, terms: Iterable[tuple[int, float]], lower: float, upper: float, why: str) -> None:
        merged: dict[int, float] = defaultdict(float)
        for v, coef in terms:
            merged[v] += coef
        kept = tuple((v, c) for v, c in sorted(merged.items()) if c != 0)
        if kept:
            self.rows.append(Row(kept, lower, upper, why))


def _family(figure: str) -> tuple[str, ...]:
    return next((f for f in FAMILIES if figure in f), (figure,))


def build(
    published: Sequence[Published], year: int, k: int, *, additive_lists: bool = False
) -> Model:
    """The reader's model of one year from everything published about it."""
    model = Model(year, k)
    periods = year_periods(year)
    ours = [p for p in published if p.period in periods]
    keys: dict[str, set[str]] = defaultdict(set)
    figures: dict[str, set[str]] = defaultdict(set)
    for p in ours:
        keys[p.by].add(p.key)
        base = RATES[p.figure][0] if p.figure in RATES else p.figure
        if base == GROWTH:
            base = "participants_unique"
        # A list (trained people by role, referrals by signal) is of its own figure only.
        figures[p.by].update((base,) if p.by in LIST_BREAKDOWNS else _family(base))
    figures[TOTAL].update(*figures.values())
    keys[TOTAL] = {""}
    for by in sorted(figures):
        for figure in sorted(figures[by]):
            if by != TOTAL and figure in ("partners", "organisations_without_trained_staff", "organisations_with_trained_staff"):  # fmt: skip
                continue
            for key in sorted(keys[by]):
                for period in periods:
                    model.var(figure, by, key, period)
    _publications(model, ours)
    _relations(model, periods, keys, figures, additive_lists)
    return model


def _publications(model: Model, published: Sequence[Published]) -> None:
    for p in published:
        where = f"{p.cell()} ({p.source})"
        if p.figure in RATES:
            numerator, denominator, other = RATES[p.figure]
            num = model.index.get(Variable(numerator, p.by, p.key, p.period))
            den = [model.index.get(Variable(d, p.by, p.key, p.period)) for d in denominator]
            rest = model.index.get(Variable(other, p.by, p.key, p.period))
            if num is None or None in den or rest is None:
                continue
            parts = [d for d in den if d is not None]
            model.mentioned.update((num, rest, *parts))
            if p.value is None:
                model.hidden.update(
                    v for v in (num, rest) if model.variables[v].figure not in COUNTED
                )
                continue
            r = p.value
            # (r - h) * den <= num <= (r + h) * den, and a shown rate has cases.
            model.row([(num, 1.0), *((d, -(r + HALF_UNIT)) for d in parts)], -float("inf"), 0.0, f"published {where} = {r}")  # fmt: skip
            model.row([(num, 1.0), *((d, -(r - HALF_UNIT)) for d in parts)], 0.0, float("inf"), f"published {where} = {r}")  # fmt: skip
            model.row([(d, 1.0) for d in parts], 1.0, float("inf"), f"published {where} (a rate has cases)")  # fmt: skip
            continue
        if p.figure == GROWTH:
            unique = model.index.get(Variable("participants_unique", p.by, p.key, p.period))
            if unique is None or p.value is None:
                continue
            model.mentioned.add(unique)
            base = model.var(BASELINE, p.by, p.key, p.period)
            if p.baseline is not None:
                model.row([(base, 1.0)], p.baseline, p.baseline, f"published baseline beside {where} = {p.baseline}")  # fmt: skip
            g = 1.0 + p.value
            model.row([(unique, 1.0), (base, -(g + HALF_UNIT))], -float("inf"), 0.0, f"published {where} = {p.value}")  # fmt: skip
            model.row([(unique, 1.0), (base, -(g - HALF_UNIT))], 0.0, float("inf"), f"published {where} = {p.value}")  # fmt: skip
            continue
        v = model.index.get(Variable(p.figure, p.by, p.key, p.period))
        if v is None:
            continue
        model.mentioned.add(v)
        if p.value is None:
            model.hidden.add(v)
        else:
            known = model.shown.get(v)
            if known is not None and known[0] != p.value:
                model.conflicts.append(f"{model.variables[v]}: {known[0]} ({known[1]}) and {p.value} ({where})")  # fmt: skip
            model.shown.setdefault(v, (p.value, where))
            model.row([(v, 1.0)], p.value, p.value, f"published {where} = {p.value:g}")


def _relations(
    model: Model,
    periods: list[str],
    keys: dict[str, set[str]],
    figures: dict[str, set[str]],
    additive_lists: bool,
) -> None:
    year, quarters, months = periods[0], periods[1:5], periods[5:]
    inf = float("inf")

    def get(figure: str, by: str, key: str, period: str) -> int | None:
        return model.index.get(Variable(figure, by, key, period))

    def parent_children(parent: int, children: list[int], kind: str, why: str) -> None:
        if kind == "sum":
            model.row([(parent, 1.0), *((c, -1.0) for c in children)], 0.0, 0.0, f"{why} (sum)")
            return
        model.row([(parent, 1.0), *((c, -1.0) for c in children)], -inf, 0.0, f"{why} (at most the sum)")  # fmt: skip
        if kind == "sub":
            for c in children:
                model.row([(c, 1.0), (parent, -1.0)], -inf, 0.0, f"{why} (each part at most the whole)")  # fmt: skip

    for by, names in figures.items():
        for figure in sorted(names):
            kind = PERIODS.get(figure, "sum")
            for key in sorted(keys[by]):
                found = {p: get(figure, by, key, p) for p in periods}
                row = {p: v for p, v in found.items() if v is not None}
                if len(row) != len(periods):
                    continue
                cell = Variable(figure, by, key, year)
                if kind in ("stock", "level"):
                    for q, quarter in enumerate(quarters):
                        model.row([(row[quarter], 1.0), (row[months[3 * q + 2]], -1.0)], 0, 0, f"{cell}: a quarter's stock is its last month's")  # fmt: skip
                    model.row([(row[year], 1.0), (row[months[-1]], -1.0)], 0, 0, f"{cell}: the year's stock is December's")  # fmt: skip
                    if kind == "stock":
                        for a, b in itertools.pairwise(months):
                            model.row([(row[a], 1.0), (row[b], -1.0)], -inf, 0, f"{cell}: a stock only grows")  # fmt: skip
                    continue
                parent_children(row[year], [row[q] for q in quarters], kind, f"{cell}: the year and its quarters")  # fmt: skip
                for q, quarter in enumerate(quarters):
                    parent_children(row[quarter], [row[m] for m in months[3 * q : 3 * q + 3]], kind, f"{Variable(figure, by, key, quarter)}: the quarter and its months")  # fmt: skip
            if by == TOTAL:
                continue
            overlapping = OVERLAPPING.get(figure, set())
            additive = by in LIST_BREAKDOWNS and additive_lists
            kind = "sub" if ("*" in overlapping or by in overlapping) and not additive else "sum"
            for period in periods:
                total = get(figure, TOTAL, "", period)
                found_keys = [get(figure, by, key, period) for key in sorted(keys[by])]
                children = [c for c in found_keys if c is not None]
                if total is None or len(children) != len(found_keys):
                    continue
                parent_children(total, children, kind, f"{figure} {period}: the municipality and its {by} keys")  # fmt: skip
    for (by, key, period), group in _cells(model).items():
        for whole, part, rest in SPLITS:
            if {whole, part, rest} <= group.keys():
                model.row([(group[whole], 1.0), (group[part], -1.0), (group[rest], -1.0)], 0, 0, f"{whole} = {part} + {rest} ({by or 'municipality'} {key} {period})")  # fmt: skip
        for small, large in BOUNDS:
            if set(small) | set(large) <= group.keys():
                model.row([*((group[s], 1.0) for s in small), *((group[g], -1.0) for g in large)], -inf, 0, f"{' + '.join(small)} <= {' + '.join(large)} ({by or 'municipality'} {key} {period})")  # fmt: skip


def _cells(model: Model) -> dict[tuple[str, str, str], dict[str, int]]:
    cells: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for i, v in enumerate(model.variables):
        cells[(v.by, v.key, v.period)][v.figure] = i
    return cells
