"""The referral loop closed (issue 15, "Done when"), end to end on the real Kafka and PostgreSQL
with real HTTP receivers on loopback: a GP refers, the welfare organisation accepts, contacts,
registers the resident naming the referral and records attendance; the GP's receiver gets the
accepted, contacted and first-attendance deliveries, each once by its idempotency key, in order,
with valid Standard Webhooks signatures; the feed shows the same. A receiver that is down for
30 s gets its deliveries afterwards; one that always fails ends dead-lettered, where its
organisation reads and redelivers them; a hanging receiver never slows a write."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook

from services.referrals.entrypoints.answers import (
    RedeliveryAnswer,
    ReferralFeed,
    ReferralRecord,
    RegisteredWebhook,
    WebhookFailures,
    WebhookList,
)
from tests.conftest import Partner, PartnerFactory, eventually
from tests.live import free_port

pytestmark = pytest.mark.integration

ACTIVITY = {
    "title": "Koffie-ochtend",
    "category": "meeting",
    "aimed_at_connection": True,
    "neighbourhood": "pijnacker-noord",
}
PARTICIPANT = {"ref": "klant-4711", "neighbourhood": "pijnacker-noord", "age_band": "75+"}


@dataclass
class Receiver:
    """A webhook receiver on loopback, as a referrer would run one: it verifies every delivery
    and keeps the first of each `webhook-id` (its idempotency key).

    ``mode``: `ok`; `fail` (500 always); `hang` (answers after 30 s, long after the sender
    gave up); `flaky` (takes the first delivery, then answers 500 to it once, so that the
    sender sends it again)."""

    secret: str = ""
    mode: str = "ok"
    port: int = field(default_factory=free_port)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    bad_signatures: int = 0
    hanging: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _failed_once: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/verbinding"

    @property
    def types(self) -> list[str]:
        return [d["type"] for d in self.accepted.values()]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((headers, body))
        status = 204
        if self.mode == "hang":
            self.hanging += 1
            try:
                await asyncio.sleep(30)
            finally:
                self.hanging -= 1
        elif self.mode == "fail":
            status = 500
        else:
            try:
                payload = Webhook(self.secret).verify(body, headers)
            except Exception:
                self.bad_signatures += 1
                status = 400
            else:
                message_id = headers["webhook-id"]
                if message_id in self.accepted:
                    self.duplicates += 1  # recognised by its idempotency key: done already
                else:
                    self.accepted[message_id] = payload
                    if self.mode == "flaky" and not self._failed_once:
                        self._failed_once = True
                        status = 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        config = uvicorn.Config(
            self, host="127.0.0.1", port=self.port, lifespan="off", log_config=None
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            assert not self._task.done(), "the receiver did not start"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await self._task


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        await r.stop()


async def subscribe(referrals: httpx.AsyncClient, org: Partner, receiver: Receiver) -> str:
    r = await referrals.post(
        "/v1/webhooks",
        headers=org.headers,
        json={"webhook_id": "main", "url": receiver.url, "description": "test receiver"},
    )
    assert r.status_code == 201, r.text
    RegisteredWebhook.model_validate(r.json())  # as the OpenAPI document says (not validated)
    receiver.secret = r.json()["secret"]
    return str(receiver.secret)


async def refer(
    referrals: httpx.AsyncClient, gp: Partner, welfare: Partner, referral_id: str
) -> httpx.Response:
    r = await referrals.post(
        "/v1/referrals",
        headers=gp.headers,
        json={
            "referral_id": referral_id,
            "referrer_role": "gp",
            "signals": ["social"],
            "participant": {"ref": "patient-881", "neighbourhood": "delfgauw", "age_band": "75+"},
            "referred_to": {"organisation_id": welfare.organisation_id, "activity_id": "koffie"},
            "consent": True,
            "created_at": "2026-11-03T11:20:00+01:00",
        },
    )
    assert r.status_code == 201, r.text
    return r


async def move(
    referrals: httpx.AsyncClient,
    welfare: Partner,
    gp: Partner,
    referral_id: str,
    status: str,
    at: str,
) -> None:
    r = await referrals.post(
        f"/v1/referrals/{referral_id}/status",
        params={"referring_organisation_id": gp.organisation_id},
        headers=welfare.headers,
        json={
            "status": status,
            "at": at,
            "outcome": "intake-planned" if status == "contacted" else None,
        },
    )
    assert r.status_code == 201, r.text


async def attend(
    registrations: httpx.AsyncClient, welfare: Partner, gp: Partner, referral_id: str
) -> None:
    r = await registrations.put("/v1/activities/koffie", headers=welfare.headers, json=ACTIVITY)
    assert r.status_code in (200, 201), r.text
    r = await registrations.post(
        "/v1/registrations",
        headers=welfare.headers,
        json={
            "registration_id": f"reg-{referral_id}",
            "activity_id": "koffie",
            "participant": {**PARTICIPANT, "lives_alone": True},
            "registered_at": "2026-11-05T09:15:00+01:00",
            "referral_id": referral_id,
            "referring_organisation_id": gp.organisation_id,
        },
    )
    assert r.status_code == 201, r.text
    for n, (day, status) in enumerate([("06", "no_show"), ("12", "attended"), ("19", "attended")]):
        r = await registrations.post(
            "/v1/attendance",
            headers=welfare.headers,
            json={
                "attendance_id": f"att-{referral_id}-{n}",
                "activity_id": "koffie",
                "session_start": f"2026-11-{day}T10:00:00+01:00",
                "status": status,
                "participant": PARTICIPANT,
            },
        )
        assert r.status_code == 201, r.text


async def feed(referrals: httpx.AsyncClient, org: Partner) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"changed_since": cursor} if cursor else {})
        r = await referrals.get("/v1/referrals", headers=org.headers, params=params)
        assert r.status_code == 200, r.text
        ReferralFeed.model_validate(r.json())
        items += r.json()["items"]
        cursor = r.json()["next"]
        if not r.json()["has_more"]:
            return items


async def test_the_referrer_hears_back_by_webhook_and_feed(
    registrations: httpx.AsyncClient,
    referrals: httpx.AsyncClient,
    make_partner: PartnerFactory,
    receivers: list[Receiver],
) -> None:
    gp = await make_partner("referrals")
    welfare = await make_partner("activities,registrations,referrals")
    outsider = await make_partner("referrals")
    gp_receiver, welfare_receiver = Receiver(mode="flaky"), Receiver()
    receivers += [gp_receiver, welfare_receiver]
    for receiver in receivers:
        await receiver.start()
    await subscribe(referrals, gp, gp_receiver)
    await subscribe(referrals, welfare, welfare_receiver)
    ref = f"ref-{uuid.uuid4().hex[:8]}"

    await refer(referrals, gp, welfare, ref)
    await move(referrals, welfare, gp, ref, "accepted", "2026-11-04T09:00:00+01:00")
    await move(referrals, welfare, gp, ref, "contacted", "2026-11-04T15:00:00+01:00")
    await attend(registrations, welfare, gp, ref)

    wanted = ["referral.status_changed", "referral.status_changed", "referral.first_attendance"]

    async def heard() -> bool:
        return gp_receiver.types == wanted and len(welfare_receiver.types) == 2

    async def explain() -> str:
        return f"gp: {gp_receiver.types}, welfare: {welfare_receiver.types}"

    await eventually(heard, timeout=60, what="the three deliveries", explain=explain)
    await asyncio.sleep(2)  # anything more would show now
    assert gp_receiver.types == wanted
    assert gp_receiver.bad_signatures == 0
    # The flaky receiver's first delivery came again and was recognised by its webhook-id.
    assert gp_receiver.duplicates == 1
    ids = [h["webhook-id"] for h, _ in gp_receiver.requests]
    assert len(ids) == 4
    assert len(set(ids)) == 3
    data = [d["data"] for d in gp_receiver.accepted.values()]
    assert [d.get("status") for d in data] == ["accepted", "contacted", None]
    assert [d["sequence"] for d in data] == [2, 3, 4]  # in order
    assert data[1]["outcome"] == "intake-planned"
    assert data[2]["attended_on"] == "2026-11-12"  # the first *attended* session
    assert data[2]["days_after_referral"] == 9
    assert data[2]["within_window"] is True
    for d in data:
        assert (d["referring_organisation_id"], d["referral_id"], d["role"]) == (
            gp.organisation_id,
            ref,
            "sent",
        )
    # What travels: statuses, dates and codes; never the resident.
    for _, body in gp_receiver.requests + welfare_receiver.requests:
        text = body.decode()
        for leak in ("patient-881", "klant-4711", "participant", "delfgauw", "age_band"):
            assert leak not in text
    # The welfare organisation hears of the referral made to it and of the first attendance.
    assert welfare_receiver.types == ["referral.created", "referral.first_attendance"]

    # The feed says the same, to each side only.
    (mine,) = [i for i in await feed(referrals, gp) if i["referral_id"] == ref]
    assert mine["status"] == "contacted"
    assert mine["role"] == "sent"
    assert mine["first_attendance_on"] == "2026-11-12"
    assert mine["outcome"] == "intake-planned"
    assert set(mine["milestones"]) == {"created", "accepted", "contacted"}
    (theirs,) = [i for i in await feed(referrals, welfare) if i["referral_id"] == ref]
    assert theirs["role"] == "received"
    assert theirs["first_attendance_on"] == "2026-11-12"
    assert [i for i in await feed(referrals, outsider) if i["referral_id"] == ref] == []
    # Nothing changed since the last cursor: an empty page, the same cursor.
    r = await referrals.get("/v1/referrals", headers=gp.headers)
    last = r.json()["next"]
    while r.json()["has_more"]:
        r = await referrals.get("/v1/referrals", headers=gp.headers, params={"changed_since": last})
        last = r.json()["next"]
    again = await referrals.get("/v1/referrals", headers=gp.headers, params={"changed_since": last})
    assert again.json() == {"items": [], "next": last, "has_more": False}
    # The referral itself shows the first attendance, to both sides.
    r = await referrals.get(f"/v1/referrals/{ref}", headers=gp.headers)
    ReferralRecord.model_validate(r.json())
    assert r.json()["first_attendance_on"] == "2026-11-12"
    assert "first_attendance" in [h["status"] for h in r.json()["history"]]


async def test_a_receiver_down_for_30_s_gets_its_deliveries_and_one_that_always_fails_ends_dead(
    referrals: httpx.AsyncClient,
    make_partner: PartnerFactory,
    receivers: list[Receiver],
) -> None:
    welfare = await make_partner("referrals")
    late_gp, failing_gp = await make_partner("referrals"), await make_partner("referrals")
    late, failing = Receiver(), Receiver(mode="fail")
    receivers += [late, failing]
    await failing.start()
    await subscribe(referrals, late_gp, late)  # its server is not up yet: connection refused
    await subscribe(referrals, failing_gp, failing)
    ref = f"ref-{uuid.uuid4().hex[:8]}"
    for gp in (late_gp, failing_gp):
        await refer(referrals, gp, welfare, ref)
        await move(referrals, welfare, gp, ref, "accepted", "2026-11-04T09:00:00+01:00")
        await move(referrals, welfare, gp, ref, "contacted", "2026-11-04T15:00:00+01:00")
    down_since = time.monotonic()
    await asyncio.sleep(30)
    assert late.requests == []
    await late.start()

    async def heard() -> bool:
        return late.types == ["referral.status_changed"] * 2

    await eventually(heard, timeout=30, what="the late receiver's deliveries")
    assert [d["data"]["status"] for d in late.accepted.values()] == ["accepted", "contacted"]
    assert time.monotonic() - down_since > 30

    async def dead() -> bool:
        r = await referrals.get("/v1/webhooks/main/failures", headers=failing_gp.headers)
        return len(r.json()["failures"]) == 1

    await eventually(dead, timeout=60, what="the failing receiver's first delivery to be dead")
    r = await referrals.get("/v1/webhooks/main/failures", headers=failing_gp.headers)
    WebhookFailures.model_validate(r.json())
    (failure,) = r.json()["failures"]
    assert failure["attempts"] == 14
    assert failure["last_error"] == "HTTP 500"
    assert failure["referral_id"] == ref
    # The next delivery of that referral waited for the dead one (in order per referral): the
    # receiver saw the first 14 times before it saw any other. A dead delivery does not hold
    # its referral back for ever: the later ones go on (each carries its `sequence`).
    seen = [h["webhook-id"] for h, _ in failing.requests]
    assert seen[:14] == [failure["webhook_message_id"]] * 14
    # Another organisation neither sees nor redelivers them (its own `main` has none; an id
    # only the failing one used is not found).
    r = await referrals.get("/v1/webhooks/main/failures", headers=late_gp.headers)
    assert r.json()["failures"] == []
    await referrals.post(
        "/v1/webhooks",
        headers=failing_gp.headers,
        json={"webhook_id": "spare", "url": "http://127.0.0.1:9/x"},
    )
    for method, path in [("GET", "failures"), ("POST", "redeliver"), ("POST", "rotate")]:
        r = await referrals.request(method, f"/v1/webhooks/spare/{path}", headers=late_gp.headers)
        assert r.status_code == 404, r.text
    # Once the receiver is fixed, its organisation redelivers: everything arrives, in order.
    failing.mode = "ok"
    r = await referrals.post("/v1/webhooks/main/redeliver", headers=failing_gp.headers)
    RedeliveryAnswer.model_validate(r.json())
    assert r.json()["queued"] == 1

    async def recovered() -> bool:
        return {d["data"]["status"] for d in failing.accepted.values()} == {
            "accepted",
            "contacted",
        }

    await eventually(recovered, timeout=30, what="the redelivered deliveries")


async def test_a_hanging_receiver_never_slows_a_write(
    referrals: httpx.AsyncClient,
    make_partner: PartnerFactory,
    receivers: list[Receiver],
) -> None:
    gp, welfare = await make_partner("referrals"), await make_partner("referrals")
    hanging = Receiver(mode="hang")
    receivers.append(hanging)
    await hanging.start()

    async def timed_referrals(n: int) -> list[float]:
        took = []
        for _ in range(n):
            start = time.perf_counter()
            await refer(referrals, gp, welfare, f"ref-{uuid.uuid4().hex[:8]}")
            took.append(time.perf_counter() - start)
        return took

    before = await timed_referrals(20)
    await subscribe(referrals, welfare, hanging)  # every referral to welfare is delivered there
    await refer(referrals, gp, welfare, f"ref-{uuid.uuid4().hex[:8]}")

    async def held() -> bool:
        return hanging.hanging > 0

    await eventually(held, timeout=30, what="a delivery hanging at the receiver")
    during = await timed_referrals(20)
    assert hanging.hanging > 0, "the receiver was not holding a delivery during the writes"
    # The same writes, as fast with a receiver hanging as without (relative, not a target).
    assert statistics.median(during) <= 2 * statistics.median(before) + 0.05, (before, during)
    r = await referrals.get("/v1/webhooks", headers=welfare.headers)
    WebhookList.model_validate(r.json())
    assert [w["webhook_id"] for w in r.json()["webhooks"]] == ["main"]
    assert "secret" not in orjson.dumps(r.json()["webhooks"][0]).decode().replace(
        "previous_secret_expires_at", ""
    )
