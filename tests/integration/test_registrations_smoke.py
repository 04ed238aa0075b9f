"""Smoke: an accepted registration reaches Kafka once, keyed by the participant pseudonym."""

from __future__ import annotations

from tests.conftest import event_id_of, read_topic


async def test_registration_reaches_kafka_once(registrations, make_partner):
    partner = await make_partner()
    h = partner.headers
    r = await registrations.put(
        "/v1/activities/smoke-a",
        headers=h,
        json={
            "title": "Soep",
            "category": "meeting",
            "aimed_at_connection": True,
            "neighbourhood": "delfgauw",
        },
    )
    assert r.status_code == 201, r.text
    body = {
        "registration_id": "smoke-r",
        "activity_id": "smoke-a",
        "participant": {"ref": "raw-ref-smoke-123", "neighbourhood": "delfgauw", "age_band": "75+"},
        "registered_at": "2026-10-01T10:00:00+02:00",
    }
    first = await registrations.post("/v1/registrations", headers=h, json=body)
    again = await registrations.post("/v1/registrations", headers=h, json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    event_id = first.json()["event_id"]
    records = await read_topic("registrations", expect=1)
    mine = [r for r in records if event_id_of(r) == event_id]
    assert len(mine) == 1
    assert b"raw-ref-smoke-123" not in b"".join(r.value for r in records)
