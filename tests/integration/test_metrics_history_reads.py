"""Reads that no longer scan history (issue 14): the years with data found by skipping through
the date indexes, the overdue referrals counted from the open ones (migration 009), and the
session date the schema now checks (migration 008). Each is compared with the plain query over
every row that it replaces, on the hand-computed scenario and more."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import pytest

from services.metrics.adapters import queries
from services.metrics.adapters.facts import FactWriter
from services.metrics.adapters.year_grid import years_with_data
from shared.events import CloudEvent
from shared.referral_parties import RECEIVER_STATUSES, REFERRER_STATUSES
from tests.integration.test_metrics_scenario import (
    P1,
    P2,
    A,
    attendance,
    create_metrics_schema,
    drop_schema,
    measurement,
    scenario,
    training,
)

EVERY_YEAR = """
    SELECT DISTINCT y FROM (
        SELECT extract(year FROM session_date)::int AS y FROM {s}.attendance
        UNION SELECT extract(year FROM registered_date)::int FROM {s}.registrations
        UNION SELECT extract(year FROM cancelled_date)::int FROM {s}.cancellations
        UNION SELECT extract(year FROM created_date)::int FROM {s}.referrals
        UNION SELECT extract(year FROM completed_date)::int FROM {s}.trainings
        UNION SELECT extract(year FROM measured_date)::int FROM {s}.measurements
    ) x ORDER BY y
"""

# The count before migration 009: every referral with its last allowed change.
EVERY_REFERRAL = """
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
"""


async def apply(pool: asyncpg.Pool, schema: str, events: list[CloudEvent[Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await FactWriter(schema)(conn, events)


async def test_years_and_overdue_referrals_equal_the_queries_over_every_row(
    pool: asyncpg.Pool,
) -> None:
    first, second = scenario()
    scores = (5, 3, 2, "moderately_lonely")
    more = [
        # Years apart, in tables and contexts of their own: a gap year stays out.
        measurement(A, "hy1", "djg11", "intake", P1, "2009-03-01T10:00:00+01:00", scores),
        measurement(A, "hy2", "djg11", "survey", P2, "2011-03-01T10:00:00+01:00", scores),
        training(A, "hy3", P2.id, "volunteer", "2017-06-01T10:00:00+02:00"),
    ]
    schema = await create_metrics_schema(pool)
    s = f'"{schema}"'
    try:
        async with pool.acquire() as conn:
            assert await years_with_data(conn, s) == []
            assert await queries.referrals_overdue(conn, s) == 0
        await apply(pool, schema, first)
        await apply(pool, schema, [*second, *more])
        async with pool.acquire() as conn:
            every = [r["y"] for r in await conn.fetch(EVERY_YEAR.format(s=s))]
            assert 2010 not in every
            assert {2009, 2011, 2017} <= set(every)
            assert await years_with_data(conn, s) == every
            overdue = await conn.fetchval(
                EVERY_REFERRAL.format(s=s), sorted(RECEIVER_STATUSES), sorted(REFERRER_STATUSES)
            )
            assert overdue > 0, "the scenario has open referrals"
            assert await queries.referrals_overdue(conn, s) == overdue
            # Only the open referrals are kept: the closed, declined and withdrawn are not.
            kept = await conn.fetchval(f"SELECT count(*) FROM {s}.open_referrals")
            assert kept < await conn.fetchval(f"SELECT count(*) FROM {s}.referrals")
    finally:
        await drop_schema(pool, schema)


async def test_a_sessions_date_is_its_starts_date_in_amsterdam(pool: asyncpg.Pool) -> None:
    """The writer takes the date from the start (the contract's session_date is that date);
    the schema refuses a row whose date is another."""
    # 23:30 UTC on 31 March is 1 April in Amsterdam; the event says 31 March.
    late = attendance(A, "hd1", "A1", P1, "2014-03-31T23:30:00+00:00", date(2014, 3, 31))
    schema = await create_metrics_schema(pool)
    s = f'"{schema}"'
    try:
        await apply(pool, schema, [late])
        assert await pool.fetchval(f"SELECT session_date FROM {s}.attendance") == date(2014, 4, 1)
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                f"INSERT INTO {s}.attendance (organisation_id, attendance_id, activity_id, "
                "participant_id, neighbourhood, age_band, session_start, session_date, attended) "
                "SELECT organisation_id, 'hd2', activity_id, participant_id, neighbourhood, "
                "age_band, session_start, session_date - 1, attended FROM "
                f"{s}.attendance"
            )
    finally:
        await drop_schema(pool, schema)
