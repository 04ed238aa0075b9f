"""The municipality totals of a year, kept as sums of people's shares (issue 14, item 1).

The live answers need, for every period of a year, the municipality totals with the distinct
people behind each (disclosure control counts people per cell). Computing them from the facts
reads the year's every row: at 5 million events in one year a refresh took 41 s, linear in the
year's rows. Distinct counts cannot be added up from monthly counts, but they can from
*people*: each person's (or a record of its own's) contribution to a year — per period and key,
their attended sessions, no-shows, registrations, referrals by stage, latest survey answer,
training, ... — is their **share**, and each total is the sum of the shares, each count of
people the number of shares that hold the key. So:

- ``totals_shares`` keeps every share of a year, ``totals_sums`` their sums per period and key;
- the fact writer appends, in the transaction that changes the facts, who changed
  (``totals_changes``: one row per transaction, no index);
- a refresh (:func:`refresh_totals`) takes the changes it sees, computes those people's shares
  again from the facts with the same SQL that computes the whole year
  (services/metrics/adapters/year_grid.py, restricted to them), adds the differences to the
  sums, and reads the year's grid from the sums: its cost follows the people who changed since
  the last refresh, not the year's rows or history;
- only the year asked is brought up to date: a refresh logs the changed people
  (``totals_log``) and each computed year applies what it has not applied yet when it is
  asked (a dashboard asks for a year or two; the freshness bench asks for twenty, and
  computing every change in every computed year made each refresh cost twenty); a year left
  more than ``BEHIND_LIMIT`` keys behind is forgotten, which bounds the log;
- a year not yet computed (the first refresh after a migration or a rebuild, or after the
  settings the figures depend on changed, or after it was forgotten) is computed whole, once.

Exactness rests on the shares being a function of the facts of their person: whatever the
order of arrival, a person's share after a refresh is what the whole-year SQL gives for them,
and the sums are the sums of those shares (tests/integration/test_totals_store.py compares the
sums with the whole-year grid after every batch of random histories). Where a fact of one
person changes another's share, the refresh widens the changed people to both: a registration
or attendance at the receiving side converts (and retains) the referral of the person it
names; a referral's id decides which registrations convert other referrals with the same id; a
registration decides the person of its cancellation. An erasure, whose facts are gone by the
time of the refresh, widens in the writer (services/metrics/adapters/facts.py) before the
delete; the refresh that sees it removes the erased person's shares from every computed year
at once and their keys from the log, so that nothing of them waits for a year to be asked.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import asyncpg

from services.metrics.adapters.year_grid import (
    ANONYMOUS,
    CANCELLATION,
    S1_TESTS,
    S2_PER_PERIOD,
    GridOptions,
    s1_arguments,
    s1_latest,
    s1_pairs,
    s2_records,
    s3_referrals,
)
from services.metrics.domain.disclosure import TOTAL, Count, YearGrid
from services.metrics.domain.windows import CONVERSION_DAYS, RETENTION_DAYS, RETENTION_SESSIONS
from shared.scale import CATEGORY_ORDER, LONELY_FROM, SEVERE_FROM

__all__ = [
    "TOTALS_LOCK",
    "TRAINED",
    "forget_totals",
    "referred_alongside",
    "refresh_totals",
    "registered_for_activities",
]

# Advisory lock (with the schema's name hashed) of the sums' upkeep: one refresh at a time, and
# retention's forgetting waits for it (services/metrics/adapters/reading.py totals_snapshot).
TOTALS_LOCK = 0x707A1

# Bump when a share's definition changes: every year is computed again at its next refresh.
VERSION = 1

# The person of a training: this letter, the organisation and the trained person (a person is
# counted per organisation, domain.md §6), separated as year_grid.CANCELLATION's.
TRAINED = "t"

# Keys of the shares, per figure. S2: a/n attended sessions and no-shows, r registrations, c
# cancellations, f first session ever in the period, fr and retained, s2 any S2 record.
_S2_KEYS = (("a", "a"), ("n", "n"), ("r", "r"), ("c", "c"), ("f", "f"), ("fr", "fr"), ("s2", "1"))
# S3, per referral: its stage flags and the days of the two medians (one key per value).
_S3_KEYS = (
    ("referrals", "1"),
    ("accepted", "accepted::int"),
    ("declined", "(declined_recorded AND NOT accepted)::int"),
    ("contacted", "contacted::int"),
    ("converted", "(first_attended IS NOT NULL)::int"),
    ("not_converted", "(first_attended IS NULL)::int"),
    ("referrals_retained", "retained::int"),
)
_FIRST_ATTENDANCE_DAYS = "dfa="
_FIRST_CONTACT_DAYS = "dfc="


def _values(keys: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"('{key}', ({expression})::bigint)" for key, expression in keys)


def fingerprint(options: GridOptions) -> str:
    """What the shares depend on besides the facts: this module's version, the windows and
    cut-offs, the signal-training codes."""
    described = json.dumps(
        [
            VERSION,
            CONVERSION_DAYS,
            RETENTION_DAYS,
            RETENTION_SESSIONS,
            list(CATEGORY_ORDER),
            dict(LONELY_FROM),
            dict(SEVERE_FROM),
            sorted((k, list(v)) for k, v in options.thresholds.items()),
            sorted(options.signal_trainings),
        ],
        sort_keys=True,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:16]


class _Who:
    """Whom a computation of shares covers: every share of the year (``None``), or the shares
    of ``people`` and of the records of their own named in ``pseudo``."""

    def __init__(self, people: Sequence[str], pseudo: Sequence[str]) -> None:
        self.people = list(people)
        self.pseudo = list(pseudo)
        parts = [k.split("/") for k in pseudo]
        cancelled = [p for p in parts if len(p) == 3 and p[0] == CANCELLATION]
        answered = [p for p in parts if len(p) == 3 and p[0] == ANONYMOUS]
        self.cancellations = ([c[1] for c in cancelled], [c[2] for c in cancelled])
        self.answers = ([a[1] for a in answered], [a[2] for a in answered])


def _share_queries(
    s: str, year: int, options: GridOptions, who: _Who | None
) -> list[tuple[str, list[Any]]]:
    """The statements (with arguments) whose rows are (who, person, period, key, value) of the
    shares of ``year``: the non-zero values only."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    people = None if who is None else "$3::text[]"
    pseudo_c = None if who is None else ("$4::text[]", "$5::text[]")
    extra_c: list[Any] = [] if who is None else [who.people, *who.cancellations]
    extra_p: list[Any] = [] if who is None else [who.people]
    # S1's survey answers take the cut-offs as $3 to $10: the people come after them.
    s1_people = None if who is None else "$11::text[]"
    s1_pseudo = None if who is None else ("$12::text[]", "$13::text[]")
    extra_s1: list[Any] = [] if who is None else [who.people, *who.answers]
    pairs_people = None if who is None else "$4::text[]"
    trained_people = "" if who is None else "AND person_id = ANY($2::text[])"
    s2 = f"""
        WITH {s2_records(s, people, pseudo_c)}
        {S2_PER_PERIOD}
        SELECT x.who, CASE WHEN x.who LIKE '{CANCELLATION}/%' THEN NULL ELSE x.who END,
               x.period, k.key, k.value
        FROM per_period x CROSS JOIN LATERAL (VALUES {_values(_S2_KEYS)}) AS k (key, value)
        WHERE k.value <> 0
    """
    s3 = f"""
        WITH {s3_referrals(s, people)}
        SELECT r.participant_id, r.participant_id, p.period, k.key, sum(k.value)::bigint
        FROM refs r CROSS JOIN LATERAL (VALUES
                (to_char(r.created_date, 'YYYY')), (to_char(r.created_date, 'YYYY-"Q"Q')),
                (to_char(r.created_date, 'YYYY-MM'))) AS p (period)
        CROSS JOIN LATERAL (VALUES {_values(_S3_KEYS)},
            (CASE WHEN r.first_attended IS NOT NULL THEN '{_FIRST_ATTENDANCE_DAYS}'
                  || (r.first_attended - r.created_date) END, 1::bigint),
            (CASE WHEN r.contacted THEN '{_FIRST_CONTACT_DAYS}' || r.contact_days END, 1::bigint)
        ) AS k (key, value)
        WHERE k.key IS NOT NULL AND k.value <> 0
        GROUP BY 1, 2, 3, 4
    """
    s1 = f"""
        WITH {s1_latest(s, s1_people, s1_pseudo)}
        SELECT coalesce(m.participant_id,
                        '{ANONYMOUS}/' || m.organisation_id || '/' || m.measurement_id),
               m.participant_id, m.period, k.key, k.value
        FROM latest m CROSS JOIN LATERAL (VALUES ('respondents', 1::bigint),
            {", ".join(f"('{name}', ({test})::int::bigint)" for name, test in S1_TESTS)}
        ) AS k (key, value)
        WHERE k.value <> 0
    """
    pairs = f"""
        WITH {s1_pairs(s, pairs_people)}
        SELECT x.participant_id, x.participant_id, x.period, k.key, k.value
        FROM pairs x CROSS JOIN LATERAL (VALUES ('outcome_pairs', 1::bigint),
            ('improved', x.improved::int::bigint), ('change', x.change::bigint)) AS k (key, value)
        WHERE k.value <> 0
    """
    trained = f"""
        SELECT '{TRAINED}/' || t.organisation_id || '/' || t.person_id, t.person_id,
               to_char(d, 'YYYY-MM'), 'people_trained', 1::bigint
        FROM (SELECT organisation_id, person_id, min(completed_date) AS first
              FROM {s}.trainings WHERE training = ANY($1::text[]) {trained_people}
              GROUP BY 1, 2) t
        JOIN generate_series(make_date({int(year)}, 1, 1), make_date({int(year)}, 12, 1),
                             interval '1 month') AS d
          ON t.first <= (d + interval '1 month' - interval '1 day')::date
    """
    codes = list(options.signal_trainings)
    return [
        (s2, [start, end, *extra_c]),
        (s3, [start, end, *extra_p]),
        (s1, [start, end, *s1_arguments(options.thresholds), *extra_s1]),
        (pairs, [start, end, list(CATEGORY_ORDER), *extra_p]),
        (trained, [codes, *extra_p]),
    ]


