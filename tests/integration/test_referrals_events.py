"""What the referrals service puts on the real Kafka broker: each accepted write exactly once, in
a CloudEvents envelope, keyed so that one resident's history stays in one partition; and what
it never puts anywhere, on Kafka or in the database: a partner's raw references."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pytest

from shared.events import EVENT_TYPES, Topic, decode_event
from shared.pseudonym import Pseudonymiser
from tests.conftest import SECRET, event_id_of, read_topic, subject_id_of

pytestmark = pytest.mark.integration

PSEUDONYMS = Pseudonymiser(SECRET)
ENVELOPE = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
DJG11 = ["no", "yes", "more_or_less", "yes", "no", "no", "more_or_less", "yes", "yes", "no", "yes"]


async def records_with(topic: str, event_ids: set[str], timeout: float = 20.0) -> list[Any]:
    """All records of ``topic`` once every one of ``event_ids`` is among them (bounded wait:
    the relay publishes asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        records = await read_topic(topic, expect=1, timeout=5)
        seen = {event_id_of(r) for r in records}
        if event_ids <= seen or loop.time() > deadline:
            return records
        await asyncio.sleep(0.2)


def the_one(records: list[Any], event_id: str) -> tuple[Any, dict[str, Any]]:
    mine = [r for r in records if event_id_of(r) == event_id]
    assert len(mine) == 1, f"event {event_id} appears {len(mine)} times"
    return mine[0], orjson.loads(mine[0].value)


def check_envelope(doc: dict[str, Any], *, name: str, source_org: str, subject: str | None) -> None:
    # An attribute without a value is absent, never null (the CloudEvents SDKs refuse null).
    assert set(doc) == (ENVELOPE if subject is not None else ENVELOPE - {"subject"})
    assert doc["specversion"] == "1.0"
    assert doc["type"] == next(
        t for t in EVENT_TYPES if t.rsplit(".v", 1)[0] == f"nl.verbinding.{name}"
    )
    assert doc["source"] == f"/organisations/{source_org}"
    assert doc.get("subject") == subject
    assert doc["datacontenttype"] == "application/json"
    assert datetime.fromisoformat(doc["time"]).tzinfo is not None
    decode_event(orjson.dumps(doc))  # the data matches its published schema


async def dump_text_columns(pool: Any, schemas: tuple[str, ...]) -> str:
    """Every text, json, array and bytea value of every table in ``schemas``, as one string."""
    async with pool.acquire() as conn:
        columns = await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) "
            "WHERE table_schema = ANY($1::text[]) AND t.table_type = 'BASE TABLE' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea', 'ARRAY')",
            list(schemas),
        )
        assert columns, f"no columns found in {schemas}"
        parts = []
        for c in columns:
            column = f'"{c["column_name"]}"'
            # bytea as escape text: printable bytes stay as they are, so a raw ref shows.
            value = (
                f"encode({column}, 'escape')" if c["data_type"] == "bytea" else f"{column}::text"
            )
            dumped = await conn.fetchval(
                f"SELECT string_agg({value}, E'\\n') "
                f'FROM "{c["table_schema"]}"."{c["table_name"]}"'
            )
            parts.append(dumped or "")
    return "\n".join(parts)


@dataclass(frozen=True)
class Written:
    """What one round of writes sent, and what the service answered."""

    a: str  # the referring (and training, measuring) organisation
    b: str  # the organisation referred to
    tag: str
    raws: tuple[str, ...]
    resident: str  # subject id of the resident (token) on Kafka
    measured: str  # subject id of the measured participant on Kafka
    person: str  # subject id of the trained person
    pseudonyms: tuple[str, ...]  # the participants' pseudonyms, which stay off Kafka
    answers: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
async def written(referrals, make_partner, pool) -> Written:
    """A referral, its acceptance by the organisation referred to, a training, an intake and an
    anonymous survey; each posted twice, the second time a replay that must add no event."""
    a, b = await make_partner(), await make_partner()
    tag = uuid.uuid4().hex[:8]
    raw_ref = f"RAWREF-resident-{tag}"
    raw_token = f"RAWTOKEN-coalition-{tag}"
    raw_person = f"RAWPERSON-nurse-{tag}"
    raw_measured = f"RAWMEASURED-client-{tag}"

    async def post_twice(path: str, body: dict[str, Any], partner: Any) -> dict[str, Any]:
        first = await referrals.post(path, headers=partner.headers, json=body)
        again = await referrals.post(path, headers=partner.headers, json=body)
        assert (first.status_code, again.status_code) == (201, 200), first.text
        assert again.json() == first.json()
        return first.json()

    answers: dict[str, dict[str, Any]] = {}
    answers["referral"] = await post_twice(
        "/v1/referrals",
        {
            "referral_id": f"ev-{tag}",
            "participant": {
                "ref": raw_ref,
                "resident_token": raw_token,
                "neighbourhood": "pijnacker-noord",
                "age_band": "65-74",
            },
            "referrer_role": "welfare-coach",
            "signals": ["social"],
            "referred_to": {"activity_id": "koffie", "organisation_id": b.organisation_id},
            "consent": True,
            "created_at": "2025-04-01T10:00:00+02:00",
        },
        a,
    )
    answers["status"] = await post_twice(
        f"/v1/referrals/ev-{tag}/status",
        {"status": "accepted", "at": "2025-04-02T10:00:00+02:00"},
        b,
    )
    answers["training"] = await post_twice(
        "/v1/trainings",
        {
            "training_id": f"tr-{tag}",
            "person_ref": raw_person,
            "role": "district-nurse",
            "training": "signaling-loneliness",
            "completed_at": "2025-04-01T16:00:00+02:00",
        },
        a,
    )
    measurement = {
        "measurement_id": f"m-{tag}",
        "instrument": "djg11",
        "context": "intake",
        "participant": {"ref": raw_measured, "neighbourhood": "delfgauw", "age_band": "75+"},
        "answers": DJG11,
        "measured_at": "2025-04-01T11:00:00+02:00",
    }
    answers["intake"] = await post_twice("/v1/measurements", measurement, a)
    answers["survey"] = await post_twice(
        "/v1/measurements",
        {
            **measurement,
            "measurement_id": f"s-{tag}",
            "context": "survey",
            "participant": {"neighbourhood": "delfgauw", "age_band": "75+"},
        },
        a,
    )
    return Written(
        a=a.organisation_id,
        b=b.organisation_id,
        tag=tag,
        raws=(raw_ref, raw_token, raw_person, raw_measured),
        resident=await subject_id_of(pool, "referrals", PSEUDONYMS.resident(raw_token)),
        measured=await subject_id_of(
            pool, "referrals", PSEUDONYMS.participant(a.organisation_id, raw_measured)
        ),
        pseudonyms=(
            PSEUDONYMS.resident(raw_token),
            PSEUDONYMS.participant(a.organisation_id, raw_measured),
            PSEUDONYMS.person(a.organisation_id, raw_person),
        ),
        person=await subject_id_of(
            pool, "referrals", PSEUDONYMS.person(a.organisation_id, raw_person)
        ),
        answers=answers,
    )


