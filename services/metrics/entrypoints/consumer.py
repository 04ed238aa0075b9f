"""Kafka entrypoint: a FastStream batch subscriber on every event topic, pipelined.

The subscriber is thin: it hands the raw records to shared.consumer.BatchConsumer, which applies
them in one PostgreSQL transaction with the partitions' next offsets (``"offsets"`` tracking) and
dead-letters what cannot be decoded or applied. Those offsets in the database are the consumer's
real position, which is what lets it pipeline: the handler decodes batch N+1 while batch N's
transaction runs, and returns as soon as N+1's transaction has started.

- On assignment (start, rebalance) every partition is sought to the offset the database holds
  (``_Positions``), or to its beginning where the database holds none (nothing of it applied).
  aiokafka's fetcher does not wait for the listener: while it reads the database, records from
  Kafka's position (the earliest, for a group Kafka does not know) may already reach the
  handler. So the handler waits for the positioning to finish and leaves out what lies below
  the database's offsets (applied already: they would only count as duplicates).
- The transactions commit asynchronously (the setting ``consumer_synchronous_commit``): a crash
  of PostgreSQL may take back the last commits after the consumer went on from them. The batch
  consumer notices that the server started anew (shared.consumer, ``DatabaseRestarted``), and
  the consumer then takes every position from the database again, so what was taken back is
  read again from Kafka.
- A batch's offsets are committed to Kafka after its database commit, as a courtesy (the lag
  gauge, tools that read the group). Since a crash can take back the database's commits, Kafka's
  offsets may be ahead of the database's: nothing is applied from them. Where the database
  cannot be read at assignment, the handler applies nothing until it can and it has sought
  every partition to the database's offsets. One committer task sends the newest offsets, each
  commit bounded in time: a commit in flight when the consumer closes never completes in
  aiokafka, and a stop must not wait for it.
- A failed transaction (database down, a deadlock, a restarted server) rewinds its partitions to
  the batch's first records; the next handler call, which already holds the batch after it,
  sees the failure, rewinds that one too and raises (FastStream logs it), so the failed batch
  comes again before anything after it is applied (AckPolicy.MANUAL: FastStream neither commits
  nor seeks itself). The call after that takes the positions from the database again.
- Before partitions are revoked, the batch in flight is waited for, so that the next owner
  finds its offsets (two owners at once are still safe: the offsets rows are locked per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from services.metrics.settings import MetricsSettings
from shared.consumer import (
    BatchConsumer,
    DecodedBatch,
    KafkaDeadLetterSink,
    RawRecord,
    offset_spans,
)
from shared.events import Topic, topic_name
from shared.kafka import KafkaConnection, KafkaTarget, partitions_of

__all__ = ["CONSUMED_TOPICS", "MetricsConsumer", "tune_gc_for_batches"]

log = logging.getLogger(__name__)

CONSUMED_TOPICS = (
    Topic.ACTIVITIES,
    Topic.REGISTRATIONS,
    Topic.REFERRALS,
    Topic.TRAININGS,
    Topic.MEASUREMENTS,
    # Erased people: their facts go, and their events are skipped (docs/privacy.md).
    Topic.ERASURES,
)

CONSUMED = Counter(
    "verbinding_metrics_events_consumed_total", "Events applied to the figures.", ["topic"]
)
DUPLICATES = Counter(
    "verbinding_metrics_events_duplicate_total", "Redelivered events recognised and skipped."
)
DEADLETTERED = Counter(
    "verbinding_metrics_events_deadlettered_total",
    "Events sent to the deadletter topic.",
    ["topic"],
)
APPLY_SECONDS = Histogram(
    "verbinding_metrics_batch_apply_duration_seconds",
    "Time to apply one batch (one transaction with its dead letters; decoding overlaps the "
    "previous batch's).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG = Gauge(
    "verbinding_metrics_consumer_lag_events",
    "Events on the topic not yet committed by the group.",
    ["topic"],
)


# A batch of 2,000 decoded events holds some 30,000 container objects until it is applied. With
# the default threshold (700) the cycle collector runs dozens of times per batch and, as they
# survive, repeatedly walks the whole heap: a fifth of the consumer's CPU, for garbage that
# reference counting frees anyway once the batch is done (docs/benchmarks.md).
GC_YOUNG_THRESHOLD = 50_000

# A courtesy commit that takes longer than this is given up (the next one carries its offsets).
COMMIT_TIMEOUT_SECONDS = 10.0

# The pause before records fetched while the database's offsets could not be read come again.
REPOSITION_RETRY_SECONDS = 1.0


async def _records_undecoded(msg: StreamMessage[Any]) -> Any:
    """The handler reads the raw records itself (``msg.raw_message``). FastStream's default
    batch decoder would turn every record into a message of its own (with a fresh uuid4) and
    JSON-decode its body, only for both to be thrown away: a quarter of the consumer's CPU."""
    return msg.body


