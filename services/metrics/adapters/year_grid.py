"""The query layer of disclosure control: the year grid of domain.md §6 over the fact tables.

One function, :func:`read_year_grid`, answers for one calendar year every base figure the
suppression engine needs (``services/metrics/domain/disclosure/grid.py``): for every period of
the year (the year, its quarters, its months) × the municipality total and every key of every
breakdown, the value and the distinct people behind it; the distinct people of each subgoal
section; the medians and means; the stocks of trained people at the end of every month.
:func:`years_with_data` says which years a release must cover. Nothing else of the service reads
the facts for the published figures; the first attendance of every participant comes from the
rollup the consumer keeps (services/metrics/adapters/rollups.py), so that a year's figures read
that year's records and not all of history (issue 14).

How: each kind of record is read once for the year and expanded to its three periods (a
lateral ``VALUES`` of the year, quarter and month labels); ``GROUPING SETS`` then aggregate the
municipality total and every breakdown in one pass, with ``count(DISTINCT ...)`` for the people.
The definitions are those of domain.md §6, as in the answers before disclosure control (issue
12): activity versions in force at a session's start, sessions not rows, conversion by
(referrer, id) at the receiving side, acceptance only by the receiving side, signal-training
codes from settings, the partner registry, the latest survey answer per person and period.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import asyncpg

from services.metrics.adapters.rollups import SESSIONS
from services.metrics.domain.disclosure import TOTAL, Count, YearGrid
from services.metrics.domain.windows import CONVERSION_DAYS, RETENTION_DAYS, RETENTION_SESSIONS
from shared.reference import ReferenceData
from shared.referral_parties import RECEIVER_STATUSES
from shared.scale import CATEGORY_ORDER, LONELY_FROM, SEVERE_FROM

__all__ = [
    "ANONYMOUS",
    "CANCELLATION",
    "S1_TESTS",
    "S2_PER_PERIOD",
    "GridOptions",
    "read_year_grid",
    "s1_arguments",
    "s1_latest",
    "s1_pairs",
    "s2_records",
    "s3_referrals",
    "years_with_data",
]

# Unknown keys (a record without one) are published under this key.
UNKNOWN = "unknown"

# The person of a cancellation whose registration is not known: this letter, the organisation
# and the registration id, separated by "/" (which no id holds: shared/events/models.py), so
# that it is never a person's id and the fact writer can list it in a space-separated string.
CANCELLATION = "c"


@dataclass(frozen=True)
class GridOptions:
    """What the figures depend on besides the facts (settings and reference data)."""

    reference: ReferenceData
    # instrument -> (emotional cut-off, social cut-off) of the subscales (shared/scale.py)
    thresholds: Mapping[str, tuple[int, int]]
    signal_trainings: Sequence[str] = ("signaling-loneliness",)


# The three period labels of a date column (year, quarter, month), one row each.
def _periods(column: str) -> str:
    return (
        f"CROSS JOIN LATERAL (VALUES (to_char({column}, 'YYYY')), "
        f"(to_char({column}, 'YYYY-\"Q\"Q')), (to_char({column}, 'YYYY-MM'))) AS p(period)"
    )


# The sessions of the year (``$1`` to ``$2``): the rows dated in the year. Every row of a session has the same date, its start's date in Amsterdam (migration
# 008 checks it), so the year's rows hold every row of the year's sessions. (Before, the rows
# were picked as "every row of a session any row of which is dated in the year": a seek into
# the participant index per row of the year, 60% of a totals grid at 100,000 events.)
_YEAR_SESSIONS = SESSIONS.replace("{where}", "AND t.session_date BETWEEN $1 AND $2")


def _in_force(table: str, moment: str) -> str:
    """Join clause: the activity version in force at ``moment`` of a row of ``table``."""
    return (
        f"JOIN {{s}}.activity_validity a ON a.organisation_id = {table}.organisation_id "
        f"AND a.activity_id = {table}.activity_id "
        f"AND {table}.{moment} >= a.valid_from AND {table}.{moment} < a.valid_to"
    )


# GROUPING() bitmasks: which grouping set a row belongs to (a bit is 1 where the column is NOT
# grouped by), mapped to the breakdown it is.
_S2_SETS = {15: TOTAL, 7: "neighbourhood", 11: "age_band", 13: "category", 14: "organisation"}
_S3_SETS = {3: TOTAL, 1: "referrer_role", 2: "organisation"}
_S1_SETS = {3: TOTAL, 1: "neighbourhood", 2: "age_band"}
_TRAINED_SETS = {3: TOTAL, 1: "role", 2: "organisation"}


def _grouping(totals_only: bool, *columns: str) -> str:
    """The grouping set of a row (``g``) and its key columns; for the totals alone (no
    grouping sets) the bitmask of the total and no keys."""
    names = [c.split(".")[1] for c in columns]
    if totals_only:
        return ", ".join([f"{2 ** len(columns) - 1} AS g", *(f"NULL AS {n}" for n in names)])
    return ", ".join([f"GROUPING({', '.join(columns)}) AS g", *columns])


# The date of each fact table, and the columns its date index begins with before it
# (migrations 001 and 008): the years are found by skipping through that index.
_DATES = (
    ("attendance", "session_date", ()),
    ("registrations", "registered_date", ()),
    ("cancellations", "cancelled_date", ()),
    ("referrals", "created_date", ()),
    ("trainings", "completed_date", ()),
    ("measurements", "measured_date", ("context",)),
)


def _years_of(s: str, table: str, column: str, leading: tuple[str, ...]) -> str:
    """The years of ``table``'s ``column``: from each row found, one index probe for the first
    row of the next year (of the same leading key, then of the next), so a probe per year
    rather than a read of every row."""
    key = ", ".join([*leading, column])
    found = ", ".join(f"n.{c}" for c in [*leading, column])
    after = ", ".join([*(f"y.{c}" for c in leading), "make_date(y.year + 1, 1, 1)"])
    return f"""
        (WITH RECURSIVE y AS (
            (SELECT {key}, extract(year FROM {column})::int AS year
             FROM {s}.{table} ORDER BY {key} LIMIT 1)
            UNION ALL
            SELECT {found}, extract(year FROM n.{column})::int
            FROM y CROSS JOIN LATERAL (
                SELECT {key} FROM {s}.{table} WHERE ({key}) >= ({after})
                ORDER BY {key} LIMIT 1
            ) n
        )
        SELECT year FROM y)"""


async def years_with_data(conn: asyncpg.Connection, s: str) -> list[int]:
    """Every year in which some record falls (the years a release covers), ascending."""
    union = "\n        UNION ".join(_years_of(s, *date) for date in _DATES)
    rows = await conn.fetch(f"SELECT DISTINCT year FROM ({union}) x ORDER BY year")
    return [int(r["year"]) for r in rows]


class _Collector:
    """Counts, sections and statistics as they come from the rows."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, str], Count] = {}
        self.sections: dict[tuple[str, str, str, str], int] = {}
        self.statistics: dict[tuple[str, str, str, str], float] = {}
        self.seen: dict[str, set[str]] = {}

    def count(self, figure: str, by: str, key: str, period: str, value: Any, people: Any) -> None:
        value, people = int(value or 0), int(people or 0)
        if value:
            self.counts[(figure, by, key, period)] = Count(value, people)
        if by != TOTAL:
            self.seen.setdefault(by, set()).add(key)