# ---------------------------------------------------------------------------------- refresh

# Changed people (and records of their own) whose shares a refresh computes at once.
CHANGES_AT_ONCE = 2_000


async def refresh_totals(
    conn: asyncpg.Connection,
    s: str,
    year: int,
    options: GridOptions,
    *,
    query_timeout: float | None = None,
) -> YearGrid:
    """The municipality totals of ``year`` (a totals-only grid), after bringing its sums up to
    date. Run it in a read-write repeatable-read transaction, one refresh of a schema at a time
    (services/metrics/adapters/reading.py ``totals_snapshot``). Only ``year`` is brought up to
    date: the other computed years find the changes in the log when they are asked."""
    # Plans for the arrays of people at hand: a generic plan, made without knowing that a
    # few hundred people are asked for, reads the year's every row instead of their index.
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    wanted = fingerprint(options)
    rows = await conn.fetch(f"SELECT year, fingerprint, applied_through FROM {s}.totals_years")
    stale = [r["year"] for r in rows if r["fingerprint"] != wanted]
    if stale:
        await _drop_years(conn, s, stale)
    through = {r["year"]: r["applied_through"] for r in rows if r["fingerprint"] == wanted}
    if through:
        # Each key once, made distinct by the server: after a long catch-up the rows name the
        # same people thousands of times (one row per consumer transaction; 900,000 keys for
        # 50,000 people after a million events), which as a Python list took 150 MB.
        changed = {
            r["key"]
            for r in await conn.fetch(
                f"WITH gone AS (DELETE FROM {s}.totals_changes RETURNING people) "
                "SELECT DISTINCT unnest(people) AS key FROM gone"
            )
        }
        if changed:
            await _log_changes(conn, s, sorted(through), changed, options, query_timeout)
    else:
        # No year computed yet: the year asked is computed whole below, from every fact.
        await conn.execute(f"DELETE FROM {s}.totals_changes")
    if year in through:
        await _catch_up(conn, s, year, through[year], options, query_timeout)
    else:
        if not through:
            await _fill_first_trainings(conn, s, options, None)
        await _build_year(conn, s, year, options, wanted, query_timeout)
    await _trim_log(conn, s)
    return await _grid(conn, s, year)


