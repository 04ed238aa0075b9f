"""The transactional outbox against the real broker and database (contract.md "Delivery").

What a partner relies on: a write that was accepted (committed) reaches Kafka exactly once, even
when Kafka was down at the time; a write that was rolled back never does; one participant's
events stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from shared.events import (
    CloudEvent,
    Participant,
    RegistrationCreated,
    Topic,
    decode_event,
    encode_event,
    new_event,
    topic_name,
)
from shared.kafka import ensure_topics
from shared.outbox import OutboxRelay, enqueue, notify_relays, wakeup
from shared.pseudonym import Pseudonymiser
from tests.conftest import KAFKA, PrivateKafka, eventually, read_records

pytestmark = pytest.mark.integration

PSEUDONYMS = Pseudonymiser("outbox-test-secret")


def registration(n: int, ref: str = "client-1", org: str = "org-outbox") -> CloudEvent[Any]:
    participant = Participant(
        id=PSEUDONYMS.participant(org, ref),
        scope="organisation",
        neighbourhood="delfgauw",
        age_band="75+",
    )
    return new_event(
        RegistrationCreated(
            organisation_id=org,
            registration_id=f"reg-{n}",
            activity_id="act-1",
            participant=participant,
            registered_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        ),
        org,
    )


async def write(
    pool: asyncpg.Pool, schema: str, prefix: str, events: Sequence[CloudEvent[Any]]
) -> None:
    """What a service does: state change and outbox rows in one transaction, then commit, then
    tell the relay (one NOTIFY, after the commit)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, schema, events, prefix)
        await notify_relays(conn, schema)


async def outbox_count(pool: asyncpg.Pool, schema: str) -> int:
    return int(await pool.fetchval(f'SELECT count(*) FROM "{schema}".outbox'))


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def ids_of(records: Sequence[Any]) -> list[str]:
    return [orjson.loads(r.value)["id"] for r in records]


@pytest.fixture
async def registrations_topic(kafka: str, topic_prefix: str) -> str:
    await ensure_topics(kafka, topic_prefix, topics=[Topic.REGISTRATIONS])
    return topic_name(Topic.REGISTRATIONS, topic_prefix)


