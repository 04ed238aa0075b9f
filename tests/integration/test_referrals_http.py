"""The referrals service over HTTP, against the real PostgreSQL (and its relay on real Kafka):
what a referrer, a referred-to organisation, a trainer and a questionnaire system see."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from services.referrals.entrypoints.answers import (
    MeasurementRecord,
    ReferralRecord,
    TrainingRecord,
)

pytestmark = pytest.mark.integration

CREATED_AT = "2025-03-03T09:30:00+01:00"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def referral_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "referral_id": new_id("ref"),
        "participant": {
            "ref": "client-0042",
            "neighbourhood": "keijzershof-eilanden",
            "age_band": "75+",
            "lives_alone": True,
        },
        "referrer_role": "gp",
        "signals": ["emotional", "social"],
        "referred_to": {"service": "buddy-programme"},
        "consent": True,
        "created_at": CREATED_AT,
    }
    body.update(override)
    return body


def to_own_activity(partner: Any) -> dict[str, Any]:
    """A referral to one of the referrer's own activities: it is both sides of it."""
    return {"referred_to": {"activity_id": "koffie", "organisation_id": partner.organisation_id}}


def training_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "training_id": new_id("tr"),
        "person_ref": "employee-17",
        "role": "district-nurse",
        "training": "signaling-loneliness",
        "completed_at": "2025-02-10T16:00:00+01:00",
    }
    body.update(override)
    return body


# djg11, items 1..11. Per item (polarity, answer -> scores): 1 +no 1, 2 -yes 1, 3 -mol 1,
# 4 +yes 0, 5 -no 0, 6 -no 0, 7 +mol 1, 8 +yes 0, 9 -yes 1, 10 -no 0, 11 +yes 0.
# Emotional (2, 3, 5, 6, 9, 10) = 3, social (1, 4, 7, 8, 11) = 2, total 5: moderately lonely.
DJG11_PATTERN = ["no", "yes", "more_or_less", "yes", "no", "no", "more_or_less", "yes", "yes", "no", "yes"]  # fmt: skip


def measurement_body(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "measurement_id": new_id("m"),
        "instrument": "djg11",
        "context": "intake",
        "participant": {
            "ref": "client-0042",
            "neighbourhood": "pijnacker-noord",
            "age_band": "65-74",
        },
        "answers": DJG11_PATTERN,
        "measured_at": "2025-03-03T10:00:00+01:00",
    }
    body.update(override)
    return body