async def _batch_parsed_lightly(
    records: tuple[Any, ...], original: Callable[[tuple[Any, ...]], Awaitable[StreamMessage[Any]]]
) -> StreamMessage[Any]:
    """FastStream's batch parser turns every record's headers into a dict of its own (2% of
    the consumer's CPU), for a message whose headers the handler never reads: parse the first
    record only, then hand the handler the whole batch (``msg.raw_message``)."""
    message = await original(records[:1])
    message.raw_message = records
    return message


# Young-generation objects per event of a batch (GC_YOUNG_THRESHOLD at 2,000, as tuned before).
GC_OBJECTS_PER_EVENT = 25


def tune_gc_for_batches(batch_size: int = 2000) -> None:
    """Let the cycle collector run about once per batch instead of dozens of times: its young
    threshold grows with the batch. A rebuild's 5,000-event batches under the 2,000-event
    threshold spent about 5 µs per event more in decoding (18.4 against 13.1–13.3 µs in a loop
    that keeps two batches alive, as the pipeline does; docs/benchmarks.md)."""
    young, older, oldest = gc.get_threshold()
    wanted = max(GC_YOUNG_THRESHOLD, GC_OBJECTS_PER_EVENT * batch_size)
    gc.set_threshold(max(wanted, young), older, oldest)


_DATA = attrgetter("data")  # an event's payload


def _firsts(records: Sequence[RawRecord]) -> dict[TopicPartition, int]:
    return {TopicPartition(*key): first for key, (first, _) in offset_spans(records).items()}


def _ends(records: Sequence[RawRecord]) -> dict[TopicPartition, int]:
    # Per run of one partition's records, in C (offset_spans); one TopicPartition per
    # partition: a Python step per record is a measurable cost at a few thousand a batch.
    return {TopicPartition(*key): end for key, (_, end) in offset_spans(records).items()}


