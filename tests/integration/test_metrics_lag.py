"""The metrics consumer knows how far its group is behind (``MetricsConsumer.behind``), from
the real broker's end offsets and the group's committed ones: the indicator snapshot puts
its refreshes off while the group catches up (services/metrics/service_layer/snapshot.py)."""

from __future__ import annotations

import asyncio
import uuid

from services.metrics.entrypoints.consumer import MetricsConsumer
from shared.kafka import ensure_topics
from tests.conftest import KAFKA, eventually
from tests.integration.test_metrics_scenario import publish, scenario


async def test_behind_is_what_the_group_has_yet_to_apply(topic_prefix: str) -> None:
    await ensure_topics(KAFKA, topic_prefix, partitions=4)
    first, _ = scenario()
    events = first[:25]
    await publish(events, topic_prefix)
    # A group that has committed nothing yet: every record is still to apply.
    consumer = MetricsConsumer(
        None,  # type: ignore[arg-type]  # never started: only its lag watch runs
        bootstrap=KAFKA,
        group_id=f"lag-{uuid.uuid4().hex[:8]}",
        prefix=topic_prefix,
    )
    assert consumer.behind() is None  # not observed yet
    stop = asyncio.Event()
    watch = asyncio.create_task(consumer.watch_lag(stop, interval=0.1))
    try:

        async def observed() -> bool:
            return consumer.behind() == len(events)

        await eventually(observed, what=f"a lag of {len(events)} events")
        # An observation older than asked for is not known.
        assert consumer.behind(within=0.0) is None
    finally:
        stop.set()
        await watch
