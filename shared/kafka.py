"""Kafka helpers shared by the services: topic creation and a cheap reachability check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events import Topic, topic_name

__all__ = ["ensure_topics", "kafka_reachable"]

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    prefix: str = "",
    *,
    partitions: int = 4,
    replication: int = 1,
    topics: Iterable[Topic] = tuple(Topic),
) -> None:
    """Create the platform's topics if missing. Events are kept forever: rebuilds replay them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic_name(t, prefix),
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs={"retention.ms": "-1"},
            )
            for t in topics
            if topic_name(t, prefix) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("topics created", extra={"topics": [t.name for t in wanted]})
    finally:
        await admin.close()


async def kafka_reachable(bootstrap: str, wait: float = 1.0) -> bool:
    """True if any bootstrap server accepts a TCP connection (the broker opens its port only
    once it is ready)."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), wait)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True
    return False
