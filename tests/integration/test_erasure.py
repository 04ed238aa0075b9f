"""Erasure on request (AVG art. 17, issue 17; docs/privacy.md "Erasure"), end to end on the real
Kafka broker and PostgreSQL with the services in-process:

a person's registration, attendance, cancellation, referral, status change and measurement are
written (beside a control person's), reach the metrics facts, and are erased over the API of both
writing services. Then the person's reference, pseudonym and subject-id mapping are in no schema,
no readable event on any topic names them, the figures dropped by exactly that person, and a
replay of every topic (``verbinding metrics rebuild``) does not bring the person back. A retry of
an erased write answers 410; the erasure is recorded without personal data.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import asyncpg
import pytest

from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from services.metrics.service_layer.rebuild import NEW_SCHEMA, rebuild
from shared.events import Topic, decode_event
from shared.pseudonym import Pseudonymiser
from tests.conftest import (
    KAFKA,
    SECRET,
    TOPIC_PREFIX,
    eventually,
    read_topic,
    subject_id_of,
    wait_for_events,
)

pytestmark = pytest.mark.integration

AT = "2025-03-04T10:00:00+01:00"
ANSWERS = ["no", "yes", "more_or_less", "no", "yes", "yes", "no", "no", "yes", "more_or_less", "no"]


async def write_person(
    registrations: Any, referrals: Any, headers: dict[str, str], activity: str, ref: str
) -> tuple[list[str], dict[str, Any]]:
    """Every kind of write about one person; the event ids, and the bodies (to retry)."""
    tag = uuid.uuid4().hex[:8]
    person = {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+", "lives_alone": True}
    writes: list[tuple[Any, str, dict[str, Any]]] = [
        (registrations, "/v1/registrations", {"registration_id": f"reg-{tag}", "activity_id": activity, "participant": person, "registered_at": "2025-03-01T10:00:00+01:00"}),
        (registrations, "/v1/attendance", {"attendance_id": f"att-{tag}", "activity_id": activity, "participant": person, "session_start": AT, "status": "attended"}),
        (registrations, f"/v1/registrations/reg-{tag}/cancellation", {"cancelled_at": "2025-03-05T10:00:00+01:00", "reason": "transport"}),
        (referrals, "/v1/referrals", {"referral_id": f"rf-{tag}", "referrer_role": "gp", "signals": ["social"], "participant": person, "referred_to": {"service": "buddy-programme"}, "consent": True, "created_at": "2025-03-02T10:00:00+01:00"}),
        (referrals, f"/v1/referrals/rf-{tag}/status", {"status": "withdrawn", "at": "2025-03-03T10:00:00+01:00", "outcome": "declined-by-resident"}),
        (referrals, "/v1/measurements", {"measurement_id": f"m-{tag}", "instrument": "djg11", "context": "intake", "participant": person, "answers": ANSWERS, "measured_at": "2025-03-02T11:00:00+01:00"}),
    ]  # fmt: skip
    event_ids, bodies = [], {}
    for client, path, body in writes:
        r = await client.post(path, headers=headers, json=body)
        assert r.status_code == 201, (path, r.text)
        event_ids.append(r.json()["event_id"])
        bodies[path] = body
    return event_ids, bodies


async def figures(pool: asyncpg.Pool, schema: str, org: str) -> dict[str, int]:
    """The organisation's facts that its figures count, person by person."""
    row = await pool.fetchrow(
        f"""SELECT
            (SELECT count(DISTINCT participant_id) FROM {schema}.attendance
              WHERE organisation_id = $1 AND attended) AS participants,
            (SELECT count(*) FROM {schema}.attendance WHERE organisation_id = $1) AS attendances,
            (SELECT count(*) FROM {schema}.registrations WHERE organisation_id = $1)
                AS registrations,
            (SELECT count(*) FROM {schema}.cancellations WHERE organisation_id = $1)
                AS cancellations,
            (SELECT count(*) FROM {schema}.referrals WHERE organisation_id = $1) AS referrals,
            (SELECT count(*) FROM {schema}.referral_status WHERE organisation_id = $1)
                AS status_changes,
            (SELECT count(*) FROM {schema}.measurements WHERE organisation_id = $1)
                AS measurements,
            (SELECT count(*) FROM {schema}.first_attendance WHERE organisation_id = $1)
                AS first_attendances""",
        org,
    )
    return dict(row)


async def every_text(pool: asyncpg.Pool) -> str:
    """Every text, json and bytea value of every table of every schema of the platform."""
    out = []
    async with pool.acquire() as conn:
        columns = await conn.fetch(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema IN ('platform', 'registrations', 'referrals', 'metrics') "
            "AND data_type IN ('text', 'jsonb', 'bytea', 'ARRAY', 'character varying')"
        )
        for c in columns:
            values = await conn.fetch(
                f'SELECT "{c["column_name"]}"::text AS v FROM "{c["table_schema"]}"."{c["table_name"]}"'
            )
            out.extend(str(v["v"]) for v in values if v["v"] is not None)
    return "\n".join(out)


