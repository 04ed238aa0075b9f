"""Smoke: events written through the registrations API show up in /v1/indicators."""

from __future__ import annotations

from tests.conftest import wait_for_events


async def test_attendance_counts_in_indicators(registrations, metrics, metrics_app, make_partner):
    partner = await make_partner()
    reader = await make_partner(scopes="indicators")
    h = partner.headers
    r = await registrations.put(
        "/v1/activities/m-a",
        headers=h,
        json={
            "title": "Wandelen",
            "category": "sport",
            "aimed_at_connection": True,
            "neighbourhood": "emerald",
        },
    )
    assert r.status_code == 201
    items = [
        {
            "kind": "attendance",
            "body": {
                "attendance_id": f"att-{i}",
                "activity_id": "m-a",
                "participant": {"ref": f"p{i}", "neighbourhood": "emerald", "age_band": "26-64"},
                "session_start": "2011-03-04T10:00:00+01:00",
                "status": "attended",
            },
        }
        for i in range(12)
    ]
    r = await registrations.post("/v1/batch", headers=h, json={"items": items})
    assert r.json()["accepted"] == 12
    await wait_for_events(metrics_app, [x["body"]["event_id"] for x in r.json()["results"]])
    r = await metrics.get("/v1/indicators", params={"period": "2011-03"}, headers=reader.headers)
    assert r.status_code == 200, r.text
    s2 = r.json()["s2"]
    assert s2["participants_unique"] == {"value": 12, "suppressed": False}
    assert s2["attendances"]["value"] == 12
    r = await metrics.get("/v1/indicators", params={"period": "2011-02"}, headers=reader.headers)
    nobody = r.json()["s2"]["participants_unique"]
    assert (nobody["value"], nobody["suppressed"], nobody["reason"]) == (None, True, "primary")