async def registered_for_activities(
    conn: asyncpg.Connection, s: str, activities: Sequence[tuple[str, str]]
) -> set[str]:
    """Whose shares a new version of ``activities`` ((organisation, activity) pairs) can move
    besides their attendees (rollups.touched_by_activities): the people registered for them,
    and their cancellations' (a cancellation of an unknown registration by its own key)."""
    if not activities:
        return set()
    rows = await conn.fetch(
        f"""
        SELECT r.participant_id AS k FROM {s}.registrations r
        JOIN unnest($1::text[], $2::text[]) AS a (o, i)
          ON r.organisation_id = a.o AND r.activity_id = a.i
        UNION
        SELECT coalesce(g.participant_id,
                        '{CANCELLATION}/' || c.organisation_id || '/' || c.registration_id)
        FROM {s}.cancellations c
        JOIN unnest($1::text[], $2::text[]) AS a (o, i)
          ON c.organisation_id = a.o AND c.activity_id = a.i
        LEFT JOIN {s}.registrations g ON g.organisation_id = c.organisation_id
             AND g.registration_id = c.registration_id
        """,
        [o for o, _ in activities],
        [i for _, i in activities],
    )
    return {r["k"] for r in rows}


async def referred_alongside(conn: asyncpg.Connection, s: str, people: list[str]) -> set[str]:
    """The participants of the referrals ``people``'s registrations name, or whose ids
    ``people``'s referrals share at the same receiver: their shares move with ``people``'s
    facts (conversion and retention at the receiving side, see the module)."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT r.participant_id FROM {s}.referrals r
        WHERE (r.receiving_organisation_id, r.referral_id) IN (
            SELECT g.organisation_id, g.referral_id FROM {s}.registrations g
            WHERE g.participant_id = ANY($1::text[]) AND g.referral_id IS NOT NULL
            UNION
            SELECT o.receiving_organisation_id, o.referral_id FROM {s}.referrals o
            WHERE o.participant_id = ANY($1::text[]))
        """,
        people,
    )
    return {r["participant_id"] for r in rows}