async def refresh_totals_now(pool: Any) -> None:
    """A live refresh of 2025's totals (the year of write_person's records), as the service's
    next reader would start."""
    from services.metrics.adapters.reading import totals_snapshot
    from services.metrics.adapters.totals import refresh_totals
    from services.metrics.adapters.year_grid import GridOptions
    from shared.reference import load_reference
    from shared.scale import DEFAULT_THRESHOLDS

    thresholds = {n: (t.emotional, t.social) for n, t in DEFAULT_THRESHOLDS.items()}
    async with totals_snapshot(pool, "metrics") as conn:
        await refresh_totals(conn, "metrics", 2025, GridOptions(load_reference(), thresholds))


async def test_an_erased_person_is_gone_everywhere_and_the_figures_drop_by_exactly_them(
    registrations, referrals, metrics_app, make_partner, pool
):
    partner = await make_partner(scopes="admin")
    org = partner.organisation_id
    activity = f"act-{uuid.uuid4().hex[:8]}"
    r = await registrations.put(
        f"/v1/activities/{activity}",
        headers=partner.headers,
        json={"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    tag = uuid.uuid4().hex[:8]
    erased_ref, kept_ref = f"ERASEME-{tag}", f"KEEPME-{tag}"
    erased_ids, bodies = await write_person(
        registrations, referrals, partner.headers, activity, erased_ref
    )
    kept_ids, _ = await write_person(registrations, referrals, partner.headers, activity, kept_ref)
    await wait_for_events(metrics_app, erased_ids + kept_ids, timeout=60)

    pseudonym = Pseudonymiser(SECRET).participant(org, erased_ref)
    subjects = {s: await subject_id_of(pool, s, pseudonym) for s in ("registrations", "referrals")}
    # The live totals' sums hold the person's shares (services/metrics/adapters/totals.py).
    await refresh_totals_now(pool)
    for subject in subjects.values():
        assert await pool.fetchval(
            "SELECT count(*) FROM metrics.totals_shares WHERE person = $1", subject
        )
    before = await figures(pool, "metrics", org)
    assert before == {"participants": 2, "attendances": 2, "registrations": 2, "cancellations": 2,
                      "referrals": 2, "status_changes": 2, "measurements": 2,
                      "first_attendances": 2}  # fmt: skip

    # Erased over the API of each service that holds the person; a repeat answers the same.
    answers = {}
    for name, client in (("registrations", registrations), ("referrals", referrals)):
        request = {"erasure_id": f"er-{tag}", "ref": erased_ref}
        first = await client.post("/v1/erasures", headers=partner.headers, json=request)
        again = await client.post("/v1/erasures", headers=partner.headers, json=request)
        assert (first.status_code, again.status_code) == (202, 202), first.text
        assert first.json() == again.json()
        answers[name] = first.json()["deleted"]
    regs = answers["registrations"]
    assert (regs["registrations"], regs["attendance"], regs["subjects"]) == (1, 1, 1)
    assert regs["answers"] == 3  # registration, cancellation, attendance
    assert answers["referrals"]["referrals"] == 1
    assert answers["referrals"]["referral_status_history"] == 2  # created, withdrawn
    assert answers["referrals"]["measurements"] == 1
    assert answers["referrals"]["answers"] == 3  # referral, status change, measurement

    # The metrics service drops the person's facts when the erasure events arrive.
    async def dropped() -> bool:
        return await figures(pool, "metrics", org) == {k: v - 1 for k, v in before.items()}

    await eventually(dropped, timeout=60, what="the metrics facts dropping the erased person")

    # A retry of an erased write is not written again: 410, whatever the body.
    retry = await registrations.post(
        "/v1/registrations", headers=partner.headers, json=bodies["/v1/registrations"]
    )
    assert retry.status_code == 410, retry.text
    assert retry.json()["error"] == "erased"

    # The erasure is recorded: who, when, how many; nothing of the person.
    for schema in ("registrations", "referrals"):
        row = await pool.fetchrow(
            f"SELECT * FROM {schema}.erasures WHERE organisation_id = $1 AND erasure_id = $2",
            org,
            f"er-{tag}",
        )
        assert row["requested_by"] == f"organisation:{org}"
        assert row["scope"] == "organisation"

    # No schema holds the reference, the pseudonym or the person's subject-id mapping. (The
    # subject ids themselves remain only as erasure markers: metrics.erased_subjects.)
    await asyncio.sleep(1.5)  # the relays publish the erasure events; nothing else arrives
    stored = await every_text(pool)
    assert erased_ref not in stored
    assert pseudonym not in stored
    for schema, subject in subjects.items():
        assert not await pool.fetchval(
            f"SELECT count(*) FROM {schema}.subjects WHERE subject_id = $1", subject
        )
    # Every metrics table that names a person (the facts, the rollups kept beside them, the
    # totals' shares, after the refresh that follows the erasure: the snapshot's within its
    # interval, or the next reader's).
    await refresh_totals_now(pool)
    person_columns = await pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'metrics' "
        "AND column_name IN ('participant_id', 'person_id', 'person', 'who')"
    )
    assert {"attendance", "first_attendance", "totals_shares"} <= {
        c["table_name"] for c in person_columns
    }
    for subject in subjects.values():
        assert not await pool.fetchval(
            "SELECT count(*) FROM metrics.totals_changes WHERE $1 = ANY(people)", subject
        )
    for c in person_columns:
        for subject in subjects.values():
            assert not await pool.fetchval(
                f'SELECT count(*) FROM metrics."{c["table_name"]}" WHERE "{c["column_name"]}" = $1',
                subject,
            ), (c["table_name"], c["column_name"])
    assert kept_ref not in stored  # never stored (control: the scan covers real rows)
    assert Pseudonymiser(SECRET).participant(org, kept_ref) in stored

    # On Kafka: no record holds the reference or the pseudonym; the person's events carry only a
    # subject id that no schema maps to anybody, and every one of them is skipped by readers
    # because the `erasures` topic names that id.
    erased_on_topic = {
        decode_event(r.value).data.subject_id for r in await read_topic(Topic.ERASURES.value)
    }
    assert set(subjects.values()) <= erased_on_topic
    for topic in Topic:
        for record in await read_topic(topic.value):
            raw = (record.key or b"") + b"\n" + (record.value or b"")
            assert erased_ref.encode() not in raw
            assert pseudonym.encode() not in raw
            if topic is not Topic.ERASURES and any(s.encode() in raw for s in subjects.values()):
                event = decode_event(record.value)
                assert event.subject in erased_on_topic

    # A replay of every topic into fresh tables (the rebuild, without swapping the live ones)
    # keeps the person out.
    report = await rebuild(pool, KAFKA, CONSUMED_TOPICS, prefix=TOPIC_PREFIX, swap=False)
    try:
        assert report.events > 0
        assert await figures(pool, NEW_SCHEMA, org) == {k: v - 1 for k, v in before.items()}
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {NEW_SCHEMA} CASCADE")

    # A new write about the same reference is a new person, under a new subject id.
    again = dict(bodies["/v1/registrations"], registration_id=f"reg-new-{tag}")
    assert (
        await registrations.post("/v1/registrations", headers=partner.headers, json=again)
    ).status_code == 201
    assert await subject_id_of(pool, "registrations", pseudonym) != subjects["registrations"]


async def test_an_erasure_by_resident_token_and_its_validation(registrations, make_partner, pool):
    partner = await make_partner(scopes="admin")
    both = await registrations.post(
        "/v1/erasures", headers=partner.headers, json={"erasure_id": "e-1", "ref": "a", "resident_token": "b"}
    )  # fmt: skip
    neither = await registrations.post(
        "/v1/erasures", headers=partner.headers, json={"erasure_id": "e-1"}
    )
    assert (both.status_code, neither.status_code) == (422, 422)
    nobody = await registrations.post(
        "/v1/erasures",
        headers=partner.headers,
        json={"erasure_id": f"e-{uuid.uuid4().hex[:6]}", "resident_token": "nobody-known"},
    )
    assert nobody.status_code == 202, nobody.text
    assert nobody.json()["deleted"]["subjects"] == 0


async def test_an_administrator_erases_from_the_command_line_in_both_services(
    registrations, referrals, make_partner, pool, test_env
):
    partner = await make_partner(scopes="admin")
    org = partner.organisation_id
    activity = f"act-{uuid.uuid4().hex[:8]}"
    await registrations.put(
        f"/v1/activities/{activity}",
        headers=partner.headers,
        json={"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"},
    )  # fmt: skip
    ref = f"CLI-ERASE-{uuid.uuid4().hex[:8]}"
    await write_person(registrations, referrals, partner.headers, activity, ref)
    pseudonym = Pseudonymiser(SECRET).participant(org, ref)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "erase", org, "--ref", "-", "--by", "dpo",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **test_env},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(ref.encode() + b"\n"), timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert ref.encode() not in out + err  # read from standard input, never echoed

    answers = json.loads(out)
    assert answers["registrations"]["deleted"]["registrations"] == 1
    assert answers["referrals"]["deleted"]["measurements"] == 1
    for schema in ("registrations", "referrals"):
        assert not await pool.fetchval(
            f"SELECT count(*) FROM {schema}.subjects WHERE pseudonym = $1", pseudonym
        )
        by = await pool.fetchval(
            f"SELECT requested_by FROM {schema}.erasures WHERE erasure_id = $1",
            answers[schema]["erasure_id"],
        )
        assert by == "admin:dpo"


