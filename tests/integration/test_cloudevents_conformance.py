"""Every event type the platform publishes, read back from the real broker with the official
CloudEvents SDK for Python (2.x, Kafka protocol binding), as a partner's consumer would read it.

The SDK used to reject every event without a participant (``"subject": null``: trainings,
activities, anonymous surveys, dead letters), and the records carried no ``content-type``
header. Any rejection fails this test.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

from shared.consumer import DeadLetter, KafkaDeadLetterSink, RawRecord
from shared.events import EVENT_TYPES, Topic, topic_name
from shared.kafka import ensure_topics
from shared.pseudonym import Pseudonymiser
from tests.conftest import (
    KAFKA,
    SECRET,
    TOPIC_PREFIX,
    event_id_of,
    read_records,
    subject_id_of,
)

pytestmark = pytest.mark.integration

STRUCTURED = b"application/cloudevents+json"
PARTICIPANT = {"ref": "ce-client", "neighbourhood": "delfgauw", "age_band": "75+"}
DJG6 = ["yes", "no", "more_or_less", "no", "yes", None]


async def test_the_official_sdk_reads_every_event_type_from_the_broker(
    registrations: Any, referrals: Any, make_partner: Any, topic_prefix: str, pool: Any
) -> None:
    a, b = await make_partner(), await make_partner()
    tag = uuid.uuid4().hex[:8]
    ids: set[str] = set()

    async def write(client: Any, method: str, path: str, body: dict[str, Any], who: Any) -> None:
        r = await client.request(method, path, headers=who.headers, json=body)
        assert r.status_code in (200, 201), r.text
        if "event_id" in r.json():
            ids.add(r.json()["event_id"])

    activity = {"title": "Koor", "category": "culture", "aimed_at_connection": True, "neighbourhood": "delfgauw"}  # fmt: skip
    await write(registrations, "PUT", f"/v1/activities/koor-{tag}", activity, b)
    await write(registrations, "POST", "/v1/registrations", {"registration_id": f"g-{tag}", "activity_id": f"koor-{tag}", "participant": PARTICIPANT, "registered_at": "2025-04-01T10:00:00+02:00"}, b)  # fmt: skip
    await write(registrations, "POST", f"/v1/registrations/g-{tag}/cancellation", {"cancelled_at": "2025-04-02T10:00:00+02:00"}, b)  # fmt: skip
    await write(registrations, "POST", "/v1/attendance", {"attendance_id": f"t-{tag}", "activity_id": f"koor-{tag}", "participant": PARTICIPANT, "session_start": "2025-04-03T10:00:00+02:00", "status": "attended"}, b)  # fmt: skip
    await write(referrals, "POST", "/v1/referrals", {"referral_id": f"r-{tag}", "participant": PARTICIPANT, "referrer_role": "gp", "signals": ["social"], "referred_to": {"activity_id": f"koor-{tag}", "organisation_id": b.organisation_id}, "consent": True, "created_at": "2025-04-01T09:00:00+02:00"}, a)  # fmt: skip
    await write(referrals, "POST", f"/v1/referrals/r-{tag}/status", {"status": "accepted", "at": "2025-04-01T12:00:00+02:00"}, b)  # fmt: skip
    # The welfare side registers the resident naming the referral and records attendance: the
    # referrals service publishes the first attendance (found on the topic below).
    await write(registrations, "POST", "/v1/registrations", {"registration_id": f"n-{tag}", "activity_id": f"koor-{tag}", "participant": PARTICIPANT, "registered_at": "2025-04-02T10:00:00+02:00", "referral_id": f"r-{tag}", "referring_organisation_id": a.organisation_id}, b)  # fmt: skip
    await write(registrations, "POST", "/v1/attendance", {"attendance_id": f"u-{tag}", "activity_id": f"koor-{tag}", "participant": PARTICIPANT, "session_start": "2025-04-10T10:00:00+02:00", "status": "attended"}, b)  # fmt: skip
    await write(referrals, "POST", "/v1/trainings", {"training_id": f"o-{tag}", "person_ref": "nurse-1", "role": "district-nurse", "training": "signaling-loneliness", "completed_at": "2025-04-01T16:00:00+02:00"}, a)  # fmt: skip
    await write(referrals, "POST", "/v1/measurements", {"measurement_id": f"s-{tag}", "instrument": "djg6", "context": "survey", "participant": {"neighbourhood": "delfgauw", "age_band": "75+"}, "answers": DJG6, "measured_at": "2025-04-01T11:00:00+02:00"}, a)  # fmt: skip

    # A dead letter, from the sink every consumer uses, on a prefix of this test alone.
    await ensure_topics(KAFKA, topic_prefix, topics=[Topic.DEADLETTER])
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        poison = RawRecord("registrations", 0, 7, b"k", b"not an event")
        await KafkaDeadLetterSink(producer, "ce-test", topic_prefix).send(
            [DeadLetter(poison, "not JSON")]
        )
    finally:
        await producer.stop()

    activity_key = f"{b.organisation_id}:koor-{tag}".encode()

    def first_attendance(record: Any) -> bool:
        try:
            doc = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            return False  # other tests' poison on the session's topics
        return isinstance(doc, dict) and bool(
            str(doc.get("type", "")).startswith("nl.verbinding.referral.first_attendance.")
            and doc.get("data", {}).get("referral_id") == f"r-{tag}"
        )

    def mine(records: list[Any]) -> list[Any]:
        return [
            r
            for r in records
            if event_id_of(r) in ids or r.key == activity_key or first_attendance(r)
        ]

    topics = [topic_name(t, TOPIC_PREFIX) for t in Topic if t is not Topic.DEADLETTER]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:  # the relays publish asynchronously: bounded wait for all of them
        records = mine(await read_records(topics))
        if len(records) >= len(ids) + 2 or loop.time() > deadline:
            break
        await asyncio.sleep(0.3)
    records += await read_records(topic_name(Topic.DEADLETTER, topic_prefix), expect=1)
    # An erasure, once the person's events are on Kafka (an erasure withdraws unpublished ones).
    pseudonym = Pseudonymiser(SECRET).participant(b.organisation_id, PARTICIPANT["ref"])
    subject = (await subject_id_of(pool, "registrations", pseudonym)).encode()
    erased = await registrations.post(
        "/v1/erasures",
        headers=b.headers,
        json={"erasure_id": f"e-{tag}", "ref": PARTICIPANT["ref"]},
    )
    assert erased.status_code == 202, erased.text
    erasures = topic_name(Topic.ERASURES, TOPIC_PREFIX)
    on_erasures = await read_records(
        erasures, until=lambda rs: any(r.key == subject for r in rs), timeout=30
    )
    records += [r for r in on_erasures if r.key == subject]

    read: dict[str, Any] = {}
    for record in records:
        headers = dict(record.headers)
        assert headers.get("content-type") == STRUCTURED, (record.topic, record.headers)
        event = from_kafka_event(KafkaMessage(headers=headers, key=record.key, value=record.value))
        assert event.get_data() == orjson.loads(record.value)["data"]
        read[event.get_type()] = event

    assert set(read) == set(EVENT_TYPES), "every event type was read by the SDK"
    letter = read[next(t for t in EVENT_TYPES if ".deadletter." in t)]
    assert base64.b64decode(letter.get_data()["original_value"]) == b"not an event"
    assert letter.get_subject() is None