async def test_a_referral_and_its_change_are_on_kafka_once_keyed_by_the_resident(written):
    created, changed = (
        written.answers["referral"]["event_id"],
        written.answers["status"]["event_id"],
    )

    on_referrals = await records_with("referrals", {created, changed})

    record, doc = the_one(on_referrals, created)
    check_envelope(doc, name="referral.created", source_org=written.a, subject=written.resident)
    assert record.key == written.resident.encode()
    assert doc["data"]["participant"]["id"] == written.resident
    assert doc["data"]["participant"]["scope"] == "resident"
    assert doc["data"]["referred_to"]["organisation_id"] == written.b
    assert doc["data"]["receiving_organisation_id"] == written.b

    record, doc = the_one(on_referrals, changed)
    # The change is caused by the organisation referred to; the referral stays the referrer's.
    check_envelope(
        doc, name="referral.status_changed", source_org=written.b, subject=written.resident
    )
    assert record.key == written.resident.encode()
    assert doc["data"]["organisation_id"] == written.a
    assert doc["data"]["changed_by"] == written.b
    assert (doc["data"]["previous_status"], doc["data"]["status"]) == ("created", "accepted")
    assert doc["data"]["sequence"] >= 1
    assert doc["data"]["participant_id"] == written.resident


async def test_a_training_is_on_kafka_once_keyed_by_the_organisation(written):
    trained = written.answers["training"]["event_id"]

    record, doc = the_one(await records_with("trainings", {trained}), trained)

    check_envelope(doc, name="training.completed", source_org=written.a, subject=None)
    assert record.key == written.a.encode()
    # The trained person under a subject id, as a participant is: erasable (docs/privacy.md).
    assert doc["data"]["person_id"] == written.person


async def test_measurements_are_on_kafka_once_keyed_by_participant_or_by_their_id(written):
    intake, survey = written.answers["intake"]["event_id"], written.answers["survey"]["event_id"]

    on_measurements = await records_with("measurements", {intake, survey})

    record, doc = the_one(on_measurements, intake)
    check_envelope(doc, name="measurement.recorded", source_org=written.a, subject=written.measured)
    assert record.key == written.measured.encode()
    assert (doc["data"]["total"], doc["data"]["emotional"], doc["data"]["social"]) == (5, 3, 2)
    assert doc["data"]["category"] == "moderately_lonely"
    assert "answers" not in doc["data"]

    record, doc = the_one(on_measurements, survey)
    check_envelope(doc, name="measurement.recorded", source_org=written.a, subject=None)
    assert record.key == f"{written.a}:s-{written.tag}".encode()
    assert doc["data"]["participant_id"] is None


async def test_raw_references_are_on_no_topic(written):
    await records_with("referrals", {written.answers["status"]["event_id"]})
    await records_with("measurements", {written.answers["survey"]["event_id"]})

    everything = b""
    for topic in Topic:
        for r in await read_topic(topic.value):
            everything += (r.key or b"") + b"\n" + r.value + b"\n"

    # The subject ids are there, so the scan does look at the right bytes; the people's
    # pseudonyms are not (shared/subjects.py).
    for pseudonym in (written.resident, written.measured, written.person):
        assert pseudonym.encode() in everything
    for pseudonym in written.pseudonyms:
        assert pseudonym.encode() not in everything
    for raw in written.raws:
        assert raw.encode() not in everything, f"{raw} is on Kafka"


async def test_raw_references_are_in_no_table(written, pool):
    stored = await dump_text_columns(pool, ("referrals", "platform"))

    for pseudonym in (written.resident, written.measured, written.person):
        assert pseudonym in stored
    assert f"ev-{written.tag}" in stored
    for raw in written.raws:
        assert raw not in stored, f"{raw} is stored in the database"
