"""The registrations service over HTTP, as a partner's booking system meets it (contract.md
"registrations service"; issue 3): every endpoint, every validation error naming its field,
auth, organisations kept apart, idempotent retries, batches.

Runs the real app (its lifespan: pool, migrations, relay) on the real test database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.registrations.entrypoints.answers import (
    ActivityList,
    ActivityRecord,
    RegistrationRecord,
)
from services.registrations.settings import RegistrationsSettings
from shared.auth import revoke_key
from shared.events import Topic, topic_name
from tests.conftest import TOPIC_PREFIX, Partner, PartnerFactory, read_records

pytestmark = pytest.mark.integration

CEST = timezone(timedelta(hours=2))
MAX_BODY: int = RegistrationsSettings.model_fields["max_body_bytes"].default


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def moment(delta: timedelta = timedelta(hours=-1), tz: timezone = CEST) -> str:
    return (datetime.now(UTC) + delta).astimezone(tz).isoformat()


def activity_body(**changes: Any) -> dict[str, Any]:
    return {
        "title": "Koffieochtend",
        "category": "meeting",
        "aimed_at_connection": True,
        "neighbourhood": "delfgauw",
        "capacity": 20,
        "target_age_bands": ["65-74", "75+"],
        "active": True,
        **changes,
    }


def participant(**changes: Any) -> dict[str, Any]:
    return {
        "ref": uid("client"),
        "neighbourhood": "koningshof",
        "age_band": "75+",
        "lives_alone": True,
        **changes,
    }


def registration_body(activity_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "registration_id": uid("reg"),
        "activity_id": activity_id,
        "participant": participant(),
        "registered_at": moment(),
        **changes,
    }


def attendance_body(activity_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "attendance_id": uid("att"),
        "activity_id": activity_id,
        "session_start": moment(timedelta(hours=-2)),
        "participant": participant(),
        "status": "attended",
        **changes,
    }


def fields(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["error"] == "validation_failed", body
    return [d["field"] for d in body["details"]]


def assert_422(response: httpx.Response, *expected: str) -> None:
    assert response.status_code == 422, response.text
    named = fields(response)
    for field in expected:
        assert field in named, f"{field} not named in {named}"
    for detail in response.json()["details"]:
        assert detail["message"], "every field comes with a message a partner can act on"


@pytest.fixture
async def partner(make_partner: PartnerFactory) -> Partner:
    return await make_partner()


@pytest.fixture
async def client(registrations: httpx.AsyncClient) -> httpx.AsyncClient:
    return registrations


@pytest.fixture
async def activity(client: httpx.AsyncClient, partner: Partner) -> str:
    activity_id = uid("act")
    r = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body()
    )
    assert r.status_code == 201, r.text
    return activity_id


class Db:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count(self, table: str, organisation_id: str) -> int:
        return int(
            await self.pool.fetchval(
                f"SELECT count(*) FROM registrations.{table} WHERE organisation_id = $1",
                organisation_id,
            )
        )

    async def registration(self, organisation_id: str, registration_id: str) -> Any:
        return await self.pool.fetchrow(
            "SELECT * FROM registrations.registrations "
            "WHERE organisation_id = $1 AND registration_id = $2",
            organisation_id,
            registration_id,
        )

    async def writes_of(self, organisation_id: str) -> dict[str, int]:
        """Everything an organisation has in the service's tables."""
        return {
            table: await self.count(table, organisation_id)
            for table in ("activities", "registrations", "attendance", "idempotency")
        }


@pytest.fixture
async def db(pool: asyncpg.Pool, client: httpx.AsyncClient) -> Db:
    return Db(pool)


