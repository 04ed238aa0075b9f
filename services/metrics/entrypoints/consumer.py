"""Kafka entrypoint: a FastStream batch subscriber on every event topic.

The subscriber is thin: it hands the raw records to shared.consumer.BatchConsumer, which applies
them in one PostgreSQL transaction with their tracking records and dead-letters what cannot be
decoded or applied. Offsets are committed by FastStream only after the handler returned
(AckPolicy.NACK_ON_ERROR: on an exception, e.g. the database is down, the consumer seeks back and
the batch is delivered again; the tracking records make that harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from shared.consumer import BatchConsumer, KafkaDeadLetterSink, RawRecord
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
    "Time to apply one batch (decode, one transaction, dead letters).",
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


async def _records_undecoded(msg: StreamMessage[Any]) -> Any:
    """The handler reads the raw records itself (``msg.raw_message``). FastStream's default
    batch decoder would turn every record into a message of its own (with a fresh uuid4) and
    JSON-decode its body, only for both to be thrown away: a quarter of the consumer's CPU."""
    return msg.body


def tune_gc_for_batches() -> None:
    """Let the cycle collector run about once per batch instead of dozens of times."""
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, young), older, oldest)


class MetricsConsumer:
    def __init__(
        self,
        batch_consumer_factory: Any,
        *,
        bootstrap: KafkaTarget,
        group_id: str,
        prefix: str = "",
        max_records: int = 2000,
    ) -> None:
        self.kafka = KafkaConnection.of(bootstrap)
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
        self._batch_consumer: BatchConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

        @self.broker.subscriber(
            *self.topics,
            batch=True,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_records=max_records,
            batch_timeout_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            decoder=_records_undecoded,
            title="metrics-events",
            description="Every event of the platform, applied to the indicators exactly once in effect.",
        )
        async def on_batch(msg: KafkaMessage) -> None:
            await self.handle(msg.raw_message)

    async def handle(self, records: Sequence[Any]) -> None:
        assert self._batch_consumer is not None
        if not records:
            return
        started = time.perf_counter()
        raw = [RawRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        result = await self._batch_consumer.handle(raw)
        APPLY_SECONDS.observe(time.perf_counter() - started)
        for topic, count in Tally(event.data.topic.value for event in result.events).items():
            CONSUMED.labels(topic).inc(count)
        if result.duplicates:
            DUPLICATES.inc(result.duplicates)
        for letter in result.letters:
            DEADLETTERED.labels(letter.record.topic.removeprefix(self.prefix)).inc()

    async def start(self) -> None:
        tune_gc_for_batches()
        self._producer = AIOKafkaProducer(
            **self.kafka.client_options(), acks="all", enable_idempotence=True
        )
        await self._producer.start()
        self._batch_consumer = self._factory(
            KafkaDeadLetterSink(self._producer, self.group_id, self.prefix)
        )
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def watch_lag(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Consumer lag of the whole group (end offsets minus committed), for the lag alert."""
        while not stop.is_set():
            try:
                await self._observe_lag()
            except Exception as exc:  # lag is a gauge, never a reason to stop
                log.debug("lag not observed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _observe_lag(self) -> None:
        admin = AIOKafkaAdminClient(**self.kafka.client_options())
        probe = AIOKafkaConsumer(**self.kafka.client_options(), enable_auto_commit=False)
        await admin.start()
        await probe.start()
        try:
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
        finally:
            await probe.stop()
            await admin.close()