async def test_a_trained_person_is_erased_by_their_reference_and_drops_from_the_figures(
    registrations, referrals, metrics_app, make_partner, pool
):
    """A trained professional or volunteer is a person too: their trainings travel under a
    subject id, and an erasure by `person_ref` (scope `trainings`) removes them everywhere."""
    org_key = await make_partner(scopes="registrations")
    org = org_key.organisation_id
    trainer = await make_partner(organisation_id=org, scopes="trainings")
    referrer = await make_partner(organisation_id=org, scopes="referrals")
    tag = uuid.uuid4().hex[:8]
    erased_ref, kept_ref = f"TRAINED-ERASE-{tag}", f"TRAINED-KEEP-{tag}"
    event_ids, bodies = [], []
    for i, person_ref in enumerate((erased_ref, erased_ref, kept_ref)):
        body = {"training_id": f"tr-{tag}-{i}", "person_ref": person_ref, "role": "volunteer", "training": "signaling-loneliness", "completed_at": "2025-05-01T16:00:00+02:00"}  # fmt: skip
        r = await referrals.post("/v1/trainings", headers=trainer.headers, json=body)
        assert r.status_code == 201, r.text
        event_ids.append(r.json()["event_id"])
        bodies.append(body)
    await wait_for_events(metrics_app, event_ids, timeout=60)
    pseudonym = Pseudonymiser(SECRET).person(org, erased_ref)
    subject = await subject_id_of(pool, "referrals", pseudonym)

    async def trained() -> dict[str, int]:
        rows = await pool.fetch(
            "SELECT person_id, count(*) AS n FROM metrics.trainings WHERE organisation_id = $1 "
            "GROUP BY person_id",
            org,
        )
        return {r["person_id"]: r["n"] for r in rows}

    before = await trained()
    assert len(before) == 2
    assert before[subject] == 2

    request = {"erasure_id": f"er-tr-{tag}", "person_ref": erased_ref}
    # Only a key that may write trainings erases a trained person; the registrations service
    # holds none and says so, naming the field.
    denied = await referrals.post("/v1/erasures", headers=referrer.headers, json=request)
    assert denied.status_code == 403, denied.text
    assert "trainings" in denied.json()["message"]
    elsewhere = await registrations.post("/v1/erasures", headers=org_key.headers, json=request)
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["details"][0]["field"] == "person_ref"

    r = await referrals.post("/v1/erasures", headers=trainer.headers, json=request)
    assert r.status_code == 202, r.text
    deleted = r.json()["deleted"]
    assert (deleted["trainings"], deleted["subjects"], deleted["answers"]) == (2, 1, 2)
    assert (deleted["referrals"], deleted["measurements"]) == (0, 0)
    scope = await pool.fetchval(
        "SELECT scope FROM referrals.erasures WHERE organisation_id = $1 AND erasure_id = $2",
        org,
        f"er-tr-{tag}",
    )
    assert scope == "person"

    async def dropped() -> bool:
        return await trained() == {k: v for k, v in before.items() if k != subject}

    await eventually(dropped, timeout=60, what="the metrics facts dropping the trained person")

    retry = await referrals.post("/v1/trainings", headers=trainer.headers, json=bodies[0])
    assert retry.status_code == 410, retry.text
    stored = await every_text(pool)
    assert erased_ref not in stored
    assert pseudonym not in stored
    assert not await pool.fetchval(
        "SELECT count(*) FROM referrals.subjects WHERE subject_id = $1", subject
    )
    erased_on_topic = {
        decode_event(r.value).data.subject_id for r in await read_topic(Topic.ERASURES.value)
    }
    assert subject in erased_on_topic
    for record in await read_topic(Topic.TRAININGS.value):
        assert pseudonym.encode() not in record.value
        assert erased_ref.encode() not in record.value

    # A replay keeps the trained person out.
    report = await rebuild(pool, KAFKA, CONSUMED_TOPICS, prefix=TOPIC_PREFIX, swap=False)
    try:
        assert report.events > 0
        rows = await pool.fetch(
            f"SELECT person_id FROM {NEW_SCHEMA}.trainings WHERE organisation_id = $1", org
        )
        assert sorted(r["person_id"] for r in rows) == [k for k in before if k != subject]
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {NEW_SCHEMA} CASCADE")
