"""Every event is counted exactly once (contract.md "Delivery"; issue "Exactly-once"): under
redelivery of a whole batch, after a crash between the database commit and the offset commit,
and with poison messages on the topics, which go to ``deadletter`` while consumption goes on.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any, ClassVar

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

from services.metrics.adapters.facts import FactWriter
from services.metrics.domain.periods import parse_period
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from shared.consumer import BatchConsumer, BatchResult, DeadLetter, DecodedBatch, RawRecord
from shared.events import CloudEvent, DeadLettered, Topic, decode_event, encode_event, topic_name
from shared.kafka import ensure_topics
from tests.conftest import KAFKA, RUN_ID, TOPIC_PREFIX, eventually, read_records
from tests.integration.test_metrics_scenario import (
    RecordingBatchConsumer,
    activity,
    attendance,
    consumers,
    create_metrics_schema,
    drop_schema,
    person,
    publish,
    scenario,
    service,
    wait_applied,
)

pytestmark = pytest.mark.integration

PERIODS = ("2013-10", "2013-Q4", "2014-01", "2014-Q1", "2014")
BREAKDOWNS = (None, "neighbourhood", "organisation", "referrer_role")


async def figures(pool: asyncpg.Pool, schema: str) -> dict[tuple[str, str | None], Any]:
    """Everything the service would publish for the scenario's periods (k = 1: all non-zero
    figures show), without the time the answer was generated."""
    svc = service(pool, schema, k=1, control="off")
    out = {}
    for label in PERIODS:
        for by in BREAKDOWNS:
            result = await svc.compute(parse_period(label), by)
            result.pop("generated_at")
            out[(label, by)] = result
    return out


async def fact_rows(pool: asyncpg.Pool, schema: str) -> dict[str, int]:
    tables = ("activity_versions", "attendance", "registrations", "cancellations", "referrals")
    tables += ("referral_status", "trainings", "measurements", "processed_events")
    return {t: await pool.fetchval(f'SELECT count(*) FROM "{schema}".{t}') for t in tables}


async def assert_counted_once(
    pool: asyncpg.Pool, schema: str, events: Sequence[CloudEvent[Any]]
) -> None:
    """The scenario's events each applied once: one row each in the log, and the year's
    attendances and referrals as counted by hand. Disclosure control off: at k = 2 the engine's
    pattern decides which totals show (with the S3 funnel it hides 2014's referrals, since
    2014-Q1's 5 are shown and 2014-Q2's 1 is not), which says nothing about counting once."""
    assert (await fact_rows(pool, schema))["processed_events"] == len(events)
    result = await service(pool, schema, k=1, control="off").compute(parse_period("2014"))
    assert result["s2"]["attendances"]["value"] == 13
    assert result["s3"]["referrals"]["value"] == 6


@pytest.fixture
async def schema(pool: asyncpg.Pool) -> AsyncIterator[str]:
    name = await create_metrics_schema(pool)
    yield name
    await drop_schema(pool, name)


@pytest.fixture
async def prefix(topic_prefix: str) -> str:
    await ensure_topics(KAFKA, topic_prefix, partitions=4)
    return topic_prefix


async def test_the_same_events_delivered_twice_change_nothing(pool, prefix, schema):
    events, _ = scenario()
    async with consumers(pool, schema, prefix, f"eo-a-{uuid.uuid4().hex[:8]}") as (batch,):
        await publish(events, prefix)
        await wait_applied(pool, schema, events)
        before, rows = await figures(pool, schema), await fact_rows(pool, schema)
        assert before[("2014", None)]["s2"]["attendances"]["value"] == 13  # the scenario's count
        assert rows["processed_events"] == len(events)

        await publish(events, prefix)  # the same ids and bytes, e.g. a relay that resent

        async def all_recognised() -> bool:
            return batch.duplicates == len(events)

        await eventually(all_recognised, what=f"{len(events)} redeliveries recognised")
    assert sum(r.applied for r in batch.results) == len(events)
    assert await fact_rows(pool, schema) == rows
    assert await figures(pool, schema) == before


async def _read_all(consumer: AIOKafkaConsumer, expected: int) -> list[RawRecord]:
    records: list[RawRecord] = []

    async def fetched() -> bool:
        batch = await consumer.getmany(timeout_ms=200)
        records.extend(
            RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for msgs in batch.values()
            for r in msgs
        )
        return len(records) >= expected

    await eventually(fetched, timeout=30, what=f"{expected} records fetched")
    return records


class KeptLetters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


async def test_a_crash_between_database_commit_and_offset_commit_counts_nothing_twice(
    pool, prefix, schema
):
    """The batch is applied and committed in PostgreSQL, then the process dies before Kafka
    learns the offsets: the group's next member gets the same records again."""
    events, _ = scenario()
    await publish(events, prefix)
    topics = [topic_name(t, prefix) for t in CONSUMED_TOPICS]
    group = f"eo-crash-{uuid.uuid4().hex[:8]}"
    letters = KeptLetters()
    apply = BatchConsumer(pool, schema, FactWriter(schema), letters, tracking="offsets")

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=KAFKA,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = member()
    await first.start()
    try:
        records = await _read_all(first, len(events))
        result = await apply.handle(records)  # database commit ...
    finally:
        await first.stop()  # ... and gone, without committing offsets
    assert (result.applied, result.duplicates, result.dead_lettered) == (len(events), 0, 0)
    before, rows = await figures(pool, schema), await fact_rows(pool, schema)
    assert before[("2014", None)]["s2"]["attendances"]["value"] == 13

    second = member()
    await second.start()
    try:
        again = await _read_all(second, len(events))
        assert sorted((r.topic, r.partition, r.offset) for r in again) == sorted(
            (r.topic, r.partition, r.offset) for r in records
        )
        result = await apply.handle(again)
        await second.commit()  # now the offsets follow the database
    finally:
        await second.stop()
    assert (result.applied, result.duplicates, result.dead_lettered) == (0, len(events), 0)
    assert await fact_rows(pool, schema) == rows
    assert await figures(pool, schema) == before
    assert letters.letters == []

    third = member()
    await third.start()
    try:
        leftover = await third.getmany(timeout_ms=1500)
    finally:
        await third.stop()
    assert sum(len(m) for m in leftover.values()) == 0