# ------------------------------------------------------------------------------- operations


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")

    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_checks_database_and_kafka(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")

    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": True, "kafka": True}}


async def test_metrics_are_prometheus_with_bounded_labels(
    client: httpx.AsyncClient, partner: Partner, activity: str, make_partner: Any
) -> None:
    await client.get(f"/v1/activities/{activity}", headers=partner.headers)
    scraper = await make_partner(scopes="metrics")

    r = await client.get("/metrics", headers=scraper.headers)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "verbinding_http_requests_total{" in r.text
    assert 'route="/v1/activities/{activity_id}"' in r.text
    assert activity not in r.text, "an activity id became a label value"
    assert partner.organisation_id not in r.text


async def test_openapi_documents_every_endpoint_and_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/openapi.json")

    assert r.status_code == 200
    doc = r.json()
    paths = doc["paths"]
    assert set(paths["/v1/activities/{activity_id}"]) >= {"put", "get"}
    assert "post" in paths["/v1/registrations"]
    assert "get" in paths["/v1/registrations/{registration_id}"]
    assert "post" in paths["/v1/registrations/{registration_id}/cancellation"]
    assert "post" in paths["/v1/attendance"]
    assert "post" in paths["/v1/batch"]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "get" in paths[path]
    register = paths["/v1/registrations"]["post"]
    assert {"401", "403", "409", "413", "422"} <= set(register["responses"])
    assert doc["components"]["schemas"]["ErrorDetail"]["properties"]["field"]
    assert (await client.get("/docs")).status_code == 200


# ------------------------------------------------------------------------------------ auth

PROTECTED: list[tuple[str, str, Callable[[], Any]]] = [
    ("PUT", "/v1/activities/a-1", activity_body),
    ("GET", "/v1/activities/a-1", lambda: None),
    ("POST", "/v1/registrations", lambda: registration_body("a-1")),
    ("GET", "/v1/registrations/r-1", lambda: None),
    ("POST", "/v1/registrations/r-1/cancellation", lambda: {"cancelled_at": moment()}),
    ("POST", "/v1/attendance", lambda: attendance_body("a-1")),
    ("POST", "/v1/batch", lambda: {"items": [{"kind": "activity"}]}),
]
ENDPOINTS = pytest.mark.parametrize(
    ("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED]
)


@ENDPOINTS
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token vb_x_y", "vb_abc_def"],
    ids=["none", "empty", "bearer-only", "bearer-blank", "basic", "token", "no-scheme"],
)
async def test_missing_or_malformed_authorization_is_401(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Callable[[], Any],
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    r = await client.request(method, path, headers=headers, json=body())

    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


@ENDPOINTS
async def test_an_unknown_key_is_401(
    client: httpx.AsyncClient, partner: Partner, method: str, path: str, body: Callable[[], Any]
) -> None:
    wrong = partner.key[:-4] + ("AAAA" if not partner.key.endswith("AAAA") else "BBBB")

    r = await client.request(
        method, path, headers={"Authorization": f"Bearer {wrong}"}, json=body()
    )

    assert r.status_code == 401, r.text
    assert r.json()["message"] == "unknown or revoked API key"


async def test_a_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, make_partner: PartnerFactory, pool: asyncpg.Pool
) -> None:
    partner = await make_partner()
    activity_id = uid("act")
    ok = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body()
    )
    assert ok.status_code == 201
    async with pool.acquire() as conn:
        assert await revoke_key(conn, partner.key_id)

    read = await client.get(f"/v1/activities/{activity_id}", headers=partner.headers)
    write = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body(title="x")
    )

    assert (read.status_code, write.status_code) == (401, 401)
    assert read.json()["message"] == "unknown or revoked API key"


@pytest.mark.parametrize(
    ("scopes", "method", "path", "lacking"),
    [
        ("registrations", "PUT", "/v1/activities/a-1", "activities"),
        ("registrations", "GET", "/v1/activities/a-1", "activities"),
        ("activities", "POST", "/v1/registrations", "registrations"),
        ("activities", "GET", "/v1/registrations/r-1", "registrations"),
        ("activities", "POST", "/v1/registrations/r-1/cancellation", "registrations"),
        ("activities", "POST", "/v1/attendance", "registrations"),
        ("referrals,trainings,measurements,indicators", "POST", "/v1/batch", "registrations"),
    ],
)
async def test_a_key_without_the_scope_is_403(
    client: httpx.AsyncClient,
    make_partner: PartnerFactory,
    db: Db,
    scopes: str,
    method: str,
    path: str,
    lacking: str,
) -> None:
    partner = await make_partner(scopes)
    body = PROTECTED_BODIES[(method, path)]()

    r = await client.request(method, path, headers=partner.headers, json=body)

    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    assert f"`{lacking}`" in r.json()["message"]
    assert await db.writes_of(partner.organisation_id) == dict.fromkeys(
        ("activities", "registrations", "attendance", "idempotency"), 0
    )


PROTECTED_BODIES = {(m, p): b for m, p, b in PROTECTED}