def fields(response: Any) -> set[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    return {d["field"] for d in body["details"]}


def message_for(response: Any, field: str) -> str:
    return next(d["message"] for d in response.json()["details"] if d["field"] == field)


def with_change(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A copy of the body with ``path`` (dotted) set to ``value``, or removed for ``...``."""

    def change(body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        *parents, last = path.split(".")
        target = body
        for p in parents:
            target = target[p]
        if value is ...:
            del target[last]
        else:
            target[last] = value
        return body

    return change


# ------------------------------------------------------------------------------------ referrals


async def test_a_referral_is_created_and_shown_to_its_referrer(referrals, make_partner):
    a = await make_partner()
    body = referral_body()

    r = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["referral_id"] == body["referral_id"]
    assert answer["status"] == "created"
    uuid.UUID(answer["event_id"])
    shown = await referrals.get(f"/v1/referrals/{body['referral_id']}", headers=a.headers)
    assert shown.status_code == 200, shown.text
    view = shown.json()
    # The answer is what the OpenAPI document says it is (the routes do not validate it).
    ReferralRecord.model_validate(view)
    assert view["status"] == "created"
    assert view["organisation_id"] == a.organisation_id
    assert view["signals"] == ["emotional", "social"]
    assert view["referred_to"] == {"service": "buddy-programme"}
    assert view["allowed_next"] == ["accepted", "declined", "withdrawn"]
    assert [h["status"] for h in view["history"]] == ["created"]
    assert view["history"][0]["event_id"] == answer["event_id"]
    assert "participant" not in view
    assert "client-0042" not in shown.text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(with_change("consent", False), {"consent"}, id="consent-false"),
        pytest.param(with_change("consent", ...), {"consent"}, id="consent-missing"),
        pytest.param(with_change("consent", "true"), {"consent"}, id="consent-a-string"),
        pytest.param(with_change("referrer_role", "doctor"), {"referrer_role"}, id="unknown-role"),
        pytest.param(
            with_change("signals", ["social", "lonely"]), {"signals.1"}, id="unknown-signal"
        ),
        pytest.param(with_change("signals", []), {"signals"}, id="empty-signals"),
        pytest.param(with_change("signals", ["social", "social"]), {"signals.1"}, id="twice"),
        pytest.param(
            with_change("participant.neighbourhood", "atlantis"),
            {"participant.neighbourhood"},
            id="unknown-neighbourhood",
        ),
        pytest.param(
            with_change("participant.age_band", "40-50"), {"participant.age_band"}, id="age-band"
        ),
        pytest.param(
            with_change("participant.ref", ...), {"participant.ref"}, id="participant-no-ref"
        ),
        pytest.param(
            with_change("created_at", "2025-03-03T09:30:00"), {"created_at"}, id="naive-datetime"
        ),
        pytest.param(
            with_change("created_at", "2125-03-03T09:30:00+01:00"), {"created_at"}, id="future"
        ),
        pytest.param(with_change("name", "Jan Jansen"), {"name"}, id="unknown-field"),
        pytest.param(
            with_change("participant.bsn", "123456782"), {"participant.bsn"}, id="unknown-nested"
        ),
        pytest.param(
            with_change(
                "referred_to",
                {"activity_id": "koffie", "organisation_id": "org-x", "service": "buddy"},
            ),
            {"referred_to"},
            id="referred-to-both-forms",
        ),
        pytest.param(with_change("referred_to", {}), {"referred_to"}, id="referred-to-neither"),
        pytest.param(
            with_change("referred_to", {"activity_id": "koffie"}),
            {"referred_to.organisation_id"},
            id="activity-without-organisation",
        ),
        pytest.param(
            with_change("referred_to", {"service": "buddy", "phone": "0612345678"}),
            {"referred_to.phone"},
            id="referred-to-unknown-field",
        ),
    ],
)
async def test_bad_referrals_name_the_offending_field(referrals, make_partner, change, expected):
    a = await make_partner()
    body = change(referral_body())

    r = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert fields(r) == expected
    missing = await referrals.get(f"/v1/referrals/{body['referral_id']}", headers=a.headers)
    assert missing.status_code == 404  # nothing was recorded


@pytest.mark.parametrize("consent", [False, ...], ids=["false", "missing"])
async def test_without_consent_the_answer_says_why(referrals, make_partner, consent):
    a = await make_partner()

    r = await referrals.post(
        "/v1/referrals", headers=a.headers, json=with_change("consent", consent)(referral_body())
    )

    message = message_for(r, "consent")
    assert "consent" in message
    assert "true" in message


async def test_every_bad_field_is_named_at_once(referrals, make_partner):
    a = await make_partner()
    body = referral_body(referrer_role="doctor", signals=["health", "health", "boredom"])
    body["participant"]["neighbourhood"] = "atlantis"

    r = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert fields(r) == {"referrer_role", "signals.1", "signals.2", "participant.neighbourhood"}


async def test_the_referred_to_organisation_must_be_registered(referrals, make_partner):
    a = await make_partner()
    body = referral_body(referred_to={"activity_id": "koffie", "organisation_id": "org-nobody"})

    r = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert fields(r) == {"referred_to.organisation_id"}
    assert "org-nobody" in message_for(r, "referred_to.organisation_id")


async def test_a_referral_to_a_partner_activity(referrals, make_partner):
    a, b = await make_partner(), await make_partner()
    body = referral_body(
        referred_to={"activity_id": "koffie-ochtend", "organisation_id": b.organisation_id}
    )

    r = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert r.status_code == 201, r.text
    view = (await referrals.get(f"/v1/referrals/{body['referral_id']}", headers=a.headers)).json()
    assert view["referred_to"] == {
        "activity_id": "koffie-ochtend",
        "organisation_id": b.organisation_id,
    }


# --------------------------------------------------------------------------------- idempotency


async def test_repeating_a_referral_answers_as_the_first_time(referrals, make_partner):
    a = await make_partner()
    body = referral_body()

    first = await referrals.post("/v1/referrals", headers=a.headers, json=body)
    again = await referrals.post("/v1/referrals", headers=a.headers, json=body)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


async def test_the_same_referral_id_with_another_body_is_a_conflict(referrals, make_partner):
    a = await make_partner()
    body = referral_body()
    assert (await referrals.post("/v1/referrals", headers=a.headers, json=body)).status_code == 201

    r = await referrals.post(
        "/v1/referrals", headers=a.headers, json={**body, "signals": ["practical"]}
    )

    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict"
    assert body["referral_id"] in r.json()["message"]


async def test_another_organisation_may_use_the_same_referral_id(referrals, make_partner):
    a, b = await make_partner(), await make_partner()
    body = referral_body()

    ra = await referrals.post("/v1/referrals", headers=a.headers, json=body)
    rb = await referrals.post("/v1/referrals", headers=b.headers, json=body)

    assert (ra.status_code, rb.status_code) == (201, 201)
    assert ra.json()["event_id"] != rb.json()["event_id"]


async def test_repeating_a_status_change_answers_as_the_first_time(referrals, make_partner):
    a = await make_partner()
    body = referral_body()
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"
    change = {
        "status": "withdrawn",
        "at": "2025-03-04T09:00:00+01:00",
        "outcome": "no-contact-possible",
    }

    first = await referrals.post(url, headers=a.headers, json=change)
    again = await referrals.post(url, headers=a.headers, json=change)
    other = await referrals.post(url, headers=a.headers, json={**change, "outcome": "other"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    assert first.json()["previous_status"] == "created"


# ------------------------------------------------------------------------------------ lifecycle


async def test_the_lifecycle_over_http(referrals, make_partner):
    a = await make_partner()
    body = referral_body(**to_own_activity(a))
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"

    async def move(status: str, at: str) -> Any:
        return await referrals.post(url, headers=a.headers, json={"status": status, "at": at})

    too_early = await move("contacted", "2025-03-04T09:00:00+01:00")
    assert too_early.status_code == 409, too_early.text
    assert too_early.json()["allowed"] == ["accepted", "declined", "withdrawn"]
    assert "'created'" in too_early.json()["message"]

    accepted = await move("accepted", "2025-03-04T09:00:00+01:00")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "accepted"
    assert accepted.json()["previous_status"] == "created"

    declined = await move("declined", "2025-03-05T09:00:00+01:00")
    assert declined.status_code == 409
    assert declined.json()["allowed"] == ["contacted", "withdrawn", "closed"]
    assert "'accepted'" in declined.json()["message"]

    assert (await move("contacted", "2025-03-06T09:00:00+01:00")).status_code == 201
    assert (await move("closed", "2025-03-20T09:00:00+01:00")).status_code == 201

    after_close = await move("withdrawn", "2025-03-21T09:00:00+01:00")
    assert after_close.status_code == 409
    assert after_close.json()["allowed"] == []
    assert "final" in after_close.json()["message"]

    view = (await referrals.get(f"/v1/referrals/{body['referral_id']}", headers=a.headers)).json()
    ReferralRecord.model_validate(view)
    assert view["status"] == "closed"
    assert view["allowed_next"] == []
    assert [(h["previous_status"], h["status"]) for h in view["history"]] == [
        (None, "created"),
        ("created", "accepted"),
        ("accepted", "contacted"),
        ("contacted", "closed"),
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"status": "accepted", "at": "2025-03-03T09:29:59+01:00"}, {"at"}, id="before-created"
        ),
        pytest.param({"status": "accepted", "at": "2025-03-04T09:00:00"}, {"at"}, id="naive-at"),
        pytest.param({"status": "created", "at": "2025-03-04T09:00:00+01:00"}, {"status"}, id="st"),
        pytest.param(
            {"status": "accepted", "at": "2025-03-04T09:00:00+01:00", "outcome": "x" * 501},
            {"outcome"},
            id="outcome-too-long",
        ),
        pytest.param(
            {"status": "accepted", "at": "2025-03-04T09:00:00+01:00", "by": "me"},
            {"by"},
            id="unknown-field",
        ),
    ],
)
async def test_bad_status_changes_name_the_field(referrals, make_partner, change, expected):
    a = await make_partner()
    body = referral_body(**to_own_activity(a))
    await referrals.post("/v1/referrals", headers=a.headers, json=body)

    r = await referrals.post(
        f"/v1/referrals/{body['referral_id']}/status", headers=a.headers, json=change
    )

    assert fields(r) == expected


async def test_a_change_cannot_lie_before_the_last_change(referrals, make_partner):
    a = await make_partner()
    body = referral_body(**to_own_activity(a))
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"
    accepted = {"status": "accepted", "at": "2025-03-05T09:00:00+01:00"}
    assert (await referrals.post(url, headers=a.headers, json=accepted)).status_code == 201

    r = await referrals.post(
        url, headers=a.headers, json={"status": "contacted", "at": "2025-03-04T09:00:00+01:00"}
    )

    assert fields(r) == {"at"}
    assert "'accepted'" in message_for(r, "at")


# --------------------------------------------------------------------------- across organisations


async def test_only_the_two_organisations_of_a_referral_see_and_change_it(referrals, make_partner):
    a, b, c = await make_partner(), await make_partner(), await make_partner()
    body = referral_body(
        referred_to={"activity_id": "wandelclub", "organisation_id": b.organisation_id}
    )
    rid = body["referral_id"]
    assert (await referrals.post("/v1/referrals", headers=a.headers, json=body)).status_code == 201
    accept = {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"}

    c_sees = await referrals.get(f"/v1/referrals/{rid}", headers=c.headers)
    c_changes = await referrals.post(f"/v1/referrals/{rid}/status", headers=c.headers, json=accept)
    nobody = await referrals.get("/v1/referrals/does-not-exist", headers=c.headers)

    assert (c_sees.status_code, c_changes.status_code) == (404, 404)
    # Worded exactly as for an id that does not exist: C learns nothing.
    assert c_sees.json() == {
        **nobody.json(),
        "message": nobody.json()["message"].replace("does-not-exist", rid),
    }
    assert c_changes.json() == c_sees.json()

    b_sees = await referrals.get(f"/v1/referrals/{rid}", headers=b.headers)
    assert b_sees.status_code == 200, b_sees.text
    assert b_sees.json()["organisation_id"] == a.organisation_id
    assert "client-0042" not in b_sees.text
    b_accepts = await referrals.post(f"/v1/referrals/{rid}/status", headers=b.headers, json=accept)
    assert b_accepts.status_code == 201, b_accepts.text

    view = (await referrals.get(f"/v1/referrals/{rid}", headers=a.headers)).json()
    assert view["status"] == "accepted"
    assert view["history"][-1]["changed_by"] == b.organisation_id


async def test_a_referral_to_a_service_is_received_by_its_provider(referrals, make_partner):
    """`buddy-programme` is provided by `welzijn-pn` (the service list in the reference data):
    the provider sees it and accepts it; the referrer cannot; anyone else does not see it."""
    a, other = await make_partner(), await make_partner()
    provider = await make_partner(organisation_id="welzijn-pn")
    body = referral_body()
    created = await referrals.post("/v1/referrals", headers=a.headers, json=body)
    assert created.status_code == 201, created.text
    url = f"/v1/referrals/{body['referral_id']}"
    accept = {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"}

    by_other = await referrals.get(url, headers=other.headers)
    by_referrer = await referrals.post(f"{url}/status", headers=a.headers, json=accept)
    by_provider = await referrals.post(
        f"{url}/status?referring_organisation_id={a.organisation_id}",
        headers=provider.headers,
        json=accept,
    )

    assert by_other.status_code == 404
    assert by_referrer.status_code == 403, by_referrer.text
    assert by_provider.status_code == 201, by_provider.text
    view = (await referrals.get(url, headers=a.headers)).json()
    ReferralRecord.model_validate(view)
    assert view["receiving_organisation_id"] == "welzijn-pn"
    assert view["history"][-1]["changed_by"] == "welzijn-pn"


async def test_a_service_that_is_not_on_the_service_list_is_refused(referrals, make_partner):
    a = await make_partner()

    r = await referrals.post(
        "/v1/referrals", headers=a.headers, json=referral_body(referred_to={"service": "tarot"})
    )

    assert fields(r) == {"referred_to.service"}
    assert "buddy-programme" in message_for(r, "referred_to.service")


async def test_a_referrer_cannot_accept_its_own_referral(referrals, make_partner):
    """It used to get 201, so the acceptance rate was not the receiver's."""
    a, b = await make_partner(), await make_partner()
    body = referral_body(referred_to={"activity_id": "koor", "organisation_id": b.organisation_id})
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"

    answers = {
        status: await referrals.post(
            url, headers=a.headers, json={"status": status, "at": "2025-03-04T09:00:00+01:00"}
        )
        for status in ("accepted", "declined")
    }

    for status, r in answers.items():
        assert r.status_code == 403, (status, r.text)
        assert r.json()["error"] == "forbidden"
        assert f"receiving organisation ({b.organisation_id})" in r.json()["message"]
    view = (await referrals.get(url.removesuffix("/status"), headers=a.headers)).json()
    assert view["status"] == "created"
    assert len(view["history"]) == 1


async def test_the_receiver_cannot_withdraw_and_the_referrer_can(referrals, make_partner):
    a, b = await make_partner(), await make_partner()
    body = referral_body(referred_to={"activity_id": "koor", "organisation_id": b.organisation_id})
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"
    withdraw = {"status": "withdrawn", "at": "2025-03-04T09:00:00+01:00"}

    by_b = await referrals.post(url, headers=b.headers, json=withdraw)
    by_a = await referrals.post(url, headers=a.headers, json=withdraw)

    assert by_b.status_code == 403, by_b.text
    assert f"referring organisation ({a.organisation_id})" in by_b.json()["message"]
    assert by_a.status_code == 201, by_a.text


async def test_a_referral_to_an_own_activity_is_both_sides(referrals, make_partner):
    a = await make_partner()
    body = referral_body(**to_own_activity(a))
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    url = f"/v1/referrals/{body['referral_id']}/status"

    accepted = await referrals.post(url, headers=a.headers, json={"status": "accepted", "at": "2025-03-04T09:00:00+01:00"})  # fmt: skip
    withdrawn = await referrals.post(url, headers=a.headers, json={"status": "withdrawn", "at": "2025-03-05T09:00:00+01:00"})  # fmt: skip

    assert (accepted.status_code, withdrawn.status_code) == (201, 201), withdrawn.text


async def test_a_colliding_id_from_another_organisation_blocks_nobody(referrals, make_partner):
    """A1 refers to B; A2 then sends B a referral with the same id. B used to get 409 on GET and
    on status changes of the real one, with no way out. Now B names the referrer, and the
    referrers act on their own referrals as before."""
    a1, a2, b = await make_partner(), await make_partner(), await make_partner()
    to_b = {"activity_id": "koor", "organisation_id": b.organisation_id}
    body = referral_body(referred_to=to_b)
    rid = body["referral_id"]
    assert (await referrals.post("/v1/referrals", headers=a1.headers, json=body)).status_code == 201  # fmt: skip
    accept = {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"}
    alone = await referrals.post(f"/v1/referrals/{rid}/status", headers=b.headers, json=accept)
    assert alone.status_code == 201, alone.text  # one referrer: the id alone is enough
    assert (await referrals.post("/v1/referrals", headers=a2.headers, json=body)).status_code == 201  # fmt: skip

    ambiguous = await referrals.get(f"/v1/referrals/{rid}", headers=b.headers)
    named_1 = await referrals.get(f"/v1/referrals/{rid}?referring_organisation_id={a1.organisation_id}", headers=b.headers)  # fmt: skip
    declined_2 = await referrals.post(
        f"/v1/referrals/{rid}/status?referring_organisation_id={a2.organisation_id}",
        headers=b.headers,
        json={"status": "declined", "at": "2025-03-05T09:00:00+01:00"},
    )
    a1_sees = await referrals.get(f"/v1/referrals/{rid}", headers=a1.headers)
    a2_sees = await referrals.get(f"/v1/referrals/{rid}", headers=a2.headers)

    assert ambiguous.status_code == 409, ambiguous.text
    assert "?referring_organisation_id=" in ambiguous.json()["message"]
    assert named_1.status_code == 200, named_1.text
    assert (named_1.json()["organisation_id"], named_1.json()["status"]) == (a1.organisation_id, "accepted")  # fmt: skip
    assert declined_2.status_code == 201, declined_2.text
    assert declined_2.json()["organisation_id"] == a2.organisation_id
    assert (a1_sees.json()["status"], a2_sees.json()["status"]) == ("accepted", "declined")


async def test_naming_a_referrer_shows_nothing_that_is_not_yours(referrals, make_partner):
    a, b, c = await make_partner(), await make_partner(), await make_partner()
    body = referral_body(referred_to={"activity_id": "koor", "organisation_id": b.organisation_id})
    await referrals.post("/v1/referrals", headers=a.headers, json=body)
    rid = body["referral_id"]

    by_c = await referrals.get(f"/v1/referrals/{rid}?referring_organisation_id={a.organisation_id}", headers=c.headers)  # fmt: skip
    bad = await referrals.get(f"/v1/referrals/{rid}?referring_organisation_id=not%20an%20id", headers=b.headers)  # fmt: skip

    assert by_c.status_code == 404, by_c.text
    assert fields(bad) == {"query.referring_organisation_id"}


async def test_a_batch_status_item_names_the_referrer(referrals, make_partner):
    a1, a2, b = await make_partner(), await make_partner(), await make_partner()
    body = referral_body(referred_to={"activity_id": "koor", "organisation_id": b.organisation_id})
    for a in (a1, a2):
        await referrals.post("/v1/referrals", headers=a.headers, json=body)
    change = {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"}
    items = [
        {"kind": "referral_status", "referral_id": body["referral_id"], "body": change},
        {
            "kind": "referral_status",
            "referral_id": body["referral_id"],
            "referring_organisation_id": a2.organisation_id,
            "body": change,
        },
    ]

    r = await referrals.post("/v1/batch", headers=b.headers, json={"items": items})

    assert [x["status"] for x in r.json()["results"]] == [409, 201], r.text
    assert r.json()["results"][1]["body"]["organisation_id"] == a2.organisation_id


# ------------------------------------------------------------------------------------------ auth


ENDPOINTS = [
    ("POST", "/v1/referrals", referral_body, "trainings,measurements"),
    ("POST", "/v1/trainings", training_body, "referrals,measurements"),
    ("POST", "/v1/measurements", measurement_body, "referrals,trainings"),
    ("GET", "/v1/referrals/some-id", None, "trainings"),
    (
        "POST",
        "/v1/batch",
        lambda: {"items": [{"kind": "training", "body": training_body()}]},
        "registrations,activities",
    ),
]


@pytest.mark.parametrize(("method", "path", "make_body", "other_scopes"), ENDPOINTS)
async def test_keys(referrals, make_partner, method, path, make_body, other_scopes):
    json = make_body() if make_body else None
    lacking = await make_partner(scopes=other_scopes)

    no_key = await referrals.request(method, path, json=json)
    wrong_key = await referrals.request(
        method, path, json=json, headers={"Authorization": "Bearer vb_000000000000_not-a-key"}
    )
    no_scope = await referrals.request(method, path, json=json, headers=lacking.headers)

    assert no_key.status_code == 401
    assert wrong_key.status_code == 401
    assert no_scope.status_code == 403, no_scope.text
    assert no_scope.json()["error"] == "forbidden"


# ------------------------------------------------------------------------------------ trainings


async def test_a_training_is_recorded_without_the_persons_reference(referrals, make_partner):
    t = await make_partner(scopes="trainings")
    body = training_body()

    r = await referrals.post("/v1/trainings", headers=t.headers, json=body)
    again = await referrals.post("/v1/trainings", headers=t.headers, json=body)
    other = await referrals.post("/v1/trainings", headers=t.headers, json={**body, "role": "gp"})

    assert r.status_code == 201, r.text
    assert r.json()["training_id"] == body["training_id"]
    uuid.UUID(r.json()["event_id"])
    assert (again.status_code, again.json()) == (200, r.json())
    assert other.status_code == 409
    shown = await referrals.get(f"/v1/trainings/{body['training_id']}", headers=t.headers)
    TrainingRecord.model_validate(shown.json())
    assert shown.json() == {
        "training_id": body["training_id"],
        "role": "district-nurse",
        "training": "signaling-loneliness",
        "completed_at": "2025-02-10T15:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(with_change("role", "nurse"), {"role"}, id="unknown-role"),
        pytest.param(with_change("person_ref", ...), {"person_ref"}, id="no-person-ref"),
        pytest.param(with_change("person_ref", "  "), {"person_ref"}, id="blank-person-ref"),
        pytest.param(
            with_change("training", "Training by Jan Jansen"), {"training"}, id="free-text"
        ),
        pytest.param(
            with_change("completed_at", "2025-02-10T16:00:00"), {"completed_at"}, id="naive"
        ),
        pytest.param(with_change("email", "a@b.nl"), {"email"}, id="unknown-field"),
    ],
)
async def test_bad_trainings_name_the_field(referrals, make_partner, change, expected):
    t = await make_partner(scopes="trainings")

    r = await referrals.post("/v1/trainings", headers=t.headers, json=change(training_body()))

    assert fields(r) == expected


# --------------------------------------------------------------------------------- measurements


async def test_a_measurement_answer_holds_the_scores(referrals, make_partner):
    m = await make_partner(scopes="measurements")
    body = measurement_body()

    r = await referrals.post("/v1/measurements", headers=m.headers, json=body)

    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["measurement_id"] == body["measurement_id"]
    assert (answer["score"], answer["emotional"], answer["social"]) == (5, 3, 2)
    assert answer["category"] == "moderately_lonely"
    # Default thresholds 3 and 3 (domain.md §5).
    assert (answer["emotionally_lonely"], answer["socially_lonely"]) == (True, False)
    uuid.UUID(answer["event_id"])
    assert "answers" not in answer
    shown = await referrals.get(f"/v1/measurements/{body['measurement_id']}", headers=m.headers)
    MeasurementRecord.model_validate(shown.json())
    assert shown.json()["score"] == 5
    assert shown.json()["anonymous"] is False
    assert "answers" not in shown.json()


async def test_the_subscale_thresholds_come_from_settings(referrals, make_partner):
    from services.referrals.bootstrap import build_app
    from services.referrals.settings import ReferralsSettings
    from tests.conftest import serve

    m = await make_partner(scopes="measurements")
    # The pattern's emotional subscale is 3: lonely at the default 3, not at a configured 4.
    strict = ReferralsSettings(djg_emotional_threshold=4, relay_in_process=False)

    async for client in serve(build_app(strict)):
        r = await client.post("/v1/measurements", headers=m.headers, json=measurement_body())

    assert r.status_code == 201, r.text
    assert (r.json()["emotional"], r.json()["emotionally_lonely"]) == (3, False)


async def test_the_djg6_subscales_have_their_own_cut_off(referrals, make_partner):
    """The 6-item subscales run 0-3; they used to get the 11-item cut-off 3, so hardly anyone
    could count as emotionally or socially lonely on the short scale."""
    m = await make_partner(scopes="measurements")
    # Items 3 (-) yes, 4 (+) no, 7 (+) more_or_less, 8 (+) yes, 9 (-) more_or_less, 10 (-) no:
    # emotional 3 + 9 = 2, social 4 + 7 = 2.
    body = measurement_body(
        instrument="djg6", answers=["yes", "no", "more_or_less", "yes", "more_or_less", "no"]
    )

    r = await referrals.post("/v1/measurements", headers=m.headers, json=body)

    assert r.status_code == 201, r.text
    assert (r.json()["emotional"], r.json()["emotionally_lonely"]) == (2, True)
    assert (r.json()["social"], r.json()["socially_lonely"]) == (2, True)


async def test_a_djg6_measurement_with_one_item_unanswered(referrals, make_partner):
    m = await make_partner(scopes="measurements")
    # djg6 items 3 (-), 4 (+), 7 (+), 8 (+), 9 (-), 10 (-): yes 1, no 1, more_or_less 1, yes 0,
    # unanswered, no 0. The emotional subscale misses item 9; the total allows one gap: 3.
    body = measurement_body(
        instrument="djg6", answers=["yes", "no", "more_or_less", "yes", None, "no"]
    )

    r = await referrals.post("/v1/measurements", headers=m.headers, json=body)

    assert r.status_code == 201, r.text
    answer = r.json()
    assert (answer["score"], answer["emotional"], answer["social"]) == (3, None, 2)
    assert answer["category"] == "moderately_lonely"


async def test_an_anonymous_survey_is_accepted(referrals, make_partner):
    m = await make_partner(scopes="measurements")
    body = measurement_body(
        context="survey", participant={"neighbourhood": "delfgauw", "age_band": "16-25"}
    )

    r = await referrals.post("/v1/measurements", headers=m.headers, json=body)

    assert r.status_code == 201, r.text
    shown = await referrals.get(f"/v1/measurements/{body['measurement_id']}", headers=m.headers)
    MeasurementRecord.model_validate(shown.json())
    assert shown.json()["anonymous"] is True


ANONYMOUS = {"neighbourhood": "delfgauw", "age_band": "16-25"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        pytest.param({"participant": ANONYMOUS}, {"participant.ref"}, id="intake-without-ref"),
        pytest.param(
            {"participant": ANONYMOUS, "context": "follow_up"},
            {"participant.ref"},
            id="follow-up-without-ref",
        ),
        pytest.param(
            {"participant": {**ANONYMOUS, "resident_token": "tok-1"}, "context": "survey"},
            {"participant.resident_token"},
            id="anonymous-with-token",
        ),
        pytest.param({"answers": DJG11_PATTERN[:10]}, {"answers"}, id="ten-answers-for-djg11"),
        pytest.param(
            {"instrument": "djg6", "answers": DJG11_PATTERN}, {"answers"}, id="eleven-for-djg6"
        ),
        pytest.param(
            {"answers": [*DJG11_PATTERN[:4], None, *DJG11_PATTERN[5:]]},
            {"answers.4"},
            id="djg11-item-unanswered",
        ),
        pytest.param(
            {"answers": [*DJG11_PATTERN[:3], "ja", *DJG11_PATTERN[4:]]},
            {"answers.3"},
            id="answer-not-on-the-scale",
        ),
        pytest.param({"instrument": "ucla"}, {"instrument"}, id="unknown-instrument"),
        pytest.param({"context": "screening"}, {"context"}, id="unknown-context"),
        pytest.param(
            {"participant": {**ANONYMOUS, "neighbourhood": "atlantis", "ref": "x"}},
            {"participant.neighbourhood"},
            id="unknown-neighbourhood",
        ),
        pytest.param(
            {"participant": {**ANONYMOUS, "age_band": "old", "ref": "x"}},
            {"participant.age_band"},
            id="unknown-age-band",
        ),
        pytest.param({"measured_at": "2025-03-03T10:00:00"}, {"measured_at"}, id="naive"),
        pytest.param({"name": "Jan"}, {"name"}, id="unknown-field"),
        pytest.param(
            {"participant": ANONYMOUS, "answers": DJG11_PATTERN[:10]},
            {"participant.ref", "answers"},
            id="rule-and-scoring-problems-at-once",
        ),
    ],
)
async def test_bad_measurements_name_the_field(referrals, make_partner, override, expected):
    m = await make_partner(scopes="measurements")

    r = await referrals.post(
        "/v1/measurements", headers=m.headers, json=measurement_body(**override)
    )

    assert fields(r) == expected


async def test_a_repeated_measurement_is_a_replay_and_another_body_a_conflict(
    referrals, make_partner
):
    m = await make_partner(scopes="measurements")
    body = measurement_body()

    first = await referrals.post("/v1/measurements", headers=m.headers, json=body)
    again = await referrals.post("/v1/measurements", headers=m.headers, json=body)
    other = await referrals.post(
        "/v1/measurements", headers=m.headers, json={**body, "answers": ["no"] * 11}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()


# ---------------------------------------------------------------------------------------- batch


async def test_a_batch_answers_per_item_in_order(referrals, make_partner):
    a = await make_partner()
    good = referral_body(**to_own_activity(a))
    items = [
        {"kind": "referral", "body": good},
        {"kind": "referral", "body": referral_body(consent=False)},
        {"kind": "training", "body": training_body()},
        {"kind": "measurement", "body": measurement_body(participant=ANONYMOUS)},
        {
            "kind": "referral_status",
            "referral_id": good["referral_id"],
            "body": {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"},
        },
        {"kind": "measurement", "body": measurement_body()},
        {
            "kind": "referral_status",
            "referral_id": "nobody",
            "body": {"status": "accepted", "at": "2025-03-04T09:00:00+01:00"},
        },
        {"kind": "complaint", "body": {}},
    ]

    r = await referrals.post("/v1/batch", headers=a.headers, json={"items": items})

    assert r.status_code == 200, r.text
    answer = r.json()
    results = answer["results"]
    assert [x["index"] for x in results] == list(range(len(items)))
    assert [x["status"] for x in results] == [201, 422, 201, 422, 201, 201, 404, 422]
    assert (answer["accepted"], answer["rejected"]) == (4, 4)
    assert {d["field"] for d in results[1]["details"]} == {"body.consent"}
    assert {d["field"] for d in results[3]["details"]} == {"body.participant.ref"}
    assert {d["field"] for d in results[7]["details"]} == {"kind"}
    assert results[5]["body"]["score"] == 5
    view = (await referrals.get(f"/v1/referrals/{good['referral_id']}", headers=a.headers)).json()
    assert view["status"] == "accepted"


async def test_a_batch_item_needs_the_scope_of_its_kind(referrals, make_partner):
    r_only = await make_partner(scopes="referrals")
    items = [
        {"kind": "training", "body": training_body()},
        {"kind": "referral", "body": referral_body()},
        {"kind": "measurement", "body": measurement_body()},
    ]

    r = await referrals.post("/v1/batch", headers=r_only.headers, json={"items": items})

    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [422, 201, 422]
    assert results[0]["details"] == [
        {"field": "kind", "message": "this key lacks the scope `trainings`"}
    ]
    assert results[2]["details"] == [
        {"field": "kind", "message": "this key lacks the scope `measurements`"}
    ]
