"""Exactly-once-in-effect consumption: tracking records in the consumer's own transaction.

A batch of raw Kafka records is decoded; what cannot be decoded (not JSON, wrong schema, unknown
major version) is dead-lettered with the reason and the original bytes. The rest is applied in
ONE PostgreSQL transaction together with the ids of the events applied (``processed_events``),
so an event redelivered by Kafka, or resent after a crash between the database commit and the
offset commit, is recognised and skipped. The caller commits Kafka offsets only after
:meth:`BatchConsumer.handle` returned, i.e. after the transaction and the dead-letters (with
``"offsets"`` tracking the database's offsets can be the position itself, so that a caller may
decode the next batch while this one's transaction runs: the metrics entrypoint does).
An event the applier rejects is isolated (savepoint per event) and dead-lettered; the batch goes on.

Two ways to recognise what was applied before (``tracking``):

- ``"events"`` (the default): every applied event's id goes into ``processed_events`` under its
  primary key; a redelivered id conflicts and is skipped. Any applier is safe with it, also one
  that increments.
- ``"offsets"``: the next offset of every partition goes into ``consumer_offsets`` in the same
  transaction (one row per partition, locked for the batch), so a batch Kafka delivers again is
  recognised by its offsets before anything is applied. An event that reaches the topic twice
  (a relay that resent it) has new offsets: the applier must be idempotent by the facts' natural
  keys and return the events that changed something. Those are logged in ``processed_batches``
  (one row per batch and partition, no index: an append; the metrics service's migration 016,
  with the view ``processed_events`` giving a row per event). No random index insert per event,
  and the tracking state does not grow with history (docs/scale.md).

Without ``synchronous_commit`` a commit returns before its WAL reaches the disk, and a PostgreSQL
crash (or a failover) can take back the last commits after the caller went on from them. Only a
server that stopped loses commits, so every such transaction, and every reading of the offsets,
also reads when the server started (``pg_postmaster_start_time()``): a transaction that finds
another server than the one seen before raises :class:`DatabaseRestarted` (nothing applied), and
the caller takes its position from the database's offsets again (``"offsets"`` tracking), reading
what was taken back once more from Kafka.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.db import DatabaseUnavailable
from shared.events import (
    KAFKA_HEADERS,
    CloudEvent,
    DeadLettered,
    EventDecodeError,
    Topic,
    decode_event,
    encode_event,
    new_event,
    topic_name,
)

__all__ = [
    "BatchConsumer",
    "BatchResult",
    "DatabaseRestarted",
    "DeadLetter",
    "DecodedBatch",
    "KafkaDeadLetterSink",
    "RawRecord",
    "offset_spans",
]

log = logging.getLogger(__name__)

# The applier may return the events that changed its state (``"offsets"`` tracking needs that);
# None means all of them.
Applier = Callable[
    [asyncpg.Connection, Sequence[CloudEvent[Any]]],
    Awaitable[Sequence[CloudEvent[Any]] | None],
]
Tracking = Literal["events", "offsets"]


class RawRecord(NamedTuple):
    """A Kafka record as the consumer needs it (a tuple: one is made per record, and a frozen
    dataclass's constructor costs several times as much)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


_PARTITION = itemgetter(0, 1)  # a RawRecord's (topic, partition)
_OFFSET = itemgetter(2)
_EVENT = itemgetter(1)  # of a (record, event) pair


def offset_spans(records: Sequence[RawRecord]) -> dict[tuple[str, int], tuple[int, int]]:
    """Of each (topic, partition) among ``records``: its least offset and the one after its
    greatest. Per run of records of one partition (a Kafka fetch hands them over partition by
    partition), so the per-record work is done in C; any order gives the right answer."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for key, run in groupby(records, _PARTITION):
        offsets = list(map(_OFFSET, run))
        first, end = min(offsets), max(offsets) + 1
        seen = spans.get(key)
        if seen is not None:
            first, end = min(first, seen[0]), max(end, seen[1])
        spans[key] = (first, end)
    return spans


class DatabaseRestarted(Exception):
    """PostgreSQL started anew since this consumer last read from it: commits it saw succeed
    may be gone (see the module). The batch was not applied."""


@dataclass(frozen=True)
class DeadLetter:
    record: RawRecord
    reason: str


@dataclass(frozen=True)
class BatchResult:
    applied: int
    duplicates: int
    dead_lettered: int
    events: tuple[CloudEvent[Any], ...] = ()
    letters: tuple[DeadLetter, ...] = ()


@dataclass
class DecodedBatch:
    """Raw records with what decoding made of them (events by id, dead letters)."""

    records: list[RawRecord]
    # By the event id's integer (hashing a UUID is Python code; its ``int`` is a slot).
    decoded: dict[int, tuple[RawRecord, CloudEvent[Any]]] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)


# Records decoded between two yields to the event loop (see BatchConsumer.decode).
DECODE_SLICE = 250


class DeadLetterSink(Protocol):
    async def send(self, letters: Sequence[DeadLetter]) -> None: ...


# A dead letter carries at most this much of the original (as base64, 4/3 of it), so that it
# stays far below the producer's and the broker's default message limit of 1 MiB.
MAX_ORIGINAL_BYTES = 256 * 1024


class KafkaDeadLetterSink:
    """Publishes dead letters to the ``deadletter`` topic and waits for the broker's ack."""

    def __init__(self, producer: AIOKafkaProducer, consumer_name: str, prefix: str = "") -> None:
        self.producer = producer
        self.consumer_name = consumer_name
        self.topic = topic_name(Topic.DEADLETTER, prefix)

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        futures = []
        for letter in letters:
            rec = letter.record
            value = rec.value or b""
            reason = letter.reason[:2000]
            if len(value) > MAX_ORIGINAL_BYTES:
                # Base64 of a message near the broker's limit would not fit in a dead letter:
                # the producer would refuse it, the batch would fail and be redelivered forever,
                # and the partition would stop. The whole original stays at its offset.
                reason += (
                    f" (original of {len(value)} bytes: the first {MAX_ORIGINAL_BYTES} are kept "
                    "here; the whole message is at origin_topic/partition/offset)"
                )
                value = value[:MAX_ORIGINAL_BYTES]
            key = rec.key[:MAX_ORIGINAL_BYTES] if rec.key is not None else None
            data = DeadLettered(
                consumer=self.consumer_name,
                reason=reason,
                origin_topic=rec.topic,
                origin_partition=rec.partition,
                origin_offset=rec.offset,
                original_key=base64.b64encode(key).decode() if key is not None else None,
                original_value=base64.b64encode(value).decode(),
                failed_at=datetime.now(UTC),
            )
            event = new_event(data, None)
            futures.append(
                await self.producer.send(
                    self.topic, encode_event(event), key=event.key, headers=KAFKA_HEADERS
                )
            )
        for future in futures:
            await future


class BatchConsumer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        apply: Applier,
        deadletters: DeadLetterSink,
        *,
        shared_lock: int | None = None,
        tracking: Tracking = "events",
        synchronous_commit: bool = True,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.apply = apply
        self.deadletters = deadletters
        self.tracking = tracking
        # Off: a crash may take back the last commits, which the consumer learns from the
        # server's start (see the module); a rebuild then fails rather than swap in a schema
        # that lacks them, and the live consumer reads them again.
        self.synchronous_commit = synchronous_commit
        self._server_started: datetime | None = None
        # A rebuild that swaps the consumer's tables takes this advisory lock exclusively;
        # every batch takes it shared, so that no batch straddles the swap.
        self.shared_lock = shared_lock

    async def handle(self, records: Sequence[RawRecord]) -> BatchResult:
        return await self.apply_decoded(await self.decode(records))

    async def stored_offsets(
        self, partitions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """The next offset of each of ``partitions`` (topic, partition) that the database holds
        (``"offsets"`` tracking): where a consumer that owns them carries on. A partition
        without a row has nothing applied yet."""
        if self.tracking != "offsets" or not partitions:
            return {}
        async with self.pool.acquire() as conn:
            # Offsets read from this server: transactions check that they still run on it.
            self._server_started = await conn.fetchval("SELECT pg_postmaster_start_time()")
            rows = await conn.fetch(
                f'SELECT topic, kafka_partition, next_offset FROM "{self.schema}".consumer_offsets '
                "WHERE (topic, kafka_partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))",
                [t for t, _ in partitions],
                [p for _, p in partitions],
            )
        return {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}

    async def decode(self, records: Sequence[RawRecord]) -> DecodedBatch:
        """Decode (CPU only), yielding to the event loop every ``DECODE_SLICE`` records: a
        caller that pipelines (decodes the next batch while the current one's transaction
        runs) lets that transaction's statements go out as soon as their answers are in."""
        batch = DecodedBatch(list(records))
        for n, record in enumerate(records, 1):
            try:
                event = decode_event(record.value or b"")
            except EventDecodeError as exc:
                batch.letters.append(DeadLetter(record, exc.reason))
            else:
                batch.decoded.setdefault(event.id.int, (record, event))  # a duplicate in one batch
            if n % DECODE_SLICE == 0:
                await asyncio.sleep(0)
        return batch

    async def apply_decoded(self, batch: DecodedBatch) -> BatchResult:
        """The decoded batch in one transaction with its tracking records (see the module)."""
        records, decoded, letters = batch.records, batch.decoded, list(batch.letters)
        undecodable = len(letters)
        if self.tracking == "offsets":
            return await self._handle_by_offsets(records, decoded, letters)
        async with self.pool.acquire() as conn, conn.transaction():
            if self.shared_lock is not None:
                await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", self.shared_lock)
            fresh_ids = {
                row["event_id"]
                for row in await conn.fetch(
                    f'INSERT INTO "{self.schema}".processed_events '
                    "(event_id, topic, kafka_partition, kafka_offset) "
                    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[]) "
                    "ON CONFLICT DO NOTHING RETURNING event_id",
                    [e.id for _, e in decoded.values()],
                    [r.topic for r, _ in decoded.values()],
                    [r.partition for r, _ in decoded.values()],
                    [r.offset for r, _ in decoded.values()],
                )
            }
            fresh = [(r, e) for r, e in decoded.values() if e.id in fresh_ids]
            applied = await self._apply_isolating_poison(conn, fresh, letters)
            await self._send_letters(letters)
        return BatchResult(
            applied=len(applied),
            duplicates=len(records) - undecodable - len(fresh),
            dead_lettered=len(letters),
            events=tuple(applied),
            letters=tuple(letters),
        )

    async def _handle_by_offsets(
        self,
        records: Sequence[RawRecord],
        decoded: dict[int, tuple[RawRecord, CloudEvent[Any]]],
        letters: list[DeadLetter],
    ) -> BatchResult:
        s = self.schema
        spans = offset_spans(records)
        # Sorted: two instances briefly owning the same partitions lock them in one order.
        parts = sorted(spans)
        async with self.pool.acquire() as conn, conn.transaction():
            if not self.synchronous_commit:
                await self._commit_asynchronously(conn)
            if self.shared_lock is not None:
                await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", self.shared_lock)
            # Locked until the commit: a batch of the same partitions in another instance
            # (during a rebalance) waits here, then sees these offsets as passed.
            done = {
                (row["topic"], row["kafka_partition"]): row["next_offset"]
                for row in await conn.fetch(
                    f'SELECT topic, kafka_partition, next_offset FROM "{s}".consumer_offsets '
                    "WHERE (topic, kafka_partition) IN "
                    "(SELECT * FROM unnest($1::text[], $2::int[])) "
                    "ORDER BY topic, kafka_partition FOR UPDATE",
                    [t for t, _ in parts],
                    [p for _, p in parts],
                )
            }

            def passed(r: RawRecord) -> bool:
                return r.offset < done.get((r.topic, r.partition), 0)

            letters[:] = [x for x in letters if not passed(x.record)]
            if all(spans[x][0] >= done.get(x, 0) for x in parts):
                due = list(decoded.values())  # the usual case: nothing applied before
            else:
                # passed() inlined: a call per record is measurable at a few thousand a batch.
                due = [
                    (r, e)
                    for r, e in decoded.values()
                    if r.offset >= done.get((r.topic, r.partition), 0)
                ]
            applied = await self._apply_isolating_poison(conn, due, letters)
            if applied:
                # The log has no order; by identity, since hashing a UUID is Python code.
                if len(applied) < len(due):
                    kept = {id(e) for e in applied}
                    due = [(r, e) for r, e in due if id(e) in kept]
                await self._log_processed(conn, due)
            await conn.execute(
                f'INSERT INTO "{s}".consumer_offsets (topic, kafka_partition, next_offset) '
                "SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) "
                "ON CONFLICT (topic, kafka_partition) DO UPDATE SET next_offset = "
                f'GREATEST("{s}".consumer_offsets.next_offset, EXCLUDED.next_offset)',
                [t for t, _ in parts],
                [p for _, p in parts],
                [spans[x][1] for x in parts],
            )
            await self._send_letters(letters)
        return BatchResult(
            applied=len(applied),
            duplicates=len(records) - len(applied) - len(letters),
            dead_lettered=len(letters),
            events=tuple(applied),
            letters=tuple(letters),
        )

    async def _commit_asynchronously(self, conn: asyncpg.Connection) -> None:
        """``synchronous_commit`` off for this transaction, on the server seen before (see the
        module), in one round trip."""
        started = await conn.fetchval(
            "SELECT pg_postmaster_start_time() FROM set_config('synchronous_commit', 'off', true)"
        )
        seen, self._server_started = self._server_started, started
        if seen is not None and started != seen:
            raise DatabaseRestarted(
                f"PostgreSQL started at {started.isoformat()}, after the start seen before "
                f"({seen.isoformat()}): the last commits may be gone"
            )

    async def _log_processed(
        self, conn: asyncpg.Connection, due: Sequence[tuple[RawRecord, CloudEvent[Any]]]
    ) -> None:
        """The applied events in ``processed_batches`` (``"offsets"`` tracking): a row per run
        of one partition's records (a Kafka fetch hands them over partition by partition),
        with the events' ids as their 16 bytes concatenated and the offsets space-joined, taken
        from the records in C. A row per event cost PostgreSQL a heap insert and an id's
        decoding each (docs/benchmarks.md)."""
        topics: list[str] = []
        partitions: list[int] = []
        ids: list[bytes] = []
        offsets: list[str] = []
        records, events = zip(*due, strict=True)
        start = 0
        for (topic, partition), run in groupby(map(_PARTITION, records)):
            end = start + len(list(run))
            topics.append(topic)
            partitions.append(partition)
            ids.append(b"".join([e.id.bytes for e in events[start:end]]))
            offsets.append(" ".join(map(str, map(_OFFSET, records[start:end]))))
            start = end
        await conn.execute(
            f'INSERT INTO "{self.schema}".processed_batches '
            "(topic, kafka_partition, event_ids, kafka_offsets) "
            "SELECT t, p, i, string_to_array(o, ' ')::bigint[] "
            "FROM unnest($1::text[], $2::int[], $3::bytea[], $4::text[]) AS u(t, p, i, o)",
            topics,
            partitions,
            ids,
            offsets,
        )

    async def _send_letters(self, letters: list[DeadLetter]) -> None:
        # Before the commit: if Kafka refuses the dead letters, the tracking records of the
        # poison roll back too, so the redelivered batch dead-letters it again instead of
        # skipping it as already processed.
        if letters:
            await self.deadletters.send(letters)
            log.warning(
                "dead-lettered",
                extra={"count": len(letters), "reasons": [x.reason[:200] for x in letters[:5]]},
            )

    async def _apply_isolating_poison(
        self,
        conn: asyncpg.Connection,
        fresh: list[tuple[RawRecord, CloudEvent[Any]]],
        letters: list[DeadLetter],
    ) -> list[CloudEvent[Any]]:
        events = list(map(_EVENT, fresh))  # in C: a Python step per event costs
        if not events:
            return []
        try:
            async with conn.transaction():  # savepoint: a poison event must not sink the batch
                changed = await self.apply(conn, events)
            return events if changed is None else list(changed)
        except DatabaseUnavailable:
            raise
        except Exception:
            log.info("batch failed to apply; isolating the failing events")
        applied = []
        for record, event in fresh:
            try:
                async with conn.transaction():
                    changed = await self.apply(conn, [event])
                if changed is None or changed:
                    applied.append(event)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                letters.append(DeadLetter(record, f"could not apply {event.type}: {exc!r}"))
        return applied
