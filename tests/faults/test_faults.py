"""Nothing accepted with a 2xx is lost and nothing is counted twice, whatever breaks.

Each scenario gets a fresh deployment (database, topic prefix, consumer group, the three
services) on the suite's private stack, drives a seeded simulator load through the public HTTP
API, injects its fault mid-load, lets the system recover and then compares ``/v1/indicators``
over several periods with ``expected_figures`` of the simulator's ledger, exactly, and every
accepted write with the metrics service's facts. Each adds a row to docs/fault-report.md.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from shared.events import topic_name
from shared.kafka import partitions_of, topic_partitions
from shared.timerules import AMSTERDAM
from tests.faults.harness import (
    Deployment,
    Load,
    ScenarioResult,
    Stack,
    Verdict,
    converge,
    periods_to_compare,
    recovery_time,
)

TODAY = datetime.now(AMSTERDAM).date()
PERIODS = periods_to_compare(TODAY)
YEAR = 365.25 * 86400

Deploy = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def deploy(stack: Stack) -> AsyncIterator[Deploy]:
    made: list[Deployment] = []

    async def factory(name: str, *, relay_in_process: bool = True) -> Deployment:
        deployment = await Deployment.create(stack, name, relay_in_process=relay_in_process)
        made.append(deployment)
        await deployment.start()
        return deployment

    yield factory
    for deployment in made:
        await deployment.stop()


class Clock:
    """Moments of a scenario: wall clock (for the database) and monotonic (for durations)."""

    def __init__(self) -> None:
        self.marks: dict[str, tuple[datetime, float]] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = (datetime.now(UTC), time.monotonic())

    def at(self, name: str) -> datetime:
        return self.marks[name][0]

    def mono(self, name: str) -> float:
        return self.marks[name][1]

    def span(self, start: str, end: str) -> float:
        return self.mono(end) - self.mono(start)


async def finish(
    record: Any,
    scenario: str,
    fault: str,
    deployment: Deployment,
    load: Load,
    sending: asyncio.Task[Any],
    recovery: asyncio.Task[float | None] | None,
    notes: list[str],
    clock: Clock | None = None,
) -> tuple[ScenarioResult, Verdict]:
    """Wait for the load, then for the figures; record the row; return it with the verdict.

    Recovery is the time from the fault's removal until the system is whole again: every event
    of a write accepted by then counted, and (if the partners were still writing) writes
    accepted again."""
    await sending
    verdict, converged = await converge(deployment, load, PERIODS)
    recovered = await recovery if recovery is not None else None
    if recovered is not None and clock is not None and load.finished > clock.mono("cleared"):
        recovered = max(recovered, load.first_ok_after(clock.mono("cleared")) or 0.0)
    records, events = await kafka_copies(deployment)
    result = ScenarioResult(
        scenario=scenario,
        fault=fault,
        events_sent=load.sent,
        accepted=verdict.accepted,
        counted=verdict.counted,
        lost=verdict.lost,
        double_counted=verdict.double_counted,
        recovery_s=round(recovered, 1) if recovered is not None else None,
        converged_s=round(converged, 1),
        load_s=round(load.finished - load.started, 1),
        retries=load.retries,
        http=load.http,
        kafka_duplicates_absorbed=records - events,
        indicators_compared=verdict.indicators_compared,
        periods=verdict.periods,
        notes=notes,
        mismatches=verdict.mismatches[:20],
        passed=verdict.exact and all(s.ok for s in load.summaries),
    )
    record(result)
    return result, verdict


def assert_exact(
    result: ScenarioResult, verdict: Verdict, load: Load, *, recovers: bool = True
) -> None:
    for summary in load.summaries:
        assert summary.ok, f"not every write was accepted in the end: {summary.render()}"
    assert verdict.lost == 0, f"lost: {verdict.facts_missing}"
    assert verdict.double_counted == 0, f"counted twice or never accepted: {verdict.facts_extra}, counted {verdict.counted} of {verdict.accepted}"  # fmt: skip
    assert verdict.mismatches == [], "\n".join(verdict.mismatches[:30])
    assert verdict.counted == verdict.accepted == len(load.writes)
    if recovers:
        assert result.recovery_s is not None, "the backlog did not drain within the bound"
    assert not [s for s in load.statuses if s.startswith("5") and s != "503"], load.http


def watch_recovery(deployment: Deployment, clock: Clock) -> asyncio.Task[float | None]:
    return asyncio.create_task(
        recovery_time(deployment, clock.at("cleared"), clock.mono("cleared"))
    )


# ------------------------------------------------------------------------------- scenarios


async def test_1_kafka_broker_killed_mid_load_and_restarted(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f1")
    load = Load.simulate(1, residents, TODAY, tmp_path)
    clock = Clock()
    sending = asyncio.create_task(load.send(d))
    await load.until_answered(0.4)
    clock.mark("injected")
    await stack.kafka_kill()
    await asyncio.sleep(2)  # partners write on while the broker is gone
    await stack.kafka_start()  # returns once it serves again (re-registration after SIGKILL)
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    result, verdict = await finish(
        record, "1 Kafka SIGKILL", "the broker is killed (SIGKILL) at 40 % of the load and "
        "restarted at once; writes go on throughout.", d, load, sending, recovery,
        [f"Broker down and back in {clock.span('injected', 'cleared'):.1f} s (restart and re-registration included)."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)
    assert load.retries == 0, f"writes never need Kafka: {load.http}"


async def test_2_postgresql_stopped_mid_load_and_restarted(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f2")
    load = Load.simulate(2, residents, TODAY, tmp_path)
    clock = Clock()
    sending = asyncio.create_task(load.send(d))
    await load.until_answered(0.4)
    clock.mark("injected")
    await stack.pg_stop()
    before = Counter(load.statuses)
    await asyncio.sleep(10)  # the partners keep trying: 503 with Retry-After, backoff
    during = dict(load.statuses - before)
    await stack.pg_start()
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    await sending
    resumed = load.first_ok_after(clock.mono("cleared"))
    result, verdict = await finish(
        record, "2 PostgreSQL stopped", "PostgreSQL is stopped (fast shutdown) at 40 % of the "
        "load for 10 s and started again; the partners' requests meanwhile get 503 and are "
        "retried by the simulator until accepted.", d, load, sending, recovery,
        [f"Answers during the outage: {during}; the first batch was accepted again "
         f"{resumed or 0:.1f} s after PostgreSQL was back."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)
    assert set(during) == {"503"}, f"writes during the outage get 503: {during}"
    assert "500" not in load.statuses, load.http
    for service in ("registrations", "referrals"):
        # A 503 is an ordinary answer, not an exception escaping the app (which uvicorn logs as
        # a traceback, dropping the connection).
        assert "Exception in ASGI application" not in d.log(service), service
    assert load.retries > 0


async def test_2b_postgresql_crashes_mid_load_and_restarts(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f2b")
    load = Load.simulate(22, residents, TODAY, tmp_path)
    clock = Clock()
    sending = asyncio.create_task(load.send(d))
    await load.until_answered(0.4)
    clock.mark("injected")
    # No checkpoint, no flush: the metrics consumer's last commits, made without waiting for
    # their WAL (consumer_synchronous_commit), may be gone after recovery.
    await stack.pg_crash()
    await asyncio.sleep(2)
    await stack.pg_start()  # crash recovery replays the WAL
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    await sending
    noticed = d.log("metrics").count("DatabaseRestarted")
    result, verdict = await finish(
        record, "2b PostgreSQL crash", "PostgreSQL is stopped as a crash would stop it "
        "(immediate shutdown: no checkpoint) at 40 % of the load and started again after 2 s; "
        "the metrics consumer commits without waiting for its WAL, so a crash may take back its "
        "last batches, which it must read again.", d, load, sending, recovery,
        [f"Down and recovered in {clock.span('injected', 'cleared'):.1f} s; the metrics "
         f"service logged a restarted server {noticed} time(s)."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)
    assert "500" not in load.statuses, load.http


async def test_3a_metrics_service_killed_mid_batch_and_restarted(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f3a")
    load = Load.simulate(3, residents, TODAY, tmp_path)
    clock = Clock()
    sending = asyncio.create_task(load.send(d))
    await load.until_answered(0.4)
    before = await d.applied()
    await until(
        lambda: changed(d.applied, before), what="the metrics service applying"
    )  # kill it mid-batch
    clock.mark("injected")
    pid = d.kill_metrics()
    at_kill = await d.applied()
    await asyncio.sleep(2)
    await d.start_metrics()
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    result, verdict = await finish(
        record, "3a metrics SIGKILL", "the metrics service is killed (SIGKILL) while it applies "
        "batches, at 40 % of the load, and restarted 2 s later.", d, load, sending, recovery,
        [f"Killed pid {pid} with {at_kill:,} events applied; back in {clock.span('injected', 'cleared'):.1f} s."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)


async def test_3b_outbox_relay_killed_mid_publish_and_restarted(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f3b", relay_in_process=False)
    load = Load.simulate(4, residents, TODAY, tmp_path)
    clock = Clock()
    sending = asyncio.create_task(load.send(d))
    await load.until_answered(0.4)
    # Rows waiting means a relay has a publish to do: strike then. (A threshold of 100 was not
    # always reached on a loaded machine, where the partners write slower than the relay sends.)
    await until(lambda: at_least(d.outbox_backlog, 1), what="rows waiting in the outboxes")
    clock.mark("injected")
    killed = await d.kill_relays()
    backlog = await d.outbox_backlog()  # rows of an interrupted publish stay and go again
    await asyncio.sleep(2)
    for service in ("registrations", "referrals"):
        await d.start_relay(service)
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    result, verdict = await finish(
        record, "3b relay SIGKILL", "the standalone outbox relays (`verbinding relay "
        "registrations` / `referrals`, services with VERBINDING_RELAY_IN_PROCESS=false) are "
        "killed (SIGKILL) while publishing, at 40 % of the load, and restarted 2 s later.",
        d, load, sending, recovery,
        [f"Killed {len(killed)} relays while rows waited in the outboxes; "
         f"{backlog:,} were left right after the kill."],
        clock,
    )  # fmt: skip
    assert len(killed) == 2
    assert_exact(result, verdict, load)


async def test_4_every_event_delivered_twice(stack, deploy, residents, record, tmp_path):
    d = await deploy("f4")
    load = Load.simulate(5, residents, TODAY, tmp_path)
    first = asyncio.create_task(load.send(d))
    await load.until_answered(0.3)
    # The partner retries everything: the whole load again, overlapping the first pass.
    second = asyncio.create_task(load.send(d))
    await first
    result, verdict = await finish(record, "4 everything twice", "", d, load, second, None, [])
    assert_exact(result, verdict, load, recovers=False)
    # Then every event on Kafka a second time, as a redelivery would bring it.
    await produce_every_record_again(d)
    await wait_for_group(d)
    again, _ = await converge(d, load, PERIODS)
    records, events = await kafka_copies(d)
    duplicates = records - events
    result.kafka_duplicates_absorbed = duplicates
    result.counted, result.double_counted = again.counted, again.double_counted
    result.mismatches, result.passed = again.mismatches[:20], result.passed and again.exact
    result.fault = (
        "the partners send the whole load twice (the second pass starts at 30 % of the first "
        "and overlaps it: every write arrives twice, concurrently or as a replay); then every "
        "record on the five consumed topics is produced a second time, as a redelivery."
    )
    result.notes = [f"{sum(load.summaries[1].by_kind.values()):,} writes of the second pass answered 2xx (replays)."]  # fmt: skip
    assert again.exact, again.mismatches[:30]
    assert again.counted == len(load.writes)
    assert duplicates >= len(load.writes)


async def test_5_a_second_metrics_instance_joins_and_leaves_mid_load(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f5")
    load = Load.simulate(6, residents, TODAY, tmp_path)
    clock = Clock()
    # Paced (a simulated month every ~4 s), so that the second instance works for a while.
    sending = asyncio.create_task(load.send(d, speed=YEAR / 50, window=timedelta(days=30)))
    await load.until_answered(0.2)
    clock.mark("joined")
    await d.start_metrics("metrics2")
    await load.until_answered(0.75)
    # On a slow machine the second instance may still be joining: give it a bounded moment.
    await until(lambda: at_least(lambda: consumed_by(d, "metrics2"), 1), what="instance 2 applying")  # fmt: skip
    applied_by_second = await consumed_by(d, "metrics2")
    clock.mark("injected")
    await d.stop_metrics("metrics2")
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    result, verdict = await finish(
        record, "5 second metrics instance", "a second metrics instance (same consumer group, "
        "another port) joins at 20 % of a paced load (a simulated month every ~4 s) and leaves "
        "(SIGTERM) at 75 %: two rebalances under load.", d, load, sending, recovery,
        [f"The second instance applied {applied_by_second:,} events while in the group ({clock.span('joined', 'injected'):.0f} s)."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)
    assert applied_by_second > 0, "the second instance took part (partitions were moved to it)"


async def test_6_kafka_unreachable_for_a_minute_while_partners_write(stack, deploy, residents, record, tmp_path):  # fmt: skip
    d = await deploy("f6")
    load = Load.simulate(7, residents, TODAY, tmp_path)
    clock = Clock()
    # Paced: a simulated month every ~6 s, so that the partners write all through the outage.
    sending = asyncio.create_task(load.send(d, speed=YEAR / 80, window=timedelta(days=30)))
    await load.until_answered(0.1)
    clock.mark("injected")
    await stack.kafka_stop()
    answered = load.answered
    await asyncio.sleep(5)  # a batch fetched before the stop may still be applied
    applied = await d.applied()
    await asyncio.sleep(55)
    during = load.answered - answered
    backlog = await d.outbox_backlog()
    assert await d.applied() == applied, "nothing is consumed while the broker is away"
    await stack.kafka_start()
    clock.mark("cleared")
    recovery = watch_recovery(d, clock)
    result, verdict = await finish(
        record, "6 Kafka away 60 s", "the broker is stopped for 60 s at 10 % of a paced load "
        "(a simulated month every ~6 s) while the partners keep writing, then started again.",
        d, load, sending, recovery,
        [f"{during} batch requests accepted during the outage; {backlog:,} events waited in the outboxes when the broker came back."],
        clock,
    )  # fmt: skip
    assert_exact(result, verdict, load)
    assert during > 0, "the partners wrote during the outage"
    assert backlog > 0, "and their events waited in the outboxes"
    assert load.retries == 0, f"every write accepted at once: {load.http}"
    assert set(load.statuses) == {"200"}, f"every write accepted at once: {load.http}"


# --------------------------------------------------------------------------------- helpers


async def until(check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 60) -> None:
    """Poll ``check`` (bounded); the moment it holds is the moment to strike."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def changed(read: Callable[[], Awaitable[int]], before: int) -> bool:
    return await read() != before


