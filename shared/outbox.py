"""Transactional outbox: enqueue in the caller's transaction, publish with a relay.

Guarantees: an event whose row committed is published at least once (rows are deleted only after
Kafka acknowledged them with ``acks=all``); consumers drop the rare duplicate by event id. Per-key
order holds because one relay per schema is active at a time (a PostgreSQL advisory lock elects
it; a standby takes over when the active one's connection goes) and it publishes in id order with
an idempotent producer. Rows are still claimed with ``FOR UPDATE SKIP LOCKED`` so that a relay
started by hand next to a running one can never publish the same row concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge

from shared.db import DatabaseUnavailable
from shared.events import KAFKA_HEADERS, CloudEvent, encode_event, topic_name
from shared.kafka import KafkaConnection, KafkaTarget, ensure_topics

if TYPE_CHECKING:
    from shared.settings import CommonSettings

__all__ = ["OutboxRelay", "enqueue", "run_service_relay"]

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "verbinding_outbox_published_events_total",
    "Outbox events published to Kafka.",
    ["service", "topic"],
)
PUBLISH_ERRORS = Counter(
    "verbinding_outbox_publish_errors_total",
    "Failed publish attempts (rows stay and are retried).",
    ["service"],
)
BACKLOG = Gauge("verbinding_outbox_backlog_events", "Events waiting in the outbox.", ["service"])
OLDEST = Gauge(
    "verbinding_outbox_oldest_event_age_seconds",
    "Age of the oldest unpublished event.",
    ["service"],
)
ACTIVE = Gauge(
    "verbinding_outbox_relay_active", "1 while this process is the active relay.", ["service"]
)


async def enqueue(
    conn: asyncpg.Connection, schema: str, events: Sequence[CloudEvent[Any]], prefix: str = ""
) -> None:
    """Add events to the outbox. Call inside the transaction that changes the state."""
    if not events:
        return
    await conn.executemany(
        f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) VALUES ($1, $2, $3, $4)',
        [(e.id, topic_name(e.data.topic, prefix), e.key, encode_event(e)) for e in events],
    )


class KafkaUnavailable(Exception):
    """Publishing failed on Kafka's side (not the database's); the rows stay and are retried."""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        kafka: KafkaTarget,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.kafka = KafkaConnection.of(kafka)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self.kafka_ok = False
        self._lock_id = int.from_bytes(
            hashlib.sha256(f"relay:{schema}".encode()).digest()[:4], "big"
        )

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.kafka.client_options(),
                enable_idempotence=True,  # retries inside one session never duplicate or reorder
                acks="all",
                linger_ms=5,
                request_timeout_ms=10_000,
                max_batch_size=1_048_576,
            )
            try:
                await asyncio.wait_for(producer.start(), timeout=15)
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=5)

    async def publish_once(self) -> int:
        """Publish one batch; return how many rows were published."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f'SELECT id, topic, key, value FROM "{self.schema}".outbox '
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch_size,
            )
            if not rows:
                return 0
            try:
                producer = await self._get_producer()
                futures = [
                    await producer.send(
                        r["topic"], value=r["value"], key=r["key"], headers=KAFKA_HEADERS
                    )
                    for r in rows
                ]
                await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
            except (TimeoutError, OSError) as exc:
                # Kafka's timeouts and socket errors, not the database's: the caller must drop
                # the producer and retry, not report the database unavailable.
                raise KafkaUnavailable(f"Kafka did not take the batch: {exc!r}") from exc
            await conn.execute(
                f'DELETE FROM "{self.schema}".outbox WHERE id = ANY($1::bigint[])',
                [r["id"] for r in rows],
            )
        for r in rows:
            PUBLISHED.labels(self.schema, r["topic"]).inc()
        return len(rows)

    async def _observe_backlog(self) -> None:
        row = await self.pool.fetchrow(
            f"SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age "
            f'FROM "{self.schema}".outbox'
        )
        if row:
            BACKLOG.labels(self.schema).set(row["n"])
            OLDEST.labels(self.schema).set(float(row["age"] or 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set. Survives Kafka and PostgreSQL outages."""
        backoff = 0.2
        while not stop.is_set():
            try:
                async with self.pool.acquire() as listener:
                    if not await listener.fetchval(
                        "SELECT pg_try_advisory_lock($1)", self._lock_id
                    ):
                        ACTIVE.labels(self.schema).set(0)
                        await _wait(stop, self.poll_interval * 2)
                        continue
                    ACTIVE.labels(self.schema).set(1)
                    channel = f"{self.schema}_outbox"
                    wake = self._on_notify
                    await listener.add_listener(channel, wake)
                    try:
                        await self._loop(stop)
                    finally:
                        with contextlib.suppress(Exception):
                            await listener.remove_listener(channel, wake)
                            await listener.execute("SELECT pg_advisory_unlock($1)", self._lock_id)
                        ACTIVE.labels(self.schema).set(0)
                backoff = 0.2
            except DatabaseUnavailable as exc:
                log.warning("relay: database unavailable", extra={"error": repr(exc)})
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)
        await self._drop_producer()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        last_observed = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                published = await self.publish_once()
                if not self.kafka_ok and published:
                    log.info("relay: publishing again", extra={"schema": self.schema})
                self.kafka_ok = True
                backoff = 0.2
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # Kafka down, timeouts: rows stay, retry with backoff
                PUBLISH_ERRORS.labels(self.schema).inc()
                if self.kafka_ok:
                    log.warning("relay: cannot publish, will retry", extra={"error": repr(exc)})
                self.kafka_ok = False
                await self._drop_producer()
                # Keep the backlog gauges moving during an outage: they are what the alerts read.
                await self._observe_backlog()
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            now = time.monotonic()
            if now - last_observed > 1.0:
                await self._observe_backlog()
                last_observed = now
            if published < self.batch_size:
                # Wake on a notification or on stop, so that a shutdown never waits out the poll.
                waits = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                try:
                    await asyncio.wait(
                        waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiting in waits:
                        waiting.cancel()


async def run_service_relay(
    pool: asyncpg.Pool, schema: str, settings: CommonSettings, stop: asyncio.Event
) -> None:
    """A service's relay, run inside the service process until ``stop`` is set.

    Creating the topics is bounded and best-effort: Kafka may be away at start, and the relay
    keeps its rows and retries until the broker is back, so a service never waits on Kafka to
    accept writes.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            ensure_topics(
                settings.kafka(),
                settings.topic_prefix,
                partitions=settings.topic_partitions,
                replication=settings.topic_replication,
            ),
            timeout=15,
        )
    await OutboxRelay(pool, schema, settings.kafka()).run(stop)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
