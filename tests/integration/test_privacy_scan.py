"""No raw participant reference, resident token or person reference anywhere (domain.md §3),
and not the pseudonymisation secret either.

The three services run as real processes with DEBUG logging (their JSON-lines logs on stderr are
captured), the metrics service consuming. Distinctive raw references are sent through every
write endpoint that takes one (single and batch; accepted, replayed, rejected and conflicting
writes), then three places are scanned: every row of every table of every schema of the
database, every record (key and value, and the originals inside dead letters) of every topic of
the run, and the services' logs. As a control, the pseudonyms of those references must be found
in the database and on Kafka: the data did arrive, only never in the raw.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from shared.events import Topic, topic_name
from shared.pseudonym import Pseudonymiser
from tests.conftest import RUN_ID, SECRET, TOPIC_PREFIX, eventually, read_records
from tests.live import LiveServices, live_services

pytestmark = pytest.mark.integration

MARK = uuid.uuid4().hex[:12]
REFS = [f"RAWREF-{MARK}-{i}" for i in range(6)]
TOKENS = [f"RAWTOKEN-{MARK}-{i}" for i in range(3)]
PERSONS = [f"RAWPERSON-{MARK}-{i}" for i in range(3)]
RAW = [*REFS, *TOKENS, *PERSONS, SECRET]


def p(ref: str, token: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+"}
    if token:
        body["resident_token"] = token
    return body


def nid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def live(
    test_env: dict[str, str], database: str, kafka: str, tmp_path_factory: Any
) -> AsyncIterator[LiveServices]:
    env = {
        **test_env,
        "VERBINDING_LOG_LEVEL": "DEBUG",
        "VERBINDING_CONSUMER_GROUP": f"privacy-{RUN_ID}",
        "VERBINDING_SNAPSHOT_INTERVAL_SECONDS": "1",
    }
    log_dir = Path(tmp_path_factory.mktemp("privacy-logs"))
    async with live_services(("registrations", "referrals", "metrics"), env, log_dir) as services:
        yield services


async def send_everything(live: LiveServices, org_key: str, other_key: str) -> list[int]:
    """Every write that carries a reference, in every way a partner may send it."""
    h = {"Authorization": f"Bearer {org_key}"}
    statuses: list[int] = []
    reg = httpx.AsyncClient(base_url=live.url("registrations"), headers=h, timeout=30)
    ref = httpx.AsyncClient(base_url=live.url("referrals"), headers=h, timeout=30)
    async with reg, ref:
        activity = nid("act")
        activity_body = {"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"}  # fmt: skip
        statuses.append(
            (await reg.put(f"/v1/activities/{activity}", json=activity_body)).status_code
        )
        registration = {"registration_id": nid("reg"), "activity_id": activity, "participant": p(REFS[0], TOKENS[0]), "registered_at": "2025-03-01T10:00:00+01:00"}  # fmt: skip
        attendance = {"attendance_id": nid("att"), "activity_id": activity, "participant": p(REFS[1]), "session_start": "2025-03-04T10:00:00+01:00", "status": "attended"}  # fmt: skip
        for _ in range(2):  # the second time a replay
            statuses.append((await reg.post("/v1/registrations", json=registration)).status_code)
            statuses.append((await reg.post("/v1/attendance", json=attendance)).status_code)
        conflicting = {**attendance, "participant": p(REFS[2])}
        statuses.append((await reg.post("/v1/attendance", json=conflicting)).status_code)
        rejected = {**attendance, "attendance_id": nid("att"), "participant": {**p(REFS[2], TOKENS[2]), "neighbourhood": f"nowhere-{REFS[2]}"}}  # fmt: skip
        statuses.append((await reg.post("/v1/attendance", json=rejected)).status_code)
        batch = {"items": [
            {"kind": "attendance", "body": {**attendance, "attendance_id": nid("att"), "participant": p(REFS[3])}},
            {"kind": "registration", "body": {**registration, "registration_id": nid("reg"), "participant": p(REFS[3], TOKENS[1])}},
            {"kind": "attendance", "body": {**attendance, "attendance_id": nid("att"), "participant": {**p(REFS[3]), "age_band": "ancient"}}},
        ]}  # fmt: skip
        statuses.append((await reg.post("/v1/batch", json=batch)).status_code)
        cancel = {"cancelled_at": "2025-03-02T10:00:00+01:00", "reason": "moved-away"}
        statuses.append((await reg.post(f"/v1/registrations/{registration['registration_id']}/cancellation", json=cancel)).status_code)  # fmt: skip

        referral = {"referral_id": nid("ref"), "participant": p(REFS[4], TOKENS[0]), "referrer_role": "gp", "signals": ["social"], "referred_to": {"service": "buddy-programme"}, "consent": True, "created_at": "2025-03-03T09:30:00+01:00"}  # fmt: skip
        statuses.append((await ref.post("/v1/referrals", json=referral)).status_code)
        statuses.append((await ref.post("/v1/referrals", json={**referral, "participant": p(REFS[5])})).status_code)  # 409  # fmt: skip
        statuses.append((await ref.post("/v1/referrals", json={**referral, "referral_id": nid("ref"), "consent": False})).status_code)  # fmt: skip
        status = {
            "status": "accepted",
            "at": "2025-03-04T09:00:00+01:00",
            "outcome": "support-in-place",
        }
        statuses.append((await ref.post(f"/v1/referrals/{referral['referral_id']}/status", json=status)).status_code)  # fmt: skip
        training = {"training_id": nid("tr"), "person_ref": PERSONS[0], "role": "gp", "training": "signaling-loneliness", "completed_at": "2025-02-10T16:00:00+01:00"}  # fmt: skip
        statuses.append((await ref.post("/v1/trainings", json=training)).status_code)
        statuses.append((await ref.post("/v1/trainings", json={**training, "person_ref": PERSONS[1]})).status_code)  # 409  # fmt: skip
        answers = ["no", "yes", "more_or_less", "yes", "no", "no", "more_or_less", "yes", "yes", "no", "yes"]  # fmt: skip
        intake = {"measurement_id": nid("m"), "instrument": "djg11", "context": "intake", "participant": p(REFS[4], TOKENS[0]), "answers": answers, "measured_at": "2025-03-05T10:00:00+01:00"}  # fmt: skip
        survey = {
            **intake,
            "measurement_id": nid("m"),
            "context": "survey",
            "participant": p(REFS[5]),
        }
        statuses.append((await ref.post("/v1/measurements", json=intake)).status_code)
        statuses.append((await ref.post("/v1/measurements", json=survey)).status_code)
        batch = {"items": [
            {"kind": "training", "body": {**training, "training_id": nid("tr"), "person_ref": PERSONS[2]}},
            {"kind": "measurement", "body": {**survey, "measurement_id": nid("m"), "participant": p(REFS[5], TOKENS[2])}},
            {"kind": "referral", "body": {**referral, "referral_id": nid("ref"), "participant": p(REFS[5], TOKENS[1]), "referrer_role": "nobody"}},
        ]}  # fmt: skip
        statuses.append((await ref.post("/v1/batch", json=batch)).status_code)
        # Someone else's key and a missing key, with references in the body.
        other = {"Authorization": f"Bearer {other_key}"}
        statuses.append(
            (await reg.post("/v1/attendance", json=attendance, headers=other)).status_code
        )
        statuses.append((await ref.post("/v1/referrals", json=referral, headers={"Authorization": ""})).status_code)  # fmt: skip
    return statuses


def found_in(text: str, raw: list[str]) -> list[str]:
    return [r for r in raw if r in text]


async def database_text(pool: asyncpg.Pool) -> str:
    """Every value of every row of every table in every schema, as text (bytes decoded)."""
    parts: list[str] = []
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for t in tables:
            for row in await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}"'):
                for value in row.values():
                    if isinstance(value, bytes):
                        parts.append(value.decode("utf-8", errors="replace"))
                    elif isinstance(value, dict | list):
                        parts.append(orjson.dumps(value).decode())
                    else:
                        parts.append(str(value))
    assert len(tables) >= 20, [f"{t['table_schema']}.{t['table_name']}" for t in tables]
    return "\n".join(parts)


async def kafka_text() -> str:
    topics = [topic_name(t, TOPIC_PREFIX) for t in Topic]
    parts: list[str] = []
    for record in await read_records(topics, timeout=30):
        for raw in (record.key or b"", record.value or b""):
            parts.append(raw.decode("utf-8", errors="replace"))
        if record.topic.endswith("deadletter"):
            data = orjson.loads(record.value)["data"]
            for field in ("original_value", "original_key"):
                if data.get(field):
                    parts.append(base64.b64decode(data[field]).decode("utf-8", errors="replace"))
    return "\n".join(parts)


async def test_no_raw_reference_in_the_database_on_kafka_or_in_the_logs(
    live: LiveServices, make_partner: Any, pool: asyncpg.Pool
) -> None:
    partner = await make_partner()
    other = await make_partner()
    statuses = await send_everything(live, partner.key, other.key)
    # Accepted, replayed, conflicting and rejected writes all happened (the scan covers each).
    assert {200, 201, 401, 409, 422} <= set(statuses), statuses

    secret = Pseudonymiser(SECRET)
    org = partner.organisation_id
    participants = [
        secret.resident(TOKENS[0]),
        secret.participant(org, REFS[1]),
        secret.participant(org, REFS[3]),
    ]
    pseudonyms = [*participants, secret.person(org, PERSONS[0])]
    # On Kafka and in the facts people are named by subject ids (shared/subjects.py).
    subjects = [
        r["subject_id"]
        for schema in ("registrations", "referrals")
        for r in await pool.fetch(
            f"SELECT subject_id FROM {schema}.subjects WHERE pseudonym = ANY($1::text[])",
            pseudonyms,
        )
    ]
    assert subjects

    async def consumed() -> bool:
        n = await pool.fetchval(
            "SELECT count(*) FROM metrics.attendance WHERE participant_id = ANY($1::text[])",
            subjects,
        )
        return bool(n >= 2)

    await eventually(consumed, timeout=60, what="the metrics service applying the run's events")
    await asyncio.sleep(1.0)  # let the snapshot and the lag watch log once more

    db = await database_text(pool)
    kafka = await kafka_text()
    logs = live.logs()

    assert found_in(db, RAW) == [], "raw references in the database"
    assert found_in(kafka, RAW) == [], "raw references on Kafka"
    assert found_in(logs, RAW) == [], "raw references in the logs"
    # The control: the references did arrive, as pseudonyms, so the scan looked at real data.
    assert found_in(db, pseudonyms) == pseudonyms
    assert found_in(kafka, subjects) == subjects
    assert found_in(kafka, pseudonyms) == [], "a person's pseudonym on Kafka"
    for service in ("registrations", "referrals", "metrics"):  # the log scan saw each service
        assert f'"service": "{service}"' in logs, f"no JSON log line of {service}"
    assert MARK not in logs, [line for line in logs.splitlines() if MARK in line][:3]
