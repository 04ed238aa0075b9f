"""Hostile values in every free-text field and id: very long strings, unicode, SQL and HTML.

Each is either accepted and then stored and returned exactly as sent (byte for byte: no SQL
injection, no escaping on the way in: escaping is the dashboard's job on the way out), or
rejected with a 4xx that names the field; never a 5xx. Moments far in the past or the future
are rejected by the stated rule of shared/timerules.py (on or after 2000-01-01, at most 24 hours
ahead, with a UTC offset): a 422 naming the field, never clamped.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from shared.events import Topic, decode_event, topic_name
from tests.conftest import TOPIC_PREFIX, read_records

pytestmark = pytest.mark.integration

SQL = [
    "'; DROP TABLE registrations.activities; --",
    "Robert'); DELETE FROM platform.api_keys; --",
    "1' OR '1'='1",
    "$1 $2 \\x00 E'\\\\' $$ $tag$ ; COMMIT; --",
]
HTML = [
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    "</title><svg/onload=alert(1)>",
    "&lt;b&gt; &amp; &#x3C;",
]
UNICODE = [
    "Koffie ☕ met 🧓🏽 en 👩‍👩‍👧",
    "Ünïcödé ñ ß Ωμέγα Кириллица 中文 日本語 한국어",
    "‮gnirts desrever‬ and zero\u200bwidth",
    "e\u0301 combining, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP",
    '"quotes" \\backslashes\\ {"json": [1, 2]} %s %d {0} ${x}',
]
LONG_OK = ["é" * 200, "🙂" * 200]  # at the limit of 200 characters, multibyte
FREE_TEXT = SQL + HTML + UNICODE + LONG_OK

# Ids: no whitespace and no "/" (they are path segments), at most 128 characters.
HOSTILE_IDS = [
    "Robert');DROP_TABLE_activities;--",
    "1'OR'1'='1",
    "<img_src=x_onerror=alert(1)>",
    "activiteit-ü-中文-🙂",
    "%27%22%3C%3E",
    "..",
    "x" * 128,
]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def activity(title: str = "Koffieochtend") -> dict[str, Any]:
    return {
        "title": title,
        "category": "meeting",
        "aimed_at_connection": True,
        "neighbourhood": "delfgauw",
    }


def participant(ref: str = "p-1") -> dict[str, Any]:
    return {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+"}


def referral(**override: Any) -> dict[str, Any]:
    return {
        "referral_id": new_id("ref"),
        "participant": participant(),
        "referrer_role": "gp",
        "signals": ["social"],
        "referred_to": {"service": "buddy-programme"},
        "consent": True,
        "created_at": "2025-03-03T09:30:00+01:00",
        **override,
    }


def assert_rejected(response: Any, field: str) -> None:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert isinstance(body["error"], str)
    if response.status_code == 422:
        fields = [d["field"] for d in body["details"]]
        assert any(f == field or f.endswith(f".{field}") for f in fields), (field, body)


@pytest.fixture(scope="module")
async def partner(make_partner: Any) -> Any:
    return await make_partner()


# ------------------------------------------------------------------------------- free text


@pytest.mark.parametrize("title", FREE_TEXT, ids=range(len(FREE_TEXT)))
async def test_an_activity_title_comes_back_exactly_as_sent(registrations, partner, pool, title):
    activity_id = new_id("act")
    before = await pool.fetchval("SELECT count(*) FROM registrations.activities")

    put = await registrations.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity(title)
    )
    got = await registrations.get(f"/v1/activities/{activity_id}", headers=partner.headers)

    assert put.status_code == 201, put.text
    assert got.status_code == 200, got.text
    assert got.json()["title"] == title
    # The statement ran as a value, not as SQL: one more row, every table still there.
    assert await pool.fetchval("SELECT count(*) FROM registrations.activities") == before + 1
    assert await pool.fetchval("SELECT count(*) FROM platform.api_keys") > 0


@pytest.mark.parametrize(
    ("title", "status"),
    [
        ("x" * 201, 422),
        ("🙂" * 201, 422),
        ("x" * 100_000, 422),
        ("", 422),
        ("   ", 422),
        ("nul \x00 inside", 422),
        ("x" * 2_500_000, 413),
    ],
    ids=["201", "201-emoji", "100k", "empty", "blank", "nul", "over-body-limit"],
)
async def test_titles_that_cannot_be_stored_are_rejected_by_name(
    registrations, partner, pool, title, status
):
    activity_id = new_id("act")
    before = await pool.fetchval("SELECT count(*) FROM registrations.activities")

    r = await registrations.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity(title)
    )

    assert r.status_code == status, r.text[:500]
    assert_rejected(r, "title")
    assert await pool.fetchval("SELECT count(*) FROM registrations.activities") == before


@pytest.mark.parametrize("outcome", [*FREE_TEXT[:-2], "o" * 500], ids=range(len(FREE_TEXT) - 1))
async def test_free_text_as_an_outcome_or_a_service_is_refused_by_name(referrals, partner, outcome):
    """An outcome is a code of the reference list `referral_outcomes` (minimisation, issue 17):
    hostile or free text is refused by name and nothing is stored; a code is kept as sent."""
    body = referral()
    created = await referrals.post("/v1/referrals", headers=partner.headers, json=body)
    assert created.status_code == 201, created.text
    url = f"/v1/referrals/{body['referral_id']}"

    change = {"status": "withdrawn", "at": "2025-03-04T09:00:00+01:00", "outcome": outcome}
    changed = await referrals.post(f"{url}/status", headers=partner.headers, json=change)
    # A service must be on the coalition's service list (its provider receives the referral):
    # hostile text there is refused by name, never stored.
    hostile = referral(referred_to={"service": outcome[:200]})
    refused = await referrals.post("/v1/referrals", headers=partner.headers, json=hostile)
    coded = await referrals.post(
        f"{url}/status", headers=partner.headers, json={**change, "outcome": "no-contact-possible"}
    )
    view = await referrals.get(url, headers=partner.headers)

    assert_rejected(changed, "outcome")
    assert coded.status_code == 201, coded.text
    assert [h["outcome"] for h in view.json()["history"]] == [None, "no-contact-possible"]
    assert refused.status_code == 422, refused.text
    assert_rejected(refused, "referred_to.service")
    assert (
        await referrals.get(f"/v1/referrals/{hostile['referral_id']}", headers=partner.headers)
    ).status_code == 404


async def test_too_long_or_unstorable_outcomes_are_rejected_by_name(referrals, partner):
    body = referral()
    assert (
        await referrals.post("/v1/referrals", headers=partner.headers, json=body)
    ).status_code == 201
    url = f"/v1/referrals/{body['referral_id']}/status"
    for outcome in ("o" * 501, "nul \x00 inside"):
        change = {"status": "withdrawn", "at": "2025-03-04T09:00:00+01:00", "outcome": outcome}
        r = await referrals.post(url, headers=partner.headers, json=change)
        assert_rejected(r, "outcome")
    for service in ("s" * 201, "nul \x00 inside"):
        r = await referrals.post(
            "/v1/referrals",
            headers=partner.headers,
            json=referral(referred_to={"service": service}),
        )
        assert_rejected(r, "referred_to.service")


async def test_a_cancellation_reason_is_a_code_and_free_text_is_refused(registrations, partner):
    """The reason travels in the event as a code of `cancellation_reasons`; free text (hostile or
    not) is refused by name (minimisation, issue 17)."""
    activity_id, registration_id = new_id("act"), new_id("reg")
    await registrations.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity()
    )
    registered = await registrations.post(
        "/v1/registrations",
        headers=partner.headers,
        json={
            "registration_id": registration_id,
            "activity_id": activity_id,
            "participant": participant(),
            "registered_at": "2025-03-01T10:00:00+01:00",
        },
    )
    assert registered.status_code == 201, registered.text
    url = f"/v1/registrations/{registration_id}/cancellation"
    for reason in (SQL[0] + " " + HTML[1] + " " + UNICODE[0], "r" * 501, "ziek"):
        refused = await registrations.post(
            url,
            headers=partner.headers,
            json={"cancelled_at": "2025-03-02T10:00:00+01:00", "reason": reason},
        )
        assert_rejected(refused, "reason")
    cancelled = await registrations.post(
        url,
        headers=partner.headers,
        json={"cancelled_at": "2025-03-02T10:00:00+01:00", "reason": "transport"},
    )
    assert cancelled.status_code == 201, cancelled.text

    def found(records: list[Any]) -> bool:
        return any(registration_id.encode() in r.value and b"cancelled" in r.value for r in records)

    records = await read_records(
        topic_name(Topic.REGISTRATIONS, TOPIC_PREFIX), until=found, timeout=30, settle=0
    )
    events = [decode_event(r.value) for r in records if registration_id.encode() in r.value]
    cancellation = next(e for e in events if e.type.endswith("registration.cancelled.v2"))
    assert cancellation.data.reason == "transport"


# ----------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize("activity_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
async def test_hostile_ids_are_stored_and_returned_verbatim(registrations, partner, activity_id):
    # Unique per run: the id itself is the hostile value, a suffix keeps runs apart.
    activity_id = activity_id[:118] + "-" + uuid.uuid4().hex[:8]
    path = f"/v1/activities/{quote(activity_id, safe='')}"
    registration_id = "reg-" + activity_id[:118]

    put = await registrations.put(path, headers=partner.headers, json=activity())
    got = await registrations.get(path, headers=partner.headers)
    registered = await registrations.post(
        "/v1/registrations",
        headers=partner.headers,
        json={
            "registration_id": registration_id,
            "activity_id": activity_id,
            "participant": participant(),
            "registered_at": "2025-03-01T10:00:00+01:00",
        },
    )
    shown = await registrations.get(
        f"/v1/registrations/{quote(registration_id, safe='')}", headers=partner.headers
    )

    assert put.status_code == 201, put.text
    assert got.json()["activity_id"] == activity_id
    assert registered.status_code == 201, registered.text
    assert shown.json()["registration_id"] == registration_id
    assert shown.json()["activity_id"] == activity_id


@pytest.mark.parametrize(
    "bad_id",
    ["with space", "with\ttab", "a/b", "x" * 129, "", "nul\x00id"],
    ids=["space", "tab", "slash", "129", "empty", "nul"],
)
async def test_ids_that_cannot_be_ids_are_rejected_by_name(registrations, partner, bad_id):
    r = await registrations.post(
        "/v1/registrations",
        headers=partner.headers,
        json={
            "registration_id": bad_id,
            "activity_id": "a",
            "participant": participant(),
            "registered_at": "2025-03-01T10:00:00+01:00",
        },
    )
    assert_rejected(r, "registration_id")


@pytest.mark.parametrize(
    "ref",
    [SQL[0], HTML[0], UNICODE[0], "r" * 200, "nul\x00ref"],
    ids=["sql", "html", "unicode", "200", "nul"],
)
async def test_hostile_participant_refs_are_accepted_or_rejected_never_break(
    registrations, partner, ref
):
    activity_id = new_id("act")
    await registrations.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity()
    )
    r = await registrations.post(
        "/v1/attendance",
        headers=partner.headers,
        json={
            "attendance_id": new_id("att"),
            "activity_id": activity_id,
            "participant": participant(ref),
            "session_start": "2025-03-04T10:00:00+01:00",
            "status": "attended",
        },
    )
    # A ref is pseudonymised at once, so even NUL is harmless; what matters is: never a 5xx.
    assert r.status_code in (201, 422), r.text
    if r.status_code == 422:
        assert_rejected(r, "participant.ref")


# ----------------------------------------------------------------------------------- moments


def now_plus(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


REJECTED_MOMENTS = {
    "ancient": "0001-01-01T00:00:00+00:00",
    "before-2000": "1999-12-31T23:59:59+00:00",
    "no-offset": "2025-03-01T10:00:00",
    "year-9999": "9999-12-31T23:59:59+00:00",
    "25h-ahead": None,  # computed per test: now + 25 h
    "not-a-date": "2025-02-30T10:00:00+01:00",
    "huge-offset": "2025-03-01T10:00:00+25:00",
}
ACCEPTED_MOMENTS = {
    "first-of-2000": "2000-01-01T00:00:00+00:00",
    "23h-ahead": None,  # now + 23 h
}


def moment(name: str, table: dict[str, str | None]) -> str:
    fixed = table[name]
    if fixed is not None:
        return fixed
    return now_plus(25 if name == "25h-ahead" else 23)


def bodies(when: str) -> list[tuple[str, str, str, dict[str, Any], str]]:
    """(service, method, path, body, field) for every write that carries a moment."""
    rid = new_id("ref")
    return [
        ("registrations", "POST", "/v1/registrations", {"registration_id": new_id("reg"), "activity_id": "a", "participant": participant(), "registered_at": when}, "registered_at"),
        ("registrations", "POST", "/v1/attendance", {"attendance_id": new_id("att"), "activity_id": "a", "participant": participant(), "session_start": when, "status": "attended"}, "session_start"),
        ("registrations", "POST", "/v1/registrations/no-such/cancellation", {"cancelled_at": when}, "cancelled_at"),
        ("referrals", "POST", "/v1/referrals", referral(referral_id=rid, created_at=when), "created_at"),
        ("referrals", "POST", "/v1/trainings", {"training_id": new_id("tr"), "person_ref": "e-1", "role": "gp", "training": "signaling-loneliness", "completed_at": when}, "completed_at"),
        ("referrals", "POST", "/v1/measurements", {"measurement_id": new_id("m"), "instrument": "djg6", "context": "survey", "participant": {"neighbourhood": "delfgauw", "age_band": "75+"}, "answers": ["no"] * 6, "measured_at": when}, "measured_at"),
    ]  # fmt: skip


@pytest.mark.parametrize("name", list(REJECTED_MOMENTS))
async def test_moments_outside_the_stated_rule_are_rejected(
    registrations, referrals, partner, name
):
    when = moment(name, REJECTED_MOMENTS)
    clients = {"registrations": registrations, "referrals": referrals}
    for service, method, path, body, field in bodies(when):
        r = await clients[service].request(method, path, headers=partner.headers, json=body)
        assert r.status_code == 422, (path, when, r.text)
        assert_rejected(r, field)


@pytest.mark.parametrize("name", list(ACCEPTED_MOMENTS))
async def test_moments_inside_the_rule_are_accepted(registrations, referrals, partner, name):
    when = moment(name, ACCEPTED_MOMENTS)
    activity_id = "a"
    await registrations.put(
        f"/v1/activities/{activity_id}", headers=partner.headers, json=activity()
    )
    clients = {"registrations": registrations, "referrals": referrals}
    for service, method, path, body, _ in bodies(when):
        if path.endswith("/cancellation"):
            continue  # needs a registration; the other writes show the rule
        r = await clients[service].request(method, path, headers=partner.headers, json=body)
        assert r.status_code == 201, (path, when, r.text)


async def test_a_batch_of_hostile_items_answers_per_item_and_never_5xx(registrations, partner):
    items: list[Any] = [
        {"kind": "activity", "activity_id": new_id("act"), "body": activity(SQL[0])},
        {"kind": "activity", "activity_id": new_id("act"), "body": activity("nul \x00")},
        {"kind": "activity", "activity_id": "a b", "body": activity()},
        {"kind": "activity", "activity_id": "nul\x00id", "body": activity()},
        {"kind": "<script>", "body": {}},
        {"kind": "registration", "body": {"registration_id": "x" * 500}},
        {
            "kind": "cancellation",
            "registration_id": "a/b",
            "body": {"cancelled_at": "2025-03-02T10:00:00+01:00"},
        },
        {"kind": "activity", "activity_id": new_id("act"), "body": activity(UNICODE[2])},
    ]
    headers = {**partner.headers, "Content-Type": "application/json"}
    r = await registrations.post(
        "/v1/batch", headers=headers, content=orjson.dumps({"items": items})
    )
    assert r.status_code == 200, r.text
    statuses = [x["status"] for x in r.json()["results"]]
    assert statuses == [201, 422, 422, 422, 422, 422, 422, 201], r.text

    # Items that are not objects make the request itself malformed: a 422 for the batch.
    for junk in ("not an object", None, [1, 2]):
        r = await registrations.post(
            "/v1/batch", headers=headers, content=orjson.dumps({"items": [junk]})
        )
        assert_rejected(r, "items.0")


async def test_a_path_id_with_nul_is_rejected(registrations, partner):
    r = await registrations.get("/v1/activities/nul%00id", headers=partner.headers)
    assert_rejected(r, "activity_id")


@pytest.mark.parametrize(
    "raw",
    [b'"lone \\ud800 surrogate"', b'"\\udfff"', b'"nul \\u0000 escaped"'],
    ids=["high-surrogate", "low-surrogate", "nul-escape"],
)
async def test_text_that_is_not_storable_unicode_is_rejected_by_name(registrations, partner, raw):
    """JSON may carry escapes that are not storable text: a lone surrogate, or NUL."""
    body = (
        b'{"title": '
        + raw
        + b', "category": "meeting", "aimed_at_connection": true, "neighbourhood": "delfgauw"}'
    )
    r = await registrations.put(
        f"/v1/activities/{new_id('act')}",
        headers={**partner.headers, "Content-Type": "application/json"},
        content=body,
    )
    assert r.status_code == 422, r.text
    assert_rejected(r, "title")


# ------------------------------------------------------------------------- concurrent retries


async def test_the_same_write_sent_four_times_at_once_is_one_write_and_one_event(
    registrations, partner
):
    """A partner that retries before the first answer arrived: the copies race each other.
    Exactly one is the write (201, one event); the others are answered as replays (200)."""
    activity_id = new_id("act")
    puts = await asyncio.gather(
        *(registrations.put(f"/v1/activities/{activity_id}", headers=partner.headers, json=activity()) for _ in range(4))
    )  # fmt: skip
    body = {
        "attendance_id": new_id("att"),
        "activity_id": activity_id,
        "participant": participant(),
        "session_start": "2025-03-04T10:00:00+01:00",
        "status": "attended",
    }
    posts = await asyncio.gather(
        *(registrations.post("/v1/attendance", headers=partner.headers, json=body) for _ in range(4))
    )  # fmt: skip

    assert sorted(r.status_code for r in puts) == [200, 200, 200, 201], [r.text for r in puts]
    assert {r.json()["version"] for r in puts} == {1}
    assert sorted(r.status_code for r in posts) == [200, 200, 200, 201], [r.text for r in posts]
    assert len({r.json()["event_id"] for r in posts}) == 1