async def test_admin_scope_may_do_everything(
    client: httpx.AsyncClient, make_partner: PartnerFactory
) -> None:
    partner = await make_partner("admin")
    activity_id = uid("act")

    r = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body()
    )
    reg = await client.post(
        "/v1/registrations", headers=partner.headers, json=registration_body(activity_id)
    )

    assert (r.status_code, reg.status_code) == (201, 201)


# ------------------------------------------------------------------------------ activities


async def test_put_a_new_activity_then_get_it(client: httpx.AsyncClient, partner: Partner) -> None:
    activity_id = uid("act")

    r = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body()
    )
    got = await client.get(f"/v1/activities/{activity_id}", headers=partner.headers)

    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1
    assert got.status_code == 200
    assert got.json() == r.json()
    # The answers are what the OpenAPI document says (the routes do not validate them).
    ActivityRecord.model_validate(r.json())
    ActivityRecord.model_validate(got.json())
    listed = await client.get("/v1/activities", headers=partner.headers)
    assert activity_id in [
        a.activity_id for a in ActivityList.model_validate(listed.json()).activities
    ]
    assert got.json() | {"updated_at": None} == {
        "activity_id": activity_id,
        "version": 1,
        "title": "Koffieochtend",
        "category": "meeting",
        "aimed_at_connection": True,
        "neighbourhood": "delfgauw",
        "capacity": 20,
        "target_age_bands": ["65-74", "75+"],
        "active": True,
        "updated_at": None,
    }


async def test_put_the_same_state_is_200_without_a_new_version_or_event(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    activity_id = uid("act")
    url = f"/v1/activities/{activity_id}"
    first = await client.put(url, headers=partner.headers, json=activity_body())
    same = await client.put(url, headers=partner.headers, json=activity_body())
    changed = await client.put(url, headers=partner.headers, json=activity_body(capacity=30))
    changed_again = await client.put(url, headers=partner.headers, json=activity_body(capacity=30))

    assert (first.status_code, same.status_code, changed.status_code) == (201, 200, 200)
    assert same.json() == first.json()
    assert changed.json()["version"] == 2
    assert changed.json()["capacity"] == 30
    assert changed_again.json() == changed.json()
    got = await client.get(url, headers=partner.headers)
    assert got.json()["version"] == 2

    key = f"{partner.organisation_id}:{activity_id}".encode()

    def mine(records: list[Any]) -> list[int]:
        return [orjson.loads(r.value)["data"]["version"] for r in records if r.key == key]

    records = await read_records(
        topic_name(Topic.ACTIVITIES, TOPIC_PREFIX), until=lambda rs: len(mine(rs)) >= 2
    )
    versions = mine(records)  # after both versions arrived, a third would have shown
    assert versions == [1, 2]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"neighbourhood": "atlantis"}, "neighbourhood"),
        ({"category": "bingo-night"}, "category"),
        ({"target_age_bands": ["75+", "100+"]}, "target_age_bands.1"),
        ({"capacity": -1}, "capacity"),
        ({"title": "   "}, "title"),
        ({"colour": "blue"}, "colour"),
        ({"organisation_id": "someone-else"}, "organisation_id"),
    ],
)
async def test_activity_validation_names_the_field(
    client: httpx.AsyncClient, partner: Partner, db: Db, changes: dict[str, Any], field: str
) -> None:
    activity_id = uid("act")

    r = await client.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity_body(**changes)
    )

    assert_422(r, field)
    assert await db.count("activities", partner.organisation_id) == 0


async def test_activity_unknown_field_says_so(client: httpx.AsyncClient, partner: Partner) -> None:
    r = await client.put(
        f"/v1/activities/{uid('act')}", headers=partner.headers, json=activity_body(colour="x")
    )

    assert r.json()["details"] == [{"field": "colour", "message": "unknown field"}]


