"""The write pipeline's set statements keep every value exactly (issue 13, batch ingestion).

`Table.insert` and `Table.update` (both writing services' records), the remembered answers and
the outbox send each column as one JSON array, read back in PostgreSQL and cast to the column's
type. These tests write, through the real statements on a scratch table, values that validate
but that a careless encoding would mangle, and read them back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import asyncpg
import pytest

from shared.pipeline.statements import together
from shared.pipeline.tables import Table

pytestmark = pytest.mark.integration

SCHEMA = "pipeline_columns_test"


@dataclass(frozen=True)
class Row:
    organisation_id: str
    row_id: str
    note: str | None
    at: datetime
    on: date
    ref: uuid.UUID
    count: int
    flag: bool
    labels: tuple[str, ...]


TABLE = Table(f"{SCHEMA}.rows", Row, key=("organisation_id", "row_id"), columns={"on": "day"})

HOSTILE = [
    "quote \"double\" and 'single'",
    "comma, {brace} [bracket] \\backslash\\ \\u0000-as-text",
    "NULL",
    "null",
    "",
    " leading and trailing spaces ",
    "tab\tnewline\nreturn\r",
    "niet-ASCII: één café Ærø 日本 🎉",
    "\u2028\u2029",
]


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        await connection.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await connection.execute(f"CREATE SCHEMA {SCHEMA}")
        await connection.execute(
            f"CREATE TABLE {SCHEMA}.rows (organisation_id text, row_id text, note text, "
            "at timestamptz, day date, ref uuid, count bigint, flag boolean, labels text[], "
            "PRIMARY KEY (organisation_id, row_id))"
        )
        try:
            yield connection
        finally:
            await connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


def _rows() -> list[Row]:
    amsterdam = timezone(timedelta(hours=1))
    moments = [
        datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=amsterdam),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 5, 10, 0, 0, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    ]
    return [
        Row(
            organisation_id="org-é" if i % 2 else "org",
            row_id=f"{i}:{text}",
            note=None if i % 3 == 0 else text,
            at=moments[i % len(moments)],
            on=date(2024, 2, 29) + timedelta(days=i),
            ref=uuid.uuid4(),
            count=(-1) ** i * 2**62 + i,
            flag=bool(i % 2),
            labels=(text, "plain") if i % 2 else (),
        )
        for i, text in enumerate(HOSTILE)
    ]


async def _read(conn: asyncpg.Connection) -> list[Row]:
    rows = await conn.fetch(f"SELECT * FROM {SCHEMA}.rows ORDER BY organisation_id, row_id")
    return [TABLE.of(r) for r in rows]


async def test_insert_keeps_every_value(conn: asyncpg.Connection) -> None:
    rows = _rows()
    sql, args = together(TABLE.insert(rows))
    await conn.execute(sql, *args)
    assert await _read(conn) == sorted(rows, key=lambda r: (r.organisation_id, r.row_id))


async def test_update_matches_the_key_and_keeps_every_value(conn: asyncpg.Connection) -> None:
    rows = _rows()
    sql, args = together(TABLE.insert(rows))
    await conn.execute(sql, *args)
    changed = [
        Row(
            r.organisation_id,
            r.row_id,
            None if r.note else "now a note",
            r.at + timedelta(microseconds=7),
            r.on,
            r.ref,
            -r.count,
            not r.flag,
            tuple(reversed(r.labels)),
        )
        for r in rows[::2]
    ]
    sql, args = together(TABLE.update(changed, ["note", "at", "count", "flag", "labels"]))
    await conn.execute(sql, *args)
    expected = {(r.organisation_id, r.row_id): r for r in rows} | {
        (r.organisation_id, r.row_id): r for r in changed
    }
    assert await _read(conn) == [expected[k] for k in sorted(expected)]
