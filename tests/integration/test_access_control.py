"""Nobody reads or writes where they do not belong.

Audiences (domain.md §7): every scope against every read endpoint and every `by` value — the
indicators and the trend for `indicators` and `indicators:organisations`, the breakdown by
organisation for the analysts alone, a partner's own figures for any key of that organisation
(its own figures, nobody else's), and `/metrics` of every service for the `metrics` scrape key.

Every endpoint of the three services (the table below is checked against their OpenAPI
documents, so a new endpoint cannot slip past) is called without a key, with malformed
``Authorization`` headers, with an unknown key, with a guessed secret for a real key id, with a
revoked key and with keys that lack its scope: 401 or 403 with the contract's error shape, and
not one row of any table of the write services changes (nor their outbox sequences, which would
move even for a write that was rolled back). The writes are real ones that would succeed with a
good key: the auth check is the only thing standing between them and the database.

An organisation cannot write as another (the organisation is the key's; a body naming one is
refused) and cannot see or change another's records: they answer as if they did not exist.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import pytest

from services.metrics.bootstrap import build_app as metrics_app
from services.referrals.bootstrap import build_app as referrals_app
from services.registrations.bootstrap import build_app as registrations_app
from shared.auth import Scope, revoke_key

pytestmark = pytest.mark.integration

ALL = ",".join(s.value for s in Scope)
WRITE_SCHEMAS = ("platform", "registrations", "referrals")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def participant() -> dict[str, Any]:
    return {"ref": "p-access", "neighbourhood": "delfgauw", "age_band": "75+"}


@dataclass(frozen=True)
class Owned:
    """Records of one organisation that the calls below would change if let through."""

    activity_id: str
    registration_id: str
    referral_id: str
    training_id: str
    measurement_id: str
    volunteer_key_id: str = ""
    webhook_id: str = ""


def attendance_sheet(o: Owned) -> bytes:
    return f"datum;begintijd;activiteit;deelnemernummer;wijk;leeftijdsgroep;aanwezigheid\r\n4-3-2025;10:00;{o.activity_id};{uuid.uuid4().int % 10**8};delfgauw;75+;aanwezig\r\n".encode()  # fmt: skip


def activities_sheet(o: Owned) -> bytes:
    return f"activiteitcode;naam;soort;gericht op ontmoeting;wijk\r\n{new_id('act')};Koffie;meeting;ja;delfgauw\r\n".encode()  # fmt: skip


def attendance_list(o: Owned) -> dict[str, Any]:
    return {"activity_id": o.activity_id, "date": "2025-03-04", "start_time": "10:00", "participants": [{"number": str(uuid.uuid4().int % 10**8), "neighbourhood": "delfgauw", "age_band": "75+", "status": "attended"}]}  # fmt: skip


def activity_body() -> dict[str, Any]:
    return {"title": "Koffie", "category": "meeting", "aimed_at_connection": True, "neighbourhood": "delfgauw"}  # fmt: skip


def registration_body(o: Owned) -> dict[str, Any]:
    return {"registration_id": new_id("reg"), "activity_id": o.activity_id, "participant": participant(), "registered_at": "2025-03-01T10:00:00+01:00"}  # fmt: skip


def attendance_body(o: Owned) -> dict[str, Any]:
    return {"attendance_id": new_id("att"), "activity_id": o.activity_id, "participant": participant(), "session_start": "2025-03-04T10:00:00+01:00", "status": "attended"}  # fmt: skip


def referral_body(o: Owned | None = None) -> dict[str, Any]:
    return {"referral_id": new_id("ref"), "participant": participant(), "referrer_role": "gp", "signals": ["social"], "referred_to": {"service": "buddy-programme"}, "consent": True, "created_at": "2025-03-03T09:30:00+01:00"}  # fmt: skip


def training_body(o: Owned | None = None) -> dict[str, Any]:
    return {"training_id": new_id("tr"), "person_ref": "e-1", "role": "gp", "training": "signaling-loneliness", "completed_at": "2025-02-10T16:00:00+01:00"}  # fmt: skip


def measurement_body(o: Owned | None = None) -> dict[str, Any]:
    return {"measurement_id": new_id("m"), "instrument": "djg6", "context": "survey", "participant": {"neighbourhood": "delfgauw", "age_band": "75+"}, "answers": ["no"] * 6, "measured_at": "2025-03-05T10:00:00+01:00"}  # fmt: skip


def webhook_body(o: Owned) -> dict[str, Any]:
    return {"webhook_id": o.webhook_id, "url": "http://127.0.0.1:9/hooks"}


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    template: str  # as in the OpenAPI document
    scopes: tuple[Scope, ...]  # any one of them opens it (admin opens everything); () any key
    path: Callable[[Owned], str]
    body: Callable[[Owned], Any] | None = None
    params: dict[str, str] | None = None
    content: Callable[[Owned], bytes] | None = None  # a file as the body (uploads)

    def send(self, owned: Owned) -> dict[str, Any]:
        """The request's body arguments for httpx."""
        if self.content is not None:
            return {"content": self.content(owned), "headers": {"content-type": "text/csv"}}
        return {"json": self.body(owned) if self.body else None}

    @property
    def name(self) -> str:
        return f"{self.service} {self.method} {self.template}"


