"""The indicators of domain.md §6 as SQL over the fact tables.

Each function returns raw numbers per breakdown key (``""`` for the whole municipality); the
domain layer turns them into published figures (rates, suppression, baselines).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg

from services.metrics.domain.windows import CONVERSION_DAYS, RETENTION_DAYS, RETENTION_SESSIONS
from shared.referral_parties import RECEIVER_STATUSES, REFERRER_STATUSES

__all__ = ["BREAKDOWNS", "Raw", "live_figures", "s1", "s2", "s3"]

Raw = dict[str, dict[str, Any]]

# What each breakdown groups by, per subgoal; a subgoal missing here has no such breakdown.
BREAKDOWNS: dict[str, dict[str, str]] = {
    "neighbourhood": {"s1": "m.neighbourhood", "s2": "neighbourhood"},
    "age_band": {"s1": "m.age_band", "s2": "age_band"},
    "category": {"s2": "category"},
    "organisation": {"s2": "organisation_id", "s3": "r.organisation_id"},
    "referrer_role": {"s3": "r.referrer_role"},
}


def _group(by: str | None, subgoal: str) -> str | None:
    """The SQL grouping expression, ``'""'`` for the total, None if not applicable."""
    if by is None:
        return "''"
    return BREAKDOWNS.get(by, {}).get(subgoal)


# One row per person and session, classified by the version of the activity in force at the
# session's start (domain.md §6): a session is one (activity, session start), and one person at
# one session counts once, however often it was reported.
_SESSIONS = """
    SELECT t.organisation_id, t.activity_id, t.session_start, t.participant_id,
           min(t.session_date) AS session_date, min(t.neighbourhood) AS neighbourhood,
           min(t.age_band) AS age_band, bool_or(t.attended) AS attended, v.category
    FROM {s}.attendance t
    JOIN {s}.activity_validity v ON v.organisation_id = t.organisation_id
         AND v.activity_id = t.activity_id
         AND t.session_start >= v.valid_from AND t.session_start < v.valid_to
    WHERE v.aimed_at_connection
    GROUP BY t.organisation_id, t.activity_id, t.session_start, t.participant_id, v.category