async def at_least(read: Callable[[], Awaitable[int]], n: int) -> bool:
    return await read() >= n


async def consumed_by(d: Deployment, instance: str) -> int:
    """Events a metrics instance applied, from its own Prometheus exposition (scraped with the
    deployment's `metrics` key, as Prometheus would)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{d.url(instance)}/metrics", headers={"Authorization": f"Bearer {d.metrics_key}"}
        )
        response.raise_for_status()
        text = response.text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("verbinding_metrics_events_consumed_total{")
        )
    )


def consumed_topics(d: Deployment) -> list[str]:
    return [topic_name(t, d.prefix) for t in CONSUMED_TOPICS]


async def produce_every_record_again(d: Deployment) -> None:
    """Every record of the consumed topics once more (same key, same bytes), as a redelivery
    would bring it."""
    records = await read_all(d)
    producer = AIOKafkaProducer(bootstrap_servers=d.stack.bootstrap, acks="all", enable_idempotence=True)  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(d: Deployment) -> list[Any]:
    """Every record of the consumed topics, from the beginning to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=d.stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(d.stack.bootstrap, consumed_topics(d))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def kafka_copies(d: Deployment) -> tuple[int, int]:
    """Records on the consumed topics, and distinct events among them (the relay publishes
    the bytes stored in the outbox, so a republished event is the same bytes)."""
    records = await read_all(d)
    return len(records), len({r.value for r in records})


async def wait_for_group(d: Deployment, timeout: float = 120) -> None:
    """Bounded wait until the metrics consumer group has committed up to the end of every
    consumed topic (it has read, and skipped, the copies)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=d.stack.bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=d.stack.bootstrap, enable_auto_commit=False)
    await admin.start()
    await probe.start()
    try:
        partitions = await partitions_of(admin, consumed_topics(d))
        ends = await probe.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(f"metrics-{d.name}")
            behind = sum(
                ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions
            )
            if behind <= 0:
                return
            assert time.monotonic() < deadline, f"the consumer group is {behind} records behind"
            await asyncio.sleep(0.5)
    finally:
        await probe.stop()
        await admin.close()