async def forget_totals(conn: asyncpg.Connection, s: str, schema: str) -> None:
    """Every year computed again at its next refresh (after facts changed without the fact
    writer: retention's deletes), in the caller's transaction. It waits for a refresh under
    way (the refresh's lock, taken until the caller's transaction ends): deleting rows the
    refresh was about to write, after it had written ones the deletes then wanted, deadlocked
    (seen in CI)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", TOTALS_LOCK, schema)
    for table in ("totals_years", "totals_shares", "totals_sums", "totals_changes", "totals_log"):
        await conn.execute(f"DELETE FROM {s}.{table}")


async def _drop_years(conn: asyncpg.Connection, s: str, years: Sequence[int]) -> None:
    for table in ("totals_years", "totals_shares", "totals_sums"):
        await conn.execute(f"DELETE FROM {s}.{table} WHERE year = ANY($1::integer[])", years)


async def _fetch(
    conn: asyncpg.Connection, query: str, args: Sequence[Any], query_timeout: float | None
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(query, *args, timeout=query_timeout)
    return rows


async def _build_year(
    conn: asyncpg.Connection,
    s: str,
    year: int,
    options: GridOptions,
    wanted: str,
    query_timeout: float | None,
) -> None:
    """Every share of ``year`` and their sums, from the whole year's facts (once). In SQL, a
    statement per kind of record merging its keys into the shares: collected in Python, a
    year of 5 million events held 5 GB in the service (docs/benchmarks.md)."""
    for query, args in _share_queries(s, year, options, None):
        await conn.execute(
            f"""
            INSERT INTO {s}.totals_shares AS x (year, who, person, share)
            SELECT {int(year)}, who, min(person), jsonb_object_agg(period || '|' || key, value)
            FROM ({query}) AS r (who, person, period, key, value)
            GROUP BY who
            ON CONFLICT (year, who) DO UPDATE SET share = x.share || EXCLUDED.share,
                person = coalesce(x.person, EXCLUDED.person)
            """,
            *args,
            timeout=query_timeout,
        )
    await conn.execute(
        f"""
        INSERT INTO {s}.totals_sums (year, period, key, total, holders)
        SELECT $1, split_part(e.k, '|', 1), split_part(e.k, '|', 2), sum(e.v::bigint), count(*)
        FROM {s}.totals_shares x CROSS JOIN LATERAL jsonb_each_text(x.share) AS e (k, v)
        WHERE x.year = $1
        GROUP BY 2, 3
        """,
        year,
    )
    # Computed from the facts of this snapshot, which hold every change the log has.
    await conn.execute(
        f"INSERT INTO {s}.totals_years (year, fingerprint, built_at, applied_through) "
        f"SELECT $1, $2, now(), coalesce(max(id), 0) FROM {s}.totals_log",
        year,
        wanted,
    )


def _collect(
    rows: Iterable[asyncpg.Record], into: dict[str, tuple[str | None, dict[str, int]]]
) -> None:
    for who, person, period, key, value in rows:
        share = into.setdefault(who, (person, {}))[1]
        name = f"{period}|{key}"
        share[name] = share.get(name, 0) + int(value)


async def _store_shares(
    conn: asyncpg.Connection,
    s: str,
    year: int,
    shares: Mapping[str, tuple[str | None, dict[str, int]]],
) -> None:
    if not shares:
        return
    await conn.execute(
        f"INSERT INTO {s}.totals_shares (year, who, person, share) "
        "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::jsonb[])",
        year,
        list(shares),
        [person for person, _ in shares.values()],
        # The pool's codec turns each into JSON (shared/db.py).
        [share for _, share in shares.values()],
    )


async def _widened(
    conn: asyncpg.Connection, s: str, changed: set[str]
) -> tuple[list[str], list[str]]:
    """The people and the records of their own whose shares ``changed`` can move (see the
    module): the people themselves; the participants of the referrals their registrations
    name or whose ids their referrals share; their registrations' cancellations."""
    pseudo = sorted(k for k in changed if "/" in k)
    people = {k for k in changed if "/" not in k}
    # A cancellation named by its own key whose registration is known now is its person's.
    named = _Who([], pseudo).cancellations
    for row in await conn.fetch(
        f"SELECT participant_id FROM {s}.registrations "
        "WHERE (organisation_id, registration_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        *named,
    ):
        people.add(row["participant_id"])
    listed = sorted(people)
    people.update(await referred_alongside(conn, s, listed))
    cancellations = await conn.fetch(
        f"SELECT '{CANCELLATION}/' || organisation_id || '/' || registration_id AS k "
        f"FROM {s}.registrations WHERE participant_id = ANY($1::text[])",
        listed,
    )
    return sorted(people), sorted({*pseudo, *(r["k"] for r in cancellations)})


