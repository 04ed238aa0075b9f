"""The aggregation bench times a group of metrics instances from the moment the group is whole
(tools/bench/cases.py, ``_group_settled``): the first instance to join is given every partition
and works alone until the group rebalances for the others. Whole is read from the broker's
description of the group, whose layout is checked here against the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import Topic, topic_name
from shared.kafka import ensure_topics
from tools.bench.cases import _group_settled


async def _until(
    condition: Callable[[], Awaitable[bool]], consumers: list[AIOKafkaConsumer], timeout: float
) -> None:
    """Poll the consumers (their group membership runs in the background) until
    ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "the group did not get there in time"
        for consumer in consumers:
            await consumer.getmany(timeout_ms=100)


async def test_a_group_is_settled_once_every_member_has_its_partitions(
    kafka: str, topic_prefix: str
) -> None:
    await ensure_topics(kafka, topic_prefix, topics=[Topic.REGISTRATIONS], partitions=4)
    topic = topic_name(Topic.REGISTRATIONS, topic_prefix)
    group = f"settled-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    consumers: list[AIOKafkaConsumer] = []
    try:
        for _ in range(2):
            consumers.append(
                AIOKafkaConsumer(
                    topic, bootstrap_servers=kafka, group_id=group, enable_auto_commit=False
                )
            )
        first, second = consumers
        await first.start()
        await _until(lambda: _group_settled(admin, group, 1), [first], 30)
        assert len(first.assignment()) == 4
        # One member settled is not a group of two.
        assert not await _group_settled(admin, group, 2)

        await second.start()
        await _until(lambda: _group_settled(admin, group, 2), [first, second], 30)
        # Settled means rebalanced: each has its share of the four partitions.
        await _until(lambda: _both_assigned(first, second), [first, second], 30)
        assert len(first.assignment()) + len(second.assignment()) == 4
    finally:
        for consumer in consumers:
            await consumer.stop()
        await admin.close()


async def _both_assigned(first: AIOKafkaConsumer, second: AIOKafkaConsumer) -> bool:
    return bool(first.assignment()) and bool(second.assignment())