def _key(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


class _Reader(Protocol):
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...


class _Timed:
    """A connection whose reads wait ``timeout`` seconds instead of the pool's command timeout
    (shared/db.py: 30 s, right for an answer a reader waits for). A release's grids are read in
    the background, and at a million events in one year under load they took longer than that:
    the cut failed and the breakdowns stayed on the previous release."""

    def __init__(self, conn: asyncpg.Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(query, *args, timeout=self.timeout)
        return rows


async def read_year_grid(
    conn: asyncpg.Connection,
    s: str,
    year: int,
    options: GridOptions,
    *,
    totals_only: bool = False,
    query_timeout: float | None = None,
) -> YearGrid:
    """The year grid of ``year`` from the facts in schema ``s`` (no baselines: those come from
    the baseline year's grid and decisions, which is the service layer's business). With
    ``totals_only`` just the municipality totals (what the live answers need). Run it in one
    read-only snapshot (a repeatable-read transaction) so that the figures agree. ``query_timeout``:
    seconds each query may take (default: the connection's command timeout)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    out = _Collector()
    reader: _Reader = conn if query_timeout is None else _Timed(conn, query_timeout)
    await _s2(reader, s, start, end, totals_only, out)
    await _s3(reader, s, start, end, totals_only, out)
    await _trained(reader, s, year, options.signal_trainings, totals_only, out)
    await _s1(reader, s, start, end, options.thresholds, totals_only, out)
    return YearGrid(
        year=year,
        keys={} if totals_only else _keys(options.reference, out.seen),
        counts=out.counts,
        sections=out.sections,
        statistics=out.statistics,
    )


def _keys(reference: ReferenceData, seen: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Every key of every breakdown: the reference list in its order (so that an empty cell is
    a row, never an absence), then whatever else the data hold, sorted."""
    known: dict[str, Iterable[str]] = {
        "neighbourhood": reference.neighbourhood_order,
        "age_band": reference.age_band_order,
        "category": sorted(reference.activity_categories),
        "referrer_role": sorted(reference.referrer_roles),
        "organisation": (),
        "role": sorted(reference.referrer_roles),
        "signal": sorted(reference.signals),
    }
    keys = {}
    for by, listed in known.items():
        first = list(listed)
        keys[by] = first + sorted(seen.get(by, set()) - set(first))
    return keys


# The S2 figures of every cell (the release): each kind of record counted, and its people.
_S2_CELLS = """
        SELECT p.period, {grouping},
               count(DISTINCT e.who) FILTER (WHERE kind = 'a') AS participants_unique,
               count(*) FILTER (WHERE kind = 'a') AS attendances,
               count(*) FILTER (WHERE kind = 'n') AS no_shows,
               count(DISTINCT e.who) FILTER (WHERE kind = 'n') AS no_shows_people,
               count(*) FILTER (WHERE kind = 'r') AS registrations,
               count(DISTINCT e.who) FILTER (WHERE kind = 'r') AS registrations_people,
               count(*) FILTER (WHERE kind = 'c') AS cancellations,
               count(DISTINCT e.who) FILTER (WHERE kind = 'c') AS cancellations_people,
               count(*) FILTER (WHERE kind = 'f') AS participants_new,
               count(*) FILTER (WHERE kind = 'f' AND retained) AS retained,
               count(DISTINCT e.who) AS section
        FROM e {periods}
        GROUP BY GROUPING SETS ({sets})
"""

# The same figures for the municipality totals alone (the live answers), counted in two steps:
# the year's records per month and person (one hash aggregate over the year's rows), then per
# period and person (the people of each month, quarter and year): every count of people is a
# count of those rows. The one-step form above sorts the year's records three times over (a
# row per period) for each of its five count(DISTINCT ...): at 100,000 events two thirds of a
# totals grid (docs/benchmarks.md, "Issue 14, item 1: answers that do not wait").
S2_PER_PERIOD = """
        , per_month AS (
            SELECT date_trunc('month', e.day)::date AS month, e.who,
                   count(*) FILTER (WHERE kind = 'a') AS a,
                   count(*) FILTER (WHERE kind = 'n') AS n,
                   count(*) FILTER (WHERE kind = 'r') AS r,
                   count(*) FILTER (WHERE kind = 'c') AS c,
                   count(*) FILTER (WHERE kind = 'f') AS f,
                   count(*) FILTER (WHERE kind = 'f' AND retained) AS fr
            FROM e GROUP BY 1, 2
        ), per_period AS (
            SELECT p.period, m.who, sum(m.a) AS a, sum(m.n) AS n, sum(m.r) AS r,
                   sum(m.c) AS c, sum(m.f) AS f, sum(m.fr) AS fr
            FROM per_month m {periods}
            GROUP BY 1, 2
        )""".replace("{periods}", _periods("m.month"))
_S2_TOTALS = f"""{S2_PER_PERIOD}
        SELECT period, {_grouping(True, "e.neighbourhood", "e.age_band", "e.category", "e.organisation_id")},
               count(who) FILTER (WHERE a > 0) AS participants_unique,
               sum(a) AS attendances,
               sum(n) AS no_shows,
               count(who) FILTER (WHERE n > 0) AS no_shows_people,
               sum(r) AS registrations,
               count(who) FILTER (WHERE r > 0) AS registrations_people,
               sum(c) AS cancellations,
               count(who) FILTER (WHERE c > 0) AS cancellations_people,
               sum(f) AS participants_new,
               sum(fr) AS retained,
               count(who) AS section
        FROM per_period GROUP BY period
"""


def s2_records(s: str, people: str | None = None, pseudo: tuple[str, str] | None = None) -> str:
    """The CTEs ``sessions``, ``new`` and ``e`` of the S2 records of the year (``$1`` to
    ``$2``): e.g. (who, kind, day, attributes) per attended session, no-show, registration,
    cancellation and first session ever. ``people`` (an SQL text array) keeps the records of
    those people only; ``pseudo`` (two SQL text arrays: organisations and registration ids)
    adds the cancellations of those registrations (services/metrics/adapters/totals.py)."""
    sessions = _YEAR_SESSIONS.format(s=s)
    in_force_reg = _in_force("r", "registered_at").format(s=s)
    in_force_can = _in_force("c", "cancelled_at").format(s=s)
    if people is not None:
        sessions = sessions.replace(
            "AND t.session_date BETWEEN $1 AND $2",
            f"AND t.session_date BETWEEN $1 AND $2 AND t.participant_id = ANY({people})",
        )
    only = (lambda column: "") if people is None else (lambda c: f"AND {c} = ANY({people})")
    # The cancellations: of the year, or (``people``) those of the people's registrations and
    # the ones named, each found by its key (a filter over the year's rows read them all).
    cancellations = f"{s}.cancellations"
    if people is not None:
        named = (
            ""
            if pseudo is None
            # UNION: a cancellation of a person's registration may be named as well.
            else f"""UNION SELECT n.* FROM unnest({pseudo[0]}, {pseudo[1]}) AS k (o, i)
                 JOIN {s}.cancellations n ON n.organisation_id = k.o AND n.registration_id = k.i"""
        )
        cancellations = f"""(SELECT n.* FROM {s}.registrations g
                 JOIN {s}.cancellations n ON n.organisation_id = g.organisation_id
                      AND n.registration_id = g.registration_id
                 WHERE g.participant_id = ANY({people}) {named})"""
    return f"""sessions AS MATERIALIZED ({sessions}),
        -- The people whose first session ever falls in the year (the rollup kept by the
        -- consumer, services/metrics/adapters/rollups.py).
        new AS (
            SELECT participant_id, first_date, organisation_id, neighbourhood, age_band,
                   category, retained
            FROM {s}.first_attendance WHERE first_date BETWEEN $1 AND $2 {only("participant_id")}
        ),
        -- Every S2 record of the year: a = attended session, n = no-show, r = registration,
        -- c = cancellation, f = first session ever (a new participant).
        e AS (
            SELECT participant_id AS who, CASE WHEN attended THEN 'a' ELSE 'n' END AS kind,
                   session_date AS day, neighbourhood, age_band, category, organisation_id,
                   false AS retained
            FROM sessions WHERE session_date BETWEEN $1 AND $2
            UNION ALL
            SELECT r.participant_id, 'r', r.registered_date, r.neighbourhood, r.age_band,
                   a.category, r.organisation_id, false
            FROM {s}.registrations r {in_force_reg}
            WHERE a.aimed_at_connection AND r.registered_date BETWEEN $1 AND $2
                  {only("r.participant_id")}
            UNION ALL
            -- A cancellation counts with its registration's person and attributes; one whose
            -- registration is not known is a person of its own (CANCELLATION), of unknown
            -- attributes.
            SELECT coalesce(r.participant_id, '{CANCELLATION}/' || c.organisation_id || '/'
                            || c.registration_id),
                   'c', c.cancelled_date, coalesce(r.neighbourhood, '{UNKNOWN}'),
                   coalesce(r.age_band, '{UNKNOWN}'), a.category, c.organisation_id, false
            FROM {cancellations} c {in_force_can}
            LEFT JOIN {s}.registrations r ON r.organisation_id = c.organisation_id
                 AND r.registration_id = c.registration_id
            WHERE a.aimed_at_connection AND c.cancelled_date BETWEEN $1 AND $2
            UNION ALL
            SELECT participant_id, 'f', first_date, neighbourhood, age_band, category,
                   organisation_id, retained
            FROM new
        )"""


async def _s2(
    conn: _Reader, s: str, start: date, end: date, totals_only: bool, out: _Collector
) -> None:
    sets = (
        "(p.period)"
        if totals_only
        else "(p.period), (p.period, e.neighbourhood), (p.period, e.age_band), "
        "(p.period, e.category), (p.period, e.organisation_id)"
    )
    rows = await conn.fetch(
        f"""
        WITH {s2_records(s)}
        {_S2_TOTALS if totals_only else _S2_CELLS.format(grouping=_grouping(False, "e.neighbourhood", "e.age_band", "e.category", "e.organisation_id"), periods=_periods("e.day"), sets=sets)}
        """,
        start,
        end,
    )
    columns = {
        "neighbourhood": "neighbourhood",
        "age_band": "age_band",
        "category": "category",
        "organisation": "organisation_id",
    }
    for row in rows:
        by = _S2_SETS[row["g"]]
        key = "" if by == TOTAL else _key(row[columns[by]])
        cell = (by, key, row["period"])
        unique = row["participants_unique"]
        out.count("participants_unique", *cell, unique, unique)
        out.count("attendances", *cell, row["attendances"], unique)
        out.count("no_shows", *cell, row["no_shows"], row["no_shows_people"])
        out.count("registrations", *cell, row["registrations"], row["registrations_people"])
        out.count("cancellations", *cell, row["cancellations"], row["cancellations_people"])
        out.count("participants_new", *cell, row["participants_new"], row["participants_new"])
        out.count("retained", *cell, row["retained"], row["retained"])
        if row["section"]:
            out.sections[("s2", *cell)] = int(row["section"])


def s3_referrals(s: str, people: str | None = None) -> str:
    """The CTEs ``base`` and ``refs``: the referrals created in the year (``$1`` to ``$2``)
    with how far each got (the funnel, docs/disclosure.md); ``people`` (an SQL text array)
    keeps the referrals of those people only (services/metrics/adapters/totals.py)."""

    def recorded(status: str) -> str:
        """Whether the receiving side recorded ``status``. For the whole year an EXISTS, which
        the planner reads as one hashed pass over the statuses; for a few people's referrals
        a probe of each one's statuses (that pass would read every status of history)."""
        found = (
            f"FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id "
            f"AND x.referral_id = r.referral_id AND x.status = '{status}' "
            "AND x.changed_by = r.receiving_organisation_id"
        )
        if people is None:
            return f"EXISTS (SELECT 1 {found})"
        return f"coalesce((SELECT true {found} LIMIT 1), false)"

    # The people's referrals found by person (a filter over the year's read them all).
    referrals = (
        f"{s}.referrals r"
        if people is None
        else f"unnest({people}) AS w (id) JOIN {s}.referrals r ON r.participant_id = w.id"
    )
    return f"""
        base AS (
            SELECT r.organisation_id, r.referrer_role, r.participant_id, r.created_date,
                   r.signals,
                   {recorded("accepted")} AS accepted_recorded,
                   {recorded("declined")} AS declined_recorded,
                   (SELECT min((x.at AT TIME ZONE 'Europe/Amsterdam')::date)
                    FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id
                     AND x.referral_id = r.referral_id AND x.status = 'contacted'
                     AND x.changed_by = r.receiving_organisation_id) AS contacted_on,
                   first.session_date AS first_attended, first.participant_id AS attendee
            FROM {referrals}
            -- A registration at the receiving side that names this referral: by referrer and
            -- id, or by the id alone where the receiver holds no other referral with that id.
            -- Nobody else's registration converts it (shared/referral_matching.py).
            LEFT JOIN LATERAL (
                SELECT t.session_date, t.participant_id FROM {s}.registrations g
                JOIN {s}.attendance t ON t.organisation_id = g.organisation_id
                    AND t.activity_id = g.activity_id AND t.participant_id = g.participant_id
                WHERE g.organisation_id = r.receiving_organisation_id
                  AND g.referral_id = r.referral_id
                  AND (g.referring_organisation_id = r.organisation_id
                       OR (g.referring_organisation_id IS NULL AND NOT EXISTS (
                           SELECT 1 FROM {s}.referrals o
                           WHERE o.receiving_organisation_id = g.organisation_id
                             AND o.referral_id = g.referral_id
                             AND o.organisation_id <> r.organisation_id)))
                  AND t.attended AND t.session_date >= g.registered_date
                  AND t.session_date BETWEEN r.created_date AND r.created_date + {CONVERSION_DAYS}
                ORDER BY t.session_date LIMIT 1
            ) first ON true
            WHERE r.created_date BETWEEN $1 AND $2
        ),
        -- Materialised: each referral's look-ups (statuses, first attendance, retention) once,
        -- not once for each of its three periods (the expansion below), as an inlined CTE had
        -- them: three times the index probes.
        refs AS MATERIALIZED (
            SELECT b.*,
                   b.accepted_recorded OR b.contacted_on IS NOT NULL
                       OR b.first_attended IS NOT NULL AS accepted,
                   b.contacted_on IS NOT NULL OR b.first_attended IS NOT NULL AS contacted,
                   least(b.contacted_on, b.first_attended) - b.created_date AS contact_days,
                   -- Retained: at least {RETENTION_SESSIONS} attended sessions (any activity,
                   -- the first attendance included) on days before the first attendance's day
                   -- + {RETENTION_DAYS}, as the retention of S2.
                   b.first_attended IS NOT NULL AND (
                       SELECT count(DISTINCT (t.organisation_id, t.activity_id, t.session_start))
                       FROM {s}.attendance t
                       WHERE t.participant_id = b.attendee AND t.attended
                         AND t.session_date >= b.first_attended
                         AND t.session_date < b.first_attended + {RETENTION_DAYS}
                   ) >= {RETENTION_SESSIONS} AS retained
            FROM base b
        )
    """


async def _s3(
    conn: _Reader, s: str, start: date, end: date, totals_only: bool, out: _Collector
) -> None:
    # Acceptance, declining and contact are the receiving side's (shared/referral_parties.py):
    # a status change by anyone else (a referrer accepting its own referral, in events from
    # before that rule) does not count.
    assert {"accepted", "declined", "contacted"} <= RECEIVER_STATUSES
    sets = (
        "(p.period)"
        if totals_only
        else "(p.period), (p.period, r.referrer_role), (p.period, r.organisation_id)"
    )
    # The funnel (docs/disclosure.md, "The S3 funnel"): a referral counts in every stage up to
    # the furthest it reached, so that the stages are nested whatever the receiving side
    # recorded: a first attendance without a recorded "contacted" (or "accepted") counts as
    # contacted (and accepted) too. The first contact is the earlier of the receiving side's
    # change to "contacted" and the first attendance.
    rows = await conn.fetch(
        f"""
        WITH {s3_referrals(s)}
        SELECT p.period, {_grouping(totals_only, "r.referrer_role", "r.organisation_id")},
               count(*) AS referrals,
               count(DISTINCT r.participant_id) AS referrals_people,
               count(*) FILTER (WHERE accepted) AS accepted,
               count(DISTINCT r.participant_id) FILTER (WHERE accepted) AS accepted_people,
               -- A referral declined and still taken further counts as accepted only, so that
               -- accepted + declined never exceeds the referrals.
               count(*) FILTER (WHERE declined_recorded AND NOT accepted) AS declined,
               count(DISTINCT r.participant_id) FILTER (WHERE declined_recorded AND NOT accepted)
                   AS declined_people,
               count(*) FILTER (WHERE contacted) AS contacted,
               count(DISTINCT r.participant_id) FILTER (WHERE contacted) AS contacted_people,
               count(*) FILTER (WHERE first_attended IS NOT NULL) AS converted,
               count(DISTINCT r.participant_id) FILTER (WHERE first_attended IS NOT NULL)
                   AS converted_people,
               count(*) FILTER (WHERE first_attended IS NULL) AS not_converted,
               count(DISTINCT r.participant_id) FILTER (WHERE first_attended IS NULL)
                   AS not_converted_people,
               count(*) FILTER (WHERE retained) AS referrals_retained,
               count(DISTINCT r.participant_id) FILTER (WHERE retained)
                   AS referrals_retained_people,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY first_attended - created_date)
                   FILTER (WHERE first_attended IS NOT NULL) AS days_to_first_attendance,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY contact_days)
                   FILTER (WHERE contacted) AS days_to_first_contact
        FROM refs r {_periods("r.created_date")}
        GROUP BY GROUPING SETS ({sets})
        """,
        start,
        end,
    )
    columns = {"referrer_role": "referrer_role", "organisation": "organisation_id"}
    for row in rows:
        by = _S3_SETS[row["g"]]
        key = "" if by == TOTAL else _key(row[columns[by]])
        cell = (by, key, row["period"])
        for figure in (
            "referrals",
            "accepted",
            "declined",
            "contacted",
            "converted",
            "not_converted",
            "referrals_retained",
        ):
            out.count(figure, *cell, row[figure], row[f"{figure}_people"])
        if row["referrals_people"]:
            out.sections[("s3", *cell)] = int(row["referrals_people"])
        for statistic in ("days_to_first_attendance", "days_to_first_contact"):
            if row[statistic] is not None:
                out.statistics[(statistic, *cell)] = float(row[statistic])
    if totals_only:
        return
    # By signal: a referral with two signals counts under both (but once under each).
    for row in await conn.fetch(
        f"""
        SELECT p.period, x.signal, count(*) AS referrals,
               count(DISTINCT x.participant_id) AS people
        FROM (SELECT DISTINCT r.organisation_id, r.referral_id, r.participant_id,
                     r.created_date, unnest(r.signals) AS signal
              FROM {s}.referrals r WHERE r.created_date BETWEEN $1 AND $2) x
             {_periods("x.created_date")}
        GROUP BY 1, 2
        """,
        start,
        end,
    ):
        out.count("referrals", "signal", _key(row["signal"]), row["period"], row["referrals"], row["people"])  # fmt: skip


async def _trained(
    conn: _Reader,
    s: str,
    year: int,
    codes: Sequence[str],
    totals_only: bool,
    out: _Collector,
) -> None:
    """Stocks at the end of every month: people trained in recognising signals (configured
    codes; pseudonymised per organisation), by role and by their organisation; the coalition's
    partners (the registry) and those among them with trained staff."""
    sets = (
        "(m.period)"
        if totals_only
        else "(m.period), (m.period, t.role), (m.period, t.organisation_id)"
    )
    months = f"""
        SELECT to_char(d, 'YYYY-MM') AS period,
               (d + interval '1 month' - interval '1 day')::date AS last_day
        FROM generate_series(make_date({int(year)}, 1, 1), make_date({int(year)}, 12, 1),
                             interval '1 month') AS d
    """
    for row in await conn.fetch(
        f"""
        WITH m AS ({months})
        SELECT m.period, {_grouping(totals_only, "t.role", "t.organisation_id")},
               count(DISTINCT (t.organisation_id, t.person_id)) AS people_trained
        FROM m JOIN {s}.trainings t ON t.completed_date <= m.last_day
             AND t.training = ANY($1::text[])
        GROUP BY GROUPING SETS ({sets})
        """,
        list(codes),
    ):
        by = _TRAINED_SETS[row["g"]]
        key = "" if by == TOTAL else _key(row["role" if by == "role" else "organisation_id"])
        n = row["people_trained"]
        out.count("people_trained", by, key, row["period"], n, n)
    for row in await conn.fetch(
        f"""
        WITH m AS ({months})
        SELECT m.period,
               (SELECT count(*) FROM platform.partners p
                WHERE p.joined <= m.last_day AND (p.left_on IS NULL OR p.left_on > m.last_day))
                   AS partners,
               (SELECT count(DISTINCT t.organisation_id) FROM {s}.trainings t
                JOIN platform.partners p ON p.organisation_id = t.organisation_id
                     AND p.joined <= m.last_day AND (p.left_on IS NULL OR p.left_on > m.last_day)
                WHERE t.completed_date <= m.last_day AND t.training = ANY($1::text[]))
                   AS with_staff
        FROM m
        """,
        list(codes),
    ):
        # Organisations count as the "people" of these figures (rule 1: k of them).
        out.count("partners", TOTAL, "", row["period"], row["partners"], row["partners"])
        n = row["with_staff"]
        out.count("organisations_with_trained_staff", TOTAL, "", row["period"], n, n)


# The S1 figures of the latest answers (``latest``): each a test of one answer, with the
# cut-offs as arguments $3 to $10 (:func:`s1_arguments`).
S1_TESTS = (
    ("measurements", "total IS NOT NULL"),
    ("lonely", "(instrument = 'djg11' AND total >= $7) OR (instrument = 'djg6' AND total >= $8)"),
    ("severe", "(instrument = 'djg11' AND total >= $9) OR (instrument = 'djg6' AND total >= $10)"),
    ("emotional_measured", "emotional IS NOT NULL"),
    (
        "emotional",
        "(instrument = 'djg11' AND emotional >= $3) OR (instrument = 'djg6' AND emotional >= $5)",
    ),
    ("social_measured", "social IS NOT NULL"),
    ("social", "(instrument = 'djg11' AND social >= $4) OR (instrument = 'djg6' AND social >= $6)"),
)


def s1_arguments(thresholds: Mapping[str, tuple[int, int]]) -> tuple[int, ...]:
    """The cut-offs of :data:`S1_TESTS`, in the order of their arguments $3 to $10."""
    (e11, s11), (e6, s6) = thresholds["djg11"], thresholds["djg6"]
    return (
        e11,
        s11,
        e6,
        s6,
        LONELY_FROM["djg11"],
        LONELY_FROM["djg6"],
        SEVERE_FROM["djg11"],
        SEVERE_FROM["djg6"],
    )


# The person of an anonymous answer: this letter, the organisation and the measurement id
# (separated as CANCELLATION's).
ANONYMOUS = "m"


def s1_latest(s: str, people: str | None = None, pseudo: tuple[str, str] | None = None) -> str:
    """The CTEs ``m`` and ``latest``: in every period of the year (``$1`` to ``$2``) the
    latest survey answer of each known participant, and every anonymous answer. ``people``
    (an SQL text array) keeps those participants' answers only, ``pseudo`` (organisations and
    measurement ids) adds those answers (services/metrics/adapters/totals.py)."""
    # The answers: of the year, or (``people``) the people's and the named anonymous ones,
    # each found by its index (one filter with OR read the year's every answer).
    answers = f"{s}.measurements"
    if people is not None:
        named = (
            ""
            if pseudo is None
            else f"""UNION ALL SELECT n.* FROM unnest({pseudo[0]}, {pseudo[1]}) AS k (o, i)
                 JOIN {s}.measurements n ON n.organisation_id = k.o AND n.measurement_id = k.i
                 WHERE n.participant_id IS NULL"""
        )
        answers = f"""(SELECT n.* FROM unnest({people}) AS w (id)
                 JOIN {s}.measurements n ON n.participant_id = w.id {named})"""
    return f"""m AS (
            -- A djg6 without a total may still have a subscale: it counts for that prevalence.
            SELECT x.*, p.period FROM {answers} x {_periods("x.measured_date")}
            WHERE x.context = 'survey' AND x.measured_date BETWEEN $1 AND $2
              AND (x.total IS NOT NULL OR x.emotional IS NOT NULL OR x.social IS NOT NULL)
        ), latest AS (
            (SELECT DISTINCT ON (period, participant_id) * FROM m WHERE participant_id IS NOT NULL
             ORDER BY period, participant_id, measured_at DESC, measurement_id DESC)
            UNION ALL
            (SELECT * FROM m WHERE participant_id IS NULL)
        )"""


def s1_pairs(s: str, people: str | None = None) -> str:
    """The CTEs ``f`` and ``pairs``: in every period of the year (``$1`` to ``$2``) each
    participant's latest follow-up with its first earlier intake (the category order is
    ``$3``); ``people`` (an SQL text array) keeps those participants only."""
    only = "" if people is None else f"AND x.participant_id = ANY({people})"
    return f"""f AS (
            SELECT DISTINCT ON (p.period, x.participant_id) x.*, p.period
            FROM {s}.measurements x {_periods("x.measured_date")}
            WHERE x.context = 'follow_up' AND x.total IS NOT NULL
              AND x.measured_date BETWEEN $1 AND $2 {only}
            ORDER BY p.period, x.participant_id, x.measured_at DESC
        ), pairs AS (
            SELECT f.period, f.participant_id, f.total - i.total AS change,
                   array_position($3::text[], f.category)
                 < array_position($3::text[], i.category) AS improved
            FROM f JOIN LATERAL (
                SELECT * FROM {s}.measurements i
                WHERE i.participant_id = f.participant_id AND i.context = 'intake'
                  AND i.instrument = f.instrument AND i.total IS NOT NULL
                  AND i.measured_at < f.measured_at
                ORDER BY i.measured_at LIMIT 1
            ) i ON true
        )"""


async def _s1(
    conn: _Reader,
    s: str,
    start: date,
    end: date,
    thresholds: Mapping[str, tuple[int, int]],
    totals_only: bool,
    out: _Collector,
) -> None:
    """Survey measurements: in every period the latest answer per known participant (and every
    anonymous one); intake and follow-up pairs of referred residents (total only)."""
    sets = (
        "(m.period)"
        if totals_only
        else "(m.period), (m.period, m.neighbourhood), (m.period, m.age_band)"
    )
    rows = await conn.fetch(
        f"""
        WITH {s1_latest(s)}
        SELECT m.period, {_grouping(totals_only, "m.neighbourhood", "m.age_band")},
            count(*) AS respondents,
            {", ".join(f"count(*) FILTER (WHERE {test}) AS {name}" for name, test in S1_TESTS)}
        FROM latest m
        GROUP BY GROUPING SETS ({sets})
        """,
        start,
        end,
        *s1_arguments(thresholds),
    )
    columns = {"neighbourhood": "neighbourhood", "age_band": "age_band"}
    for row in rows:
        by = _S1_SETS[row["g"]]
        key = "" if by == TOTAL else _key(row[columns[by]])
        cell = (by, key, row["period"])
        # One record per respondent: each count is about as many people as it counts.
        for figure in (
            "measurements",
            "lonely",
            "severe",
            "emotional_measured",
            "emotional",
            "social_measured",
            "social",
        ):
            out.count(figure, *cell, row[figure], row[figure])
        if row["respondents"]:
            out.sections[("s1", *cell)] = int(row["respondents"])
    for row in await conn.fetch(
        f"""
        WITH {s1_pairs(s)}
        SELECT period, count(*) AS pairs, avg(change)::float AS mean_change,
               count(*) FILTER (WHERE improved) AS improved
        FROM pairs GROUP BY period
        """,
        start,
        end,
        list(CATEGORY_ORDER),
    ):
        cell = (TOTAL, "", row["period"])
        out.count("outcome_pairs", *cell, row["pairs"], row["pairs"])
        out.count("improved", *cell, row["improved"], row["improved"])
        if row["mean_change"] is not None:
            out.statistics[("outcome_mean_change", *cell)] = float(row["mean_change"])