async def _log_changes(
    conn: asyncpg.Connection,
    s: str,
    years: Sequence[int],
    changed: set[str],
    options: GridOptions,
    query_timeout: float | None,
) -> None:
    """``changed`` widened (see the module) into the log, for each computed year to apply when
    it is asked. Erased people are not logged: their shares are removed from every computed
    year now, and their keys from the log (an erasure leaves no personal reference behind
    until some year is asked)."""
    people, pseudo = await _widened(conn, s, changed)
    erased = await _erased(conn, s, people, pseudo)
    # Organisations whose first signal training may have moved (see below).
    organisations: set[str] = set()
    if erased:
        gone_people = [p for p in people if p in erased]
        gone_pseudo = [k for k in pseudo if k in erased]
        # Their trainings are gone from the facts: their organisations are those of the
        # shares removed.
        organisations = await _apply_widened(
            conn, s, years, gone_people, gone_pseudo, options, query_timeout
        )
        await conn.execute(
            f"""
            UPDATE {s}.totals_log
            SET people = ARRAY(SELECT unnest(people) EXCEPT SELECT unnest($1::text[])),
                pseudo = ARRAY(SELECT unnest(pseudo) EXCEPT SELECT unnest($1::text[]))
            WHERE people && $1::text[] OR pseudo && $1::text[]
            """,
            sorted(erased),
        )
        people = [p for p in people if p not in erased]
        pseudo = [k for k in pseudo if k not in erased]
    # Each organisation's first signal training is one table for every year: kept current
    # here, whichever year is asked (a catch-up then need not look again).
    organisations |= {k.split("/")[1] for k in pseudo if k.startswith(TRAINED + "/")} | {
        r["organisation_id"]
        for r in await conn.fetch(
            f"SELECT DISTINCT organisation_id FROM {s}.trainings WHERE person_id = ANY($1::text[])",
            people,
        )
    }
    if organisations:
        await _fill_first_trainings(conn, s, options, sorted(organisations))
    if people or pseudo:
        await conn.execute(
            f"INSERT INTO {s}.totals_log (people, pseudo) VALUES ($1::text[], $2::text[])",
            people,
            pseudo,
        )


async def _erased(
    conn: asyncpg.Connection, s: str, people: Sequence[str], pseudo: Sequence[str]
) -> set[str]:
    """The keys of ``people`` and ``pseudo`` that name an erased person: the person, or a
    training's key, which holds its trained person (:data:`TRAINED`)."""
    trained = {k.split("/")[2]: k for k in pseudo if k.startswith(TRAINED + "/")}
    rows = await conn.fetch(
        f"SELECT subject_id FROM {s}.erased_subjects WHERE subject_id = ANY($1::text[])",
        [*people, *trained],
    )
    gone = {r["subject_id"] for r in rows}
    return {p for p in people if p in gone} | {k for p, k in trained.items() if p in gone}


