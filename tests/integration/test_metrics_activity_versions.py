"""Whose first attendance a new activity version can move (rollups.touched_by_activities):
attendance has no index by activity (migration 020), so a new version's attendees are looked
for from the moment its sessions may be classified otherwise. These tests pin that moment on a
real PostgreSQL: too late a moment would leave a person's first attendance stale, which the
rollups' order tests (test_metrics_change_marker.py) would show only for their scenario."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.metrics.adapters import rollups
from services.metrics.adapters.facts import FactWriter
from tests.integration.test_metrics_scenario import (
    A,
    activity,
    attendance,
    create_metrics_schema,
    drop_schema,
    hexid,
    person,
)

EARLY = person(hexid("versions-early"), "delfgauw", "65-74")
MIDDLE = person(hexid("versions-middle"), "delfgauw", "65-74")
LATE = person(hexid("versions-late"), "delfgauw", "65-74")

SESSIONS = [
    attendance(A, "v-att-1", "V1", EARLY, "2014-01-10T10:00:00+01:00", date(2014, 1, 10)),
    attendance(A, "v-att-2", "V1", MIDDLE, "2014-03-10T10:00:00+01:00", date(2014, 3, 10)),
    attendance(A, "v-att-3", "V1", LATE, "2014-06-10T10:00:00+02:00", date(2014, 6, 10)),
]


async def touched(pool: asyncpg.Pool, schema: str, events: list) -> list[str]:
    """Apply ``events`` (activity versions), then ask who their versions touch, in the same
    transaction, as the fact writer does."""
    async with pool.acquire() as conn, conn.transaction():
        applied = await FactWriter(schema, rollups=False)(conn, events)
        versions = [(e.data.organisation_id, e.data.activity_id, e.data.version) for e in applied]
        return await rollups.touched_by_activities(conn, f'"{schema}"', versions)


async def apply(pool: asyncpg.Pool, schema: str, events: list) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await FactWriter(schema)(conn, events)


async def test_a_later_version_touches_the_sessions_from_its_start(pool: asyncpg.Pool) -> None:
    schema = await create_metrics_schema(pool)
    try:
        await apply(pool, schema, [activity(A, "V1", "meeting", True), *SESSIONS])
        # An edit in force from the moment the March session starts: that session has it, the
        # January one keeps version 1.
        edit = activity(A, "V1", "sport", True, version=2, updated="2014-03-10T10:00:00+01:00")
        assert await touched(pool, schema, [edit]) == sorted([MIDDLE.id, LATE.id])
        # One that came into force before the one before it starts where that one does (the
        # versions' intervals follow their numbers).
        back = activity(A, "V1", "sport", False, version=3, updated="2014-02-01T00:00:00+01:00")
        assert await touched(pool, schema, [back]) == sorted([MIDDLE.id, LATE.id])
        # After the last session: nobody.
        later = activity(A, "V1", "meeting", True, version=4, updated="2014-07-01T00:00:00+02:00")
        assert await touched(pool, schema, [later]) == []
    finally:
        await drop_schema(pool, schema)


async def test_a_first_or_an_earlier_version_touches_every_session(pool: asyncpg.Pool) -> None:
    schema = await create_metrics_schema(pool)
    try:
        # Sessions before their activity's first version (another topic, read behind).
        await apply(pool, schema, SESSIONS)
        first = activity(A, "V1", "meeting", True, version=2, updated="2014-05-01T00:00:00+02:00")
        everyone = sorted([EARLY.id, MIDDLE.id, LATE.id])
        assert await touched(pool, schema, [first]) == everyone
        # Version 1 arrives after version 2: every interval may have moved.
        late = activity(A, "V1", "culture", False, version=1, updated="2014-04-01T00:00:00+02:00")
        assert await touched(pool, schema, [late]) == everyone
        # Another organisation's activity of the same id is not this one.
        other = activity(f"{A}-other", "V1", "meeting", True, version=1)
        assert await touched(pool, schema, [other]) == []
    finally:
        await drop_schema(pool, schema)


async def test_a_version_between_two_touches_every_session(pool: asyncpg.Pool) -> None:
    """Versions 1 (from January) and 3 (from February); version 2, in force from May, arrives
    last. Each version's interval starts at the latest moment so far, so version 3's moves to
    May too, and the March session goes from version 3 back to version 1: before the moment
    version 2 itself starts."""
    schema = await create_metrics_schema(pool)
    try:
        await apply(
            pool,
            schema,
            [
                activity(A, "V1", "meeting", True, updated="2014-01-01T00:00:00+01:00"),
                activity(A, "V1", "sport", False, version=3, updated="2014-02-01T00:00:00+01:00"),
                *SESSIONS,
            ],
        )
        between = activity(A, "V1", "culture", True, version=2, updated="2014-05-01T00:00:00+02:00")
        assert MIDDLE.id in await touched(pool, schema, [between])
    finally:
        await drop_schema(pool, schema)
