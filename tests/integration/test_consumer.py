"""Exactly-once in effect, against the real broker and database (contract.md "Delivery").

A consumer's state must count every event once, whatever Kafka does: redeliver a batch, hand a
batch again to a new consumer after a crash between the database commit and the offset commit,
or deliver something that is not a valid event (that goes to `deadletter`, and the rest of the
batch still counts).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.consumer import BatchConsumer, DeadLetter, KafkaDeadLetterSink, RawRecord
from shared.events import (
    CloudEvent,
    DeadLettered,
    Participant,
    RegistrationCreated,
    Topic,
    decode_event,
    encode_event,
    new_event,
    topic_name,
)
from shared.kafka import ensure_topics
from shared.pseudonym import Pseudonymiser
from tests.conftest import KAFKA, eventually, read_records

pytestmark = pytest.mark.integration

PSEUDONYMS = Pseudonymiser("consumer-test-secret")
ORG = "org-consumer"


def registration(n: int, ref: str = "client-1", *, poison: bool = False) -> CloudEvent[Any]:
    participant = Participant(
        id=PSEUDONYMS.participant(ORG, ref),
        scope="organisation",
        neighbourhood="delfgauw",
        age_band="75+",
    )
    return new_event(
        RegistrationCreated(
            organisation_id=ORG,
            registration_id=f"{'poison' if poison else 'reg'}-{n}",
            activity_id="act-1",
            participant=participant,
            registered_at=datetime(2025, 3, 1, 10, 0, tzinfo=UTC),
        ),
        ORG,
    )


class Visits:
    """A consumer's own state: registrations per participant. Deliberately NOT idempotent on
    its own (an increment), so only the tracking records can keep it from double counting."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    async def create(self) -> None:
        await self.pool.execute(
            f'CREATE TABLE "{self.schema}".visits (participant text PRIMARY KEY, n int NOT NULL)'
        )

    async def apply(self, conn: asyncpg.Connection, events: Sequence[CloudEvent[Any]]) -> None:
        for event in events:
            if event.data.registration_id.startswith("poison"):
                raise ValueError(f"cannot apply {event.data.registration_id}")
            await conn.execute(
                f'INSERT INTO "{self.schema}".visits (participant, n) VALUES ($1, 1) '
                "ON CONFLICT (participant) DO UPDATE SET n = visits.n + 1",
                event.data.participant.id,
            )

    async def counts(self) -> dict[str, int]:
        rows = await self.pool.fetch(f'SELECT participant, n FROM "{self.schema}".visits')
        return {r["participant"]: r["n"] for r in rows}

    async def total(self) -> int:
        return int(
            await self.pool.fetchval(f'SELECT coalesce(sum(n), 0) FROM "{self.schema}".visits')
        )


def pid(ref: str) -> str:
    return PSEUDONYMS.participant(ORG, ref)


