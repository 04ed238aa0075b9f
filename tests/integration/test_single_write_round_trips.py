"""What a single write saves in round trips, against the real database: a request's connection
goes back to the pool without asyncpg's reset statement only when the request finished without
an error (shared/db.py ``session_kept``); the records and remembered answers of a write are read
in one statement (shared/pipeline/statements.py ``read_together``); a person's subject id is
read or created in one statement (shared/subjects.py), and for a small write in the write's own
statement, PostgreSQL putting them into the outbox rows (shared/outbox.py); a registration or
attendance, whose load takes no lock, is that one statement without BEGIN and COMMIT
(shared/pipeline/postgres.py ``writing``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from shared.db import create_pool, session_kept
from shared.events import CloudEvent, new_event
from shared.outbox import outbox_write
from shared.pipeline.postgres import SMALL_WRITE
from shared.pipeline.statements import Read, read_together, together
from shared.subjects import (
    SUBJECTS_FOUND,
    encoded_with_subject_ids,
    person_of,
    person_pseudonyms,
    subject_ids,
    subject_writes,
)
from tests.conftest import PartnerFactory
from tests.integration.test_registrations_http import activity_body, registration_body, uid
from tests.unit.test_events import FACTORIES, ORG, _anonymous_measurement

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def _application_name(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        return str(await conn.fetchval("SELECT current_setting('application_name')"))


async def test_a_connection_kept_without_error_goes_back_without_the_reset(
    database: str,
) -> None:
    pool = await create_pool(database, min_size=1, max_size=1)
    try:
        before = await _application_name(pool)
        async with session_kept(pool) as conn:
            # A session setting stands for anything the reset would undo: it survives only
            # when no reset statement was sent.
            await conn.execute("SET application_name = 'kept'")
        assert await _application_name(pool) == "kept"

        async with session_kept(pool) as conn:
            await conn.execute("SET application_name = 'after an error'")
        with pytest.raises(Boom):
            async with session_kept(pool) as conn:
                raise Boom
        assert await _application_name(pool) == before

        # An ordinary acquire is reset as always.
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'plain'")
        assert await _application_name(pool) == before
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_on_release_either_way(
    database: str, scratch_schema: str
) -> None:
    pool = await create_pool(database, min_size=1, max_size=1)
    table = f'"{scratch_schema}".kept'
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE TABLE {table} (n int)")
        async with session_kept(pool) as conn:
            await conn.execute("BEGIN")
            await conn.execute(f"INSERT INTO {table} VALUES (1)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await pool.close()


async def test_reads_together_give_each_read_its_own_rows_with_their_types(
    pool: asyncpg.Pool, scratch_schema: str
) -> None:
    s = scratch_schema
    async with pool.acquire() as conn:
        await conn.execute(
            f'CREATE TABLE "{s}".a (id text PRIMARY KEY, n integer, at timestamptz, tags text[]);'
            f"INSERT INTO \"{s}\".a VALUES ('x', 1, '2026-01-02T03:04:05Z', '{{p,q}}'), "
            f"('y', NULL, '2026-01-03T00:00:00Z', '{{}}');"
            f'INSERT INTO "{s}".idempotency VALUES '
            f"""('org', 'registration', 'r1', 'd', 201, '{{"status": "registered"}}')"""
        )
        a = Read(
            f'SELECT id, n, at, tags FROM "{s}".a WHERE id = ANY($1::text[]) ORDER BY id',
            (["x", "y", "z"],),
            ("id", "n", "at", "tags"),
        )
        answers = Read(
            f'SELECT item_id, status_code, response FROM "{s}".idempotency WHERE item_id = $1',
            ("r1",),
            ("item_id", "status_code", "response"),
        )
        none = Read(f'SELECT id FROM "{s}".a WHERE id = $1', ("nobody",), ("id",))

        rows_a, rows_answers, rows_none = await read_together(conn, [a, answers, none])
        alone = await conn.fetch(a.sql, *a.args)

    assert sorted(rows_a, key=lambda r: r["id"]) == [dict(r) for r in alone]
    assert rows_answers == [
        {"item_id": "r1", "status_code": 201, "response": {"status": "registered"}}
    ]
    assert rows_none == []


async def test_subject_ids_of_known_and_new_people_in_one_call(
    pool: asyncpg.Pool, scratch_schema: str
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        first = await subject_ids(conn, scratch_schema, ["p1", "p2"])
    assert sorted(first) == ["p1", "p2"]
    assert first["p1"] != first["p2"]

    async with pool.acquire() as conn, conn.transaction():
        second = await subject_ids(conn, scratch_schema, ["p2", "p3", "p1"])
    assert second["p1"] == first["p1"]
    assert second["p2"] == first["p2"]
    assert second["p3"] not in (first["p1"], first["p2"])

    async with pool.acquire() as conn:
        stored = dict(
            await conn.fetch(f'SELECT pseudonym, subject_id FROM "{scratch_schema}".subjects')
        )
    assert stored == second

    # Rolled back: forgotten.
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await subject_ids(conn, scratch_schema, ["p4"])
        await tx.rollback()
        assert (
            await conn.fetchval(
                f'SELECT count(*) FROM "{scratch_schema}".subjects WHERE pseudonym = $1', "p4"
            )
            == 0
        )


async def _write_in_one_statement(
    conn: asyncpg.Connection, schema: str, events: list[CloudEvent[Any]]
) -> None:
    sql, args = together(
        [
            *subject_writes(schema, person_pseudonyms(events)),
            *outbox_write(
                schema, events, "", people=[person_of(e) for e in events], subjects=SUBJECTS_FOUND
            ),
        ]
    )
    await conn.execute(sql, *args)


async def _outbox(conn: asyncpg.Connection, schema: str) -> list[tuple[bytes, bytes]]:
    rows = await conn.fetch(f'SELECT key, value FROM "{schema}".outbox ORDER BY id')
    return [(bytes(r["key"]), bytes(r["value"])) for r in rows]


async def test_subject_ids_found_in_the_write_give_the_outbox_the_same_rows(
    pool: asyncpg.Pool, scratch_schema: str
) -> None:
    """Every event type, about a new person and then about the same person again, with an event
    about nobody between: the rows PostgreSQL substitutes are byte for byte those of the
    Python way with the subject ids the table holds, and no pseudonym is left in them."""
    s = scratch_schema
    for make in FACTORIES.values():
        events = [new_event(make(), ORG), new_event(_anonymous_measurement(), ORG)]
        again = [new_event(make(), ORG)]
        async with pool.acquire() as conn:
            await conn.execute(f'TRUNCATE "{s}".outbox, "{s}".subjects')
            async with conn.transaction():
                await _write_in_one_statement(conn, s, events)
            async with conn.transaction():
                await _write_in_one_statement(conn, s, again)
            known = dict(await conn.fetch(f'SELECT pseudonym, subject_id FROM "{s}".subjects'))
            rows = await _outbox(conn, s)
        assert sorted(known) == sorted(person_pseudonyms(events + again))
        assert rows == encoded_with_subject_ids(events + again, known), make.__name__
        for pseudonym in known:
            assert all(pseudonym.encode() not in key + value for key, value in rows)


async def test_a_person_another_write_added_meanwhile_keeps_that_subject_id(
    pool: asyncpg.Pool, scratch_schema: str
) -> None:
    """The other write inserted the person after this statement's snapshot: the insert waits for
    it and takes its subject id (``ON CONFLICT ... DO UPDATE``), instead of leaving the person
    without one."""
    s = scratch_schema
    events = next(
        [e] for make in FACTORIES.values() if person_pseudonyms([e := new_event(make(), ORG)])
    )
    (pseudonym,) = person_pseudonyms(events)
    async with pool.acquire() as other, pool.acquire() as conn:
        other_tx = other.transaction()
        await other_tx.start()
        theirs = await subject_ids(other, s, [pseudonym])
        tx = conn.transaction()
        await tx.start()
        writing = asyncio.create_task(_write_in_one_statement(conn, s, events))
        await asyncio.sleep(0.3)
        assert not writing.done()  # waits for the other write's row
        await other_tx.commit()
        await writing
        await tx.commit()
        rows = await _outbox(conn, s)
    assert rows == encoded_with_subject_ids(events, theirs)
    assert rows[0][0] == theirs[pseudonym].encode()


class _LoggingPool:
    """The app's pool, every statement on the connections it hands out logged."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        def log(record: Any) -> None:
            self.statements.append(record.query.strip().split()[0].rstrip(";").upper())

        async with self.pool.acquire() as conn:
            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(log)