async def test_activity_names_every_bad_field_at_once(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    r = await client.put(
        f"/v1/activities/{uid('act')}",
        headers=partner.headers,
        json=activity_body(neighbourhood="atlantis", category="bingo"),
    )

    assert_422(r, "neighbourhood", "category")
    messages = {d["field"]: d["message"] for d in r.json()["details"]}
    assert "'atlantis'" in messages["neighbourhood"]
    assert "delfgauw" in messages["neighbourhood"], "the message lists what is allowed"


async def test_get_an_unknown_activity_is_404(client: httpx.AsyncClient, partner: Partner) -> None:
    r = await client.get(f"/v1/activities/{uid('nope')}", headers=partner.headers)

    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


# --------------------------------------------------------------------------- registrations


async def test_register_then_get(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    body = registration_body(activity, referral_id="ref-42")

    r = await client.post("/v1/registrations", headers=partner.headers, json=body)
    got = await client.get(f"/v1/registrations/{body['registration_id']}", headers=partner.headers)

    assert r.status_code == 201, r.text
    assert r.json()["registration_id"] == body["registration_id"]
    assert r.json()["status"] == "registered"
    uuid.UUID(r.json()["event_id"])
    assert got.status_code == 200
    RegistrationRecord.model_validate(got.json())  # as the OpenAPI document says
    assert got.json()["activity_id"] == activity
    assert got.json()["referral_id"] == "ref-42"
    assert got.json()["cancelled_at"] is None
    assert datetime.fromisoformat(got.json()["registered_at"]) == datetime.fromisoformat(
        body["registered_at"]
    )
    assert body["participant"]["ref"] not in got.text


async def test_a_registration_names_a_referral_by_its_referrer_and_id(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    """Referral ids are unique per referring organisation only: the referrer is part of the
    name, and it travels on the event (registration.created v2)."""
    body = registration_body(
        activity, referral_id="ref-42", referring_organisation_id="huisarts-noord"
    )

    r = await client.post("/v1/registrations", headers=partner.headers, json=body)
    got = await client.get(f"/v1/registrations/{body['registration_id']}", headers=partner.headers)

    assert r.status_code == 201, r.text
    assert (got.json()["referral_id"], got.json()["referring_organisation_id"]) == (
        "ref-42",
        "huisarts-noord",
    )


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"referring_organisation_id": "huisarts-noord"}, id="referrer-without-id"),
        pytest.param(
            {"referral_id": "ref-1", "referring_organisation_id": "huisarts noord"}, id="bad-id"
        ),
    ],
)
async def test_a_bad_referrer_is_named(
    client: httpx.AsyncClient, partner: Partner, activity: str, changes: dict[str, Any]
) -> None:
    r = await client.post(
        "/v1/registrations", headers=partner.headers, json=registration_body(activity, **changes)
    )

    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["details"]] == ["referring_organisation_id"]


async def test_get_an_unknown_registration_is_404(
    client: httpx.AsyncClient, partner: Partner
) -> None:
    r = await client.get(f"/v1/registrations/{uid('nope')}", headers=partner.headers)

    assert r.status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["participant"].update(neighbourhood="atlantis"), "participant.neighbourhood"),
        (lambda b: b["participant"].update(age_band="80-90"), "participant.age_band"),
        (lambda b: b["participant"].update(ref=""), "participant.ref"),
        (lambda b: b["participant"].update(ref="   \t "), "participant.ref"),
        (lambda b: b["participant"].update(resident_token="  "), "participant.resident_token"),
        (lambda b: b["participant"].update(name="Jan Jansen"), "participant.name"),
        (lambda b: b["participant"].pop("ref"), "participant.ref"),
        (lambda b: b.update(email="jan@example.org"), "email"),
        (lambda b: b.update(registered_at="2025-03-01T10:00:00"), "registered_at"),
        (lambda b: b.update(registered_at="1999-12-31T23:59:59+00:00"), "registered_at"),
        (lambda b: b.update(registered_at=moment(timedelta(hours=25))), "registered_at"),
        (lambda b: b.update(registered_at="volgende week"), "registered_at"),
        (lambda b: b.update(registration_id=""), "registration_id"),
        (lambda b: b.update(registration_id="has space"), "registration_id"),
        (lambda b: b.update(activity_id="no-such-activity"), "activity_id"),
    ],
    ids=[
        "unknown-neighbourhood",
        "unknown-age-band",
        "empty-ref",
        "whitespace-ref",
        "whitespace-resident-token",
        "unknown-participant-field",
        "missing-ref",
        "unknown-field",
        "naive-time",
        "before-2000",
        "over-24h-ahead",
        "not-a-time",
        "empty-id",
        "id-with-space",
        "unknown-activity",
    ],
)
async def test_registration_validation_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    partner: Partner,
    activity: str,
    db: Db,
    change: Callable[[dict[str, Any]], Any],
    field: str,
) -> None:
    body = registration_body(activity)
    change(body)
    before = await db.writes_of(partner.organisation_id)

    r = await client.post("/v1/registrations", headers=partner.headers, json=body)

    assert_422(r, field)
    assert await db.writes_of(partner.organisation_id) == before


