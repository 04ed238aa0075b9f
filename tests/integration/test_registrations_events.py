"""What the registrations service puts on Kafka, and what it keeps out of everything
(contract.md "Events on Kafka"; domain.md §3).

An accepted registration and attendance each appear exactly once, in a CloudEvents envelope,
keyed by the participant pseudonym — computed here independently from the secret the service
was configured with. The partner's raw participant reference and resident token appear nowhere:
not in any column of any table, not in any record of any topic.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from shared.events import Topic, topic_name
from tests.conftest import (
    SECRET,
    TOPIC_PREFIX,
    Partner,
    PartnerFactory,
    event_id_of,
    read_records,
    subject_id_of,
)

pytestmark = pytest.mark.integration

CEST = timezone(timedelta(hours=2))


def pseudonym(message: str) -> str:
    """Computed independently of shared/pseudonym.py: HMAC-SHA256 under the purpose's key,
    HKDF-SHA256 (RFC 5869, no salt) of the session's secret (docs/privacy.md)."""
    purpose = b"resident" if message.startswith("resident:") else b"participant"
    prk = hmac.new(b"\0" * 32, SECRET.encode(), hashlib.sha256).digest()
    key = hmac.new(prk, b"verbinding/v1/pseudonym/" + purpose + b"\x01", hashlib.sha256).digest()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def distinctive(label: str) -> str:
    """A string that cannot occur by chance anywhere else."""
    return f"RAW-{label}-{uuid.uuid4().hex}"


def recent(hours: float = 1) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).astimezone(CEST).isoformat()


async def published(*event_ids: str) -> dict[str, list[Any]]:
    """The records of the session's `registrations` topic carrying each event id: waits
    (bounded) until every id is there, then reads on for a second so that a duplicate would
    show."""
    wanted = set(event_ids)

    def all_there(records: list[Any]) -> bool:
        return wanted <= {event_id_of(r) for r in records}

    records = await read_records(
        topic_name(Topic.REGISTRATIONS, TOPIC_PREFIX), until=all_there, timeout=20, settle=1.0
    )
    found: dict[str, list[Any]] = {event_id: [] for event_id in event_ids}
    for record in records:
        event_id = event_id_of(record)
        if event_id in found:
            found[event_id].append(record)
    return found


@pytest.fixture
async def partner(make_partner: PartnerFactory) -> Partner:
    return await make_partner()


@pytest.fixture
async def activity(registrations: httpx.AsyncClient, partner: Partner) -> str:
    activity_id = f"act-{uuid.uuid4().hex[:8]}"
    r = await registrations.put(
        f"/v1/activities/{activity_id}",
        headers=partner.headers,
        json={
            "title": "Samen eten",
            "category": "meeting",
            "aimed_at_connection": True,
            "neighbourhood": "delfgauw",
        },
    )
    assert r.status_code == 201, r.text
    return activity_id


def assert_envelope(doc: dict[str, Any], *, org: str, event_type: str, subject: str) -> None:
    assert set(doc) == {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "data",
    }
    assert doc["specversion"] == "1.0"
    uuid.UUID(doc["id"])
    assert doc["source"] == f"/organisations/{org}"
    assert doc["type"] == event_type
    sent_at = datetime.fromisoformat(doc["time"])
    assert sent_at.tzinfo is not None
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=5)
    assert doc["subject"] == subject
    assert doc["datacontenttype"] == "application/json"


