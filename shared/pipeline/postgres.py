"""The unit of work on PostgreSQL: one connection (the request's), a transaction per ``async
with``, and every write of a batch in one statement.

A service adds its records (:meth:`PostgresUnitOfWork.record_writes`); the outbox and the
remembered answers are written here, for both services alike. The writes of one batch are
joined into one statement of data-modifying CTEs (``WITH w0 AS (INSERT ...), w1 AS (UPDATE
...) INSERT ...``): one round trip however many tables it touches, and atomic on its own. Each
part is set-based (``INSERT ... SELECT FROM unnest($1::text[], ...)``), its rows sorted by key,
so that two batches that write the same new keys meet in the same order.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.events import CloudEvent, encode_event, topic_name
from shared.pipeline.decisions import BatchState, IdempotencyKey, Remembered
from shared.pipeline.unit_of_work import AbstractUnitOfWork, ConcurrentWrite

__all__ = ["AfterCommit", "PostgresRememberedAnswers", "PostgresUnitOfWork", "Write", "together"]

# What the bootstrap runs after a commit that wrote outbox rows: wake the relay.
AfterCommit = Callable[[asyncpg.Connection], Awaitable[None]]

# Errors of a set statement that mean "another transaction got there first", never "bad input":
# the items are decided again one by one against what that transaction wrote.
_CONCURRENT = (asyncpg.exceptions.UniqueViolationError, asyncpg.exceptions.DeadlockDetectedError)

_PLACEHOLDER = re.compile(r"\$(\d+)")


@dataclass(frozen=True)
class Write:
    """One data-modifying statement (no RETURNING) with its own ``$1..$n`` parameters."""

    sql: str
    args: tuple[Any, ...]


def _shifted(sql: str, offset: int) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${int(m[1]) + offset}", sql)


def together(writes: Sequence[Write]) -> tuple[str, list[Any]]:
    """The writes as one statement: all but the last as CTEs, parameters renumbered."""
    parts: list[str] = []
    args: list[Any] = []
    for write in writes:
        offset = len(args)
        parts.append(_shifted(write.sql, offset))
        args.extend(write.args)
    if len(parts) == 1:
        return parts[0], args
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}", args


class PostgresRememberedAnswers:
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema

    async def load(self, keys: Collection[IdempotencyKey]) -> dict[IdempotencyKey, Remembered]:
        if not keys:
            return {}
        orgs, kinds, ids = zip(*sorted(set(keys)), strict=True)
        rows = await self.conn.fetch(
            "SELECT i.organisation_id, i.kind, i.item_id, i.request_digest, i.status_code, "
            f'i.response FROM "{self.schema}".idempotency i '
            "JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(o, kind, id) "
            "ON i.organisation_id = k.o AND i.kind = k.kind AND i.item_id = k.id",
            list(orgs),
            list(kinds),
            list(ids),
        )
        return {
            (r["organisation_id"], r["kind"], r["item_id"]): Remembered(
                r["request_digest"], r["status_code"], r["response"]
            )
            for r in rows
        }

    def writes(self, added: Sequence[tuple[IdempotencyKey, Remembered]]) -> list[Write]:
        if not added:
            return []
        rows = sorted(added, key=lambda kv: kv[0])
        return [
            Write(
                f'INSERT INTO "{self.schema}".idempotency '
                "(organisation_id, kind, item_id, request_digest, status_code, response) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                "$5::int[], $6::jsonb[])",
                (
                    [k[0] for k, _ in rows],
                    [k[1] for k, _ in rows],
                    [k[2] for k, _ in rows],
                    [r.digest for _, r in rows],
                    [r.status_code for _, r in rows],
                    [r.body for _, r in rows],
                ),
            )
        ]


def outbox_writes(schema: str, events: Sequence[CloudEvent[Any]], prefix: str) -> list[Write]:
    """The events as outbox rows, in the order they were decided: the relay publishes by row id,
    which keeps each participant's events in order."""
    if not events:
        return []
    return [
        Write(
            f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) '
            "SELECT e, t, k, v FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[]) "
            "WITH ORDINALITY AS u(e, t, k, v, n) ORDER BY n",
            (
                [e.id for e in events],
                [topic_name(e.data.topic, prefix) for e in events],
                [e.key for e in events],
                [encode_event(e) for e in events],
            ),
        )
    ]


class PostgresUnitOfWork(AbstractUnitOfWork):
    """A service's unit of work on PostgreSQL; subclasses add their repositories and say how
    their records are written (:meth:`record_writes`)."""

    remembered: PostgresRememberedAnswers

    def __init__(
        self,
        conn: asyncpg.Connection,
        schema: str,
        *,
        topic_prefix: str = "",
        after_commit: AfterCommit | None = None,
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.topic_prefix = topic_prefix
        self.after_commit = after_commit
        self.remembered = PostgresRememberedAnswers(conn, schema)
        self._transaction: Any = None
        self._published = False

    async def _begin(self) -> None:
        self._transaction = self.conn.transaction()
        await self._transaction.start()
        self._published = False

    async def _end(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.rollback()

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        await transaction.commit()
        if self._published and self.after_commit is not None:
            await self.after_commit(self.conn)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.conn.transaction():  # nested in the open transaction: a savepoint
            yield

    def record_writes(self, state: BatchState) -> list[Write]:
        """The writes of the service's own records that ``state``'s decisions added or changed."""
        raise NotImplementedError

    async def save(self, state: BatchState, events: Sequence[CloudEvent[Any]]) -> None:
        writes = [
            *self.record_writes(state),
            *outbox_writes(self.schema, events, self.topic_prefix),
            *self.remembered.writes(state.remembered.added_items()),
        ]
        if not writes:
            return
        sql, args = together(writes)
        try:
            await self.conn.execute(sql, *args)
        except _CONCURRENT as exc:
            raise ConcurrentWrite(str(exc)) from exc
        self._published = self._published or bool(events)
