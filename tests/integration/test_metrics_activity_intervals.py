"""The stored validity intervals of activity versions (migration 018) against a real PostgreSQL.

The intervals are kept by a trigger on activity_versions; these tests check that what it keeps
is what the definition (``activity_intervals_of``, the window of migration 002) computes from
all versions, also when two transactions add versions of one activity at once, in either order
of commit, and that a rebuild's renamed schema keeps them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.integration.test_metrics_scenario import create_metrics_schema, drop_schema

pytestmark = pytest.mark.integration

COLUMNS = (
    "organisation_id, activity_id, version, category, aimed_at_connection, neighbourhood, "
    "valid_from, valid_to"
)


def _at(month: int) -> datetime:
    return datetime(2026, month, 1, 9, tzinfo=UTC)


async def _insert(conn: asyncpg.Connection, schema: str, rows: list[tuple[str, int, int]]) -> None:
    """Versions (activity, version, month of valid_from) of organisation ``org``."""
    await conn.execute(
        f'INSERT INTO "{schema}".activity_versions (organisation_id, activity_id, version, '
        "valid_from, category, aimed_at_connection, neighbourhood, active) "
        "SELECT 'org', a, v, f, 'meeting', true, 'delfgauw', true "
        "FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS u (a, v, f)",
        [a for a, _, _ in rows],
        [v for _, v, _ in rows],
        [_at(m) for _, _, m in rows],
    )


async def _stored_and_defined(
    pool: asyncpg.Pool, schema: str
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            f'SELECT {COLUMNS} FROM "{schema}".activity_intervals ORDER BY 1, 2, 3'
        )
        defined = await conn.fetch(
            f'SELECT {COLUMNS} FROM "{schema}".activity_intervals_of($1, NULL, NULL) '
            "ORDER BY 1, 2, 3",
            schema,
        )
    return stored, defined


EARLIER = [("koor", 1, 1), ("koor", 3, 6), ("zang", 1, 2)]
LATER = [("koor", 2, 4), ("koor", 4, 3)]


@pytest.mark.parametrize("first", ["earlier versions", "later versions"])
async def test_two_writers_of_one_activity_at_once(pool: asyncpg.Pool, first: str) -> None:
    """Each writer inserts before the other commits; the one that inserted first holds the
    activity's lock, so the other computes after its commit and sees all versions."""
    schema = await create_metrics_schema(pool)
    leading, following = (EARLIER, LATER) if first == "earlier versions" else (LATER, EARLIER)
    try:
        a = await pool.acquire()
        b = await pool.acquire()
        try:
            ta, tb = a.transaction(), b.transaction()
            await ta.start()
            await tb.start()
            await _insert(a, schema, leading)
            second = asyncio.create_task(_insert(b, schema, following))
            await asyncio.sleep(0.3)
            assert not second.done(), "the second writer did not wait for the first's lock"
            await ta.commit()
            await second
            await tb.commit()
        finally:
            await pool.release(a)
            await pool.release(b)
        stored, defined = await _stored_and_defined(pool, schema)
        assert len(stored) == 5
        assert stored == defined
        koor = {
            r["version"]: (r["valid_from"], r["valid_to"])
            for r in stored
            if r["activity_id"] == "koor"
        }
        # Version 4 is stamped in March, before version 3's June: it takes over from June.
        assert koor[1][1] == _at(4)
        assert koor[2] == (_at(4), _at(6))
        assert koor[3] == (_at(6), _at(6))
        assert koor[4][0] == _at(6)
    finally:
        await drop_schema(pool, schema)


async def test_kept_under_a_renamed_schema(pool: asyncpg.Pool) -> None:
    """A rebuild swaps its schema in by renaming it: the trigger must follow the table, not a
    schema name fixed when it was made."""
    schema = await create_metrics_schema(pool)
    renamed = f"mtest_{uuid.uuid4().hex[:12]}"
    try:
        async with pool.acquire() as conn:
            await _insert(conn, schema, [("koor", 1, 1)])
            await conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{renamed}"')
            await _insert(conn, renamed, [("koor", 2, 5)])
        stored, defined = await _stored_and_defined(pool, renamed)
        assert [r["version"] for r in stored] == [1, 2]
        assert stored == defined
    finally:
        await drop_schema(pool, renamed)
        await drop_schema(pool, schema)