async def test_registration_and_attendance_reach_kafka_once_keyed_by_subject_id(
    registrations: httpx.AsyncClient, partner: Partner, activity: str, pool: asyncpg.Pool
) -> None:
    org = partner.organisation_id
    ref = distinctive("ref")
    keyed = pseudonym(f"{org}:{ref}")
    person = {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+", "lives_alone": True}
    registration: dict[str, Any] = {
        "registration_id": f"reg-{uuid.uuid4().hex[:8]}",
        "activity_id": activity,
        "participant": person,
        "registered_at": recent(2),
    }
    # 23:30 UTC yesterday: already today in Amsterdam, where the periods are counted.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    session_start = midnight - timedelta(minutes=30)
    attendance: dict[str, Any] = {
        "attendance_id": f"att-{uuid.uuid4().hex[:8]}",
        "activity_id": activity,
        "session_start": session_start.isoformat(),
        "participant": person,
        "status": "attended",
    }

    reg = await registrations.post("/v1/registrations", headers=partner.headers, json=registration)
    att = await registrations.post("/v1/attendance", headers=partner.headers, json=attendance)
    # Partner retries: answered from the first time, never published again.
    for _ in range(2):
        assert (
            await registrations.post(
                "/v1/registrations", headers=partner.headers, json=registration
            )
        ).status_code == 200
        assert (
            await registrations.post("/v1/attendance", headers=partner.headers, json=attendance)
        ).status_code == 200

    assert (reg.status_code, att.status_code) == (201, 201)
    # Events name the person by the service's subject id, never by the pseudonym itself.
    expected = await subject_id_of(pool, "registrations", keyed)
    assert expected != keyed
    found = await published(reg.json()["event_id"], att.json()["event_id"])
    reg_records, att_records = found[reg.json()["event_id"]], found[att.json()["event_id"]]
    assert len(reg_records) == 1, "the registration must be on Kafka exactly once"
    assert len(att_records) == 1, "the attendance must be on Kafka exactly once"

    (reg_record,), (att_record,) = reg_records, att_records
    assert reg_record.key == expected.encode()
    assert att_record.key == expected.encode()
    assert reg_record.partition == att_record.partition, "one person's history, one partition"
    reg_doc, att_doc = orjson.loads(reg_record.value), orjson.loads(att_record.value)
    assert_envelope(
        reg_doc, org=org, event_type="nl.verbinding.registration.created.v2", subject=expected
    )
    assert_envelope(
        att_doc, org=org, event_type="nl.verbinding.attendance.recorded.v1", subject=expected
    )
    assert reg_doc["data"]["participant"] == {
        "id": expected,
        "scope": "organisation",
        "neighbourhood": "delfgauw",
        "age_band": "75+",
    }  # `lives_alone` was sent, and is not collected (minimisation): accepted and dropped
    assert reg_doc["data"]["organisation_id"] == org
    assert reg_doc["data"]["registration_id"] == registration["registration_id"]
    assert att_doc["data"]["status"] == "attended"
    assert att_doc["data"]["session_date"] == midnight.date().isoformat()
    assert att_doc["data"]["session_date"] != session_start.date().isoformat()


async def test_a_resident_token_makes_the_key_the_cross_organisation_resident_subject(
    registrations: httpx.AsyncClient, make_partner: PartnerFactory, pool: asyncpg.Pool
) -> None:
    token = distinctive("token")
    keyed = pseudonym(f"resident:{token}")
    event_ids = []
    for _ in range(2):  # two organisations, each with its own reference for the same resident
        partner = await make_partner()
        activity_id = f"act-{uuid.uuid4().hex[:8]}"
        r = await registrations.put(
            f"/v1/activities/{activity_id}",
            headers=partner.headers,
            json={
                "title": "Wandelen",
                "category": "sport",
                "aimed_at_connection": True,
                "neighbourhood": "emerald",
            },
        )
        assert r.status_code == 201
        r = await registrations.post(
            "/v1/registrations",
            headers=partner.headers,
            json={
                "registration_id": "reg-1",
                "activity_id": activity_id,
                "participant": {
                    "ref": distinctive("ref"),
                    "resident_token": token,
                    "neighbourhood": "emerald",
                    "age_band": "65-74",
                },
                "registered_at": recent(),
            },
        )
        assert r.status_code == 201, r.text
        event_ids.append(r.json()["event_id"])

    expected = await subject_id_of(pool, "registrations", keyed)
    for records in (await published(*event_ids)).values():
        (record,) = records
        doc = orjson.loads(record.value)
        assert record.key == expected.encode()
        assert doc["subject"] == expected
        assert doc["data"]["participant"]["id"] == expected
        assert doc["data"]["participant"]["scope"] == "resident"


async def _database_text(pool: asyncpg.Pool) -> str:
    """Every column of every row of every table in the service's and the platform's schemas,
    as text; bytea columns (the outbox) also decoded, so that nothing hides in hex."""
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('registrations', 'platform') AND table_type = 'BASE TABLE'"
        )
        assert {t["table_name"] for t in tables} >= {
            "activities",
            "registrations",
            "attendance",
            "outbox",
            "idempotency",
            "organisations",
            "api_keys",
        }
        parts = []
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            for row in await conn.fetch(f"SELECT t::text AS line FROM {name} t"):
                parts.append(row["line"])
            byte_columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                t["table_schema"],
                t["table_name"],
            )
            for column in byte_columns:
                for row in await conn.fetch(f'SELECT "{column["column_name"]}" AS b FROM {name}'):
                    if row["b"] is not None:
                        parts.append(bytes(row["b"]).decode("utf-8", "replace"))
    return "\n".join(parts)


