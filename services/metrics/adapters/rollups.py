"""Rollups of the facts, kept in the transaction that changes them (issue 14, item 1).

``open_referrals``: the open referrals and their last change, for the count of overdue ones.

``first_attendance``: per participant, the first session attended ever (the activity version in
force at its start classifies it, domain.md §6) and whether they were retained (at least
``RETENTION_SESSIONS`` attended sessions on days before the first's day + ``RETENTION_DAYS``).
Without it, every year's S2 figures read every session of history to find who was new.

How it stays exact: a rollup row is never adjusted, it is recomputed from the facts for the
participants a transaction touched — the people of new attendance that can change their row
(:data:`TOUCHES`, evaluated by the fact writer's attendance statement on the rows it inserts),
the erased, the people who attended an activity that got a new version (it may classify their
sessions otherwise) — with the same SQL that fills the table from scratch (migration 007, a
rebuild after its bulk load, retention's prune). So the rows are a function of the facts whatever the order of arrival, and
a redelivered event (which changes no fact) changes no row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from services.metrics.domain.windows import RETENTION_DAYS, RETENTION_SESSIONS
from shared.referral_parties import RECEIVER_STATUSES, REFERRER_STATUSES

__all__ = [
    "LOCAL_DATE",
    "SESSIONS",
    "TOUCHES",
    "fill_first_attendance",
    "fill_first_attendance_share",
    "fill_open_referrals",
    "refresh_first_attendance",
    "refresh_open_referrals",
    "touched_by_activities",
]

# The Europe/Amsterdam date of the moment ``{}`` (a session's date; migration 008 checks it).
LOCAL_DATE = "({} AT TIME ZONE 'Europe/Amsterdam')::date"

# One row per person and session, classified by the version of the activity in force at the
# session's start (domain.md §6): a session is one (activity, session start), and one person at
# one session counts once, however often it was reported. ``{where}``: more conditions on the
# attendance rows ``t``.
SESSIONS = """
    SELECT t.organisation_id, t.activity_id, t.session_start, t.participant_id,
           min(t.session_date) AS session_date, min(t.neighbourhood) AS neighbourhood,
           min(t.age_band) AS age_band, bool_or(t.attended) AS attended, v.category
    FROM {s}.attendance t
    JOIN {s}.activity_validity v ON v.organisation_id = t.organisation_id
         AND v.activity_id = t.activity_id
         AND t.session_start >= v.valid_from AND t.session_start < v.valid_to
    WHERE v.aimed_at_connection {where}
    GROUP BY t.organisation_id, t.activity_id, t.session_start, t.participant_id, v.category
"""

# The rows of first_attendance, for the participants ``{where}`` selects.
_FIRSTS = f"""
    WITH sessions AS MATERIALIZED ({SESSIONS}),
    firsts AS (
        SELECT DISTINCT ON (participant_id) participant_id, session_date AS first_date,
               organisation_id, activity_id, session_start, neighbourhood, age_band, category
        FROM sessions WHERE attended
        ORDER BY participant_id, session_date, session_start, organisation_id, activity_id
    )
    -- Retention counts sessions on days before the first session's day + {RETENTION_DAYS}.
    SELECT f.participant_id, f.first_date, f.organisation_id, f.activity_id, f.session_start,
           f.neighbourhood, f.age_band, f.category, count(*) >= {RETENTION_SESSIONS} AS retained
    FROM firsts f
    JOIN sessions c ON c.participant_id = f.participant_id AND c.attended
         AND c.session_date >= f.first_date AND c.session_date < f.first_date + {RETENTION_DAYS}
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
"""

# Of a new attendance row ``n`` (an attendance row just inserted) and its person's rollup row
# ``f`` (if any), whether the row can change the rollup row. New rows only add to a person's
# sessions, so (a session's date being its start's date in Amsterdam, which the schema checks:
# every row of a session has the same) a row changes the person's rollup row only if it is
#
# - a row of their first session (its neighbourhood and age band are the least of its rows);
# - an attended row of a person without a first attendance, or of a session ordered before
#   their first (it may become the first);
# - an attended row of a session dated before the first's day + RETENTION_DAYS of a person
#   not yet retained (it may count for retention, which only grows).
#
# Every other row changes nothing: a no-show elsewhere (a session counts as attended if any of
# its rows is), a session after the first of someone retained already, a later session. So a
# regular's sessions cost the look-up of their row, not a recomputation of their history. (A
# row of an activity not aimed at connection may be taken for one that can change something:
# recomputing then changes nothing.)
TOUCHES = f"""
    (f.participant_id IS NULL AND n.attended)
    OR (f.organisation_id, f.activity_id, f.session_start)
       = (n.organisation_id, n.activity_id, n.session_start)
    OR (n.attended AND (n.session_date, n.session_start, n.organisation_id, n.activity_id)
                       < (f.first_date, f.session_start, f.organisation_id, f.activity_id))
    OR (n.attended AND NOT f.retained AND n.session_date < f.first_date + {RETENTION_DAYS})
