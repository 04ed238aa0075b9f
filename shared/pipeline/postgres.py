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
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from typing import Any, Self

import asyncpg

from shared.events import CloudEvent
from shared.outbox import AfterCommit, outbox_write
from shared.pipeline.decisions import BatchState, IdempotencyKey, Remembered
from shared.pipeline.statements import Read, Write, json_column, together
from shared.pipeline.unit_of_work import AbstractUnitOfWork, ConcurrentWrite
from shared.subjects import (
    SUBJECTS_FOUND,
    encoded_with_subject_ids,
    person_of,
    person_pseudonyms,
    subject_ids,
    subject_writes,
)

__all__ = ["SMALL_WRITE", "AfterCommit", "PostgresRememberedAnswers", "PostgresUnitOfWork"]


# Errors of a set statement that mean "another transaction got there first", never "bad input":
# the items are decided again one by one against what that transaction wrote.
_CONCURRENT = (asyncpg.exceptions.UniqueViolationError, asyncpg.exceptions.DeadlockDetectedError)


# A write of at most this many items fits its transaction to its size (``writing``).
SMALL_WRITE = 16

# A write of at most this many events finds its people's subject ids in its own statement, and
# PostgreSQL puts them into the outbox rows (one round trip less: a single write's is a sixth of
# its round trips); a larger batch reads them first and encodes the rows with them in Python
# (a round trip per batch is nothing, and the substitution in SQL would add PostgreSQL's CPU per
# event, the largest share of batch ingestion's).
_SUBJECTS_IN_THE_WRITE = 16


_ANSWER_COLUMNS = (
    "organisation_id",
    "kind",
    "item_id",
    "request_digest",
    "status_code",
    "response",
)


class PostgresRememberedAnswers:
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema

    def read(self, keys: Collection[IdempotencyKey]) -> Read:
        """The statement that reads the answers remembered under these keys (at least one)."""
        orgs, kinds, ids = zip(*sorted(set(keys)), strict=True)
        return Read(
            "SELECT i.organisation_id, i.kind, i.item_id, i.request_digest, i.status_code, "
            f'i.response FROM "{self.schema}".idempotency i '
            "JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(o, kind, id) "
            "ON i.organisation_id = k.o AND i.kind = k.kind AND i.item_id = k.id",
            (list(orgs), list(kinds), list(ids)),
            _ANSWER_COLUMNS,
        )

    @staticmethod
    def found(rows: Iterable[Mapping[str, Any]]) -> dict[IdempotencyKey, Remembered]:
        """The answers of rows that :meth:`read` returned, by key."""
        return {
            (r["organisation_id"], r["kind"], r["item_id"]): Remembered(
                r["request_digest"], r["status_code"], r["response"]
            )
            for r in rows
        }

    async def load(self, keys: Collection[IdempotencyKey]) -> dict[IdempotencyKey, Remembered]:
        if not keys:
            return {}
        read = self.read(keys)
        return self.found(await self.conn.fetch(read.sql, *read.args))

    def writes(self, added: Sequence[tuple[IdempotencyKey, Remembered]]) -> list[Write]:
        if not added:
            return []
        rows = sorted(added, key=lambda kv: kv[0])
        return [
            Write(
                f'INSERT INTO "{self.schema}".idempotency '
                "(organisation_id, kind, item_id, request_digest, status_code, response) "
                # One JSON array per column (json_column); the answers are JSON values in theirs.
                "SELECT o, k, i, d, s::int, r FROM ROWS FROM ("
                "json_array_elements_text($1::text::json), json_array_elements_text($2::text::json), "
                "json_array_elements_text($3::text::json), json_array_elements_text($4::text::json), "
                "json_array_elements_text($5::text::json), jsonb_array_elements($6::text::jsonb)) "
                "AS x(o, k, i, d, s, r)",
                (
                    json_column([k[0] for k, _ in rows]),
                    json_column([k[1] for k, _ in rows]),
                    json_column([k[2] for k, _ in rows]),
                    json_column([r.digest for _, r in rows]),
                    json_column([r.status_code for _, r in rows]),
                    json_column([r.body for _, r in rows]),
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
        # Inside a small ``writing``: no transaction until a save needs one.
        self._deferred = False

    async def _begin(self) -> None:
        self._transaction = self.conn.transaction()
        await self._transaction.start()
        self._published = False

    @contextlib.asynccontextmanager
    async def writing(self, items: int, locks_nothing: bool) -> AsyncIterator[Self]:
        """A small write (at most :data:`SMALL_WRITE` items) whose load locks nothing runs
        without BEGIN and COMMIT (two of a single registration's five round trips): its reads
        are each a statement of their own (in READ COMMITTED a transaction's statements see no
        common snapshot either, and no lock is taken that a transaction would keep), and a save
        of one statement (a single write's: the subject ids, the records, the outbox and the
        answer) commits by itself; a save that needs two begins a transaction first.

        A larger one runs in a transaction that leaves the plans to PostgreSQL, as before
        (``plan_cache_mode = auto``): the request pool's connections reuse one generic plan per
        statement (shared/db.py ``generic_plans``), measured for single writes; for a 500-item
        batch's set statements one quick run of each mode did not separate them
        (docs/benchmarks.md), which is not enough to hand them plans made for no array length
        in particular. One round trip per batch."""
        if locks_nothing and items <= SMALL_WRITE:
            self._deferred = True
            self._published = False
            try:
                yield self
            finally:
                self._deferred = False
                await self._end()
            return
        async with self:
            if items > SMALL_WRITE:
                await self.conn.execute("SET LOCAL plan_cache_mode = auto")
            yield self

    async def _end(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.rollback()

    async def commit(self) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.commit()
        elif not self._deferred:
            raise RuntimeError("commit outside a unit of work's transaction")
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
        # Events name people by subject id, never by pseudonym (shared/subjects.py).
        pseudonyms = person_pseudonyms(events)
        if pseudonyms and len(events) <= _SUBJECTS_IN_THE_WRITE:
            subjects_first = subject_writes(self.schema, pseudonyms)
            published = outbox_write(
                self.schema,
                events,
                self.topic_prefix,
                people=[person_of(e) for e in events],
                subjects=SUBJECTS_FOUND,
            )
        else:
            subjects: dict[str, str] = {}
            if pseudonyms:
                if self._transaction is None:
                    await self._begin()  # the subject ids' locks are kept until the write
                try:
                    subjects = await subject_ids(self.conn, self.schema, pseudonyms)
                except _CONCURRENT as exc:
                    raise ConcurrentWrite(str(exc)) from exc
            subjects_first = []
            published = outbox_write(
                self.schema,
                events,
                self.topic_prefix,
                encoded_with_subject_ids(events, subjects),
            )
        writes = [
            *subjects_first,
            *self.record_writes(state),
            *published,
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
