"""Bad messages on every topic the metrics service consumes: not JSON, empty, tombstones, JSON
that is not an event, wrong schema, unknown type, unknown major version, oversized, and a few
hundred random byte strings and mutated envelopes. Each is dead-lettered (with its reason and
the original bytes), consumption goes on past it, and the figures are exactly those of the good
events sent after the poison.

Runs against the in-process metrics service (``metrics_app``) on the session's test topics.
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.metrics.domain.periods import parse_period
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from shared.consumer import MAX_ORIGINAL_BYTES
from shared.events import PersonErased, Topic, decode_event, encode_event, new_event, topic_name
from tests.conftest import KAFKA, RUN_ID, TOPIC_PREFIX, eventually, read_records
from tests.integration.test_metrics_scenario import (
    activity,
    attendance,
    hexid,
    measurement,
    person,
    publish,
    referral,
    registration,
    service,
    training,
    wait_applied,
)

pytestmark = pytest.mark.integration

PERIOD = "2004-02"


def good_events(org: str) -> dict[Topic, list[Any]]:
    who = person(hexid(f"fuzz-msg-{org}"), "delfgauw", "65-74")
    return {
        Topic.ACTIVITIES: [activity(org, "fuzz-act", "meeting", True)],
        Topic.REGISTRATIONS: [
            registration(org, "fuzz-reg", "fuzz-act", who, "2004-02-02T10:00:00+01:00"),
            attendance(org, "fuzz-att", "fuzz-act", who, "2004-02-09T10:00:00+01:00", date(2004, 2, 9)),
        ],
        Topic.REFERRALS: [
            referral(org, "fuzz-ref", who, "gp", ["social"], "2004-02-03T09:00:00+01:00", to_service="buddy-programme")
        ],
        Topic.TRAININGS: [training(org, "fuzz-tr", hexid(f"fuzz-staff-{org}"), "gp", "2004-02-04T09:00:00+01:00")],
        Topic.MEASUREMENTS: [
            measurement(org, "fuzz-m", "djg11", "survey", who, "2004-02-05T09:00:00+01:00", (5, 3, 2, "moderately_lonely"))
        ],
        # The erasure of somebody this test never wrote: it changes no figure either.
        Topic.ERASURES: [
            new_event(PersonErased(subject_id=hexid(f"fuzz-nobody-{org}"), erased_at=datetime(2004, 2, 6, tzinfo=UTC)), None)
        ],
    }  # fmt: skip


def poison_for(topic: Topic, template: dict[str, Any], marker: str) -> list[tuple[str, bytes]]:
    """(what it is, bytes) of every kind of bad message, each unique to this test run."""

    def envelope(**change: Any) -> bytes:
        return orjson.dumps({**template, "id": str(uuid.uuid4()), **change})

    data = template["data"]
    name = template["type"].removeprefix("nl.verbinding.").rsplit(".v", 1)[0]
    return [
        ("not JSON", f"not json {marker} {{".encode()),
        ("empty", b""),
        ("JSON, not an object", orjson.dumps([marker, 1, None])),
        ("no specversion", envelope(specversion=None, subject=marker)),
        ("specversion 2.0", envelope(specversion="2.0", subject=marker)),
        ("id not a UUID", envelope(id=f"not-a-uuid-{marker}")),
        ("unknown type", envelope(type=f"nl.verbinding.gossip{marker[:4]}.v1")),
        ("type outside the scheme", envelope(type=f"com.example.{marker}")),
        ("unknown major version", envelope(type=f"nl.verbinding.{name}.v9", subject=marker)),
        ("data missing", envelope(data=None, subject=marker)),
        ("unknown data field", envelope(data={**data, "injected": marker})),
        ("wrong data type", envelope(data={**data, "organisation_id": 12345}, subject=marker)),
        ("extra envelope field", envelope(extension=marker)),
        ("time without offset", envelope(time="2004-02-01T10:00:00", subject=marker)),
        # Over any event's size yet within the broker's limit: the dead letter must still fit.
        ("oversized", envelope(data={**data, "padding": marker + "x" * 900_000})),
        ("invalid UTF-8", b'{"specversion": "1.0", "id": "\xff\xfe' + marker.encode() + b'"}'),
    ]


def random_garbage(rng: random.Random, template: dict[str, Any], count: int) -> list[bytes]:
    """Random bytes and randomly mutated envelopes: none of them is a valid event."""
    out: list[bytes] = []
    required = ["specversion", "id", "source", "type", "time", "data"]  # subject etc. may go
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(1, 300)))
        elif kind == 1:
            doc = dict(template, id=str(uuid.uuid4()))
            doc.pop(rng.choice(required))
            out.append(orjson.dumps(doc))
        else:
            doc = dict(template, id=str(uuid.uuid4()))
            doc["data"] = {k: v for k, v in template["data"].items() if rng.random() < 0.5}
            doc["data"][rng.choice(["", "x", "\u0000", "é", "'; DROP TABLE x; --"])] = i
            out.append(orjson.dumps(doc))
    return out


async def test_bad_messages_on_every_topic_are_dead_lettered_and_change_no_figure(
    metrics_app: Any, pool: Any
) -> None:
    org = f"fuzzmsg-{RUN_ID}"
    marker = uuid.uuid4().hex
    good = good_events(org)
    assert set(good) == set(CONSUMED_TOPICS)
    rng = random.Random(20040201)
    sent: list[tuple[str, str, bytes]] = []  # (topic, what, bytes)
    for topic, events in good.items():
        template = orjson.loads(encode_event(events[0]))
        for what, value in poison_for(topic, template, marker):
            sent.append((topic_name(topic, TOPIC_PREFIX), what, value))
        for value in random_garbage(rng, template, 40):
            sent.append((topic_name(topic, TOPIC_PREFIX), "random", value))
    sent.append((topic_name(Topic.REGISTRATIONS, TOPIC_PREFIX), "tombstone", b""))

    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, max_request_size=2_000_000
    )
    await producer.start()
    where: dict[tuple[str, int, int], tuple[str, bytes]] = {}
    try:
        for name, what, value in sent:
            # The key of the good events: the poison sits before them in their partition.
            meta = await producer.send_and_wait(name, value, key=f"{org}:poison".encode())
            where[(name, meta.partition, meta.offset)] = (what, value)
    finally:
        await producer.stop()
    everything = [e for events in good.values() for e in events]
    await publish(everything, TOPIC_PREFIX)

    await wait_applied(pool, "metrics", everything)  # consumption went on past the poison

    letters: dict[tuple[str, int, int], Any] = {}

    async def all_dead_lettered() -> bool:
        for record in await read_records(f"{TOPIC_PREFIX}deadletter", timeout=5, settle=0.3):
            d = decode_event(record.value).data
            origin = (d.origin_topic, d.origin_partition, d.origin_offset)
            if origin in where:
                letters[origin] = d
        return len(letters) == len(where)

    await eventually(all_dead_lettered, timeout=60, what=f"{len(where)} dead letters")
    for origin, (what, value) in where.items():
        letter = letters[origin]
        original = base64.b64decode(letter.original_value)
        assert letter.reason, what
        assert base64.b64decode(letter.original_key or "") == f"{org}:poison".encode(), what
        if len(value) <= MAX_ORIGINAL_BYTES:
            assert original == value, what
        else:  # kept in part; the dead letter must fit on Kafka
            assert original == value[:MAX_ORIGINAL_BYTES], what
            assert f"original of {len(value)} bytes" in letter.reason, what

    figures = await service(pool, "metrics", k=1, control="off").compute(
        parse_period(PERIOD), "organisation"
    )
    cell = next(c for c in figures["breakdown"] if c["key"] == org)
    assert cell["s2"]["attendances"]["value"] == 1
    assert cell["s2"]["registrations"]["value"] == 1
    assert cell["s2"]["participants_unique"]["value"] == 1
    assert cell["s3"]["referrals"]["value"] == 1
    assert cell["s3"]["people_trained"]["value"] == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM metrics.measurements WHERE organisation_id = $1", org
        )
        == 1
    )
    for table in ("activity_versions", "attendance", "registrations", "referrals", "trainings"):
        rows = await pool.fetchval(
            f"SELECT count(*) FROM metrics.{table} WHERE organisation_id = $1", org
        )
        assert rows == 1, table
