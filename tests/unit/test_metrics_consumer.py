"""The metrics consumer's dealings with Kafka around the database (services/metrics/entrypoints/
consumer.py), with a fake aiokafka consumer: the courtesy commit of offsets follows the database,
collapses to the newest offsets and never holds up a stop (a commit in flight when aiokafka's
consumer closes never completes: a stop that waited for it hung the service, seen in CI); and the
database's offsets are the position even for records fetched before the listener has sought
(aiokafka's fetcher does not wait for it: seen in CI as a new group re-reading everything)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from services.metrics.entrypoints import consumer as module
from services.metrics.entrypoints.consumer import MetricsConsumer
from shared.consumer import DecodedBatch, RawRecord

TP = TopicPartition("registrations", 0)


class StuckKafkaConsumer:
    """Owns one partition; every commit hangs until released."""

    def __init__(self) -> None:
        self.sent: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought = (tp, offset)

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


class SlowDatabase:
    """The batch consumer: its stored offsets arrive when released; records it decodes are kept."""

    def __init__(self, stored: int) -> None:
        self.stored = stored
        self.release = asyncio.Event()
        self.decoded: list[int] = []

    async def stored_offsets(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        await self.release.wait()
        return dict.fromkeys(partitions, self.stored)

    async def decode(self, raw: list[RawRecord]) -> DecodedBatch:
        self.decoded.extend(r.offset for r in raw)
        return DecodedBatch(records=raw)

    async def apply_decoded(self, batch: DecodedBatch) -> Any:
        return type("Result", (), {"events": [], "duplicates": 0, "letters": []})()


async def test_records_fetched_while_the_database_s_offsets_are_read_start_from_them(
    monkeypatch: Any,
) -> None:
    kafka = StuckKafkaConsumer()
    kafka.release.set()
    consumer = metrics_consumer(kafka, monkeypatch)
    database = SlowDatabase(stored=4)
    consumer._batch_consumer = database  # type: ignore[assignment]
    positioning = asyncio.create_task(consumer.position({TP}))
    await asyncio.sleep(0)
    # aiokafka hands over what it fetched from the earliest offset meanwhile.
    handling = asyncio.create_task(consumer.handle(records(0, 1, 2, 3, 4, 5)))
    await asyncio.sleep(0.05)
    assert database.decoded == []  # the handler waits for the positioning
    database.release.set()
    await asyncio.wait_for(asyncio.gather(positioning, handling), timeout=5)
    assert kafka.sought == (TP, 4)
    assert database.decoded == [4, 5]
    await consumer.stop()


def test_offset_spans_are_right_in_any_order_of_the_records() -> None:
    """Each partition's least offset and the one after its greatest: per run of one partition's
    records (as a fetch hands them over), and also when partitions interleave or a partition's
    records come out of order (a run per record, one partition in several runs)."""
    from shared.consumer import offset_spans

    def rec(topic: str, partition: int, offset: int) -> RawRecord:
        return RawRecord(topic, partition, offset, None, b"")

    fetched = [rec("a", 0, o) for o in range(5, 9)] + [rec("a", 1, o) for o in range(2, 4)]
    assert offset_spans(fetched) == {("a", 0): (5, 9), ("a", 1): (2, 4)}
    scattered = [rec("a", 0, 7), rec("b", 0, 1), rec("a", 0, 3), rec("a", 1, 9), rec("a", 0, 5)]
    assert offset_spans(scattered) == {("a", 0): (3, 8), ("b", 0): (1, 2), ("a", 1): (9, 10)}
    assert offset_spans([]) == {}
    firsts = module._firsts(scattered)
    assert firsts == {
        TopicPartition("a", 0): 3,
        TopicPartition("b", 0): 1,
        TopicPartition("a", 1): 9,
    }
    assert module._ends(scattered)[TopicPartition("a", 0)] == 8


def test_fetches_are_bounded_as_configured() -> None:
    """What a Kafka fetch may bring waits in the process until a batch takes it: with aiokafka's
    50 MB per fetch and 4 MiB per partition an instance's first fetch (every partition at once)
    took its RSS past 250 MB (docs/benchmarks.md). The settings reach aiokafka's consumer."""
    from services.metrics.settings import MetricsSettings

    settings = MetricsSettings(
        consumer_partition_fetch_bytes=512 * 1024, consumer_fetch_bytes=3 * 1024 * 1024
    )
    consumer = MetricsConsumer(
        None,
        bootstrap="127.0.0.1:1",
        group_id="fetch-bounds",
        partition_fetch_bytes=settings.consumer_partition_fetch_bytes,
        fetch_bytes=settings.consumer_fetch_bytes,
    )
    args = consumer.broker.subscribers[0]._connection_args  # type: ignore[attr-defined]
    assert args["max_partition_fetch_bytes"] == 512 * 1024
    assert args["fetch_max_bytes"] == 3 * 1024 * 1024
    defaults = MetricsSettings()
    assert defaults.consumer_fetch_bytes <= 8 * 1024 * 1024
    assert defaults.consumer_partition_fetch_bytes <= defaults.consumer_fetch_bytes