class RecordingSink:
    """Dead letters kept in memory (for the tests that do not need Kafka)."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


@pytest.fixture
async def visits(pool: asyncpg.Pool, scratch_schema: str) -> Visits:
    state = Visits(pool, scratch_schema)
    await state.create()
    return state


@pytest.fixture
async def topics(kafka: str, topic_prefix: str) -> tuple[str, str]:
    await ensure_topics(kafka, topic_prefix, topics=[Topic.REGISTRATIONS, Topic.DEADLETTER])
    return topic_name(Topic.REGISTRATIONS, topic_prefix), topic_name(Topic.DEADLETTER, topic_prefix)


@pytest.fixture
async def producer(kafka: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    yield producer
    await producer.stop()


def raw(events: Sequence[CloudEvent[Any] | bytes], topic: str = "t.registrations") -> list[Any]:
    out = []
    for offset, item in enumerate(events):
        value = item if isinstance(item, bytes) else encode_event(item)
        key = None if isinstance(item, bytes) else item.key
        out.append(RawRecord(topic, 0, offset, key, value))
    return out


def as_raw(records: Sequence[Any]) -> list[RawRecord]:
    return [RawRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]


async def produce(
    producer: AIOKafkaProducer, topic: str, items: Sequence[CloudEvent[Any] | bytes]
) -> None:
    for item in items:
        if isinstance(item, bytes):
            await producer.send_and_wait(topic, item, key=b"poison-key")
        else:
            await producer.send_and_wait(topic, encode_event(item), key=item.key)


# ------------------------------------------------------------------------------- (a) redelivery


async def test_the_same_batch_handled_twice_is_applied_once(
    pool: asyncpg.Pool, scratch_schema: str, visits: Visits
) -> None:
    events = [registration(n, ref=f"client-{n % 3}") for n in range(9)]
    consumer = BatchConsumer(pool, scratch_schema, visits.apply, RecordingSink())

    first = await consumer.handle(raw(events))
    state = await visits.counts()
    again = await consumer.handle(raw(events))

    assert (first.applied, first.duplicates) == (9, 0)
    assert (again.applied, again.duplicates) == (0, 9)
    assert await visits.counts() == state == {pid(f"client-{i}"): 3 for i in range(3)}
    tracked = await pool.fetchval(f'SELECT count(*) FROM "{scratch_schema}".processed_events')
    assert tracked == 9


async def test_a_duplicate_inside_one_batch_is_applied_once(
    pool: asyncpg.Pool, scratch_schema: str, visits: Visits
) -> None:
    event = registration(1)
    other = registration(2, ref="client-2")
    consumer = BatchConsumer(pool, scratch_schema, visits.apply, RecordingSink())

    result = await consumer.handle(raw([event, other, event]))

    assert (result.applied, result.duplicates) == (2, 1)
    assert await visits.counts() == {pid("client-1"): 1, pid("client-2"): 1}


async def test_a_partly_seen_batch_applies_only_the_new_events(
    pool: asyncpg.Pool, scratch_schema: str, visits: Visits
) -> None:
    old = [registration(n) for n in range(3)]
    new = [registration(n) for n in range(3, 5)]
    consumer = BatchConsumer(pool, scratch_schema, visits.apply, RecordingSink())
    await consumer.handle(raw(old))

    result = await consumer.handle(raw([*old, *new]))

    assert (result.applied, result.duplicates) == (2, 3)
    assert [e.id for e in result.events] == [e.id for e in new]
    assert await visits.total() == 5


async def test_a_failed_transaction_records_nothing_so_the_retry_applies(
    pool: asyncpg.Pool, scratch_schema: str, visits: Visits
) -> None:
    """If the database fails mid-batch, the tracking records roll back with the state: the
    redelivered batch must then be applied, not skipped as already seen."""
    events = [registration(n) for n in range(3)]
    outage = True

    async def flaky_apply(conn: asyncpg.Connection, batch: Sequence[CloudEvent[Any]]) -> None:
        await visits.apply(conn, batch)
        if outage:
            raise ConnectionResetError("database went away")  # treated as unavailable

    consumer = BatchConsumer(pool, scratch_schema, flaky_apply, RecordingSink())
    with pytest.raises(ConnectionResetError):
        await consumer.handle(raw(events))
    assert await visits.total() == 0

    outage = False
    result = await consumer.handle(raw(events))

    assert result.applied == 3
    assert await visits.total() == 3


# ------------------------------------------- (b) killed between the DB commit and offset commit


async def _group_consumer(group: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=KAFKA,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    return consumer


async def _fetch(consumer: AIOKafkaConsumer, at_least: int, timeout: float = 20.0) -> list[Any]:
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(records) < at_least:
        assert loop.time() < deadline, f"got {len(records)} of {at_least} records"
        batch = await consumer.getmany(timeout_ms=200)
        for msgs in batch.values():
            records.extend(msgs)
    return records


async def test_crash_between_db_commit_and_offset_commit_changes_nothing_on_redelivery(
    pool: asyncpg.Pool,
    scratch_schema: str,
    visits: Visits,
    topics: tuple[str, str],
    producer: AIOKafkaProducer,
) -> None:
    topic, _ = topics
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = [registration(n, ref=f"client-{n % 2}") for n in range(5)]
    await produce(producer, topic, first)
    handler = BatchConsumer(pool, scratch_schema, visits.apply, RecordingSink())

    crashed = await _group_consumer(group, topic)
    try:
        records = await _fetch(crashed, 5)
        result = await handler.handle(as_raw(records))  # the DB transaction commits ...
        assert result.applied == 5
    finally:
        await crashed.stop()  # ... and the process dies before consumer.commit()
    state_after_crash = await visits.counts()

    later = [registration(n, ref="client-9") for n in range(5, 7)]
    await produce(producer, topic, later)

    restarted = await _group_consumer(group, topic)
    try:
        records = await _fetch(restarted, 7)  # everything since the last committed offset
        result = await handler.handle(as_raw(records))
        await restarted.commit()
    finally:
        await restarted.stop()

    assert (result.applied, result.duplicates) == (2, 5)
    assert {k: v for k, v in (await visits.counts()).items() if k != pid("client-9")} == (
        state_after_crash
    )
    assert await visits.counts() == {pid("client-0"): 3, pid("client-1"): 2, pid("client-9"): 2}

    # After the commit, a third consumer of the group gets nothing to do.
    third = await _group_consumer(group, topic)
    try:
        await eventually(lambda: _assigned(third), timeout=20, what="partition assignment")
        leftover = await third.getmany(timeout_ms=1500)
    finally:
        await third.stop()
    assert sum(len(v) for v in leftover.values()) == 0


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.assignment())


# ------------------------------------------------------------------------------- (c) poison


async def test_poison_lands_in_deadletter_with_reason_and_original_bytes(
    pool: asyncpg.Pool,
    scratch_schema: str,
    visits: Visits,
    topic_prefix: str,
    topics: tuple[str, str],
    producer: AIOKafkaProducer,
) -> None:
    topic, deadletter_topic = topics
    good = [registration(1, ref="client-a"), registration(2, ref="client-b")]
    not_json = b"\x00\x01 this is not json"
    future_version = orjson.loads(encode_event(registration(3)))
    future_version["type"] = "nl.verbinding.registration.created.v9"
    unknown_version = orjson.dumps(future_version)
    unappliable = registration(4, poison=True)
    batch = [
        RawRecord(topic, 1, 10, b"k-not-json", not_json),
        RawRecord(topic, 1, 11, good[0].key, encode_event(good[0])),
        RawRecord(topic, 2, 20, None, unknown_version),
        RawRecord(topic, 2, 21, unappliable.key, encode_event(unappliable)),
        RawRecord(topic, 3, 30, good[1].key, encode_event(good[1])),
    ]
    sink = KafkaDeadLetterSink(producer, "consumer-test", topic_prefix)
    consumer = BatchConsumer(pool, scratch_schema, visits.apply, sink)

    result = await consumer.handle(batch)

    assert (result.applied, result.dead_lettered) == (2, 3)
    assert await visits.counts() == {pid("client-a"): 1, pid("client-b"): 1}
    letters = [decode_event(r.value) for r in await read_records(deadletter_topic, expect=3)]
    assert len(letters) == 3
    by_offset = {e.data.origin_offset: e.data for e in letters}
    assert set(by_offset) == {10, 20, 21}
    for data in by_offset.values():
        assert isinstance(data, DeadLettered)
        assert data.consumer == "consumer-test"
        assert data.origin_topic == topic
    assert by_offset[10].reason.startswith("not JSON")
    assert base64.b64decode(by_offset[10].original_value) == not_json
    assert base64.b64decode(by_offset[10].original_key or "") == b"k-not-json"
    assert by_offset[10].origin_partition == 1
    assert by_offset[20].reason == "unknown major version v9 of registration.created"
    assert base64.b64decode(by_offset[20].original_value) == unknown_version
    assert by_offset[20].original_key is None
    assert "could not apply nl.verbinding.registration.created.v2" in by_offset[21].reason
    assert "cannot apply poison-4" in by_offset[21].reason
    assert base64.b64decode(by_offset[21].original_value) == encode_event(unappliable)
    assert base64.b64decode(by_offset[21].original_key or "") == unappliable.key

    # The consumer carries on: the next batch is applied as usual.
    after = registration(5, ref="client-a")
    result = await consumer.handle([RawRecord(topic, 1, 12, after.key, encode_event(after))])
    assert result.applied == 1
    assert await visits.counts() == {pid("client-a"): 2, pid("client-b"): 1}


async def test_poison_is_dead_lettered_even_if_the_first_dead_letter_attempt_failed(
    pool: asyncpg.Pool, scratch_schema: str, visits: Visits
) -> None:
    """Kafka may refuse the dead letter (down for a moment): the handler fails, offsets are not
    committed, the batch comes again. The poison must then still reach `deadletter`, not be
    skipped as "already processed"."""

    class FlakySink(RecordingSink):
        failures = 1

        async def send(self, letters: Sequence[DeadLetter]) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionRefusedError("deadletter topic unreachable")
            await super().send(letters)

    sink = FlakySink()
    consumer = BatchConsumer(pool, scratch_schema, visits.apply, sink)
    batch = raw([registration(1), registration(2, poison=True)])

    with pytest.raises(ConnectionRefusedError):
        await consumer.handle(batch)
    result = await consumer.handle(batch)  # the redelivery

    assert [letter.record.offset for letter in sink.letters] == [1]
    assert "cannot apply poison-2" in sink.letters[0].reason
    assert result.dead_lettered == 1
    assert await visits.total() == 1


# ------------------------------------------------------- (d) a real consumer over the real topic


async def test_a_real_consumer_loop_applies_each_event_once_and_moves_past_poison(
    pool: asyncpg.Pool,
    scratch_schema: str,
    visits: Visits,
    topic_prefix: str,
    topics: tuple[str, str],
    producer: AIOKafkaProducer,
) -> None:
    topic, deadletter_topic = topics
    events = [registration(n, ref=f"client-{n % 4}") for n in range(40)]
    poison = registration(99, ref="client-0", poison=True)
    # The broker delivers some events twice (a producer retry, a replay): same id, same bytes.
    stream: list[CloudEvent[Any] | bytes] = [*events[:20], poison, b"{broken", *events[10:]]
    await produce(producer, topic, stream)

    group = f"g-{uuid.uuid4().hex[:8]}"
    handler = BatchConsumer(
        pool, scratch_schema, visits.apply, KafkaDeadLetterSink(producer, group, topic_prefix)
    )
    consumer = await _group_consumer(group, topic)
    handled = 0
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while handled < len(stream):
            assert loop.time() < deadline, f"handled {handled} of {len(stream)} records"
            batch = await consumer.getmany(timeout_ms=200, max_records=7)
            records = [r for msgs in batch.values() for r in msgs]
            if not records:
                continue
            await handler.handle(as_raw(records))
            await consumer.commit()  # only after the transaction and the dead letters
            handled += len(records)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in partitions}
    finally:
        await consumer.stop()

    assert await visits.counts() == {pid(f"client-{i}"): 10 for i in range(4)}
    assert committed == ends
    letters = [decode_event(r.value).data for r in await read_records(deadletter_topic, expect=2)]
    assert sorted(base64.b64decode(d.original_value) for d in letters) == sorted(
        [b"{broken", encode_event(poison)]
    )
