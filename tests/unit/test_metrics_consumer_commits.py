"""The metrics consumer's courtesy commit of offsets to Kafka (services/metrics/entrypoints/
consumer.py): it follows the database, collapses to the newest offsets, and never holds up a
stop. A commit in flight when aiokafka's consumer closes never completes; a stop that waited for
it hung the service (seen in CI)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from services.metrics.entrypoints import consumer as module
from services.metrics.entrypoints.consumer import MetricsConsumer
from shared.consumer import RawRecord

TP = TopicPartition("registrations", 0)


class StuckKafkaConsumer:
    """Owns one partition; every commit hangs until released."""

    def __init__(self) -> None:
        self.sent: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.sent.append(dict(offsets))
        await self.release.wait()


def records(*offsets: int) -> list[RawRecord]:
    return [RawRecord(TP.topic, TP.partition, o, None, b"{}") for o in offsets]


def metrics_consumer(kafka: Any, monkeypatch: Any) -> MetricsConsumer:
    consumer = MetricsConsumer(lambda sink: None, bootstrap="127.0.0.1:1", group_id="unit")
    monkeypatch.setattr(consumer, "_consumer", lambda: kafka)
    return consumer


async def test_a_stop_does_not_wait_for_a_commit_that_never_completes(monkeypatch: Any) -> None:
    monkeypatch.setattr(module, "COMMIT_TIMEOUT_SECONDS", 0.2)
    kafka = StuckKafkaConsumer()
    consumer = metrics_consumer(kafka, monkeypatch)
    consumer._schedule_commit(records(0, 1, 2))
    await asyncio.sleep(0)
    await asyncio.wait_for(consumer.stop(), timeout=5)
    assert kafka.sent == [{TP: 3}]


async def test_commits_waiting_behind_a_slow_one_collapse_to_the_newest_offsets(
    monkeypatch: Any,
) -> None:
    kafka = StuckKafkaConsumer()
    consumer = metrics_consumer(kafka, monkeypatch)
    consumer._schedule_commit(records(0, 1))
    await asyncio.sleep(0)
    for batch in (records(2, 3), records(4, 5), records(6)):
        consumer._schedule_commit(batch)
    kafka.release.set()
    assert consumer._committer is not None
    await asyncio.wait_for(consumer._committer, timeout=5)
    assert kafka.sent == [{TP: 2}, {TP: 7}]


async def test_a_commit_that_times_out_is_carried_by_the_next(monkeypatch: Any) -> None:
    monkeypatch.setattr(module, "COMMIT_TIMEOUT_SECONDS", 0.1)
    kafka = StuckKafkaConsumer()
    consumer = metrics_consumer(kafka, monkeypatch)
    consumer._schedule_commit(records(0))
    await asyncio.sleep(0)
    consumer._schedule_commit(records(1))
    assert consumer._committer is not None
    await asyncio.wait_for(consumer._committer, timeout=5)
    assert kafka.sent == [{TP: 1}, {TP: 2}]