"""


def _in_force(table: str, moment: str) -> str:
    """Join clause: the activity version in force at ``moment`` of a row of ``table``."""
    return (
        f"JOIN {{s}}.activity_validity a ON a.organisation_id = {table}.organisation_id "
        f"AND a.activity_id = {table}.activity_id "
        f"AND {table}.{moment} >= a.valid_from AND {table}.{moment} < a.valid_to"
    )


async def s2(conn: asyncpg.Connection, s: str, start: date, end: date, by: str | None) -> Raw:
    g = _group(by, "s2")
    if g is None:
        return {}
    sessions = _SESSIONS.format(s=s)
    in_force_reg = _in_force("r", "registered_at").format(s=s)
    in_force_can = _in_force("c", "cancelled_at").format(s=s)
    rows = await conn.fetch(
        f"""
        WITH conn_att AS MATERIALIZED ({sessions}),
        firsts AS (
            SELECT DISTINCT ON (participant_id) participant_id, session_date AS first_date,
                   organisation_id, neighbourhood, age_band, category
            FROM conn_att WHERE attended
            ORDER BY participant_id, session_date, session_start, organisation_id, activity_id
        ),
        new_in_period AS (
            -- A join, not a correlated subquery: the CTE is materialised, and a subquery
            -- would scan it once per new participant. Sessions count on days before the
            -- first session's day + {RETENTION_DAYS}.
            SELECT f.participant_id, f.organisation_id, f.neighbourhood, f.age_band, f.category,
                   count(*) AS sessions_in_window
            FROM firsts f
            JOIN conn_att c ON c.participant_id = f.participant_id AND c.attended
                 AND c.session_date >= f.first_date
                 AND c.session_date < f.first_date + {RETENTION_DAYS}
            WHERE f.first_date BETWEEN $1 AND $2
            GROUP BY f.participant_id, f.organisation_id, f.neighbourhood, f.age_band, f.category
        ),
        att AS (
            SELECT {g} AS key,
                   count(DISTINCT participant_id) FILTER (WHERE attended) AS participants_unique,
                   count(*) FILTER (WHERE attended) AS attendances,
                   count(*) FILTER (WHERE NOT attended) AS no_shows
            FROM conn_att WHERE session_date BETWEEN $1 AND $2 GROUP BY 1
        ),
        new AS (
            SELECT {g} AS key, count(*) AS participants_new,
                   count(*) FILTER (WHERE sessions_in_window >= {RETENTION_SESSIONS}) AS retained
            FROM new_in_period GROUP BY 1
        ),
        reg AS (
            SELECT {g} AS key, count(*) AS registrations FROM (
                SELECT r.organisation_id, r.neighbourhood, r.age_band, a.category
                FROM {s}.registrations r {in_force_reg}
                WHERE a.aimed_at_connection AND r.registered_date BETWEEN $1 AND $2
            ) x GROUP BY 1
        ),
        can AS (
            SELECT {g} AS key, count(*) AS cancellations FROM (
                SELECT c.organisation_id, r.neighbourhood, r.age_band, a.category
                FROM {s}.cancellations c {in_force_can}
                LEFT JOIN {s}.registrations r ON r.organisation_id = c.organisation_id
                     AND r.registration_id = c.registration_id
                WHERE a.aimed_at_connection AND c.cancelled_date BETWEEN $1 AND $2
            ) x GROUP BY 1
        )
        SELECT key, att.participants_unique, att.attendances, att.no_shows,
               new.participants_new, new.retained, reg.registrations, can.cancellations
        FROM att FULL JOIN new USING (key) FULL JOIN reg USING (key) FULL JOIN can USING (key)
        """,
        start,
        end,
    )
    return _rows(rows)


async def participants_unique(
    conn: asyncpg.Connection, s: str, start: date, end: date, by: str | None
) -> Raw:
    """Just the unique participants (for the baseline-year comparison)."""
    g = _group(by, "s2")
    if g is None:
        return {}
    rows = await conn.fetch(
        f"""
        SELECT {g} AS key, count(DISTINCT participant_id) AS participants_unique
        FROM ({_SESSIONS.format(s=s)}) x
        WHERE attended AND session_date BETWEEN $1 AND $2 GROUP BY 1
        """,
        start,
        end,
    )
    return _rows(rows)


async def s3(
    conn: asyncpg.Connection,
    s: str,
    start: date,
    end: date,
    by: str | None,
    signal_trainings: Sequence[str] = ("signaling-loneliness",),
) -> Raw:
    g = _group(by, "s3")
    if g is None:
        return {}
    # Acceptance and declining are the receiving side's (shared/referral_parties.py): a status
    # change by anyone else (a referrer accepting its own referral, in events from before that
    # rule) does not count.
    assert {"accepted", "declined"} <= RECEIVER_STATUSES
    rows = await conn.fetch(
        f"""
        WITH refs AS (
            SELECT r.*,
                   EXISTS (SELECT 1 FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id
                           AND x.referral_id = r.referral_id AND x.status = 'accepted'
                           AND x.changed_by = r.receiving_organisation_id) AS accepted,
                   EXISTS (SELECT 1 FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id
                           AND x.referral_id = r.referral_id AND x.status = 'declined'
                           AND x.changed_by = r.receiving_organisation_id) AS declined,
                   -- A registration at the receiving side that names this referral: by referrer
                   -- and id, or by the id alone where the receiver holds no other referral with
                   -- that id. Nobody else's registration converts it.
                   (SELECT min(t.session_date) FROM {s}.registrations g
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
                   ) AS first_attended
            FROM {s}.referrals r WHERE r.created_date BETWEEN $1 AND $2
        )
        SELECT {g} AS key,
               count(*) AS referrals,
               count(*) FILTER (WHERE accepted) AS accepted,
               count(*) FILTER (WHERE declined) AS declined,
               count(*) FILTER (WHERE first_attended IS NOT NULL) AS converted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY first_attended - created_date)
                   FILTER (WHERE first_attended IS NOT NULL) AS days_to_first_attendance
        FROM refs r GROUP BY 1
        """,
        start,
        end,
    )
    out = _rows(rows)
    codes = list(signal_trainings)
    if by in (None, "organisation"):
        # People trained in recognising signals (configured codes), cumulative; organisations
        # with such people among the coalition's partners registered at the end of the period.
        trained_group = "''" if by is None else "t.organisation_id"
        for row in await conn.fetch(
            f"SELECT {trained_group} AS key, "
            "count(DISTINCT (t.organisation_id, t.person_id)) AS people_trained, "
            "count(DISTINCT p.organisation_id) AS organisations_with_trained_staff "
            f"FROM {s}.trainings t LEFT JOIN ({_PARTNERS_AT}) p USING (organisation_id) "
            "WHERE t.completed_date <= $1 AND t.training = ANY($2::text[]) GROUP BY 1",
            end,
            codes,
        ):
            out.setdefault(row["key"], {}).update(
                people_trained=row["people_trained"],
                organisations_with_trained_staff=row["organisations_with_trained_staff"],
            )
    if by is None:
        total = out.setdefault("", {})
        # The coalition's partners (the registry), not "organisations with a key": readers,
        # Prometheus, the coalition itself and test organisations are no partners.
        total["partners_registered"] = await conn.fetchval(
            f"SELECT count(*) FROM ({_PARTNERS_AT}) p", end
        )
        total["people_trained_by_role"] = {
            r["role"]: r["n"]
            for r in await conn.fetch(
                f"SELECT role, count(DISTINCT (organisation_id, person_id)) AS n "
                f"FROM {s}.trainings WHERE completed_date <= $1 AND training = ANY($2::text[]) "
                "GROUP BY role",
                end,
                codes,
            )
        }
        total["referrals_by_signal"] = {
            r["signal"]: r["n"]
            for r in await conn.fetch(
                f"SELECT unnest(signals) AS signal, count(*) AS n FROM {s}.referrals "
                "WHERE created_date BETWEEN $1 AND $2 GROUP BY 1",
                start,
                end,
            )
        }
    return out


# Partners registered on day $1: joined on or before it and not left by then.
_PARTNERS_AT = (
    "SELECT organisation_id FROM platform.partners "
    "WHERE joined <= $1 AND (left_on IS NULL OR left_on > $1)"
)


async def s1(
    conn: asyncpg.Connection,
    s: str,
    start: date,
    end: date,
    by: str | None,
    thresholds: dict[str, tuple[int, int]],
) -> Raw:
    """Prevalence among survey measurements in the period (latest per known participant)."""
    g = _group(by, "s1")
    if g is None:
        return {}
    (e11, s11), (e6, s6) = thresholds["djg11"], thresholds["djg6"]
    rows = await conn.fetch(
        f"""
        WITH m AS (
            -- A djg6 without a total may still have a subscale: it counts for that prevalence.
            SELECT * FROM {s}.measurements
            WHERE context = 'survey' AND measured_date BETWEEN $1 AND $2
              AND (total IS NOT NULL OR emotional IS NOT NULL OR social IS NOT NULL)
        ), latest AS (
            (SELECT DISTINCT ON (participant_id) * FROM m WHERE participant_id IS NOT NULL
             ORDER BY participant_id, measured_at DESC, measurement_id DESC)
            UNION ALL
            (SELECT * FROM m WHERE participant_id IS NULL)
        )
        SELECT {g} AS key, count(*) FILTER (WHERE total IS NOT NULL) AS measurements,
            count(*) FILTER (WHERE (instrument = 'djg11' AND total >= 3)
                                OR (instrument = 'djg6' AND total >= 2)) AS lonely,
            count(*) FILTER (WHERE (instrument = 'djg11' AND total >= 9)
                                OR (instrument = 'djg6' AND total >= 5)) AS severe,
            count(*) FILTER (WHERE emotional IS NOT NULL) AS emotional_measured,
            count(*) FILTER (WHERE (instrument = 'djg11' AND emotional >= $3)
                                OR (instrument = 'djg6' AND emotional >= $5)) AS emotional,
            count(*) FILTER (WHERE social IS NOT NULL) AS social_measured,
            count(*) FILTER (WHERE (instrument = 'djg11' AND social >= $4)
                                OR (instrument = 'djg6' AND social >= $6)) AS social
        FROM latest m GROUP BY 1
        """,
        start,
        end,
        e11,
        s11,
        e6,
        s6,
    )
    out = _rows(rows)
    if by is None:
        row = await conn.fetchrow(
            f"""
            WITH pairs AS (
                SELECT f.participant_id, f.total - i.total AS change,
                       array_position(ARRAY['not_lonely','moderately_lonely','severely_lonely',
                                            'very_severely_lonely'], f.category)
                     < array_position(ARRAY['not_lonely','moderately_lonely','severely_lonely',
                                            'very_severely_lonely'], i.category) AS improved
                FROM (SELECT DISTINCT ON (participant_id) * FROM {s}.measurements
                      WHERE context = 'follow_up' AND total IS NOT NULL
                        AND measured_date BETWEEN $1 AND $2
                      ORDER BY participant_id, measured_at DESC) f
                JOIN LATERAL (
                    SELECT * FROM {s}.measurements i
                    WHERE i.participant_id = f.participant_id AND i.context = 'intake'
                      AND i.instrument = f.instrument AND i.total IS NOT NULL
                      AND i.measured_at < f.measured_at
                    ORDER BY i.measured_at LIMIT 1
                ) i ON true
            )
            SELECT count(*) AS pairs, avg(change)::float AS mean_change,
                   count(*) FILTER (WHERE improved) AS improved FROM pairs
            """,
            start,
            end,
        )
        out.setdefault("", {}).update(
            outcome_pairs=row["pairs"],
            outcome_mean_change=row["mean_change"],
            outcome_improved=row["improved"],
        )
    return out


async def live_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """Figures that belong to now, not to a period."""
    # A referral's status is its last change by the side allowed to make it, in the order the
    # changes were made: `at`, then arrival (never the status name: `at` can tie).
    overdue = await conn.fetchval(
        f"""
        SELECT count(*) FROM {s}.referrals r
        LEFT JOIN LATERAL (
            SELECT status, at FROM {s}.referral_status x
            WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id
              AND ((x.status = ANY($1::text[]) AND x.changed_by = r.receiving_organisation_id)
                   OR (x.status = ANY($2::text[]) AND x.changed_by = r.organisation_id))
            ORDER BY at DESC, sequence DESC LIMIT 1
        ) last ON true
        WHERE coalesce(last.status, 'created') IN ('created', 'accepted', 'contacted')
          AND coalesce(last.at, r.created_at) < now() - interval '14 days'
        """,
        sorted(RECEIVER_STATUSES),
        sorted(REFERRER_STATUSES),
    )
    freshness = await conn.fetchrow(
        f"SELECT max(last_event_at) AS newest FROM {s}.organisation_activity"
    )
    return {"referrals_overdue": overdue, "newest_event_at": freshness["newest"]}


def _rows(rows: list[asyncpg.Record]) -> Raw:
    out: Raw = {}
    for row in rows:
        values = dict(row)
        key = values.pop("key")
        out[str(key) if key is not None else "unknown"] = values
    return out