class CrashAfterCommit(RecordingBatchConsumer):
    """Applies (and commits) the first batch, then fails as a crash would, before its offsets
    are committed to Kafka; from then on it behaves."""

    crashed = False

    async def apply_decoded(self, batch: DecodedBatch) -> BatchResult:
        result = await super().apply_decoded(batch)
        if not CrashAfterCommit.crashed and result.applied:
            CrashAfterCommit.crashed = True
            raise RuntimeError("killed after the database commit")
        return result


async def test_the_service_entrypoint_redelivers_a_failed_batch_without_double_counting(
    pool, prefix, schema, monkeypatch
):
    """Through the service's own Kafka entrypoint: a batch whose handler fails after the
    database commit is not acknowledged; the consumer goes on from the database's offsets,
    which hold it, and counts nothing twice (the same events published again are recognised)."""
    import tests.integration.test_metrics_scenario as kit

    monkeypatch.setattr(kit, "RecordingBatchConsumer", CrashAfterCommit)
    monkeypatch.setattr(CrashAfterCommit, "crashed", False)
    events, _ = scenario()
    async with consumers(pool, schema, prefix, f"eo-nack-{uuid.uuid4().hex[:8]}") as (batch,):
        await publish(events, prefix)
        await wait_applied(pool, schema, events)
        await publish(events, prefix)

        async def recognised() -> bool:
            return batch.duplicates >= len(events)

        await eventually(recognised, what="the events published again to be recognised")
    assert CrashAfterCommit.crashed
    assert sum(r.applied for r in batch.results) == len(events)
    await assert_counted_once(pool, schema, events)


class FailBeforeCommit(RecordingBatchConsumer):
    """The first batch's transaction fails (the database gone for a moment) while the next
    batches are already fetched and decoded: the pipeline must not apply them past it."""

    failed = False

    async def apply_decoded(self, batch: DecodedBatch) -> BatchResult:
        if not FailBeforeCommit.failed:
            FailBeforeCommit.failed = True
            raise ConnectionResetError("the database went away mid-transaction")
        return await super().apply_decoded(batch)