async def test_moments_at_the_edges_are_accepted(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    for registered_at in ("2000-01-01T00:00:00+00:00", moment(timedelta(hours=23))):
        r = await client.post(
            "/v1/registrations",
            headers=partner.headers,
            json=registration_body(activity, registered_at=registered_at),
        )
        assert r.status_code == 201, r.text


async def test_registration_for_another_organisations_activity_is_422_activity_id(
    client: httpx.AsyncClient, make_partner: PartnerFactory, activity: str, partner: Partner, db: Db
) -> None:
    other = await make_partner()

    r = await client.post(
        "/v1/registrations", headers=other.headers, json=registration_body(activity)
    )

    assert_422(r, "activity_id")
    assert await db.writes_of(other.organisation_id) == dict.fromkeys(
        ("activities", "registrations", "attendance", "idempotency"), 0
    )


async def test_registration_names_all_bad_fields_at_once(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    body = registration_body(activity, registered_at="1999-01-01T00:00:00+01:00")
    body["participant"].update(neighbourhood="atlantis", age_band="old")

    r = await client.post("/v1/registrations", headers=partner.headers, json=body)

    assert_422(r, "participant.neighbourhood", "participant.age_band", "registered_at")


async def test_registration_replay_answers_as_the_first_time(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    body = registration_body(activity)

    first = await client.post("/v1/registrations", headers=partner.headers, json=body)
    again = await client.post("/v1/registrations", headers=partner.headers, json=body)
    reordered = await client.post(
        "/v1/registrations", headers=partner.headers, json=dict(reversed(list(body.items())))
    )

    assert (first.status_code, again.status_code, reordered.status_code) == (201, 200, 200)
    assert again.json() == first.json() == reordered.json()
    assert await db.count("registrations", partner.organisation_id) == 1


async def test_registration_same_id_different_body_is_409(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    body = registration_body(activity)
    first = await client.post("/v1/registrations", headers=partner.headers, json=body)
    changed = {**body, "participant": {**body["participant"], "age_band": "65-74"}}

    r = await client.post("/v1/registrations", headers=partner.headers, json=changed)

    assert first.status_code == 201
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict"
    assert body["registration_id"] in r.json()["message"]
    row = await db.registration(partner.organisation_id, body["registration_id"])
    assert row is not None
    assert await db.count("registrations", partner.organisation_id) == 1


async def test_two_organisations_may_use_the_same_ids(
    client: httpx.AsyncClient, make_partner: PartnerFactory
) -> None:
    a, b = await make_partner(), await make_partner()
    for p in (a, b):
        r = await client.put("/v1/activities/shared-id", headers=p.headers, json=activity_body())
        assert r.status_code == 201
    body = registration_body("shared-id", registration_id="reg-shared")

    ra = await client.post("/v1/registrations", headers=a.headers, json=body)
    rb = await client.post("/v1/registrations", headers=b.headers, json=body)

    assert (ra.status_code, rb.status_code) == (201, 201)
    assert ra.json()["event_id"] != rb.json()["event_id"]


# --------------------------------------------------------------------------- cancellations


async def _registered(client: httpx.AsyncClient, partner: Partner, activity: str) -> str:
    body = registration_body(activity, registered_at=moment(timedelta(hours=-3)))
    r = await client.post("/v1/registrations", headers=partner.headers, json=body)
    assert r.status_code == 201, r.text
    return str(body["registration_id"])


async def test_cancel_a_registration(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    registration_id = await _registered(client, partner, activity)
    body = {"cancelled_at": moment(), "reason": "illness"}

    r = await client.post(
        f"/v1/registrations/{registration_id}/cancellation", headers=partner.headers, json=body
    )
    again = await client.post(
        f"/v1/registrations/{registration_id}/cancellation", headers=partner.headers, json=body
    )
    got = await client.get(f"/v1/registrations/{registration_id}", headers=partner.headers)

    assert r.status_code == 201, r.text
    assert r.json()["status"] == "cancelled"
    assert again.status_code == 200
    assert again.json() == r.json()
    RegistrationRecord.model_validate(got.json())
    assert datetime.fromisoformat(got.json()["cancelled_at"]) == datetime.fromisoformat(
        body["cancelled_at"]
    )


async def test_cancel_again_with_another_body_is_409(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    registration_id = await _registered(client, partner, activity)
    url = f"/v1/registrations/{registration_id}/cancellation"
    first = await client.post(url, headers=partner.headers, json={"cancelled_at": moment()})

    r = await client.post(
        url, headers=partner.headers, json={"cancelled_at": moment(), "reason": "other"}
    )

    assert first.status_code == 201
    assert r.status_code == 409
    assert r.json()["error"] == "conflict"


async def test_cancel_an_unknown_registration_is_422_registration_id(
    client: httpx.AsyncClient, partner: Partner, db: Db
) -> None:
    r = await client.post(
        f"/v1/registrations/{uid('nope')}/cancellation",
        headers=partner.headers,
        json={"cancelled_at": moment()},
    )

    assert_422(r, "registration_id")
    assert await db.count("idempotency", partner.organisation_id) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cancelled_at": "2025-03-01T10:00:00"}, "cancelled_at"),
        ({"cancelled_at": "1999-03-01T10:00:00+01:00"}, "cancelled_at"),
        ({"cancelled_at": "+25h"}, "cancelled_at"),
        ({}, "cancelled_at"),
        ({"cancelled_at": "NOW", "why": "x"}, "why"),
        ({"cancelled_at": "NOW", "reason": "x" * 501}, "reason"),
        ({"cancelled_at": "-1d"}, "cancelled_at"),  # before the registration itself
    ],
)
async def test_cancellation_validation_names_the_field(
    client: httpx.AsyncClient,
    partner: Partner,
    activity: str,
    db: Db,
    body: dict[str, Any],
    field: str,
) -> None:
    registration_id = await _registered(client, partner, activity)
    shorthand = {
        "NOW": moment(),
        "+25h": moment(timedelta(hours=25)),
        "-1d": moment(timedelta(days=-1)),
    }
    body = {k: shorthand.get(v, v) for k, v in body.items()}

    r = await client.post(
        f"/v1/registrations/{registration_id}/cancellation", headers=partner.headers, json=body
    )

    assert_422(r, field)
    row = await db.registration(partner.organisation_id, registration_id)
    assert row["cancelled_at"] is None


# ------------------------------------------------------------------------------ attendance


async def test_record_attendance_and_replay(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    body = attendance_body(activity, status="no_show")

    r = await client.post("/v1/attendance", headers=partner.headers, json=body)
    again = await client.post("/v1/attendance", headers=partner.headers, json=body)
    conflict = await client.post(
        "/v1/attendance", headers=partner.headers, json={**body, "status": "attended"}
    )

    assert r.status_code == 201, r.text
    assert r.json()["status"] == "no_show"
    assert r.json()["attendance_id"] == body["attendance_id"]
    assert again.status_code == 200
    assert again.json() == r.json()
    assert conflict.status_code == 409
    assert await db.count("attendance", partner.organisation_id) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(session_start="2025-03-01T19:30:00"), "session_start"),
        (lambda b: b.update(session_start="2025-03-01 19:30"), "session_start"),
        (lambda b: b.update(session_start="1999-03-01T19:30:00+01:00"), "session_start"),
        (lambda b: b.update(session_start=moment(timedelta(hours=25))), "session_start"),
        (lambda b: b.update(status="maybe"), "status"),
        (lambda b: b.update(activity_id="no-such-activity"), "activity_id"),
        (lambda b: b["participant"].update(ref=""), "participant.ref"),
        (lambda b: b["participant"].update(ref="  "), "participant.ref"),
        (lambda b: b["participant"].update(age_band="ancient"), "participant.age_band"),
        (lambda b: b["participant"].update(neighbourhood="x"), "participant.neighbourhood"),
        (lambda b: b.update(notes="x"), "notes"),
    ],
    ids=[
        "no-offset",
        "no-offset-space",
        "before-2000",
        "over-24h-ahead",
        "bad-status",
        "unknown-activity",
        "empty-ref",
        "whitespace-ref",
        "unknown-age-band",
        "unknown-neighbourhood",
        "unknown-field",
    ],
)
async def test_attendance_validation_names_the_field_and_writes_nothing(
    client: httpx.AsyncClient,
    partner: Partner,
    activity: str,
    db: Db,
    change: Callable[[dict[str, Any]], Any],
    field: str,
) -> None:
    body = attendance_body(activity)
    change(body)

    r = await client.post("/v1/attendance", headers=partner.headers, json=body)

    assert_422(r, field)
    assert await db.count("attendance", partner.organisation_id) == 0


async def test_session_start_without_offset_says_how_to_fix_it(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    body = attendance_body(activity, session_start="2025-03-01T19:30:00")

    r = await client.post("/v1/attendance", headers=partner.headers, json=body)

    (detail,) = r.json()["details"]
    assert detail["field"] == "session_start"
    assert "timezone" in detail["message"] or "offset" in detail["message"]


async def test_attendance_for_another_organisations_activity_is_422_activity_id(
    client: httpx.AsyncClient, make_partner: PartnerFactory, activity: str, db: Db
) -> None:
    other = await make_partner()

    r = await client.post("/v1/attendance", headers=other.headers, json=attendance_body(activity))

    assert_422(r, "activity_id")
    assert await db.writes_of(other.organisation_id) == dict.fromkeys(
        ("activities", "registrations", "attendance", "idempotency"), 0
    )


# ---------------------------------------------------------------------- other organisations


async def test_another_organisation_cannot_see_or_cancel_what_is_not_theirs(
    client: httpx.AsyncClient, make_partner: PartnerFactory, partner: Partner, activity: str, db: Db
) -> None:
    registration_id = await _registered(client, partner, activity)
    intruder = await make_partner()
    before_owner = await db.writes_of(partner.organisation_id)

    get_activity = await client.get(f"/v1/activities/{activity}", headers=intruder.headers)
    get_registration = await client.get(
        f"/v1/registrations/{registration_id}", headers=intruder.headers
    )
    cancel = await client.post(
        f"/v1/registrations/{registration_id}/cancellation",
        headers=intruder.headers,
        json={"cancelled_at": moment()},
    )

    assert get_activity.status_code == 404
    assert get_registration.status_code == 404
    assert_422(cancel, "registration_id")
    assert get_activity.json() == {
        "error": "not_found",
        "message": f"no activity {activity!r} of your organisation",
        "details": [],
    }, "the answer must not reveal that the activity exists elsewhere"
    row = await db.registration(partner.organisation_id, registration_id)
    assert row["cancelled_at"] is None
    assert await db.writes_of(partner.organisation_id) == before_owner
    assert await db.writes_of(intruder.organisation_id) == dict.fromkeys(
        ("activities", "registrations", "attendance", "idempotency"), 0
    )


async def test_putting_an_activity_with_the_same_id_never_changes_the_other_organisations(
    client: httpx.AsyncClient, make_partner: PartnerFactory, partner: Partner, activity: str
) -> None:
    intruder = await make_partner()

    r = await client.put(
        f"/v1/activities/{activity}", headers=intruder.headers, json=activity_body(title="Mine")
    )
    owners = await client.get(f"/v1/activities/{activity}", headers=partner.headers)

    assert r.status_code == 201  # a new activity of the intruder's own
    assert owners.json()["title"] == "Koffieochtend"
    assert owners.json()["version"] == 1


# ---------------------------------------------------------------------------- body limit


async def test_a_body_over_the_limit_is_413_with_content_length(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    body = registration_body(activity)
    body["participant"]["ref"] = "x" * (MAX_BODY + 10)
    content = orjson.dumps(body)

    r = await client.post(
        "/v1/registrations",
        headers={**partner.headers, "Content-Type": "application/json"},
        content=content,
    )

    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
    assert await db.count("registrations", partner.organisation_id) == 0


async def test_a_body_over_the_limit_is_413_without_content_length(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    """A chunked upload announces no length: the limit must hold while reading."""
    body = registration_body(activity)
    body["participant"]["ref"] = "x" * (MAX_BODY + 10)
    content = orjson.dumps(body)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 65536):
            yield content[start : start + 65536]

    request = client.build_request(
        "POST",
        "/v1/registrations",
        headers={**partner.headers, "Content-Type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in request.headers
    r = await client.send(request)

    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
    assert await db.count("registrations", partner.organisation_id) == 0


async def test_a_body_just_under_the_limit_is_not_413(
    client: httpx.AsyncClient, partner: Partner, activity: str
) -> None:
    body = registration_body(activity)
    body["participant"]["ref"] = "x" * (MAX_BODY - 1000)

    r = await client.post("/v1/registrations", headers=partner.headers, json=body)

    assert r.status_code == 422  # too long a ref, but read and judged: not refused for size
    assert "participant.ref" in fields(r)


# ---------------------------------------------------------------------------------- batch


async def test_batch_mixed_good_and_bad_items_in_order(
    client: httpx.AsyncClient, partner: Partner, db: Db
) -> None:
    activity_id = uid("act")
    good_reg = registration_body(activity_id)
    bad_band = registration_body(activity_id)
    bad_band["participant"]["age_band"] = "old"
    attendance = attendance_body(activity_id)
    naive = attendance_body(activity_id, session_start="2025-03-01T19:30:00")
    items = [
        {"kind": "activity", "activity_id": activity_id, "body": activity_body()},
        {"kind": "registration", "body": good_reg},
        {"kind": "registration", "body": bad_band},
        {"kind": "attendance", "body": attendance},
        {"kind": "attendance", "body": naive},
        {"kind": "lunch", "body": {}},
        {
            "kind": "cancellation",
            "registration_id": good_reg["registration_id"],
            "body": {"cancelled_at": moment(timedelta(minutes=-1))},
        },
        {"kind": "cancellation", "registration_id": "nope", "body": {"cancelled_at": moment()}},
        {"kind": "registration", "body": {**good_reg, "extra": 1}},
    ]

    r = await client.post("/v1/batch", headers=partner.headers, json={"items": items})

    assert r.status_code == 200, r.text
    answer = r.json()
    results = answer["results"]
    assert [x["index"] for x in results] == list(range(len(items)))
    assert [x["status"] for x in results] == [201, 201, 422, 201, 422, 422, 201, 422, 422]
    assert (answer["accepted"], answer["rejected"]) == (4, 5)

    def named(i: int) -> list[str]:
        return [d["field"] for d in results[i]["details"]]

    assert named(2) == ["body.participant.age_band"]
    assert named(4) == ["body.session_start"]
    assert named(5) == ["kind"]
    assert named(7) == ["registration_id"]  # beside `body` in the item, as it was sent
    assert named(8) == ["body.extra"]
    assert results[1]["body"]["registration_id"] == good_reg["registration_id"]

    # The good ones are stored, the bad ones are not.
    got = await client.get(
        f"/v1/registrations/{good_reg['registration_id']}", headers=partner.headers
    )
    assert got.status_code == 200
    assert got.json()["cancelled_at"] is not None
    missing = await client.get(
        f"/v1/registrations/{bad_band['registration_id']}", headers=partner.headers
    )
    assert missing.status_code == 404
    assert await db.count("attendance", partner.organisation_id) == 1

    # A retried batch answers as the first time, item by item (200 instead of 201).
    retry = await client.post("/v1/batch", headers=partner.headers, json={"items": items})
    retried = retry.json()["results"]
    for first, second in zip(results, retried, strict=True):
        if first["status"] == 201 and first["body"].get("event_id"):
            assert second["status"] == 200
            assert second["body"] == first["body"]
    assert await db.count("registrations", partner.organisation_id) == 1


async def test_batch_activity_item_needs_the_activities_scope(
    client: httpx.AsyncClient, make_partner: PartnerFactory, db: Db
) -> None:
    partner = await make_partner("registrations")
    items = [{"kind": "activity", "activity_id": uid("act"), "body": activity_body()}]

    r = await client.post("/v1/batch", headers=partner.headers, json={"items": items})

    assert r.status_code == 200
    (result,) = r.json()["results"]
    assert result["status"] == 422
    assert result["details"][0]["field"] == "kind"
    assert "activities" in result["details"][0]["message"]
    assert await db.count("activities", partner.organisation_id) == 0


async def test_batch_of_exactly_1000_items_is_accepted(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    items = [{"kind": "registration", "body": registration_body(activity)} for _ in range(1000)]

    r = await client.post("/v1/batch", headers=partner.headers, json={"items": items})

    assert r.status_code == 200, r.text[:500]
    assert r.json()["accepted"] == 1000
    assert await db.count("registrations", partner.organisation_id) == 1000


async def test_batch_over_1000_items_is_refused_whole(
    client: httpx.AsyncClient, partner: Partner, activity: str, db: Db
) -> None:
    items = [{"kind": "registration", "body": registration_body(activity)} for _ in range(1001)]

    r = await client.post("/v1/batch", headers=partner.headers, json={"items": items})

    assert_422(r, "items")
    assert await db.count("registrations", partner.organisation_id) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [({"items": []}, "items"), ({}, "items"), ({"items": [], "x": 1}, "x")],
)
async def test_batch_envelope_validation(
    client: httpx.AsyncClient, partner: Partner, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/batch", headers=partner.headers, json=body)

    assert_422(r, field)