async def _kafka_bytes() -> bytes:
    """Every key and value of every topic of this test session's services."""
    topics = [topic_name(t, TOPIC_PREFIX) for t in Topic]
    records = await read_records(topics, timeout=20)
    assert records, "nothing read: the search below would prove nothing"
    return b"\n".join(b"%s\n%s" % (r.key or b"", r.value or b"") for r in records)


async def test_raw_references_and_tokens_appear_nowhere(
    registrations: httpx.AsyncClient, partner: Partner, activity: str, pool: asyncpg.Pool
) -> None:
    ref, token, other_ref = distinctive("ref"), distinctive("token"), distinctive("ref")
    registration_id = f"reg-{uuid.uuid4().hex[:8]}"
    writes = [
        (
            "/v1/registrations",
            {
                "registration_id": registration_id,
                "activity_id": activity,
                "participant": {
                    "ref": ref,
                    "resident_token": token,
                    "neighbourhood": "delfgauw",
                    "age_band": "26-64",
                },
                "registered_at": recent(3),
            },
        ),
        (
            f"/v1/registrations/{registration_id}/cancellation",
            {"cancelled_at": recent(1), "reason": "moved-away"},
        ),
        (
            "/v1/attendance",
            {
                "attendance_id": f"att-{uuid.uuid4().hex[:8]}",
                "activity_id": activity,
                "session_start": recent(2),
                "participant": {"ref": other_ref, "neighbourhood": "delfgauw", "age_band": "75+"},
                "status": "no_show",
            },
        ),
        (
            "/v1/batch",
            {
                "items": [
                    {
                        "kind": "registration",
                        "body": {
                            "registration_id": f"reg-{uuid.uuid4().hex[:8]}",
                            "activity_id": activity,
                            "participant": {
                                "ref": ref,
                                "neighbourhood": "delfgauw",
                                "age_band": "26-64",
                            },
                            "registered_at": recent(1),
                        },
                    }
                ]
            },
        ),
    ]
    event_ids = []
    for path, body in writes:
        r = await registrations.post(path, headers=partner.headers, json=body)
        assert r.status_code in (200, 201), r.text
        answer = r.json()
        event_ids.append(
            answer["results"][0]["body"]["event_id"] if "results" in answer else answer["event_id"]
        )
    found = await published(*event_ids)  # all published: the search below covers them
    assert [len(records) for records in found.values()] == [1] * len(writes)

    database = await _database_text(pool)
    kafka = await _kafka_bytes()

    # The searches can find things: the pseudonyms are in the database, their subject ids on
    # Kafka (and the pseudonyms themselves are not: shared/subjects.py).
    resident = pseudonym(f"resident:{token}")
    other = pseudonym(f"{partner.organisation_id}:{other_ref}")
    assert resident in database
    for keyed in (resident, other):
        assert (await subject_id_of(pool, "registrations", keyed)).encode() in kafka
        assert keyed.encode() not in kafka
    for raw in (ref, token, other_ref):
        assert raw not in database, f"{raw} is stored in the database"
        assert raw.encode() not in kafka, f"{raw} is on Kafka"
        assert raw.encode().hex() not in database  # not even hex-encoded