async def test_a_failed_transaction_in_the_pipeline_is_retried_before_anything_after_it(
    pool, prefix, schema, monkeypatch
):
    """Small batches, so that the batch after the failing one is decoded while it fails: the
    failed batch comes again, nothing after it is applied first (its offsets would pass the
    failed records), every event counts once."""
    import tests.integration.test_metrics_scenario as kit

    monkeypatch.setattr(kit, "RecordingBatchConsumer", FailBeforeCommit)
    monkeypatch.setattr(FailBeforeCommit, "failed", False)
    events, _ = scenario()
    await publish(events, prefix)
    group = f"eo-fail-{uuid.uuid4().hex[:8]}"
    async with consumers(pool, schema, prefix, group, max_records=2) as (batch,):
        await wait_applied(pool, schema, events)
    assert FailBeforeCommit.failed
    assert sum(r.applied for r in batch.results) == len(events)
    await assert_counted_once(pool, schema, events)


async def test_a_new_consumer_starts_where_the_database_stands_not_where_kafka_does(
    pool, prefix, schema
):
    """The offsets in the database are the position: a consumer group that Kafka knows
    nothing of (lost offsets, a renamed group) starts at the database's offsets, re-reading
    nothing that was applied, and goes on from there."""
    events, _ = scenario()
    half = len(events) // 2
    await publish(events[:half], prefix)
    async with consumers(pool, schema, prefix, f"eo-pos-a-{uuid.uuid4().hex[:8]}"):
        await wait_applied(pool, schema, events[:half])
    await publish(events[half:], prefix)
    async with consumers(pool, schema, prefix, f"eo-pos-b-{uuid.uuid4().hex[:8]}") as (batch,):
        await wait_applied(pool, schema, events)
    assert batch.duplicates == 0
    assert batch.records == len(events) - half
    assert (await fact_rows(pool, schema))["processed_events"] == len(events)