async def _catch_up(
    conn: asyncpg.Connection,
    s: str,
    year: int,
    through: int,
    options: GridOptions,
    query_timeout: float | None,
) -> None:
    """``year``'s shares of the people logged since it last caught up computed again, the sums
    moved by the differences."""
    rows = await conn.fetch(
        f"SELECT id, people, pseudo FROM {s}.totals_log WHERE id > $1 ORDER BY id", through
    )
    if not rows:
        return
    people = sorted({p for r in rows for p in r["people"]})
    pseudo = sorted({k for r in rows for k in r["pseudo"]})
    await _apply_widened(conn, s, [year], people, pseudo, options, query_timeout)
    await conn.execute(
        f"UPDATE {s}.totals_years SET applied_through = $2 WHERE year = $1", year, rows[-1]["id"]
    )


# How many logged keys a computed year may have yet to apply before it is forgotten (computed
# whole when it is asked again): what bounds the log when some year is never asked again. A
# catch-up of this many keys costs about what computing a busy year whole does (1M events a
# year: 22 s whole, 0.2-0.4 s per 2,000 people, docs/benchmarks.md).
BEHIND_LIMIT = 100_000


async def _trim_log(conn: asyncpg.Connection, s: str) -> None:
    """Forget the years left too far behind; delete the log rows every computed year has
    applied."""
    behind = [
        r["year"]
        for r in await conn.fetch(
            f"""
            SELECT y.year FROM {s}.totals_years y
            JOIN {s}.totals_log l ON l.id > y.applied_through
            GROUP BY y.year
            HAVING sum(cardinality(l.people) + cardinality(l.pseudo)) > $1
            """,
            BEHIND_LIMIT,
        )
    ]
    if behind:
        await _drop_years(conn, s, behind)
    await conn.execute(
        f"DELETE FROM {s}.totals_log WHERE id <= "
        f"coalesce((SELECT min(applied_through) FROM {s}.totals_years), 9223372036854775807)"
    )


async def _apply_widened(
    conn: asyncpg.Connection,
    s: str,
    years: Sequence[int],
    people: list[str],
    pseudo: list[str],
    options: GridOptions,
    query_timeout: float | None,
) -> set[str]:
    """The shares of ``people`` and ``pseudo`` (widened already) computed again in ``years``;
    the sums moved by the differences; returns the organisations of the trainings among them.
    A few thousand people at a time: after a backlog (a consumer catching up, a burst of
    ingestion) the changed people's shares held at once took a service past its memory budget
    (340 MiB after 100,000 events, docs/benchmarks.md); each part keeps the sums equal to the
    shares stored, so the parts add up to the whole."""
    organisations: set[str] = set()
    for part in await _parts(conn, s, people, pseudo):
        organisations |= await _apply_part(conn, s, years, part, options, query_timeout)
    return organisations


async def _parts(
    conn: asyncpg.Connection, s: str, people: list[str], pseudo: list[str]
) -> list[_Who]:
    """``people`` and ``pseudo`` in parts of at most ``CHANGES_AT_ONCE`` people, each named
    cancellation in the part of the person whose registration it cancels: its record is that
    person's share, and a part that computed it without the person's other records would
    store half a share beside the whole one."""
    if len(people) <= CHANGES_AT_ONCE and len(pseudo) <= CHANGES_AT_ONCE:
        return [_Who(people, pseudo)]
    orgs, regs = _Who([], pseudo).cancellations
    owner = {
        f"{CANCELLATION}/{r['organisation_id']}/{r['registration_id']}": r["participant_id"]
        for r in await conn.fetch(
            f"SELECT organisation_id, registration_id, participant_id FROM {s}.registrations "
            "WHERE (organisation_id, registration_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            orgs,
            regs,
        )
    }
    chunks = [people[at : at + CHANGES_AT_ONCE] for at in range(0, len(people), CHANGES_AT_ONCE)]
    part_of = {person: n for n, chunk in enumerate(chunks) for person in chunk}
    owned: list[list[str]] = [[] for _ in chunks]
    orphans: list[str] = []
    for key in pseudo:
        n = part_of.get(owner.get(key, ""))
        if n is None:
            orphans.append(key)  # a record of its own: its share is its own
        else:
            owned[n].append(key)
    parts = [_Who(chunk, keys) for chunk, keys in zip(chunks, owned, strict=True)]
    parts += [
        _Who([], orphans[at : at + CHANGES_AT_ONCE])
        for at in range(0, len(orphans), CHANGES_AT_ONCE)
    ]
    return parts