"""

# People recomputed per statement (see refresh_first_attendance).
REFRESH_SLICE = 200

_COLUMNS = (
    "participant_id, first_date, organisation_id, activity_id, session_start, neighbourhood, "
    "age_band, category, retained"
)


async def refresh_first_attendance(
    conn: asyncpg.Connection, s: str, participants: Iterable[str], grown: Iterable[str] = ()
) -> None:
    """Recompute the rows of ``participants`` and ``grown`` from the facts (in the caller's
    transaction). ``grown``: people whose facts this transaction only added attendance rows
    to; their row can appear or change but never go (new rows only add sessions, and a
    session that had an attended row keeps it), so their recomputation skips looking for rows
    to delete, which was about a third of the statement's time."""
    removable = set(participants)
    people = sorted(removable.union(grown))
    # In slices, in participant order (one lock order for two instances): with about 500 people
    # in one statement the planner scanned all of attendance instead of its participant index
    # (EXPLAIN ANALYZE at 147k rows; 250 used the index). A batch with an erasure or a new
    # activity version can name that many.
    for start in range(0, len(people), REFRESH_SLICE):
        piece = people[start : start + REFRESH_SLICE]
        await _refresh_first_attendance(conn, s, piece, gone=not removable.isdisjoint(piece))


async def _refresh_first_attendance(
    conn: asyncpg.Connection, s: str, people: list[str], *, gone: bool = True
) -> None:
    fresh = _FIRSTS.format(s=s, where="AND t.participant_id = ANY($1::text[])")
    # A row that is no longer the same is rewritten, one whose person has no first attendance
    # left goes (looked for when ``gone``: some of ``people`` may have lost facts).
    removal = f"""
        , gone AS (
            DELETE FROM {s}.first_attendance x
            WHERE x.participant_id = ANY($1::text[])
              AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.participant_id = x.participant_id)
        )"""
    await conn.execute(
        f"""
        WITH fresh AS ({fresh}){removal if gone else ""}
        INSERT INTO {s}.first_attendance ({_COLUMNS})
        SELECT * FROM fresh ORDER BY participant_id
        ON CONFLICT (participant_id) DO UPDATE SET
            first_date = EXCLUDED.first_date, organisation_id = EXCLUDED.organisation_id,
            activity_id = EXCLUDED.activity_id, session_start = EXCLUDED.session_start,
            neighbourhood = EXCLUDED.neighbourhood, age_band = EXCLUDED.age_band,
            category = EXCLUDED.category, retained = EXCLUDED.retained
        WHERE ({s}.first_attendance.*) IS DISTINCT FROM (EXCLUDED.*)
        """,
        people,
    )


async def fill_first_attendance(conn: asyncpg.Connection, s: str) -> None:
    """Every row from the facts (a rebuild's bulk load, retention's prune)."""
    await conn.execute(f"DELETE FROM {s}.first_attendance")
    await conn.execute(
        f"INSERT INTO {s}.first_attendance ({_COLUMNS}) {_FIRSTS.format(s=s, where='')}"
    )


async def fill_first_attendance_share(
    conn: asyncpg.Connection, s: str, share: int, shares: int
) -> None:
    """The rows of the participants of one of ``shares`` disjoint shares (by a hash of the
    participant) into an empty table: a rebuild fills the shares side by side, on as many
    connections (one statement uses one core, and the table is a function of each person's
    own sessions, so the shares' union is the whole)."""
    where = f"AND abs(hashtext(t.participant_id)::bigint) % {int(shares)} = {int(share)}"
    await conn.execute(
        f"INSERT INTO {s}.first_attendance ({_COLUMNS}) {_FIRSTS.format(s=s, where=where)}"
    )


# Per activity that got new versions, from which moment its sessions may be classified
# otherwise ($1, $2, $3: the new versions' organisations, activities and numbers). A session is
# classified by the version whose interval holds its start (migration 018: versions in number
# order, each from the latest ``valid_from`` so far, the first from -infinity). New versions all
# numbered above every version there was split only the last one's open interval, from the
# start of the lowest new one's interval on: sessions before it keep their version. A first
# version (sessions of the activity had none), or a new version below one there was (every
# interval after it may move), can move sessions of any moment: -infinity.
_CHANGED_FROM = """
    WITH new AS (
        SELECT o, i, min(v) AS lowest, array_agg(v) AS versions
        FROM unnest($1::text[], $2::text[], $3::int[]) AS n (o, i, v)
        GROUP BY o, i
    )
    SELECT n.o, n.i,
           CASE WHEN NOT EXISTS (SELECT 1 FROM {s}.activity_versions x
                                 WHERE x.organisation_id = n.o AND x.activity_id = n.i
                                   AND x.version < n.lowest)
                  OR EXISTS (SELECT 1 FROM {s}.activity_versions x
                             WHERE x.organisation_id = n.o AND x.activity_id = n.i
                               AND x.version > n.lowest AND x.version <> ALL (n.versions))
                THEN '-infinity'::timestamptz
                -- The interval the trigger of migration 018 stored for it in this statement's
                -- transaction; were it missing, every session (a NULL would find none).
                ELSE coalesce((SELECT v.valid_from FROM {s}.activity_intervals v
                               WHERE v.organisation_id = n.o AND v.activity_id = n.i
                                 AND v.version = n.lowest), '-infinity'::timestamptz)
           END AS changed_from
    FROM new n
"""