async def test_an_outbox_row_becomes_exactly_one_kafka_message(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    event = registration(1)
    await write(pool, scratch_schema, topic_prefix, [event])
    relay = OutboxRelay(pool, scratch_schema, KAFKA)

    try:
        assert await relay.publish_once() == 1
        assert await relay.publish_once() == 0  # nothing left, nothing sent again
    finally:
        await relay._drop_producer()

    assert await outbox_count(pool, scratch_schema) == 0
    records = await read_records(registrations_topic, expect=1)
    assert len(records) == 1
    (record,) = records
    assert record.key == PSEUDONYMS.participant("org-outbox", "client-1").encode()
    assert record.value == encode_event(event)
    assert decode_event(record.value) == event


async def test_the_running_relay_publishes_a_committed_write_promptly(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    """A NOTIFY after the commit wakes a relay in another process (LISTEN): with a 60 s poll
    interval, only the notification can explain a prompt publish."""
    relay = OutboxRelay(pool, scratch_schema, KAFKA, poll_interval=60)
    async with running(relay):
        await eventually(lambda: _true_after(relay), timeout=20, what="the relay to connect")
        event = registration(1)
        await write(pool, scratch_schema, topic_prefix, [event])
        await eventually(
            lambda: _empty(pool, scratch_schema), timeout=10, what="the outbox to drain"
        )

    records = await read_records(registrations_topic, expect=1)
    assert ids_of(records) == [str(event.id)]


async def test_the_services_own_relay_is_woken_without_a_notify(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    """In the service's process the active relay is woken directly after the commit: no NOTIFY
    (the wake-up gets no connection to send one on), and still a prompt publish."""
    relay = OutboxRelay(pool, scratch_schema, KAFKA, poll_interval=60)
    after_commit = wakeup(scratch_schema, relay)
    async with running(relay):
        await eventually(lambda: _active(relay), timeout=20, what="the relay to take its lock")
        event = registration(1)
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, scratch_schema, [event], topic_prefix)
        await after_commit(None)  # type: ignore[arg-type]
        await eventually(
            lambda: _empty(pool, scratch_schema), timeout=10, what="the outbox to drain"
        )

    records = await read_records(registrations_topic, expect=1)
    assert ids_of(records) == [str(event.id)]


async def test_writes_committed_while_the_relay_gathers_share_one_publish(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    """After a wake-up the relay waits ``gather_seconds`` before it claims rows: the writes
    committed meanwhile go out in one transaction and one produce request, in commit order.
    (A window of 2 s here, so that a slow machine cannot split the three writes.)"""
    relay = OutboxRelay(pool, scratch_schema, KAFKA, poll_interval=60, gather_seconds=2.0)
    after_commit = wakeup(scratch_schema, relay)
    published: list[int] = []
    publish_once = relay.publish_once

    async def counted(conn: asyncpg.Connection | None = None) -> int:
        n = await publish_once(conn)
        if n:
            published.append(n)
        return n

    relay.publish_once = counted  # type: ignore[method-assign]
    events = [registration(n) for n in range(3)]
    async with running(relay):
        await eventually(lambda: _active(relay), timeout=20, what="the relay to take its lock")
        for event in events:
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, scratch_schema, [event], topic_prefix)
            await after_commit(None)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
        await eventually(
            lambda: _empty(pool, scratch_schema), timeout=10, what="the outbox to drain"
        )

    assert published == [3]
    records = await read_records(registrations_topic, expect=3)
    assert ids_of(records) == [str(e.id) for e in events]


async def _active(relay: OutboxRelay) -> bool:
    return relay.active and relay.kafka_ok


async def _true_after(relay: OutboxRelay) -> bool:
    return relay.kafka_ok


async def _empty(pool: asyncpg.Pool, schema: str) -> bool:
    return await outbox_count(pool, schema) == 0


async def test_a_rolled_back_write_publishes_nothing(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    rolled_back = registration(1)
    committed = registration(2)

    class Abort(Exception):
        pass

    async def failing_write() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, scratch_schema, [rolled_back], topic_prefix)
            raise Abort  # the state change failed after the event was enqueued

    with pytest.raises(Abort):
        await failing_write()
    await write(pool, scratch_schema, topic_prefix, [committed])

    relay = OutboxRelay(pool, scratch_schema, KAFKA)
    async with running(relay):
        await eventually(
            lambda: _empty(pool, scratch_schema), timeout=20, what="the outbox to drain"
        )

    records = await read_records(registrations_topic, expect=1)
    assert ids_of(records) == [str(committed.id)]  # the committed one proves the relay ran


async def test_broker_down_writes_succeed_and_the_backlog_drains_exactly_once(
    pool: asyncpg.Pool, scratch_schema: str, private_kafka: PrivateKafka
) -> None:
    from shared.outbox import PUBLISH_ERRORS

    prefix = "fault."
    topic = topic_name(Topic.REGISTRATIONS, prefix)
    relay = OutboxRelay(pool, scratch_schema, private_kafka.bootstrap, max_backoff=0.5)
    errors = PUBLISH_ERRORS.labels(scratch_schema)
    written: list[CloudEvent[Any]] = []
    loop = asyncio.get_running_loop()

    async def write_while_down(numbers: range) -> None:
        for n in numbers:
            event = registration(n, ref=f"client-{n % 4}")
            started = loop.time()
            await write(pool, scratch_schema, prefix, [event])
            assert loop.time() - started < 2.0, "a write waited for Kafka"
            written.append(event)

    async def state() -> str:
        return (
            f"outbox rows: {await outbox_count(pool, scratch_schema)}, relay kafka_ok: "
            f"{relay.kafka_ok}, failed publishes: {errors._value.get()}\n"
            f"broker log:\n{private_kafka.log_tail()}"
        )

    async with running(relay) as task:
        # 1. The broker is down: every write still commits at once, and waits in the outbox.
        await write_while_down(range(30))
        await eventually(
            lambda: _counted(errors, 2), timeout=30, what="failed publishes", explain=state
        )
        assert await outbox_count(pool, scratch_schema) == 30
        assert not task.done(), "the relay gave up while Kafka was down"

        # 2. The broker comes up: the backlog drains by itself.
        await private_kafka.start()
        await ensure_topics(private_kafka.bootstrap, prefix, topics=[Topic.REGISTRATIONS])
        await eventually(
            lambda: _empty(pool, scratch_schema),
            timeout=60,
            what="the backlog to drain",
            explain=state,
        )

        # 3. The broker is stopped under the connected relay; writes go on; it restarts; those
        #    drain too. (SIGTERM rather than SIGKILL: the same for the relay, a faster restart.)
        await private_kafka.stop()
        await write_while_down(range(30, 45))
        assert await outbox_count(pool, scratch_schema) == 15
        await private_kafka.start()
        await eventually(
            lambda: _empty(pool, scratch_schema),
            timeout=60,
            what="the second backlog to drain",
            explain=state,
        )

    records = await read_records(topic, bootstrap=private_kafka.bootstrap, expect=len(written))
    published = ids_of(records)
    expected = [str(e.id) for e in written]
    missing = set(expected) - set(published)
    duplicated = {i for i in published if published.count(i) > 1}
    assert not missing, f"{len(missing)} accepted events were lost"
    assert not duplicated, f"{len(duplicated)} events were published twice"
    assert len(published) == 45


async def test_each_keys_events_appear_in_enqueue_order(
    pool: asyncpg.Pool, scratch_schema: str, topic_prefix: str, registrations_topic: str
) -> None:
    keys = ["client-a", "client-b", "client-c"]
    events = [registration(n, ref=keys[n % 3] if n % 7 else keys[0]) for n in range(200)]
    expected: dict[bytes, list[str]] = {}
    for event in events:
        expected.setdefault(event.key, []).append(str(event.id))
    # Transactions of 1 to 4 events each, one after the other.
    start = 0
    for size in itertools.cycle([1, 3, 1, 4, 2]):
        if start >= len(events):
            break
        await write(pool, scratch_schema, topic_prefix, events[start : start + size])
        start += size

    relay = OutboxRelay(pool, scratch_schema, KAFKA, batch_size=37)  # several batches
    async with running(relay):
        await eventually(
            lambda: _empty(pool, scratch_schema), timeout=30, what="the outbox to drain"
        )

    records = await read_records(registrations_topic, expect=200)
    assert len(records) == 200
    seen: dict[bytes, list[str]] = {}
    partitions: dict[bytes, set[int]] = {}
    for record in records:  # in offset order within each partition
        seen.setdefault(record.key, []).append(orjson.loads(record.value)["id"])
        partitions.setdefault(record.key, set()).add(record.partition)
    assert seen == expected
    assert all(len(p) == 1 for p in partitions.values()), "a key was spread over partitions"


async def test_a_kafka_timeout_is_reported_as_a_kafka_problem_and_retried(
    pool: asyncpg.Pool,
    scratch_schema: str,
    topic_prefix: str,
    registrations_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker that accepts connections but does not answer ends in a timeout. The relay must
    count it as a failed publish and retry with a fresh producer; it must not tell the operator
    that the database is unavailable."""
    from shared.outbox import PUBLISH_ERRORS

    relay = OutboxRelay(pool, scratch_schema, KAFKA, max_backoff=0.2)
    real_get_producer = relay._get_producer
    hanging = True

    async def get_producer() -> Any:
        if hanging:
            raise TimeoutError  # what asyncio.wait_for(producer.start(), 15) raises
        return await real_get_producer()

    relay._get_producer = get_producer  # type: ignore[method-assign]
    errors = PUBLISH_ERRORS.labels(scratch_schema)
    event = registration(1)
    await write(pool, scratch_schema, topic_prefix, [event])

    with caplog.at_level("INFO", logger="shared.outbox"):
        async with running(relay):
            await eventually(
                lambda: _counted(errors, 2), timeout=10, what="failed publishes to be counted"
            )
            assert await outbox_count(pool, scratch_schema) == 1
            hanging = False
            await eventually(
                lambda: _empty(pool, scratch_schema), timeout=20, what="the outbox to drain"
            )

    messages = [r.getMessage() for r in caplog.records]
    assert "relay: database unavailable" not in messages
    records = await read_records(registrations_topic, expect=1)
    assert ids_of(records) == [str(event.id)]


async def _counted(counter: Any, at_least: int) -> bool:
    return bool(counter._value.get() >= at_least)