async def _apply_part(
    conn: asyncpg.Connection,
    s: str,
    years: Sequence[int],
    who: _Who,
    options: GridOptions,
    query_timeout: float | None,
) -> set[str]:
    """:func:`_apply_widened` for ``who``: their stored shares replaced by fresh ones, the sums
    moved by the differences; the organisations whose trainings moved. Parts may overlap (a
    training's share is found by its person and by its own key): each part reads the shares
    as the parts before it left them."""
    old_rows = await conn.fetch(
        f"SELECT year, who, person, share FROM {s}.totals_shares "
        "WHERE year = ANY($1::integer[]) AND (person = ANY($2::text[]) OR who = ANY($3::text[]))",
        list(years),
        who.people,
        who.pseudo,
    )
    # (year, period|key) -> [total, holders] moved
    moved: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    organisations: set[str] = set()
    for r in old_rows:
        for name, value in r["share"].items():
            entry = moved[(r["year"], name)]
            entry[0] -= int(value)
            entry[1] -= 1
        if r["who"].startswith(TRAINED + "/"):
            organisations.add(r["who"].split("/")[1])
    fresh: dict[int, dict[str, tuple[str | None, dict[str, int]]]] = {}
    for year in years:
        shares: dict[str, tuple[str | None, dict[str, int]]] = {}
        for query, args in _share_queries(s, year, options, who):
            _collect(await _fetch(conn, query, args, query_timeout), shares)
        fresh[year] = shares
        for name_who, (_, share) in shares.items():
            if name_who.startswith(TRAINED + "/"):
                organisations.add(name_who.split("/")[1])
            for name, value in share.items():
                entry = moved[(year, name)]
                entry[0] += value
                entry[1] += 1
    await conn.execute(
        f"DELETE FROM {s}.totals_shares x USING unnest($1::integer[], $2::text[]) AS o (y, w) "
        "WHERE x.year = o.y AND x.who = o.w",
        [r["year"] for r in old_rows],
        [r["who"] for r in old_rows],
    )
    for year, shares in fresh.items():
        await _store_shares(conn, s, year, shares)
    moves = [(y, name, t, h) for (y, name), (t, h) in moved.items() if t or h]
    if moves:
        await conn.execute(
            f"""
            INSERT INTO {s}.totals_sums AS x (year, period, key, total, holders)
            SELECT y, split_part(k, '|', 1), split_part(k, '|', 2), t, h
            FROM unnest($1::integer[], $2::text[], $3::bigint[], $4::bigint[]) AS m (y, k, t, h)
            ON CONFLICT (year, period, key) DO UPDATE
            SET total = x.total + EXCLUDED.total, holders = x.holders + EXCLUDED.holders
            """,
            [m[0] for m in moves],
            [m[1] for m in moves],
            [m[2] for m in moves],
            [m[3] for m in moves],
        )
    return organisations


async def _fill_first_trainings(
    conn: asyncpg.Connection, s: str, options: GridOptions, organisations: list[str] | None
) -> None:
    """Each organisation's first signal training (of ``organisations``, or of all)."""
    where = "" if organisations is None else "AND organisation_id = ANY($2::text[])"
    args: list[Any] = [list(options.signal_trainings)]
    if organisations is None:
        await conn.execute(f"DELETE FROM {s}.totals_first_training")
    else:
        await conn.execute(
            f"DELETE FROM {s}.totals_first_training WHERE organisation_id = ANY($1::text[])",
            organisations,
        )
        args.append(organisations)
    await conn.execute(
        f"INSERT INTO {s}.totals_first_training (organisation_id, first_date) "
        f"SELECT organisation_id, min(completed_date) FROM {s}.trainings "
        f"WHERE training = ANY($1::text[]) {where} GROUP BY 1",
        *args,
    )


# ------------------------------------------------------------------------------- the grid

# Figure -> (key of its value, key whose holders are its people; "" = as many as the value).
_COUNTS = {
    "participants_unique": ("a", "a"),
    "attendances": ("a", "a"),
    "no_shows": ("n", "n"),
    "registrations": ("r", "r"),
    "cancellations": ("c", "c"),
    "participants_new": ("f", ""),
    "retained": ("fr", ""),
    **{figure: (figure, figure) for figure, _ in _S3_KEYS},
    **{figure: (figure, "") for figure, _ in S1_TESTS},
    "outcome_pairs": ("outcome_pairs", ""),
    "improved": ("improved", ""),
    "people_trained": ("people_trained", ""),
}
_SECTIONS = {"s2": "s2", "s3": "referrals", "s1": "respondents"}