class _Positions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The database's offsets as the consumer's position (see the module)."""

    def __init__(self, owner: MetricsConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.wait_in_flight()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.position(assigned)


# The settings' defaults (bootstrap passes the configured values; tests rely on these).
_DEFAULTS = MetricsSettings.model_fields


class MetricsConsumer:
    def __init__(
        self,
        batch_consumer_factory: Any,
        *,
        bootstrap: KafkaTarget,
        group_id: str,
        prefix: str = "",
        max_records: int = _DEFAULTS["consumer_max_records"].default,
        partition_fetch_bytes: int = _DEFAULTS["consumer_partition_fetch_bytes"].default,
        fetch_bytes: int = _DEFAULTS["consumer_fetch_bytes"].default,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.kafka = KafkaConnection.of(bootstrap)
        # Called after each transaction that changed the facts has committed (the readers'
        # change marker: services/metrics/adapters/changes.py).
        self._on_change = on_change
        self.group_id = group_id
        self.prefix = prefix
        self.topics = [topic_name(t, prefix) for t in CONSUMED_TOPICS]
        self.broker = KafkaBroker(
            self.kafka.bootstrap,
            security=self.kafka.faststream_security(),
            middlewares=[
                KafkaPrometheusMiddleware(registry=REGISTRY, app_name="verbinding-metrics")
            ],
            log_level=logging.DEBUG,  # FastStream logs every batch; that belongs at debug level
        )
        self._factory = batch_consumer_factory
        self._max_records = max_records
        self._batch_consumer: BatchConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        # The batch whose transaction runs while the handler decodes the next one.
        self._in_flight: asyncio.Task[None] | None = None
        self._in_flight_records: list[RawRecord] = []
        # The courtesy commit (see the module): the newest offsets not yet sent, and the task
        # that sends them.
        self._to_commit: dict[TopicPartition, int] = {}
        self._committer: asyncio.Task[None] | None = None
        self._stopping = False
        # Set while no assignment is being positioned; the database's offsets at assignment.
        self._positioned = asyncio.Event()
        # The group's lag (events) at the last observation, and when (time.monotonic()).
        self._lag: tuple[int, float] | None = None
        self._positioned.set()
        # Per partition, the offset it was last sought to from the database: records below it
        # are applied already.
        self._floors: dict[tuple[str, int], int] = {}
        # Set by a failed transaction or a positioning without the database: the handler
        # applies nothing until it has sought every partition to the database's offsets.
        self._reposition = False

        @self.broker.subscriber(
            *self.topics,
            batch=True,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,
            listener=_Positions(self),
            max_records=max_records,
            batch_timeout_ms=100,
            max_partition_fetch_bytes=partition_fetch_bytes,
            fetch_max_bytes=fetch_bytes,
            parser=_batch_parsed_lightly,
            decoder=_records_undecoded,
            title="metrics-events",
            description="Every event of the platform, applied to the indicators exactly once in effect.",
        )
        async def on_batch(msg: KafkaMessage) -> None:
            await self.handle(msg.raw_message)

    def _consumer(self) -> AIOKafkaConsumer | None:
        consumer = self.broker.subscribers[0].consumer  # type: ignore[attr-defined]
        return consumer  # type: ignore[no-any-return]

    async def handle(self, records: Sequence[Any]) -> None:
        """Decode this batch while the previous one's transaction runs; once that one has
        committed, start this one's and return."""
        assert self._batch_consumer is not None
        await self._positioned.wait()
        if self._reposition:
            await self._reposition_from_database(records)
            return  # fetched from the old positions: the ones sought to now bring them again
        floors = self._floors
        raw = [
            RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for r in records
            if r.offset >= floors.get((r.topic, r.partition), 0)
        ]
        if not raw:
            return
        decoded = await self._batch_consumer.decode(raw)
        await self._settle(raw)
        self._in_flight = asyncio.create_task(self._apply(decoded))
        self._in_flight_records = raw

    async def _settle(self, following: list[RawRecord]) -> None:
        """Wait for the batch in flight. If it failed, rewind it and ``following`` (fetched
        after it) and raise its error."""
        task, records = self._in_flight, self._in_flight_records
        if task is None:
            return
        # asyncio.wait, not await: a handler cancelled by a stop must not cancel the
        # transaction half-way (stop() waits for it).
        await asyncio.wait([task])
        self._in_flight, self._in_flight_records = None, []
        error = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if error is not None:
            self._rewind([*records, *following])
            self._reposition = True
            raise error

    async def _apply(self, decoded: DecodedBatch) -> None:
        assert self._batch_consumer is not None
        started = time.perf_counter()
        try:
            result = await self._batch_consumer.apply_decoded(decoded)
        except BaseException:
            # At once, not only at the next handler call: that call may never come if nothing
            # more is fetched, and the rewound batch is then fetched again.
            self._rewind(decoded.records)
            raise
        APPLY_SECONDS.observe(time.perf_counter() - started)
        if result.events and self._on_change is not None:
            self._on_change()
        self._schedule_commit(decoded.records)
        # Counted by type, in C, then labelled: an enum's .value, or a generator's step, per
        # event is a measurable cost.
        tally: Tally[Any] = Tally(map(type, map(_DATA, result.events)))
        for cls, count in tally.items():
            CONSUMED.labels(cls.topic.value).inc(count)
        if result.duplicates:
            DUPLICATES.inc(result.duplicates)
        for letter in result.letters:
            DEADLETTERED.labels(letter.record.topic.removeprefix(self.prefix)).inc()

    async def _reposition_from_database(self, records: Sequence[Any]) -> None:
        """Every partition to the database's offsets; if they cannot be read, ``records``
        (not applied) come again after a pause."""
        consumer = self._consumer()
        if consumer is not None and await self.seek_to_stored(consumer.assignment()):
            self._reposition = False
            return
        self._rewind([RawRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records])
        await asyncio.sleep(REPOSITION_RETRY_SECONDS)

    def _rewind(self, records: Sequence[RawRecord]) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        owned = consumer.assignment()
        for tp, offset in _firsts(records).items():
            if tp in owned:  # a revoked partition starts from the database's offset elsewhere
                consumer.seek(tp, offset)

    def _schedule_commit(self, records: Sequence[RawRecord]) -> None:
        """In a task of its own, so that the next transaction need not wait for the round trip.
        Offsets only grow: a batch applied later ends later on each of its partitions."""
        if self._stopping:
            return
        for tp, end in _ends(records).items():
            if end > self._to_commit.get(tp, -1):
                self._to_commit[tp] = end
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        """The courtesy commit (see the module): a failure costs nothing but a re-fetch."""
        while self._to_commit and not self._stopping:
            pending, self._to_commit = self._to_commit, {}
            consumer = self._consumer()
            if consumer is None:
                return
            owned = consumer.assignment()
            offsets = {tp: end for tp, end in pending.items() if tp in owned}
            if not offsets:
                continue
            try:
                await asyncio.wait_for(consumer.commit(offsets), timeout=COMMIT_TIMEOUT_SECONDS)
            except (KafkaError, TimeoutError) as exc:
                log.debug("offsets not committed to Kafka", extra={"error": repr(exc)})

    async def wait_in_flight(self) -> None:
        """Until the batch in flight has committed or failed (its failure is the handler's)."""
        task = self._in_flight
        if task is not None:
            await asyncio.wait([task])

    async def position(self, assigned: set[TopicPartition]) -> None:
        """Seek the assigned partitions to the database's offsets; the handler waits meanwhile."""
        self._positioned.clear()
        try:
            self._reposition = not await self.seek_to_stored(assigned)
        finally:
            self._positioned.set()

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> bool:
        """Seek ``assigned`` to the database's offsets (a partition without any to its
        beginning); whether the database could be read."""
        consumer = self._consumer()
        if consumer is None or self._batch_consumer is None or not assigned:
            return True
        try:
            stored = await self._batch_consumer.stored_offsets(
                [(tp.topic, tp.partition) for tp in assigned]
            )
        except Exception as exc:
            log.warning(
                "stored offsets not read; applying nothing until they are",
                extra={"error": repr(exc)},
            )
            return False
        unapplied = []
        for tp in assigned:
            key = (tp.topic, tp.partition)
            offset = stored.get(key)
            if offset is None:
                unapplied.append(tp)
                self._floors.pop(key, None)
            else:
                consumer.seek(tp, offset)
                self._floors[key] = offset
        if unapplied:
            await consumer.seek_to_beginning(*unapplied)
        return True

    async def start(self) -> None:
        tune_gc_for_batches(self._max_records)
        self._producer = AIOKafkaProducer(
            **self.kafka.client_options(), acks="all", enable_idempotence=True
        )
        await self._producer.start()
        self._batch_consumer = self._factory(
            KafkaDeadLetterSink(self._producer, self.group_id, self.prefix)
        )
        await self.broker.start()

    async def stop(self) -> None:
        # Kafka learns the newest offsets while the consumer is still open (bounded: batches
        # go on arriving meanwhile).
        if self._committer is not None:
            await asyncio.wait([self._committer], timeout=COMMIT_TIMEOUT_SECONDS)
        await self.broker.stop()
        # The consumer is closed now: a commit can no longer complete (aiokafka would wait for
        # its coordinator for ever), and the database holds the position anyway.
        self._stopping = True
        if self._committer is not None and not self._committer.done():
            self._committer.cancel()
            await asyncio.wait([self._committer])
        # The last batch's transaction finishes (or fails) rather than being cut off; its
        # offsets are in the database either way, which is where the next start begins.
        await self.wait_in_flight()
        if self._producer is not None:
            await self._producer.stop()

    def behind(self, within: float = 30.0) -> int | None:
        """How many events the whole group has yet to apply, as observed in the last
        ``within`` seconds by :meth:`watch_lag` (``None``: not known)."""
        if self._lag is None or time.monotonic() - self._lag[1] > within:
            return None
        return self._lag[0]

    async def watch_lag(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Consumer lag of the whole group (end offsets minus committed), for the lag alert.

        Its two clients live as long as the watch (started anew after an error): starting a
        Kafka client every few seconds costs the consumer measurable CPU."""
        clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        try:
            while not stop.is_set():
                try:
                    if clients is None:
                        clients = await self._lag_clients()
                    await self._observe_lag(*clients)
                except Exception as exc:  # lag is a gauge, never a reason to stop
                    log.debug("lag not observed", extra={"error": repr(exc)})
                    if clients is not None:
                        await self._close_lag_clients(*clients)
                        clients = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            if clients is not None:
                await self._close_lag_clients(*clients)

    async def _lag_clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        admin = AIOKafkaAdminClient(**self.kafka.client_options())
        probe = AIOKafkaConsumer(**self.kafka.client_options(), enable_auto_commit=False)
        try:
            await admin.start()
            await probe.start()
        except BaseException:
            await self._close_lag_clients(admin, probe)
            raise
        return admin, probe

    @staticmethod
    async def _close_lag_clients(admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> None:
        with contextlib.suppress(Exception):
            await probe.stop()
        with contextlib.suppress(Exception):
            await admin.close()

    async def _observe_lag(self, admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer) -> None:
        committed = await admin.list_consumer_group_offsets(self.group_id)
        partitions = await partitions_of(admin, self.topics)
        ends = await probe.end_offsets(partitions)
        per_topic: dict[str, int] = {}
        for tp in partitions:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(ends[tp] - done, 0)
        for topic, lag in per_topic.items():
            LAG.labels(topic.removeprefix(self.prefix)).set(lag)
        self._lag = (sum(per_topic.values()), time.monotonic())