async def touched_by_activities(
    conn: asyncpg.Connection, s: str, versions: Sequence[tuple[str, str, int]]
) -> list[str]:
    """The people who attended, from the moment their classification may change, one of the
    activities of ``versions`` ((organisation, activity, version) of versions just inserted,
    in the caller's transaction): a new version may classify those sessions otherwise.

    Attendance has no index by activity (its one B-tree leads with the person, which is what
    its other look-ups need, and a second random insert per row cost PostgreSQL more than this
    look-up saves, docs/benchmarks.md). The usual new version, an edit of an activity, only
    moves sessions from the moment it came into force, found through the session-date index;
    a first version or one that arrived out of order reads the table (a first version usually
    finds no attendance: the registrations service refuses attendance of an unknown activity,
    and only a consumer that reads the activities topic behind the others meets it)."""
    if not versions:
        return []
    bounds = await conn.fetch(
        _CHANGED_FROM.format(s=s),
        [o for o, _, _ in versions],
        [i for _, i, _ in versions],
        [v for _, _, v in versions],
    )
    # Plans for the moments at hand: a generic plan cannot know that the date is recent.
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    people: set[str] = set()
    for row in bounds:
        people.update(
            r["participant_id"]
            for r in await conn.fetch(
                f"SELECT DISTINCT t.participant_id FROM {s}.attendance t "
                "WHERE t.organisation_id = $1 AND t.activity_id = $2 AND t.session_start >= $3 "
                f"AND t.session_date >= {LOCAL_DATE.format('$3::timestamptz')}",
                row["o"],
                row["i"],
                row["changed_from"],
            )
        )
    await conn.execute("SET LOCAL plan_cache_mode TO DEFAULT")
    return sorted(people)


# ``open_referrals``: the referrals whose status is open, with the moment of their last change
# (migration 009), so that counting the overdue ones reads the open referrals, not all of them.
# A referral's status is its last change by the side allowed to make it, in the order the
# changes were made: ``at``, then arrival (never the status name: ``at`` can tie). ``{where}``:
# more conditions on the referrals ``r``.
_OPEN = """
    SELECT r.organisation_id, r.referral_id, coalesce(last.at, r.created_at) AS since
    FROM {s}.referrals r
    LEFT JOIN LATERAL (
        SELECT status, at FROM {s}.referral_status x
        WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id
          AND ((x.status = ANY($1::text[]) AND x.changed_by = r.receiving_organisation_id)
               OR (x.status = ANY($2::text[]) AND x.changed_by = r.organisation_id))
        ORDER BY at DESC, sequence DESC LIMIT 1
    ) last ON true
    WHERE coalesce(last.status, 'created') IN ('created', 'accepted', 'contacted') {where}
"""
_PARTIES = (sorted(RECEIVER_STATUSES), sorted(REFERRER_STATUSES))


async def refresh_open_referrals(
    conn: asyncpg.Connection, s: str, referrals: Iterable[tuple[str, str]]
) -> None:
    """Recompute the rows of ``referrals`` ((organisation, referral) pairs whose referral or
    status changes this transaction added) from the facts. A referral and its status changes
    share a partition (the participant's), so one transaction at a time touches a referral."""
    keys = sorted(set(referrals))
    if not keys:
        return
    orgs, ids = [o for o, _ in keys], [r for _, r in keys]
    await conn.execute(
        f"DELETE FROM {s}.open_referrals x USING unnest($1::text[], $2::text[]) AS k(o, r) "
        "WHERE x.organisation_id = k.o AND x.referral_id = k.r",
        orgs,
        ids,
    )
    fresh = _OPEN.format(
        s=s,
        where="AND (r.organisation_id, r.referral_id) IN "
        "(SELECT * FROM unnest($3::text[], $4::text[]))",
    )
    await conn.execute(
        f"INSERT INTO {s}.open_referrals (organisation_id, referral_id, since) {fresh}",
        *_PARTIES,
        orgs,
        ids,
    )


async def fill_open_referrals(conn: asyncpg.Connection, s: str) -> None:
    """Every row from the facts (a rebuild's bulk load, retention's prune)."""
    await conn.execute(f"DELETE FROM {s}.open_referrals")
    await conn.execute(
        f"INSERT INTO {s}.open_referrals (organisation_id, referral_id, since) "
        f"{_OPEN.format(s=s, where='')}",
        *_PARTIES,
    )
