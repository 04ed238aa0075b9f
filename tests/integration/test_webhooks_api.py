"""Managing webhook endpoints over the API: registration (checked URL, the secret shown once,
idempotent per id), listing without secrets, rotation with overlap (a delivery verifies with the
old secret and with the new), deletion."""

from __future__ import annotations

import uuid

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from services.referrals.entrypoints.answers import RegisteredWebhook, WebhookList, WebhookSecret
from tests.conftest import PartnerFactory, eventually
from tests.integration.test_referral_loop import Receiver, move, refer

pytestmark = pytest.mark.integration


async def test_registration_checks_the_url_and_is_idempotent_per_id(
    referrals: httpx.AsyncClient, make_partner: PartnerFactory
) -> None:
    org = await make_partner("referrals")
    for url in ("https://gp.example/hook", "ftp://127.0.0.1/x", "http://10.0.0.1/x", "not a url"):
        r = await referrals.post(
            "/v1/webhooks", headers=org.headers, json={"webhook_id": "w", "url": url}
        )
        assert r.status_code == 422, (url, r.text)
        assert [d["field"] for d in r.json()["details"]] == ["url"]
    r = await referrals.post(
        "/v1/webhooks", headers=org.headers, json={"webhook_id": "bad id!", "url": 1}
    )
    assert r.status_code == 422
    assert {d["field"] for d in r.json()["details"]} == {"webhook_id", "url"}

    body = {"webhook_id": "w", "url": "http://127.0.0.1:9/hook"}
    first = await referrals.post("/v1/webhooks", headers=org.headers, json=body)
    assert first.status_code == 201
    assert first.json()["secret"].startswith("whsec_")
    again = await referrals.post("/v1/webhooks", headers=org.headers, json=body)
    assert again.status_code == 200
    assert again.json()["secret"] is None  # shown once
    # Both answers are what the OpenAPI document says they are (the route does not validate).
    RegisteredWebhook.model_validate(first.json())
    RegisteredWebhook.model_validate(again.json())
    other = await referrals.post(
        "/v1/webhooks", headers=org.headers, json={**body, "url": "http://127.0.0.1:10/hook"}
    )
    assert other.status_code == 409
    listed = WebhookList.model_validate(
        (await referrals.get("/v1/webhooks", headers=org.headers)).json()
    ).model_dump(mode="json")["webhooks"]
    assert [w["url"] for w in listed] == [body["url"]]
    assert first.json()["secret"] not in str(listed)

    assert (await referrals.delete("/v1/webhooks/w", headers=org.headers)).status_code == 204
    assert (await referrals.get("/v1/webhooks", headers=org.headers)).json()["webhooks"] == []
    assert (await referrals.delete("/v1/webhooks/w", headers=org.headers)).status_code == 404
    # A deleted id is never reused: a receiver could not tell its deliveries apart.
    r = await referrals.post("/v1/webhooks", headers=org.headers, json=body)
    assert r.status_code == 409


async def test_after_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    referrals: httpx.AsyncClient, make_partner: PartnerFactory
) -> None:
    gp, welfare = await make_partner("referrals"), await make_partner("referrals")
    receiver = Receiver()
    await receiver.start()
    try:
        r = await referrals.post(
            "/v1/webhooks", headers=gp.headers, json={"webhook_id": "w", "url": receiver.url}
        )
        old = r.json()["secret"]
        rotated = await referrals.post("/v1/webhooks/w/rotate", headers=gp.headers)
        assert rotated.status_code == 200
        WebhookSecret.model_validate(rotated.json())
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["previous_secret_expires_at"] is not None
        receiver.secret = new
        ref = f"ref-{uuid.uuid4().hex[:8]}"
        await refer(referrals, gp, welfare, ref)
        await move(referrals, welfare, gp, ref, "accepted", "2026-11-04T09:00:00+01:00")

        async def delivered() -> bool:
            return len(receiver.accepted) == 1

        await eventually(delivered, timeout=30, what="the delivery")
        headers, body = receiver.requests[0]
        assert len(headers["webhook-signature"].split()) == 2
        for secret in (old, new):
            Webhook(secret).verify(body, headers)
    finally:
        await receiver.stop()
