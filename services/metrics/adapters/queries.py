"""The indicators of domain.md §6 as SQL over the fact tables.

Each function returns raw numbers per breakdown key (``""`` for the whole municipality); the
domain layer turns them into published figures (rates, suppression, baselines).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

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


async def s2(conn: asyncpg.Connection, s: str, start: date, end: date, by: str | None) -> Raw:
    g = _group(by, "s2")
    if g is None:
        return {}
    rows = await conn.fetch(
        f"""
        WITH conn_att AS (
            SELECT t.organisation_id, t.attendance_id, t.participant_id, t.neighbourhood,
                   t.age_band, t.session_date, t.attended, a.category
            FROM {s}.attendance t
            JOIN {s}.activities a USING (organisation_id, activity_id)
            WHERE a.aimed_at_connection
        ),
        firsts AS (
            SELECT DISTINCT ON (participant_id) participant_id, session_date AS first_date,
                   organisation_id, neighbourhood, age_band, category
            FROM conn_att WHERE attended
            ORDER BY participant_id, session_date, organisation_id, attendance_id
        ),
        new_in_period AS (
            -- A join, not a correlated subquery: the CTE is materialised, and a subquery
            -- would scan it once per new participant.
            SELECT f.participant_id, f.organisation_id, f.neighbourhood, f.age_band, f.category,
                   count(*) AS sessions_90d
            FROM firsts f
            JOIN conn_att c ON c.participant_id = f.participant_id AND c.attended
                 AND c.session_date BETWEEN f.first_date AND f.first_date + 90
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
                   count(*) FILTER (WHERE sessions_90d >= 3) AS retained
            FROM new_in_period GROUP BY 1
        ),
        reg AS (
            SELECT {g} AS key, count(*) AS registrations FROM (
                SELECT r.organisation_id, r.neighbourhood, r.age_band, a.category
                FROM {s}.registrations r JOIN {s}.activities a USING (organisation_id, activity_id)
                WHERE a.aimed_at_connection AND r.registered_date BETWEEN $1 AND $2
            ) x GROUP BY 1
        ),
        can AS (
            SELECT {g} AS key, count(*) AS cancellations FROM (
                SELECT c.organisation_id, r.neighbourhood, r.age_band, a.category
                FROM {s}.cancellations c
                JOIN {s}.activities a USING (organisation_id, activity_id)
                LEFT JOIN {s}.registrations r USING (organisation_id, registration_id)
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
        SELECT {g} AS key, count(DISTINCT participant_id) AS participants_unique FROM (
            SELECT t.participant_id, t.organisation_id, t.neighbourhood, t.age_band, a.category
            FROM {s}.attendance t JOIN {s}.activities a USING (organisation_id, activity_id)
            WHERE a.aimed_at_connection AND t.attended AND t.session_date BETWEEN $1 AND $2
        ) x GROUP BY 1
        """,
        start,
        end,
    )
    return _rows(rows)


async def s3(conn: asyncpg.Connection, s: str, start: date, end: date, by: str | None) -> Raw:
    g = _group(by, "s3")
    if g is None:
        return {}
    rows = await conn.fetch(
        f"""
        WITH refs AS (
            SELECT r.*,
                   EXISTS (SELECT 1 FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id
                           AND x.referral_id = r.referral_id AND x.status = 'accepted') AS accepted,
                   EXISTS (SELECT 1 FROM {s}.referral_status x WHERE x.organisation_id = r.organisation_id
                           AND x.referral_id = r.referral_id AND x.status = 'declined') AS declined,
                   (SELECT min(t.session_date) FROM {s}.registrations g
                    JOIN {s}.attendance t ON t.organisation_id = g.organisation_id
                        AND t.activity_id = g.activity_id AND t.participant_id = g.participant_id
                    WHERE g.referral_id = r.referral_id
                      AND (r.referred_to_organisation_id IS NULL
                           OR g.organisation_id = r.referred_to_organisation_id)
                      AND t.attended AND t.session_date >= g.registered_date
                      AND t.session_date BETWEEN r.created_date AND r.created_date + 60
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
    if by in (None, "organisation"):
        trained_group = "''" if by is None else "organisation_id"
        for row in await conn.fetch(
            f"SELECT {trained_group} AS key, count(DISTINCT (organisation_id, person_id)) AS people_trained, "
            f"count(DISTINCT organisation_id) AS organisations_with_trained_staff "
            f"FROM {s}.trainings WHERE completed_date <= $1 GROUP BY 1",
            end,
        ):
            out.setdefault(row["key"], {}).update(
                people_trained=row["people_trained"],
                organisations_with_trained_staff=row["organisations_with_trained_staff"],
            )
    if by is None:
        total = out.setdefault("", {})
        # Partner organisations: those with a key to write with. A reader (a coalition
        # dashboard key with only `indicators`) is not a partner that could train staff.
        total["organisations_registered"] = await conn.fetchval(
            "SELECT count(DISTINCT organisation_id) FROM platform.api_keys WHERE scopes && "
            "ARRAY['activities','registrations','referrals','trainings','measurements']"
        )
        total["people_trained_by_role"] = {
            r["role"]: r["n"]
            for r in await conn.fetch(
                f"SELECT role, count(DISTINCT (organisation_id, person_id)) AS n "
                f"FROM {s}.trainings WHERE completed_date <= $1 GROUP BY role",
                end,
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
    overdue = await conn.fetchval(
        f"""
        SELECT count(*) FROM {s}.referrals r
        LEFT JOIN LATERAL (
            SELECT status, at FROM {s}.referral_status x
            WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id
            ORDER BY at DESC, status LIMIT 1
        ) last ON true
        WHERE coalesce(last.status, 'created') IN ('created', 'accepted', 'contacted')
          AND coalesce(last.at, r.created_at) < now() - interval '14 days'
        """
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
