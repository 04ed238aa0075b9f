"""A synthetic year of programme records and its year grid, for tests and timing.

Records (attendance, registrations, referrals, trainings, survey answers) are drawn from a seeded
generator, and the grid is aggregated from them exactly as domain.md §6 defines the figures:
distinct people per cell, new participants with the attributes of their first session, the
latest survey answer per person and period, stocks of trained people at the end of a period.
Because the grid comes from records, it is consistent the way real data is (a person in two
months, a referral with two signals), which is what the engine's exact check relies on.

Not the query layer (part B builds that over SQL): a stand-in of known truth.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from services.metrics.domain.disclosure import (
    FIGURES,
    GROWTH,
    STATISTICS,
    TOTAL,
    Baseline,
    Count,
    Decisions,
    YearGrid,
    year_periods,
)
from shared.reference import load_reference
from tools.disclosure_audit.published import Published

__all__ = ["Records", "generate", "grid_of", "published_from"]

SIGNALS = ("emotional", "social", "practical", "health", "other")


@dataclass(frozen=True)
class Person:
    id: str
    neighbourhood: str
    age_band: str


@dataclass(frozen=True)
class Session:
    person: Person
    organisation: str
    category: str
    day: date
    attended: bool


@dataclass(frozen=True)
class Registration:
    person: Person
    organisation: str
    category: str
    day: date
    cancelled: date | None


@dataclass(frozen=True)
class Referral:
    person: Person
    organisation: str
    role: str
    signals: tuple[str, ...]
    day: date
    outcome: str  # accepted | declined | open
    converted_after: int | None  # days to the first attended session

    # The later stages of the funnel, derived from the drawn ones so that the random stream
    # (and every synthetic year drawn before the funnel existed) stays the same: accepted
    # referrals of every other day-of-month are contacted (after 2 days, or at the first
    # attendance if that is sooner), converted ones always; converted ones after an odd number
    # of days are retained.
    @property
    def contacted_after(self) -> int | None:
        if self.converted_after is not None:
            return min(2, self.converted_after)
        return 2 if self.outcome == "accepted" and self.day.day % 2 == 0 else None

    @property
    def retained(self) -> bool:
        return self.converted_after is not None and self.converted_after % 2 == 1


@dataclass(frozen=True)
class Training:
    person: str
    organisation: str
    role: str
    day: date


@dataclass(frozen=True)
class Answer:
    person: Person
    day: date
    lonely: bool
    severe: bool
    emotional: bool | None
    social: bool | None


@dataclass
class Records:
    year: int
    organisations: list[str]
    keys: dict[str, list[str]]
    sessions: list[Session] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    trainings: list[Training] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    partners: int = 0


def _day(rng: random.Random, year: int, months: tuple[int, int] = (1, 12)) -> date:
    start = date(year, months[0], 1)
    end = date(year + (months[1] == 12), months[1] % 12 + 1, 1) - timedelta(days=1)
    return start + timedelta(days=rng.randint(0, (end - start).days))


def generate(
    seed: int,
    *,
    year: int = 2025,
    residents: int = 1500,
    organisations: int = 33,
    keys: int | None = None,
    activity: float = 1.0,
) -> Records:
    """A year shaped like the demo's: skewed organisations and neighbourhoods, so that there
    are large cells and small ones in every breakdown. ``activity`` scales how much each
    resident does (small values give a year of mostly small cells); ``keys`` keeps only the
    first keys of each breakdown (small grids for property tests)."""
    rng = random.Random(seed)
    ref = load_reference()
    hoods = list(ref.neighbourhood_order)[:keys]
    bands = list(ref.age_band_order)[:keys]
    categories = sorted(ref.activity_categories)[:keys]
    roles = sorted(ref.referrer_roles)[:keys]
    signals = list(SIGNALS)[:keys]
    orgs = [f"org-{i + 1:02d}" for i in range(organisations)]
    org_weight = [1 / (i + 1) for i in range(organisations)]
    hood_weight = [1 / (1 + i % 7) for i in range(len(hoods))]
    records = Records(
        year,
        orgs,
        {
            "neighbourhood": hoods,
            "age_band": bands,
            "category": categories,
            "referrer_role": roles,
            "organisation": orgs,
            "role": roles,
            "signal": signals,
        },
        partners=organisations,
    )
    category_of = {org: categories[i % len(categories)] for i, org in enumerate(orgs)}
    for r in range(residents):
        person = Person(
            f"p{seed}-{r}",
            rng.choices(hoods, hood_weight)[0],
            rng.choices(bands, [6, 3, 5, 4, 1, 1][: len(bands)])[0],
        )
        if rng.random() < 0.7 * min(1.0, activity):
            org = rng.choices(orgs, org_weight)[0]
            first = _day(rng, year)
            for _ in range(max(1, int(rng.expovariate(1 / (6 * activity))))):
                day = min(first + timedelta(days=rng.randint(0, 120)), date(year, 12, 31))
                other = org if rng.random() < 0.85 else rng.choices(orgs, org_weight)[0]
                records.sessions.append(
                    Session(person, other, category_of[other], day, rng.random() < 0.88)
                )
                if rng.random() < 0.5:
                    cancelled = day + timedelta(days=2) if rng.random() < 0.1 else None
                    if cancelled is not None and cancelled.year != year:
                        cancelled = None
                    records.registrations.append(
                        Registration(person, other, category_of[other], day, cancelled)
                    )
        if rng.random() < 0.25 * min(1.0, activity):
            outcome = rng.choices(["accepted", "declined", "open"], [6, 2, 2])[0]
            records.referrals.append(
                Referral(
                    person,
                    rng.choices(orgs, org_weight)[0],
                    rng.choices(roles, [1 / (1 + i) for i in range(len(roles))])[0],
                    tuple(sorted(set(rng.choices(signals, k=rng.randint(1, 2))))),
                    _day(rng, year),
                    outcome,
                    rng.randint(3, 50) if outcome == "accepted" and rng.random() < 0.6 else None,
                )
            )
        for _ in range(rng.choice([0, 0, 1, 1, 2]) if activity >= 0.5 else rng.choice([0, 1])):
            lonely = rng.random() < 0.44
            records.answers.append(
                Answer(
                    person,
                    _day(rng, year),
                    lonely,
                    lonely and rng.random() < 0.2,
                    None if rng.random() < 0.05 else rng.random() < 0.26,
                    None if rng.random() < 0.05 else rng.random() < 0.23,
                )
            )
    for org in orgs:
        for t in range(rng.randint(0, int(12 * activity) + 1)):
            records.trainings.append(
                Training(f"{org}-staff-{t}", org, rng.choice(roles), _day(rng, year))
            )
    return records


# --------------------------------------------------------------------------------- the grid


class _Cells:
    """Accumulates per (figure, breakdown, key, period): a value and the distinct people."""

    def __init__(self) -> None:
        self.value: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.people: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)

    def add(
        self, figure: str, cells: Iterable[tuple[str, str]], periods: Iterable[str], person: str
    ) -> None:
        for by, key in cells:
            for period in periods:
                ref = (figure, by, key, period)
                self.value[ref] += 1
                self.people[ref].add(person)

    def set(self, ref: tuple[str, str, str, str], people: set[str]) -> None:
        self.value[ref] = len(people)
        self.people[ref] = set(people)


def _periods_of(day: date) -> list[str]:
    return [
        f"{day.year:04d}",
        f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}",
        f"{day.year:04d}-{day.month:02d}",
    ]


def _end(period: str) -> date:
    if len(period) == 4:
        return date(int(period), 12, 31)
    year, part = period.split("-")
    month = 3 * int(part[1]) if part.startswith("Q") else int(part)
    return date(int(year) + (month == 12), month % 12 + 1, 1) - timedelta(days=1)


def _start(period: str) -> date:
    if len(period) == 4:
        return date(int(period), 1, 1)
    year, part = period.split("-")
    month = 3 * int(part[1]) - 2 if part.startswith("Q") else int(part)
    return date(int(year), month, 1)


def grid_of(
    records: Records,
    *,
    baseline: Callable[[str, str, str], Baseline | None] | None = None,
) -> YearGrid:
    """The year grid of the records: every base figure, section and statistic per cell."""
    cells = _Cells()
    sections = _Cells()
    total = (TOTAL, "")

    def s2_cells(person: Person, organisation: str, category: str) -> list[tuple[str, str]]:
        return [
            total,
            ("neighbourhood", person.neighbourhood),
            ("age_band", person.age_band),
            ("category", category),
            ("organisation", organisation),
        ]

    first: dict[str, Session] = {}
    attended_days: dict[str, list[date]] = defaultdict(list)
    for s in sorted(records.sessions, key=lambda s: (s.day, s.organisation)):
        where = s2_cells(s.person, s.organisation, s.category)
        periods = _periods_of(s.day)
        cells.add("attendances" if s.attended else "no_shows", where, periods, s.person.id)
        sections.add("s2", where, periods, s.person.id)
        if s.attended:
            cells.add("participants_unique", where, periods, s.person.id)
            first.setdefault(s.person.id, s)
            attended_days[s.person.id].append(s.day)
    for pid, s in first.items():
        where = s2_cells(s.person, s.organisation, s.category)
        cells.add("participants_new", where, _periods_of(s.day), pid)
        later = [d for d in attended_days[pid] if d < s.day + timedelta(days=90)]
        if len(later) >= 3:
            cells.add("retained", where, _periods_of(s.day), pid)
    for r in records.registrations:
        where = s2_cells(r.person, r.organisation, r.category)
        cells.add("registrations", where, _periods_of(r.day), r.person.id)
        sections.add("s2", where, _periods_of(r.day), r.person.id)
        if r.cancelled is not None:
            cells.add("cancellations", where, _periods_of(r.cancelled), r.person.id)
    converted_days: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    contact_days: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for f in records.referrals:
        where = [total, ("referrer_role", f.role), ("organisation", f.organisation)]
        periods = _periods_of(f.day)
        cells.add("referrals", [*where, *(("signal", s) for s in f.signals)], periods, f.person.id)
        sections.add("s3", where, periods, f.person.id)
        if f.outcome in ("accepted", "declined"):
            cells.add(f.outcome, where, periods, f.person.id)
        if f.converted_after is not None:
            cells.add("converted", where, periods, f.person.id)
            for by, key in where:
                for p in periods:
                    converted_days[(by, key, p)].append(f.converted_after)
        else:
            cells.add("not_converted", where, periods, f.person.id)
        if f.contacted_after is not None:
            cells.add("contacted", where, periods, f.person.id)
            for by, key in where:
                for p in periods:
                    contact_days[(by, key, p)].append(f.contacted_after)
        if f.retained:
            cells.add("referrals_retained", where, periods, f.person.id)
    periods = year_periods(records.year)
    for period in periods:
        end = _end(period)
        trained = [t for t in records.trainings if t.day <= end]
        stocks: dict[tuple[str, str], set[str]] = defaultdict(set)
        for t in trained:
            for by, key in (total, ("role", t.role), ("organisation", t.organisation)):
                stocks[(by, key)].add(f"{t.organisation}:{t.person}")
        for (by, key), people in stocks.items():
            cells.set(("people_trained", by, key, period), people)
        with_staff = {t.organisation for t in trained}
        cells.set(("organisations_with_trained_staff", TOTAL, "", period), with_staff)
        cells.set(("partners", TOTAL, "", period), set(records.organisations))
        latest: dict[str, Answer] = {}
        for a in sorted(records.answers, key=lambda a: a.day):
            if _start(period) <= a.day <= end:
                latest[a.person.id] = a
        for pid, a in latest.items():
            where = [total, ("neighbourhood", a.person.neighbourhood), ("age_band", a.person.age_band)]  # fmt: skip
            cells.add("measurements", where, [period], pid)
            sections.add("s1", where, [period], pid)
            for name, state in (
                ("lonely", a.lonely),
                ("severe", a.severe),
                ("emotional", a.emotional),
                ("social", a.social),
            ):
                if state is None:
                    continue
                if name in ("emotional", "social"):
                    cells.add(f"{name}_measured", where, [period], pid)
                if state:
                    cells.add(name, where, [period], pid)
                elif name in ("emotional", "social"):
                    cells.add(f"not_{name}", where, [period], pid)
    counts = {ref: Count(value, len(cells.people[ref])) for ref, value in cells.value.items()}
    stats = {
        ("days_to_first_attendance", by, key, period): float(statistics.median(days))
        for (by, key, period), days in converted_days.items()
    } | {
        ("days_to_first_contact", by, key, period): float(statistics.median(days))
        for (by, key, period), days in contact_days.items()
    }
    baselines = {}
    if baseline is not None:
        for by, keys in [(TOTAL, [""]), *records.keys.items()]:
            if by in ("neighbourhood", "age_band", "category", "organisation") or by == TOTAL:
                for key in keys:
                    for period in periods:
                        base = baseline(by, key, period)
                        if base is not None:
                            baselines[(by, key, period)] = base
    return YearGrid(
        year=records.year,
        keys=records.keys,
        counts=counts,
        sections={ref: len(people) for ref, people in sections.people.items()},
        statistics=stats,
        baselines=baselines,
    )


def published_from(decisions: Decisions, source: str = "engine") -> list[Published]:
    """What the endpoints would publish under these decisions: every count shown as a count,
    every rate and growth figure (with the baseline beside it where a reader may see it), for
    the total and every breakdown — the analysts' view, which includes every other."""
    out: list[Published] = []
    for (figure, by, key, period), decision in decisions.items():
        if figure in FIGURES and not FIGURES[figure].published:
            continue
        if figure in STATISTICS:
            continue
        baseline = decisions.baseline(by, key, period) if figure == GROWTH else None
        out.append(
            Published(
                figure,
                by,
                key,
                period,
                None if decision.suppressed else float(decision.value or 0),
                source,
                None if baseline is None else float(baseline),
            )
        )
    return out