def _median(histogram: Mapping[int, int]) -> float:
    """``percentile_cont(0.5)`` of the values counted in ``histogram``."""
    values = sorted(histogram)
    n = sum(histogram.values())
    position = 0.5 * (n - 1)
    low, high = int(position), int(position) + (position > int(position))

    def at(index: int) -> int:
        seen = 0
        for v in values:
            seen += histogram[v]
            if index < seen:
                return v
        raise IndexError(index)

    lower, upper = at(low), at(high)
    return float(lower + (upper - lower) * (position - low))


async def _grid(conn: asyncpg.Connection, s: str, year: int) -> YearGrid:
    """The totals-only grid of ``year`` from its sums (what read_year_grid gives with
    ``totals_only``), and the partners and organisations with trained staff from the registry."""
    sums: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
    for r in await conn.fetch(
        f"SELECT period, key, total, holders FROM {s}.totals_sums "
        "WHERE year = $1 AND (total <> 0 OR holders <> 0)",
        year,
    ):
        sums[r["period"]][r["key"]] = (int(r["total"]), int(r["holders"]))
    counts: dict[tuple[str, str, str, str], Count] = {}
    sections: dict[tuple[str, str, str, str], int] = {}
    statistics: dict[tuple[str, str, str, str], float] = {}
    for period, keys in sums.items():
        for figure, (value_key, people_key) in _COUNTS.items():
            total, holders = keys.get(value_key, (0, 0))
            value = holders if figure == "participants_unique" else total
            people = keys.get(people_key, (0, 0))[1] if people_key else value
            if value:
                counts[(figure, TOTAL, "", period)] = Count(value, people)
        for section, key in _SECTIONS.items():
            holders = keys.get(key, (0, 0))[1]
            if holders:
                sections[(section, TOTAL, "", period)] = holders
        for statistic, prefix in (
            ("days_to_first_attendance", _FIRST_ATTENDANCE_DAYS),
            ("days_to_first_contact", _FIRST_CONTACT_DAYS),
        ):
            histogram = {
                int(k.removeprefix(prefix)): total
                for k, (total, _) in keys.items()
                if k.startswith(prefix) and total
            }
            if histogram:
                statistics[(statistic, TOTAL, "", period)] = _median(histogram)
    # The mean change of the outcome pairs as avg() of the changes gives it (numeric division,
    # then float): in PostgreSQL, every period in one query.
    for r in await conn.fetch(
        f"""
        SELECT p.period, (coalesce(c.total, 0)::numeric / p.total::numeric)::float8 AS mean
        FROM {s}.totals_sums p
        LEFT JOIN {s}.totals_sums c ON c.year = p.year AND c.period = p.period
             AND c.key = 'change'
        WHERE p.year = $1 AND p.key = 'outcome_pairs' AND p.total <> 0
        """,
        year,
    ):
        statistics[("outcome_mean_change", TOTAL, "", r["period"])] = float(r["mean"])
    for r in await conn.fetch(
        f"""
        WITH m AS (
            SELECT to_char(d, 'YYYY-MM') AS period,
                   (d + interval '1 month' - interval '1 day')::date AS last_day
            FROM generate_series(make_date($1, 1, 1), make_date($1, 12, 1), interval '1 month') d
        )
        SELECT m.period,
               (SELECT count(*) FROM platform.partners p
                WHERE p.joined <= m.last_day AND (p.left_on IS NULL OR p.left_on > m.last_day))
                   AS partners,
               (SELECT count(*) FROM {s}.totals_first_training t
                JOIN platform.partners p ON p.organisation_id = t.organisation_id
                     AND p.joined <= m.last_day AND (p.left_on IS NULL OR p.left_on > m.last_day)
                WHERE t.first_date <= m.last_day) AS with_staff
        FROM m
        """,
        year,
    ):
        for figure, n in (
            ("partners", r["partners"]),
            ("organisations_with_trained_staff", r["with_staff"]),
        ):
            if n:
                counts[(figure, TOTAL, "", r["period"])] = Count(int(n), int(n))
    return YearGrid(year=year, keys={}, counts=counts, sections=sections, statistics=statistics)
