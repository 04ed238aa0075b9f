"""Rebuild from the topics gives the same figures as live consumption, and the old figures stay
readable while it runs (issue "Rebuild")."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.metrics.adapters.queries import BREAKDOWNS
from services.metrics.domain.periods import parse_period
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from services.metrics.service_layer.rebuild import REBUILD_LOCK, rebuild
from shared.events import Topic, topic_name
from shared.kafka import ensure_topics
from tests.conftest import KAFKA
from tests.integration.test_metrics_scale import history
from tests.integration.test_metrics_scenario import (
    P1,
    A,
    attendance,
    consumers,
    create_metrics_schema,
    drop_schema,
    publish,
    scenario,
    service,
    wait_applied,
)

pytestmark = pytest.mark.integration

PERIODS = ("2013-10", "2014-01", "2014-Q1", "2014", "2015-03", "2015-Q3", "2015")


async def everything(svc: Any) -> dict[tuple[str, str | None], Any]:
    out = {}
    for label in PERIODS:
        for by in (None, *BREAKDOWNS):
            result = await svc.compute(parse_period(label), by)
            result.pop("generated_at")
            out[(label, by)] = result
    return out


async def test_a_rebuild_from_the_topics_gives_the_live_figures(pool, topic_prefix):
    await ensure_topics(KAFKA, topic_prefix, partitions=4)
    first, second = scenario()
    more = history()  # includes 40 redelivered events
    events = first + second + more
    distinct = len({e.id for e in events})
    live = await create_metrics_schema(pool)
    try:
        async with consumers(
            pool, live, topic_prefix, f"rebuild-{uuid.uuid4().hex[:8]}", shared_lock=REBUILD_LOCK
        ):
            await publish(first + more, topic_prefix)
            await publish(second, topic_prefix)  # late, duplicate and stale events after
            producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
            await producer.start()
            try:
                poison = topic_name(Topic.REGISTRATIONS, topic_prefix)
                await producer.send_and_wait(poison, b"not an event", key=b"poison")
            finally:
                await producer.stop()
            await wait_applied(pool, live, events)
            svc = service(pool, live, k=1)
            before = await everything(svc)
            assert before[("2014", None)]["s2"]["attendances"]["value"] == 13  # the scenario
            assert before[("2015", None)]["freshness"]["events_applied"] == distinct

            # While the replay runs, the live schema keeps answering with the old figures.
            task = asyncio.create_task(
                rebuild(pool, KAFKA, CONSUMED_TOPICS, schema=live, prefix=topic_prefix)
            )
            reads = 0
            while not task.done():
                now = await svc.compute(parse_period("2014"))
                now.pop("generated_at")
                assert now == before[("2014", None)]
                reads += 1
            report = task.result()
            assert reads >= 1
            # Every record was replayed: the events, the 41 redeliveries, the poison.
            assert (report.events, report.applied, report.skipped) == (len(events) + 1, distinct, 1)
            assert report.swapped

            after = await everything(svc)
            assert after == before
            # The live consumer carries on into the swapped-in tables.
            late = attendance(
                A, "after-swap", "A1", P1, "2014-06-03T10:00:00+02:00", date(2014, 6, 3)
            )
            await publish([late], topic_prefix)
            await wait_applied(pool, live, [late])
        result = await svc.compute(parse_period("2014"))
        assert result["s2"]["attendances"]["value"] == 14
        assert result["freshness"]["events_applied"] == distinct + 1
    finally:
        await drop_schema(pool, live)