async def test_a_registration_is_the_key_a_read_and_one_statement_an_activity_keeps_its_transaction(
    registrations: httpx.AsyncClient, make_partner: PartnerFactory, pool: asyncpg.Pool
) -> None:
    partner = await make_partner()
    app = registrations._transport.app  # type: ignore[attr-defined]
    logged = _LoggingPool(app.state.pool)
    app.state.pool = logged
    try:
        activity = uid("act")
        answer = await registrations.put(
            f"/v1/activities/{activity}", headers=partner.headers, json=activity_body()
        )
        assert answer.status_code == 201, answer.text
        assert logged.statements[1] == "BEGIN"  # after the key: it locks what it changes
        assert logged.statements[-1] == "COMMIT"

        logged.statements.clear()
        body = registration_body(activity)
        answer = await registrations.post("/v1/registrations", headers=partner.headers, json=body)
        assert answer.status_code == 201, answer.text
        # The key, the read (activity and remembered answer), the write (subject id, record,
        # outbox, answer): no BEGIN, no COMMIT.
        assert logged.statements == ["SELECT", "SELECT", "WITH"]

        logged.statements.clear()
        replay = await registrations.post("/v1/registrations", headers=partner.headers, json=body)
        assert replay.status_code == 200, replay.text
        assert logged.statements == ["SELECT", "SELECT"]

        # A batch of more than SMALL_WRITE items: a transaction, its statements planned for
        # their arguments; the requests' connections otherwise reuse generic plans.
        logged.statements.clear()
        items = [
            {"kind": "registration", "body": registration_body(activity)}
            for _ in range(SMALL_WRITE + 1)
        ]
        answer = await registrations.post(
            "/v1/batch", headers=partner.headers, json={"items": items}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == SMALL_WRITE + 1
        assert logged.statements[1:3] == ["BEGIN", "SET"]
        assert logged.statements[-1] == "COMMIT"
        async with app.state.pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    finally:
        app.state.pool = logged.pool

    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM registrations.registrations "
            "WHERE organisation_id = $1 AND registration_id = $2",
            partner.organisation_id,
            body["registration_id"],
        )
    assert stored == 1
