"""Exactly-once-in-effect consumption: tracking records in the consumer's own transaction.

A batch of raw Kafka records is decoded; what cannot be decoded (not JSON, wrong schema, unknown
major version) is dead-lettered with the reason and the original bytes. The rest is applied in
ONE PostgreSQL transaction together with the ids of the events applied (``processed_events``),
so an event redelivered by Kafka, or resent after a crash between the database commit and the
offset commit, is recognised and skipped. The caller commits Kafka offsets only after
:meth:`BatchConsumer.handle` returned, i.e. after the transaction and the dead-letters.
An event the applier rejects is isolated (savepoint per event) and dead-lettered; the batch goes on.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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

__all__ = ["BatchConsumer", "BatchResult", "DeadLetter", "KafkaDeadLetterSink", "RawRecord"]

log = logging.getLogger(__name__)

Applier = Callable[[asyncpg.Connection, Sequence[CloudEvent[Any]]], Awaitable[None]]


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


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
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.apply = apply
        self.deadletters = deadletters
        # A rebuild that swaps the consumer's tables takes this advisory lock exclusively;
        # every batch takes it shared, so that no batch straddles the swap.
        self.shared_lock = shared_lock

    async def handle(self, records: Sequence[RawRecord]) -> BatchResult:
        letters: list[DeadLetter] = []
        decoded: dict[Any, tuple[RawRecord, CloudEvent[Any]]] = {}
        for record in records:
            try:
                event = decode_event(record.value or b"")
            except EventDecodeError as exc:
                letters.append(DeadLetter(record, exc.reason))
                continue
            decoded.setdefault(event.id, (record, event))  # a duplicate inside one batch
        undecodable = len(letters)
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
                    list(decoded),
                    [r.topic for r, _ in decoded.values()],
                    [r.partition for r, _ in decoded.values()],
                    [r.offset for r, _ in decoded.values()],
                )
            }
            fresh = [(r, e) for r, e in decoded.values() if e.id in fresh_ids]
            applied = await self._apply_isolating_poison(conn, fresh, letters)
            # Before the commit: if Kafka refuses the dead letters, the tracking records of the
            # poison roll back too, so the redelivered batch dead-letters it again instead of
            # skipping it as already processed.
            if letters:
                await self.deadletters.send(letters)
                log.warning(
                    "dead-lettered",
                    extra={
                        "count": len(letters),
                        "reasons": [x.reason[:200] for x in letters[:5]],
                    },
                )
        return BatchResult(
            applied=len(applied),
            duplicates=len(records) - undecodable - len(fresh),
            dead_lettered=len(letters),
            events=tuple(applied),
            letters=tuple(letters),
        )

    async def _apply_isolating_poison(
        self,
        conn: asyncpg.Connection,
        fresh: list[tuple[RawRecord, CloudEvent[Any]]],
        letters: list[DeadLetter],
    ) -> list[CloudEvent[Any]]:
        events = [e for _, e in fresh]
        if not events:
            return []
        try:
            async with conn.transaction():  # savepoint: a poison event must not sink the batch
                await self.apply(conn, events)
            return events
        except DatabaseUnavailable:
            raise
        except Exception:
            log.info("batch failed to apply; isolating the failing events")
        applied = []
        for record, event in fresh:
            try:
                async with conn.transaction():
                    await self.apply(conn, [event])
                applied.append(event)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                letters.append(DeadLetter(record, f"could not apply {event.type}: {exc!r}"))
        return applied