class _CommitTakenBack:
    """A pool whose connections run everything in an outer transaction that is rolled back on
    release: what the consumer commits there looks committed to it, and is gone afterwards, as
    asynchronous commits are after a PostgreSQL crash."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            outer = conn.transaction()
            await outer.start()
            try:
                yield conn
            finally:
                await outer.rollback()


class CrashTakesBackACommit(RecordingBatchConsumer):
    """The second batch with events commits, and a crash then takes that commit back. How the
    crash shows (``shows``): the next transaction fails, as the first one after a crash does on
    a connection the crash broke; or it runs on a new connection, on a server that started
    after the one the consumer saw."""

    shows = "failed transaction"
    taken_back: ClassVar[list[RawRecord]] = []
    shown = False
    seen = 0

    async def apply_decoded(self, batch: DecodedBatch) -> BatchResult:
        cls = CrashTakesBackACommit
        if batch.decoded and not cls.taken_back:
            cls.seen += 1
            if cls.seen == 2:
                real, self.pool = self.pool, _CommitTakenBack(self.pool)  # type: ignore[assignment]
                try:
                    result = await super().apply_decoded(batch)
                finally:
                    self.pool = real
                cls.taken_back = list(batch.records)
                return result
        elif cls.taken_back and not cls.shown:
            cls.shown = True
            if cls.shows == "failed transaction":
                raise ConnectionResetError("the database crashed")
            # The server the consumer saw before started a day earlier than this one.
            self._server_started = await self.pool.fetchval(
                "SELECT pg_postmaster_start_time() - interval '1 day'"
            )
        return await super().apply_decoded(batch)


@pytest.mark.parametrize("shows", ["failed transaction", "server restarted"])
async def test_commits_a_crash_takes_back_are_applied_again(
    pool, prefix, schema, monkeypatch, shows
):
    """Asynchronous commits (the service's setting): a PostgreSQL crash takes back a batch the
    consumer saw commit. Once the crash shows, the consumer takes its positions from the
    database again and reads that batch again, so every event counts exactly once."""
    import tests.integration.test_metrics_scenario as kit

    monkeypatch.setattr(kit, "RecordingBatchConsumer", CrashTakesBackACommit)
    monkeypatch.setattr(CrashTakesBackACommit, "shows", shows)
    monkeypatch.setattr(CrashTakesBackACommit, "taken_back", [])
    monkeypatch.setattr(CrashTakesBackACommit, "shown", False)
    monkeypatch.setattr(CrashTakesBackACommit, "seen", 0)
    events, _ = scenario()
    await publish(events, prefix)
    async with consumers(pool, schema, prefix, f"eo-lost-{uuid.uuid4().hex[:8]}", max_records=3):
        await wait_applied(pool, schema, events)
    assert CrashTakesBackACommit.taken_back
    assert CrashTakesBackACommit.shown
    await assert_counted_once(pool, schema, events)


class OffsetsUnreadableAtFirst(RecordingBatchConsumer):
    """The database's offsets cannot be read the first three times the consumer asks."""

    refusals = 0

    async def stored_offsets(self, partitions: Sequence[tuple[str, int]]) -> dict[Any, int]:
        if OffsetsUnreadableAtFirst.refusals < 3:
            OffsetsUnreadableAtFirst.refusals += 1
            raise ConnectionRefusedError("the database is not reachable")
        return await super().stored_offsets(partitions)


async def test_nothing_is_applied_from_kafka_offsets_ahead_of_the_database(
    pool, prefix, schema, monkeypatch
):
    """Kafka's committed offsets are ahead of the database's (courtesy commits of batches a
    crash took back), and at first the database cannot be read: the consumer applies nothing
    from Kafka's offsets, and once it can read the database's it starts there, so the events
    before Kafka's offsets count too."""
    import tests.integration.test_metrics_scenario as kit

    monkeypatch.setattr(kit, "RecordingBatchConsumer", OffsetsUnreadableAtFirst)
    monkeypatch.setattr(OffsetsUnreadableAtFirst, "refusals", 0)
    events, _ = scenario()
    half = len(events) // 2
    await publish(events[:half], prefix)
    group = f"eo-ahead-{uuid.uuid4().hex[:8]}"
    topics = [topic_name(t, prefix) for t in CONSUMED_TOPICS]
    ahead = AIOKafkaConsumer(*topics, bootstrap_servers=KAFKA, group_id=group)
    await ahead.start()
    try:
        await eventually(lambda: _assigned(ahead), what="partitions for the group's first member")
        ends = await ahead.end_offsets(list(ahead.assignment()))
        await ahead.commit({tp: end for tp, end in ends.items() if end > 0})
    finally:
        await ahead.stop()
    await publish(events[half:], prefix)
    async with consumers(pool, schema, prefix, group):
        await wait_applied(pool, schema, events)
    assert OffsetsUnreadableAtFirst.refusals == 3
    await assert_counted_once(pool, schema, events)


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    await consumer.getmany(timeout_ms=100)
    return bool(consumer.assignment())


async def test_kafka_learns_the_last_batch_s_offsets_even_when_nothing_follows(
    pool, prefix, schema
):
    """The courtesy commit of the pipelined consumer: once everything is applied, the group's
    committed offsets reach the end of every partition (the lag gauge reads zero), without a
    further batch to push them."""
    events, _ = scenario()
    await publish(events, prefix)
    group = f"eo-lag-{uuid.uuid4().hex[:8]}"
    topics = {topic_name(t, prefix) for t in CONSUMED_TOPICS}
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    probe = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await admin.start()
    await probe.start()
    try:
        async with consumers(pool, schema, prefix, group):
            await wait_applied(pool, schema, events)

            async def caught_up() -> bool:
                committed = await admin.list_consumer_group_offsets(group)
                ends = await probe.end_offsets([tp for tp in committed if tp.topic in topics])
                return sum(ends.values()) == len(events) and all(
                    committed[tp].offset == end for tp, end in ends.items()
                )

            await eventually(caught_up, timeout=15, what="Kafka's committed offsets at the end")
    finally:
        await probe.stop()
        await admin.close()


# ------------------------------------------------------------------------------------------------
# Poison and unknown versions, on the session's topics, consumed by the metrics service app
# ------------------------------------------------------------------------------------------------


def _deadlettered() -> float:
    total = 0.0
    for topic in ("registrations", "activities"):
        total += (
            REGISTRY.get_sample_value(
                "verbinding_metrics_events_deadlettered_total", {"topic": topic}
            )
            or 0.0
        )
    return total


async def test_poison_and_unknown_versions_are_dead_lettered_and_consumption_goes_on(
    metrics_app, pool
):
    org = f"poison-{RUN_ID}"
    who = person("ab" * 32, "delfgauw", "65-74")
    good_activity = activity(org, "good-act", "meeting", True)
    good = attendance(org, "good-1", "good-act", who, "2012-05-09T10:00:00+02:00", date(2012, 5, 9))
    template = orjson.loads(encode_event(good))
    marker = uuid.uuid4().hex

    v9 = {**template, "id": str(uuid.uuid4()), "type": "nl.verbinding.attendance.recorded.v9"}
    wrong = {**template, "id": str(uuid.uuid4())}
    wrong["data"] = {**template["data"], "status": "maybe", "participant": None}
    unknown = {**template, "id": str(uuid.uuid4()), "type": "nl.verbinding.gossip.v1"}
    # Decodes fine but PostgreSQL refuses the text (NUL character): fails only when applied.
    # (A code cannot carry one any more; an id still may.)
    unstorable = activity(org, "bad\x00act", "meeting", True)
    poison: list[tuple[Topic, bytes, bytes, str]] = [
        (Topic.REGISTRATIONS, f"k-{marker}-json".encode(), f"not json {marker} {{".encode(), "not JSON"),
        (Topic.REGISTRATIONS, f"k-{marker}-v9".encode(), orjson.dumps(v9), "unknown major version v9 of attendance.recorded"),
        (Topic.REGISTRATIONS, f"k-{marker}-wrong".encode(), orjson.dumps(wrong), "does not match its schema"),
        (Topic.REGISTRATIONS, f"k-{marker}-unknown".encode(), orjson.dumps(unknown), "unknown event type"),
        (Topic.ACTIVITIES, f"k-{marker}-nul".encode(), encode_event(unstorable), "could not apply nl.verbinding.activity.upserted.v1"),
    ]  # fmt: skip
    counted_before = _deadlettered()

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value, _ in poison:
            await producer.send_and_wait(topic_name(topic, TOPIC_PREFIX), value, key=key)
    finally:
        await producer.stop()
    await publish([good_activity, good], TOPIC_PREFIX)  # after the poison

    await wait_applied(pool, "metrics", [good_activity, good])
    result = await service(pool, "metrics", k=1, control="off").compute(parse_period("2012-05"))
    assert result["s2"]["attendances"]["value"] == 1
    assert result["s2"]["participants_unique"]["value"] == 1
    assert not await pool.fetchval(
        "SELECT count(*) FROM metrics.activity_versions WHERE organisation_id = $1 AND activity_id LIKE 'bad%'",
        org,
    )

    mine: dict[bytes, CloudEvent[DeadLettered]] = {}
    originals = {value for _, _, value, _ in poison}

    async def all_dead_lettered() -> bool:
        for record in await read_records(f"{TOPIC_PREFIX}deadletter", timeout=5, settle=0.3):
            letter = decode_event(record.value)
            original = base64.b64decode(letter.data.original_value)
            # The referrals service's consumers read these topics too and dead-letter the same
            # poison under their own names: this test is about the metrics consumer's.
            if original in originals and letter.data.consumer == f"metrics-{RUN_ID}":
                mine[original] = letter
        return len(mine) == len(poison)

    await eventually(all_dead_lettered, timeout=30, what="five dead letters")
    for topic, key, value, reason in poison:
        letter = mine[value]
        assert letter.type == "nl.verbinding.deadletter.v1"
        assert letter.data.consumer == f"metrics-{RUN_ID}"
        assert reason in letter.data.reason, letter.data.reason
        assert letter.data.origin_topic == topic_name(topic, TOPIC_PREFIX)
        assert base64.b64decode(letter.data.original_key or "") == key
        assert letter.data.origin_offset is not None
    assert _deadlettered() - counted_before == len(poison)
