"""Transactional outbox: enqueue in the caller's transaction, publish with a relay.

Guarantees: an event whose row committed is published at least once (rows are deleted only after
Kafka acknowledged them with ``acks=all``); consumers drop the rare duplicate by event id. Per-key
order holds because one relay per schema is active at a time (a PostgreSQL advisory lock elects
it; a standby takes over when the active one's connection goes) and it publishes in id order with
an idempotent producer. Rows are still claimed with ``FOR UPDATE SKIP LOCKED`` so that a relay
started by hand next to a running one can never publish the same row concurrently.

The relay learns of new rows after their commit (:func:`wakeup`): the service's own relay, when
it is the active one, is woken directly; a relay in another process by one NOTIFY, sent after
the commit. Never from inside the writing transaction: PostgreSQL serialises the commits of
transactions that notified, their fsync included, which caps commits per second. The relay runs
on a connection of its own, and polls besides (``poll_interval``), should a wake-up be missed.
Once woken it waits ``gather_seconds`` (20 ms) before it claims rows, so that single writes
committed close together are published together.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from prometheus_client import Counter, Gauge

from shared.db import DatabaseUnavailable
from shared.events import KAFKA_HEADERS, CloudEvent, encode_event, topic_name
from shared.kafka import KafkaConnection, KafkaTarget, ensure_topics
from shared.pipeline.statements import Write, json_column, together

if TYPE_CHECKING:
    from shared.settings import CommonSettings

__all__ = [
    "AfterCommit",
    "OutboxRelay",
    "enqueue",
    "notify_relays",
    "outbox_write",
    "run_service_relay",
    "wakeup",
]

# What a writing service runs after a commit that wrote outbox rows (see wakeup()).
AfterCommit = Callable[[asyncpg.Connection], Awaitable[None]]

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


def outbox_write(
    schema: str,
    events: Sequence[CloudEvent[Any]],
    prefix: str,
    encoded: Sequence[tuple[bytes, bytes]] | None = None,
    people: Sequence[str | None] | None = None,
    subjects: str | None = None,
) -> list[Write]:
    """The events as outbox rows, in the order they were decided: the relay publishes by row id,
    which keeps each participant's events in order. ``encoded``: each event's Kafka key and
    value, where the caller has them already (shared/subjects.py).

    ``people`` and ``subjects``: each event's person's pseudonym (or None) and the relation of
    an earlier part of the same statement that holds ``(pseudonym, subject_id)`` of each
    (shared/subjects.py ``subject_writes``). Each row then has its pseudonym replaced by the
    subject id in PostgreSQL: everywhere in the value (a pseudonym must never reach Kafka, and
    64 hex digits are the pseudonym wherever they stand), and as the key where the key is the
    pseudonym (a training stays keyed by its organisation). Byte for byte what
    ``encoded_with_subject_ids`` gives (tests/integration/test_single_write_round_trips.py); a
    pseudonym without a subject id would make the key or value NULL, which the table refuses."""
    if not events:
        return []
    if encoded is None:
        encoded = [(e.key, encode_event(e)) for e in events]
    args = (
        json_column([e.id for e in events]),
        json_column([topic_name(e.data.topic, prefix) for e in events]),
        [key for key, _ in encoded],
        [value for _, value in encoded],
    )
    if people is None or subjects is None:
        return [
            Write(
                f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) '
                # Ids and topics as JSON arrays (json_column: cheaper to send than arrays), the
                # keys and values as they are: one row per event, in the order given.
                "SELECT e::uuid, t, k, v FROM ROWS FROM (json_array_elements_text($1::text::json), "
                "json_array_elements_text($2::text::json), unnest($3::bytea[]), "
                "unnest($4::bytea[])) WITH ORDINALITY AS u(e, t, k, v, n) ORDER BY n",
                args,
            )
        ]
    return [
        Write(
            f'INSERT INTO "{schema}".outbox (event_id, topic, key, value) '
            "SELECT e::uuid, t, "
            "CASE WHEN p IS NULL OR k <> convert_to(p, 'UTF8') THEN k "
            "ELSE convert_to(s.subject_id, 'UTF8') END, "
            "CASE WHEN p IS NULL THEN v "
            "ELSE convert_to(replace(convert_from(v, 'UTF8'), p, s.subject_id), 'UTF8') END "
            "FROM ROWS FROM (json_array_elements_text($1::text::json), "
            "json_array_elements_text($2::text::json), unnest($3::bytea[]), "
            "unnest($4::bytea[]), json_array_elements_text($5::text::json)) "
            f"WITH ORDINALITY AS u(e, t, k, v, p, n) LEFT JOIN {subjects} s "
            "ON s.pseudonym = u.p ORDER BY n",
            (*args, json_column(list(people))),
        )
    ]


async def enqueue(
    conn: asyncpg.Connection, schema: str, events: Sequence[CloudEvent[Any]], prefix: str = ""
) -> None:
    """Add events to the outbox. Call inside the transaction that changes the state; after its
    commit, wake the relay (:func:`wakeup`, or :func:`notify_relays`)."""
    if events:
        sql, args = together(outbox_write(schema, events, prefix))
        await conn.execute(sql, *args)


def _channel(schema: str) -> str:
    return f"{schema}_outbox"


async def notify_relays(conn: asyncpg.Connection, schema: str) -> None:
    """Tell the relay of ``schema``, in whatever process it runs, that rows were committed: one
    NOTIFY in a transaction of its own (it writes nothing, so its commit waits on no fsync)."""
    await conn.execute("SELECT pg_notify($1, '')", _channel(schema))


def wakeup(schema: str, relay: OutboxRelay | None) -> AfterCommit:
    """What a writing service runs after a commit that wrote outbox rows: its own relay, when
    that is the active one, is woken directly; otherwise the active one elsewhere (another
    instance's, ``verbinding relay``) is told with one NOTIFY. A wake-up that fails is not the
    write's failure (it committed): the relay's poll finds the rows."""

    async def after_commit(conn: asyncpg.Connection) -> None:
        if relay is not None and relay.active:
            relay.wake()
            return
        try:
            await notify_relays(conn, schema)
        except Exception as exc:  # the relay polls anyway; the write stands
            log.warning("relay not notified", extra={"schema": schema, "error": repr(exc)})

    return after_commit


class KeyHashingPartitioner:
    """Kafka's default partitioning of keyed records (the Java client's murmur2 of the key,
    positive, modulo the partitions: aiokafka's ``DefaultPartitioner``), with each key's hash
    remembered. aiokafka's murmur2 is pure Python and was 6% of a writing service's CPU under
    batch ingestion; a person's events share their key, so most keys come again. Every key
    here is non-empty (an event's partition key)."""

    def __init__(self, remembered: int = 50_000) -> None:
        self.remembered = remembered
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes, all_partitions: list[int], available: list[int]) -> int:
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self.remembered:
                self._hashes.clear()  # simplest bound; refilled by the keys in use
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def _row_id(row: asyncpg.Record) -> int:
    return int(row["id"])


class KafkaUnavailable(Exception):
    """Publishing failed on Kafka's side (not the database's); the rows stay and are retried."""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        kafka: KafkaTarget,
        *,
        batch_size: int = 2000,
        poll_interval: float = 1.0,
        max_backoff: float = 5.0,
        gather_seconds: float = 0.02,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.kafka = KafkaConnection.of(kafka)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        # After a wake-up, the relay waits this long before it claims rows, so that the writes
        # committed meanwhile share its transaction and its produce request: a publish costs
        # about as much CPU for one row as for ten (four round trips, a Kafka request), and at
        # hundreds of single writes a second one publish per write was a third of the writing
        # service's CPU. Events reach Kafka that much later (freshness is counted in seconds).
        self.gather_seconds = gather_seconds
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = KeyHashingPartitioner()  # kept across producers: the hashes hold
        self.kafka_ok = False
        self.active = False  # holds the schema's relay lock: the one that publishes
        self._lock_id = int.from_bytes(
            hashlib.sha256(f"relay:{schema}".encode()).digest()[:4], "big"
        )

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.kafka.client_options(),
                enable_idempotence=True,  # retries inside one session never duplicate or reorder
                acks="all",
                # The relay hands the producer whole record batches (``_send_batches``), so
                # lingering gathers nothing more; and while a batch lingers, aiokafka's sender
                # goes round its loop again and again: 5 ms of linger cost about 700 µs of CPU
                # per publish (a single-record batch: ~900 µs at 5 ms, ~200 µs at 0).
                linger_ms=0,
                request_timeout_ms=10_000,
                max_batch_size=1_048_576,
                partitioner=self._partitioner,
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

    def wake(self) -> None:
        """Rows were committed: publish now rather than at the next poll."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _connection(
        self, conn: asyncpg.Connection | None
    ) -> AsyncIterator[asyncpg.Connection]:
        if conn is not None:
            yield conn
        else:
            async with self.pool.acquire() as acquired:
                yield acquired

    async def publish_once(self, conn: asyncpg.Connection | None = None) -> int:
        """Publish one batch; return how many rows were published. ``conn``: the relay's own
        connection (by default one of the pool's)."""
        async with self._connection(conn) as conn, conn.transaction():
            # Claimed and deleted in one statement; the deletion commits only after Kafka
            # acknowledged every row (an error rolls it back, and the rows stay). One round
            # trip less per publish than a SELECT and then a DELETE. The ids as an array (an
            # init plan, then the primary key's index): `id IN (SELECT ...)` was planned as a
            # hash join over a sequential scan of the whole outbox, 39 ms instead of 3 ms for
            # 2,000 of 50,000 rows.
            claimed = await conn.fetch(
                f'DELETE FROM "{self.schema}".outbox WHERE id = ANY(ARRAY('
                f'SELECT id FROM "{self.schema}".outbox '
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)) "
                "RETURNING id, topic, key, value",
                self.batch_size,
            )
            if not claimed:
                return 0
            rows = sorted(claimed, key=_row_id)  # RETURNING promises no order
            try:
                producer = await self._get_producer()
                futures = await self._send_batches(producer, rows)
                await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
            except (TimeoutError, OSError) as exc:
                # Kafka's timeouts and socket errors, not the database's: the caller must drop
                # the producer and retry, not report the database unavailable.
                raise KafkaUnavailable(f"Kafka did not take the batch: {exc!r}") from exc
        for topic, count in collections.Counter(r["topic"] for r in rows).items():
            PUBLISHED.labels(self.schema, topic).inc(count)
        return len(rows)

    async def _send_batches(
        self, producer: AIOKafkaProducer, rows: Sequence[asyncpg.Record]
    ) -> list[asyncio.Future[Any]]:
        """Hand the rows to the producer as whole record batches, one per topic and partition
        (more where one fills up), in id order within each: the order of each key's events.

        Per-message ``send`` cost about 20 µs of the service's CPU a row (metadata wait,
        partition lists, a future and an accumulator step per message, then gathering 2,000
        futures); a batch builder appends a record in C. The partition is the partitioner's
        choice over the same partition list ``send`` gives it; the idempotent producer numbers
        the batches when it drains them, as it numbers its own."""
        futures: list[asyncio.Future[Any]] = []
        partitions: dict[str, list[int]] = {}
        building: dict[tuple[str, int], Any] = {}
        for row in rows:
            topic, key, value = row["topic"], row["key"], row["value"]
            known = partitions.get(topic)
            if known is None:
                # As AIOKafkaProducer._partition does: the topic's known partitions, as a list.
                known = partitions[topic] = list(await producer.partitions_for(topic))
            partition = self._partitioner(key, known, known)
            batch = building.get((topic, partition))
            if batch is None:
                batch = building[(topic, partition)] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=KAFKA_HEADERS) is None:
                # Full: queue it (the producer sends one batch of a partition at a time, in
                # order), and go on in a new one.
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = building[(topic, partition)] = producer.create_batch()
                if (
                    batch.append(timestamp=None, key=key, value=value, headers=KAFKA_HEADERS)
                    is None
                ):
                    raise ValueError(f"an outbox row of {len(value)} bytes exceeds a batch")
        for (topic, partition), batch in building.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def _observe_backlog(self, conn: asyncpg.Connection) -> None:
        row = await conn.fetchrow(
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
                # One connection holds the lock, listens and publishes: the relay never waits
                # for the pool the requests use.
                async with self.pool.acquire() as conn:
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_id):
                        ACTIVE.labels(self.schema).set(0)
                        await _wait(stop, self.poll_interval * 2)
                        continue
                    self.active = True
                    ACTIVE.labels(self.schema).set(1)
                    channel = _channel(self.schema)
                    wake = self._on_notify
                    await conn.add_listener(channel, wake)
                    try:
                        await self._loop(stop, conn)
                    finally:
                        self.active = False
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(channel, wake)
                            await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_id)
                        ACTIVE.labels(self.schema).set(0)
                backoff = 0.2
            except DatabaseUnavailable as exc:
                log.warning("relay: database unavailable", extra={"error": repr(exc)})
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)
        await self._drop_producer()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _loop(self, stop: asyncio.Event, conn: asyncpg.Connection) -> None:
        backoff = 0.2
        last_observed = 0.0
        while not stop.is_set():
            self._wake.clear()
            try:
                published = await self.publish_once(conn)
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
                await self._observe_backlog(conn)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            now = time.monotonic()
            if now - last_observed > 1.0:
                await self._observe_backlog(conn)
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
                if self._wake.is_set() and self.gather_seconds > 0:
                    await _wait(stop, self.gather_seconds)


async def run_service_relay(
    relay: OutboxRelay, settings: CommonSettings, stop: asyncio.Event
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
    await relay.run(stop)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