ENDPOINTS = [
    Endpoint("registrations", "PUT", "/v1/activities/{activity_id}", (Scope.ACTIVITIES, Scope.ATTENDANCE), lambda o: f"/v1/activities/{o.activity_id}", lambda o: {**activity_body(), "title": "Overwritten"}),
    Endpoint("registrations", "GET", "/v1/activities/{activity_id}", (Scope.ACTIVITIES, Scope.ATTENDANCE), lambda o: f"/v1/activities/{o.activity_id}"),
    Endpoint("registrations", "GET", "/v1/activities", (Scope.ACTIVITIES, Scope.ATTENDANCE), lambda o: "/v1/activities"),
    Endpoint("registrations", "POST", "/v1/registrations", (Scope.REGISTRATIONS,), lambda o: "/v1/registrations", registration_body),
    Endpoint("registrations", "GET", "/v1/registrations/{registration_id}", (Scope.REGISTRATIONS,), lambda o: f"/v1/registrations/{o.registration_id}"),
    Endpoint("registrations", "POST", "/v1/registrations/{registration_id}/cancellation", (Scope.REGISTRATIONS,), lambda o: f"/v1/registrations/{o.registration_id}/cancellation", lambda o: {"cancelled_at": "2025-03-02T10:00:00+01:00"}),
    Endpoint("registrations", "POST", "/v1/attendance", (Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/attendance", attendance_body),
    Endpoint("registrations", "POST", "/v1/batch", (Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/batch", lambda o: {"items": [{"kind": "attendance", "body": attendance_body(o)}, {"kind": "activity", "activity_id": new_id("act"), "body": activity_body()}]}),
    Endpoint("registrations", "POST", "/v1/uploads/attendance", (Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/uploads/attendance", content=attendance_sheet),
    Endpoint("registrations", "POST", "/v1/uploads/activities", (Scope.ACTIVITIES, Scope.ATTENDANCE), lambda o: "/v1/uploads/activities", content=activities_sheet),
    Endpoint("registrations", "POST", "/v1/attendance-lists", (Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/attendance-lists", attendance_list),
    Endpoint("registrations", "GET", "/v1/templates/{name}", (Scope.ACTIVITIES, Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/templates/attendance.xlsx"),
    Endpoint("registrations", "GET", "/v1/reference", (Scope.ACTIVITIES, Scope.REGISTRATIONS, Scope.ATTENDANCE), lambda o: "/v1/reference"),
    Endpoint("registrations", "POST", "/v1/keys", (Scope.KEYS,), lambda o: "/v1/keys", lambda o: {"label": "tablet"}),
    Endpoint("registrations", "GET", "/v1/keys", (Scope.KEYS,), lambda o: "/v1/keys"),
    Endpoint("registrations", "DELETE", "/v1/keys/{key_id}", (Scope.KEYS,), lambda o: f"/v1/keys/{o.volunteer_key_id}"),
    Endpoint("referrals", "POST", "/v1/referrals", (Scope.REFERRALS,), lambda o: "/v1/referrals", referral_body),
    Endpoint("referrals", "GET", "/v1/referrals/{referral_id}", (Scope.REFERRALS,), lambda o: f"/v1/referrals/{o.referral_id}"),
    Endpoint("referrals", "POST", "/v1/referrals/{referral_id}/status", (Scope.REFERRALS,), lambda o: f"/v1/referrals/{o.referral_id}/status", lambda o: {"status": "withdrawn", "at": "2025-03-04T09:00:00+01:00"}),
    Endpoint("referrals", "POST", "/v1/trainings", (Scope.TRAININGS,), lambda o: "/v1/trainings", training_body),
    Endpoint("referrals", "GET", "/v1/trainings/{training_id}", (Scope.TRAININGS,), lambda o: f"/v1/trainings/{o.training_id}"),
    Endpoint("referrals", "POST", "/v1/measurements", (Scope.MEASUREMENTS,), lambda o: "/v1/measurements", measurement_body),
    Endpoint("referrals", "GET", "/v1/measurements/{measurement_id}", (Scope.MEASUREMENTS,), lambda o: f"/v1/measurements/{o.measurement_id}"),
    Endpoint("referrals", "POST", "/v1/batch", (Scope.REFERRALS, Scope.TRAININGS, Scope.MEASUREMENTS), lambda o: "/v1/batch", lambda o: {"items": [{"kind": "training", "body": training_body()}, {"kind": "referral", "body": referral_body()}, {"kind": "measurement", "body": measurement_body()}]}),
    Endpoint("registrations", "POST", "/v1/erasures", (Scope.REGISTRATIONS,), lambda o: "/v1/erasures", lambda o: {"erasure_id": new_id("er"), "ref": "p-nobody"}),
    Endpoint("referrals", "POST", "/v1/erasures", (Scope.REFERRALS, Scope.MEASUREMENTS), lambda o: "/v1/erasures", lambda o: {"erasure_id": new_id("er"), "ref": "p-nobody"}),
    Endpoint("referrals", "GET", "/v1/referrals", (Scope.REFERRALS,), lambda o: "/v1/referrals"),
    Endpoint("referrals", "POST", "/v1/webhooks", (Scope.REFERRALS,), lambda o: "/v1/webhooks", lambda o: {**webhook_body(o), "webhook_id": new_id("hook")}),
    Endpoint("referrals", "GET", "/v1/webhooks", (Scope.REFERRALS,), lambda o: "/v1/webhooks"),
    Endpoint("referrals", "POST", "/v1/webhooks/{webhook_id}/rotate", (Scope.REFERRALS,), lambda o: f"/v1/webhooks/{o.webhook_id}/rotate"),
    Endpoint("referrals", "GET", "/v1/webhooks/{webhook_id}/failures", (Scope.REFERRALS,), lambda o: f"/v1/webhooks/{o.webhook_id}/failures"),
    Endpoint("referrals", "POST", "/v1/webhooks/{webhook_id}/redeliver", (Scope.REFERRALS,), lambda o: f"/v1/webhooks/{o.webhook_id}/redeliver"),
    Endpoint("referrals", "DELETE", "/v1/webhooks/{webhook_id}", (Scope.REFERRALS,), lambda o: f"/v1/webhooks/{o.webhook_id}"),
    Endpoint("metrics", "GET", "/v1/indicators", (Scope.INDICATORS, Scope.INDICATORS_ORGANISATIONS), lambda o: "/v1/indicators", params={"period": "2025"}),
    Endpoint("metrics", "GET", "/v1/trend", (Scope.INDICATORS, Scope.INDICATORS_ORGANISATIONS), lambda o: "/v1/trend"),
    Endpoint("metrics", "GET", "/v1/own/indicators", (), lambda o: "/v1/own/indicators", params={"period": "2025"}),
    Endpoint("registrations", "GET", "/metrics", (Scope.METRICS,), lambda o: "/metrics"),
    Endpoint("referrals", "GET", "/metrics", (Scope.METRICS,), lambda o: "/metrics"),
    Endpoint("metrics", "GET", "/metrics", (Scope.METRICS,), lambda o: "/metrics"),
]  # fmt: skip

# Open to anyone by design: the probes (they say nothing but "up" and "ready").
PUBLIC = {"/healthz", "/readyz"}


def test_the_table_covers_every_endpoint_of_the_openapi_documents(test_env: dict[str, str]) -> None:
    documented = set()
    for service, build in (
        ("registrations", registrations_app),
        ("referrals", referrals_app),
        ("metrics", metrics_app),
    ):
        for path, operations in build().openapi()["paths"].items():
            if path not in PUBLIC:
                documented |= {(service, method.upper(), path) for method in operations}
    assert {(e.service, e.method, e.template) for e in ENDPOINTS} == documented


def lacking(endpoint: Endpoint) -> str:
    """Every scope except the ones that open the endpoint (and admin, which opens all)."""
    return ",".join(s.value for s in Scope if s not in (*endpoint.scopes, Scope.ADMIN))


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows of every table of the write services, and where their outbox sequences stand."""
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' "
            "AND table_name <> 'outbox'",  # the relays empty it; its sequence is counted below
            list(WRITE_SCHEMAS),
        )
        counts = {
            f"{t['table_schema']}.{t['table_name']}": await conn.fetchval(
                f'SELECT count(*) FROM "{t["table_schema"]}"."{t["table_name"]}"'
            )
            for t in tables
        }
        for schema in ("registrations", "referrals"):
            counts[f"{schema}.outbox_id_seq"] = await conn.fetchval(
                f'SELECT last_value FROM "{schema}".outbox_id_seq'
            )
    assert {"registrations.registrations", "referrals.referrals", "platform.api_keys"} <= set(
        counts
    )
    return counts


@pytest.fixture(scope="module")
async def owner(registrations: Any, referrals: Any, make_partner: Any) -> tuple[Any, Owned]:
    """An organisation with a record of every kind; no test changes them."""
    return await write_owned(registrations, referrals, make_partner)


async def write_owned(registrations: Any, referrals: Any, make_partner: Any) -> tuple[Any, Owned]:
    """An organisation with a record of every kind, written with its own good key."""
    partner = await make_partner(scopes=ALL)
    h = partner.headers
    issued = await registrations.post("/v1/keys", headers=h, json={"label": "volunteer"})
    assert issued.status_code == 201, issued.text
    o = Owned(
        new_id("act"),
        new_id("reg"),
        new_id("ref"),
        new_id("tr"),
        new_id("m"),
        issued.json()["key_id"],
        new_id("hook"),
    )
    answers = [
        await registrations.put(f"/v1/activities/{o.activity_id}", headers=h, json=activity_body()),
        await registrations.post("/v1/registrations", headers=h, json={**registration_body(o), "registration_id": o.registration_id}),
        await referrals.post("/v1/referrals", headers=h, json={**referral_body(), "referral_id": o.referral_id}),
        await referrals.post("/v1/trainings", headers=h, json={**training_body(), "training_id": o.training_id}),
        await referrals.post("/v1/measurements", headers=h, json={**measurement_body(), "measurement_id": o.measurement_id}),
        await referrals.post("/v1/webhooks", headers=h, json=webhook_body(o)),
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    return partner, o


def assert_refused(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == ("unauthorized" if status == 401 else "forbidden"), body
    assert isinstance(body["details"], list)
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer"


FAILURES = ["no key", "empty bearer", "basic", "token scheme", "unknown key", "guessed secret", "revoked", "lacking scope"]  # fmt: skip
# Every endpoint with every failure, except "lacking scope" where any valid key opens it.
REFUSALS = [
    pytest.param(endpoint, failure, id=f"{endpoint.name}-{failure}")
    for endpoint in ENDPOINTS
    for failure in FAILURES
    if endpoint.scopes or failure != "lacking scope"
]


@pytest.mark.parametrize(("endpoint", "failure"), REFUSALS)
async def test_every_endpoint_refuses_and_writes_nothing(
    registrations, referrals, metrics, make_partner, pool, owner, endpoint, failure
):
    partner, owned = owner
    client = {"registrations": registrations, "referrals": referrals, "metrics": metrics}[
        endpoint.service
    ]
    if failure == "revoked":
        revoked = await make_partner(scopes=ALL, organisation_id=partner.organisation_id)
        async with pool.acquire() as conn:
            assert await revoke_key(conn, revoked.key_id)
    headers = {
        "no key": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
        "token scheme": {"Authorization": f"Token {partner.key}"},
        "unknown key": {"Authorization": f"Bearer vb_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"},
        "guessed secret": {"Authorization": f"Bearer vb_{partner.key_id}_{secrets.token_urlsafe(32)}"},
        "revoked": revoked.headers if failure == "revoked" else {},
        "lacking scope": (await make_partner(scopes=lacking(endpoint), organisation_id=partner.organisation_id)).headers if failure == "lacking scope" else {},
    }[failure]  # fmt: skip
    request = endpoint.send(owned)
    before = await row_counts(pool)

    response = await client.request(
        endpoint.method,
        endpoint.path(owned),
        params=endpoint.params,
        **{**request, "headers": {**request.get("headers", {}), **headers}},
    )

    assert_refused(response, 403 if failure == "lacking scope" else 401)
    # Counted after the key fixtures wrote theirs: the refused call itself must write nothing.
    assert await row_counts(pool) == before


async def test_the_same_calls_with_a_good_key_do_get_through(
    registrations, referrals, metrics, make_partner
):
    """The other side of the test above: the calls are real, it is only the key that stops them.
    (On records of their own: these calls do change them.)"""
    partner, owned = await write_owned(registrations, referrals, make_partner)
    clients = {"registrations": registrations, "referrals": referrals, "metrics": metrics}
    for endpoint in ENDPOINTS:
        request = endpoint.send(owned)
        r = await clients[endpoint.service].request(
            endpoint.method, endpoint.path(owned), params=endpoint.params,
            **{**request, "headers": {**request.get("headers", {}), **partner.headers}},
        )  # fmt: skip
        assert r.status_code in (200, 201, 202, 204), (endpoint.name, r.text)


async def test_a_batch_item_needing_a_scope_the_key_lacks_is_refused_and_not_written(
    registrations, referrals, make_partner, pool
):
    only_registrations = await make_partner(scopes="registrations")
    only_trainings = await make_partner(scopes="trainings")
    before = await row_counts(pool)

    regs = await registrations.post(
        "/v1/batch",
        headers=only_registrations.headers,
        json={
            "items": [{"kind": "activity", "activity_id": new_id("act"), "body": activity_body()}]
        },
    )
    refs = await referrals.post(
        "/v1/batch",
        headers=only_trainings.headers,
        json={"items": [{"kind": "referral", "body": referral_body()}, {"kind": "measurement", "body": measurement_body()}]},
    )  # fmt: skip

    assert [x["status"] for x in regs.json()["results"]] == [422], regs.text
    assert [x["status"] for x in refs.json()["results"]] == [422, 422], refs.text
    assert "scope" in regs.text
    assert "scope" in refs.text
    assert await row_counts(pool) == before


# ------------------------------------------------------------------------------------ audiences

BY_VALUES = (None, "neighbourhood", "age_band", "category", "referrer_role", "organisation")


@dataclass(frozen=True)
class Read:
    service: str
    path: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.service} {self.path}" + "".join(f" {k}={v}" for k, v in self.params)


READS = [
    *(Read("metrics", "/v1/indicators", (("period", "2025"),) + ((("by", by),) if by else ())) for by in BY_VALUES),
    Read("metrics", "/v1/trend", (("months", "3"), ("until", "2025-03"))),
    Read("metrics", "/v1/own/indicators", (("period", "2025"),)),
    # The registrations service's reads for partners without IT (the volunteers' page).
    Read("registrations", "/v1/activities"),
    Read("registrations", "/v1/reference"),
    Read("registrations", "/v1/keys"),
    # The referral loop: the feed and the webhook endpoints of an organisation (issue 15).
    Read("referrals", "/v1/referrals"),
    Read("referrals", "/v1/webhooks"),
    Read("registrations", "/metrics"),
    Read("referrals", "/metrics"),
    Read("metrics", "/metrics"),
]  # fmt: skip


# Reads of the writing side: who may keep activities, record attendance or manage keys.
PARTNER_READS: dict[str, tuple[Scope, ...]] = {
    "/v1/activities": (Scope.ACTIVITIES, Scope.ATTENDANCE),
    "/v1/reference": (Scope.ACTIVITIES, Scope.REGISTRATIONS, Scope.ATTENDANCE),
    "/v1/keys": (Scope.KEYS,),
    "/v1/referrals": (Scope.REFERRALS,),
    "/v1/webhooks": (Scope.REFERRALS,),
}


def opens(scope: Scope, read: Read) -> bool:
    """Who reads what (domain.md §7 "Audiences"; contract.md)."""
    if scope is Scope.ADMIN:
        return True
    if read.path in PARTNER_READS:
        return scope in PARTNER_READS[read.path]
    if read.path == "/metrics":
        return scope is Scope.METRICS
    if read.path == "/v1/own/indicators":
        return True  # any key, for its own organisation
    if dict(read.params).get("by") == "organisation":
        return scope is Scope.INDICATORS_ORGANISATIONS
    return scope in (Scope.INDICATORS, Scope.INDICATORS_ORGANISATIONS)


def test_the_audience_table_covers_every_read_of_the_openapi_documents(
    test_env: dict[str, str],
) -> None:
    """Every GET of the three services except the probes and the record reads (which belong to
    the writing organisation and are covered above) is in READS, with every `by` value."""
    reads = set()
    for service, build in (
        ("registrations", registrations_app),
        ("referrals", referrals_app),
        ("metrics", metrics_app),
    ):
        doc = build().openapi()
        for path, operations in doc["paths"].items():
            if "get" in operations and path not in PUBLIC and "{" not in path:
                reads.add((service, path))
        if service == "metrics":
            (by,) = [p for p in doc["paths"]["/v1/indicators"]["get"]["parameters"] if p["name"] == "by"]  # fmt: skip
            (offered,) = [x["enum"] for x in by["schema"]["anyOf"] if "enum" in x]
            assert {None, *offered} == set(BY_VALUES)
    assert reads == {(r.service, r.path) for r in READS}


@pytest.mark.parametrize("read", READS, ids=[r.name for r in READS])
@pytest.mark.parametrize("scope", list(Scope), ids=[s.value for s in Scope])
async def test_every_scope_reads_exactly_what_its_audience_may(
    registrations, referrals, metrics, make_partner, scope, read
):
    client = {"registrations": registrations, "referrals": referrals, "metrics": metrics}[
        read.service
    ]
    key = await make_partner(scopes=scope.value)

    response = await client.get(read.path, params=dict(read.params), headers=key.headers)

    if opens(scope, read):
        assert response.status_code == 200, response.text
        if read.path == "/metrics":
            assert "verbinding_" in response.text
        elif read.path == "/v1/own/indicators":
            assert response.json()["organisation_id"] == key.organisation_id
        elif read.path == "/v1/indicators":
            assert response.json()["by"] == dict(read.params).get("by")
    else:
        assert_refused(response, 403)
        # The answer says which scope would open it, so that a caller knows whom to ask.
        wanted = {
            "/metrics": "`metrics`",
            "/v1/indicators": "`indicators:organisations`",
            "/v1/trend": "`indicators:organisations`",
            **{path: f"`{scopes[-1].value}`" for path, scopes in PARTNER_READS.items()},
        }[read.path]
        assert wanted in response.json()["message"], response.text


async def test_a_partner_reads_its_own_figures_and_no_one_elses(
    metrics, metrics_app, make_partner, pool
):
    """Own figures are the organisation's cell of the breakdown by organisation (one decision
    per cell): the same figures the analysts see for it, and nothing of any other organisation."""
    from tests.conftest import TOPIC_PREFIX
    from tests.integration.test_metrics_scenario import (
        activity,
        attendance,
        hexid,
        person,
        publish,
        wait_applied,
    )

    # A period no other test writes in, so that the three organisations are its only cells.
    period, day = "2011-05", date(2011, 5, 10)
    sizes = {"big": 15, "middle": 12, "small": 3}
    orgs = {name: await make_partner(scopes="registrations") for name in sizes}
    events = []
    for name, n in sizes.items():
        org = orgs[name].organisation_id
        events.append(
            activity(org, "own-act", "meeting", True, updated="2011-01-01T09:00:00+01:00")
        )
        for i in range(n):
            who = person(hexid(f"own-{org}-{i}"), "delfgauw", "75+")
            events.append(attendance(org, f"own-{i}", "own-act", who, f"{day}T10:00:00+02:00", day))
    await publish(events, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", events)
    # Breakdowns and own figures come from a release: cut one now rather than wait a day.
    await metrics_app.state.indicators.cut_release()
    analyst = await make_partner(scopes="indicators:organisations")
    by_org = (
        await metrics.get("/v1/indicators", params={"period": period, "by": "organisation"}, headers=analyst.headers)
    ).json()  # fmt: skip
    cells = {c["key"]: c for c in by_org["breakdown"]}

    for name, partner in orgs.items():
        r = await metrics.get("/v1/own/indicators", params={"period": period}, headers=partner.headers)  # fmt: skip
        assert r.status_code == 200, r.text
        own = r.json()
        assert own["organisation_id"] == partner.organisation_id
        assert own["s2"] == cells[partner.organisation_id]["s2"], name
        assert own["s3"] == cells[partner.organisation_id]["s3"], name
        for other in orgs.values():
            if other is not partner:
                assert other.organisation_id not in r.text
    big = (await metrics.get("/v1/own/indicators", params={"period": period}, headers=orgs["big"].headers)).json()  # fmt: skip
    assert big["s2"]["participants_unique"] == {"value": 15, "suppressed": False}
    assert big["released_at"] == by_org["released_at"]
    small = (await metrics.get("/v1/own/indicators", params={"period": period}, headers=orgs["small"].headers)).json()  # fmt: skip
    assert small["s2"]["participants_unique"] == {"value": None, "suppressed": True, "reason": "primary"}  # 3 < k  # fmt: skip
    nobody = await make_partner(scopes="referrals")
    empty = (await metrics.get("/v1/own/indicators", params={"period": period}, headers=nobody.headers)).json()  # fmt: skip
    assert empty["s2"]["attendances"] == {"value": None, "suppressed": True, "reason": "primary"}


# ------------------------------------------------------------------------- across organisations


async def test_an_organisation_cannot_see_anothers_records(
    registrations, referrals, make_partner, owner
):
    _, owned = owner
    other = await make_partner(scopes=ALL)
    reads = {
        registrations: [f"/v1/activities/{owned.activity_id}", f"/v1/registrations/{owned.registration_id}"],
        referrals: [f"/v1/referrals/{owned.referral_id}", f"/v1/trainings/{owned.training_id}", f"/v1/measurements/{owned.measurement_id}"],
    }  # fmt: skip
    for client, paths in reads.items():
        for path in paths:
            theirs = await client.get(path, headers=other.headers)
            absent = await client.get(
                path.rsplit("/", 1)[0] + "/" + new_id("none"), headers=other.headers
            )
            assert theirs.status_code == 404, (path, theirs.text)
            # Worded as for an id that does not exist: nothing about the other's record shows.
            assert theirs.json()["error"] == absent.json()["error"] == "not_found"
            assert set(theirs.json()) == set(absent.json())


async def test_an_organisation_cannot_change_anothers_records(
    registrations, referrals, make_partner, owner, pool
):
    partner, owned = owner
    other = await make_partner(scopes=ALL)
    cancel = await registrations.post(
        f"/v1/registrations/{owned.registration_id}/cancellation",
        headers=other.headers,
        json={"cancelled_at": "2025-03-02T10:00:00+01:00"},
    )
    change = await referrals.post(
        f"/v1/referrals/{owned.referral_id}/status",
        headers=other.headers,
        json={"status": "withdrawn", "at": "2025-03-04T09:00:00+01:00"},
    )
    batch = await registrations.post(
        "/v1/batch",
        headers=other.headers,
        json={"items": [{"kind": "cancellation", "registration_id": owned.registration_id, "body": {"cancelled_at": "2025-03-02T10:00:00+01:00"}}]},
    )  # fmt: skip

    nobody = new_id("none")
    cancel_absent = await registrations.post(
        f"/v1/registrations/{nobody}/cancellation",
        headers=other.headers,
        json={"cancelled_at": "2025-03-02T10:00:00+01:00"},
    )
    # Refused exactly as for a registration that does not exist: its existence does not show.
    assert cancel.status_code == cancel_absent.status_code, cancel.text
    assert cancel.status_code in (404, 422), cancel.text
    assert cancel.text == cancel_absent.text.replace(nobody, owned.registration_id)
    assert change.status_code == 404, change.text
    assert [x["status"] for x in batch.json()["results"]] == [cancel.status_code]
    mine = await registrations.get(
        f"/v1/registrations/{owned.registration_id}", headers=partner.headers
    )
    assert mine.json()["cancelled_at"] is None
    assert (await referrals.get(f"/v1/referrals/{owned.referral_id}", headers=partner.headers)).json()["status"] == "created"  # fmt: skip


async def test_the_same_id_from_another_organisation_is_its_own_record(
    registrations, make_partner, owner
):
    partner, owned = owner
    other = await make_partner(scopes=ALL)
    theirs = {**activity_body(), "title": "Someone else's activity"}

    put = await registrations.put(f"/v1/activities/{owned.activity_id}", headers=other.headers, json=theirs)  # fmt: skip

    assert put.status_code == 201, put.text  # a new record of the other organisation
    mine = await registrations.get(f"/v1/activities/{owned.activity_id}", headers=partner.headers)
    assert mine.json()["title"] == activity_body()["title"]


@pytest.mark.parametrize("field", ["organisation_id", "organisation", "source"])
async def test_a_body_cannot_name_the_organisation_it_writes_as(
    registrations, referrals, make_partner, owner, field
):
    partner, owned = owner
    other = await make_partner(scopes=ALL)
    attempts = [
        await registrations.put(f"/v1/activities/{new_id('act')}", headers=other.headers, json={**activity_body(), field: partner.organisation_id}),
        await registrations.post("/v1/attendance", headers=other.headers, json={**attendance_body(owned), field: partner.organisation_id}),
        await referrals.post("/v1/referrals", headers=other.headers, json={**referral_body(), field: partner.organisation_id}),
        await registrations.post("/v1/batch", headers=other.headers, json={"items": [{"kind": "attendance", field: partner.organisation_id, "body": attendance_body(owned)}]}),
    ]  # fmt: skip
    for r in attempts[:3]:
        assert r.status_code == 422, r.text
        assert {"field": field, "message": "unknown field"} in r.json()["details"]
    assert [x["status"] for x in attempts[3].json()["results"]] == [422]
