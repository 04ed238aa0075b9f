"""Webhooks and the feed, the pure parts: signatures a Standard Webhooks receiver verifies (the
reference library and the standard library alike), secret rotation, what a delivery carries,
who hears of an event, which addresses are allowed (SSRF), the backoff, the feed's cursor, and
the sealed secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import textwrap
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.referrals.domain.feed import decode_cursor, encode_cursor, feed_item
from services.referrals.domain.webhooks import (
    Endpoint,
    address_problem,
    backoff,
    body_of,
    recipients,
    signature,
    url_problem,
)
from services.referrals.service_layer.webhooks import new_secret
from shared.events import (
    Participant,
    ReferralCreated,
    ReferralFirstAttended,
    ReferralStatusChanged,
    ReferredTo,
    new_event,
)
from shared.secretbox import SecretBox

GP, WELFARE = "huisarts", "welzijn"
WHEN = datetime(2026, 3, 1, 10, tzinfo=UTC)
PSEUDONYM = "a" * 64
OUTCOMES = frozenset({"intake-planned"})


def _status(status: str = "accepted", outcome: str | None = None) -> Any:
    return new_event(
        ReferralStatusChanged(
            organisation_id=GP,
            referral_id="ref-1",
            participant_id=PSEUDONYM,
            changed_by=WELFARE,
            previous_status="created",
            status=status,
            at=WHEN,
            sequence=2,
            outcome=outcome,
        ),
        WELFARE,
    )


def _created() -> Any:
    return new_event(
        ReferralCreated(
            organisation_id=GP,
            referral_id="ref-1",
            participant=Participant(
                id=PSEUDONYM, neighbourhood="delfgauw", age_band="75+", scope="organisation"
            ),
            referrer_role="gp",
            signals=("social",),
            referred_to=ReferredTo(organisation_id=WELFARE, activity_id="koffie"),
            receiving_organisation_id=WELFARE,
            created_at=WHEN,
        ),
        GP,
    )


def _first() -> Any:
    return new_event(
        ReferralFirstAttended(
            organisation_id=GP,
            referral_id="ref-1",
            participant_id=PSEUDONYM,
            receiving_organisation_id=WELFARE,
            registration_id="reg-1",
            activity_id="koffie",
            session_start=WHEN,
            referred_on=date(2026, 3, 1),
            attended_on=date(2026, 3, 1),
            days_after_referral=0,
            within_window=True,
            sequence=4,
        ),
        WELFARE,
    )


def test_a_signature_verifies_with_the_reference_library_and_with_the_standard_library() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    body = body_of(_status(), GP, WELFARE, OUTCOMES)
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "webhook-id": "msg-1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature([secret], "msg-1", now, body),
    }
    assert Webhook(secret).verify(body, headers)["data"]["status"] == "accepted"
    # The README's receiver: HMAC-SHA256 over id.timestamp.body, base64, `v1,` in front.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_rotated_secret_signs_beside_its_successor_until_the_overlap_ends() -> None:
    old, new = new_secret(), new_secret()
    endpoint = Endpoint(
        organisation_id=GP,
        webhook_id="w",
        url="https://gp.example/hook",
        description=None,
        secret=new,
        previous_secret=old,
        previous_expires_at=WHEN + timedelta(hours=24),
        created_at=WHEN,
    )
    assert endpoint.secrets(WHEN) == [new, old]
    assert endpoint.secrets(WHEN + timedelta(hours=25)) == [new]
    body = b'{"x":1}'
    now = datetime.now(UTC).replace(microsecond=0)
    header = signature(endpoint.secrets(WHEN), "m", now, body)
    headers = {"webhook-id": "m", "webhook-timestamp": str(int(now.timestamp()))}
    for secret in (old, new):  # a receiver with either secret accepts the delivery
        Webhook(secret).verify(body, {**headers, "webhook-signature": header})
    shown = orjson.dumps(endpoint.view()).decode()
    assert old not in shown
    assert new not in shown


def test_what_a_delivery_carries_statuses_dates_and_outcome_codes_only() -> None:
    for event in (_created(), _status(outcome="intake-planned"), _first()):
        text = body_of(
            event, WELFARE if event.data.organisation_id == GP else GP, WELFARE, OUTCOMES
        )
        assert PSEUDONYM not in text.decode()
        for leak in ("participant", "neighbourhood", "age_band", "signals", "registration_id"):
            assert leak not in text.decode()
    # Events carry codes only (minimisation); one no longer on the configured list stays home.
    note = orjson.loads(body_of(_status(outcome="retired-code"), GP, WELFARE, OUTCOMES))
    assert note["data"]["outcome"] is None
    code = orjson.loads(body_of(_status(outcome="intake-planned"), GP, WELFARE, OUTCOMES))
    assert code["data"]["outcome"] == "intake-planned"
    assert code["type"] == "referral.status_changed"
    assert code["data"]["role"] == "sent"
    first = orjson.loads(body_of(_first(), GP, WELFARE, OUTCOMES))["data"]
    assert first["attended_on"] == "2026-03-01"
    assert first["within_window"] is True


def test_who_hears_of_an_event_the_sides_but_not_the_one_that_made_the_change() -> None:
    assert recipients(_created(), WELFARE) == [WELFARE]
    assert recipients(_status(), WELFARE) == [GP]
    assert recipients(_first(), WELFARE) == [GP, WELFARE]


@pytest.mark.parametrize(
    ("url", "environment", "allowed"),
    [
        ("https://gp.example/hook", "production", True),
        ("http://gp.example/hook", "production", False),
        ("https://127.0.0.1/hook", "production", False),
        ("https://10.1.2.3/hook", "production", False),
        ("https://169.254.169.254/latest", "production", False),
        ("https://[::1]/hook", "production", False),
        ("https://user:pw@gp.example/hook", "production", False),
        ("ftp://gp.example/hook", "development", False),
        ("http://127.0.0.1:8080/hook", "development", True),
        ("http://localhost/hook", "development", True),
        ("http://gp.example/hook", "development", False),
        ("https://gp.example/hook", "development", True),
        ("http://127.0.0.1:9/hook", "test", True),
        ("https://gp.example/hook", "test", False),
    ],
)
def test_which_urls_are_allowed(url: str, environment: Any, allowed: bool) -> None:
    assert (url_problem(url, environment) is None) is allowed


def test_production_refuses_a_name_that_resolves_to_a_private_address() -> None:
    assert address_problem(["93.184.215.14"], "production") is None
    for private in ("10.0.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "::1", "fd00::1"):
        assert address_problem(["93.184.215.14", private], "production") is not None
    assert address_problem(["::ffff:127.0.0.1"], "production") is not None
    assert address_problem([], "production") is not None


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    assert [backoff(n, 30, 300, 1.0) for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 240, 300]
    assert backoff(2, 30, 300, 0.75) == 45


def test_the_feed_cursor_is_opaque_and_checked() -> None:
    position = (123456789, 42)
    cursor = encode_cursor(position)
    assert "123456789" not in cursor
    assert decode_cursor(cursor) == position
    for bad in ("", "abc", encode_cursor((1, 2))[:-2] + "!!", base64.b64encode(b"v2.1.2").decode()):
        with pytest.raises(ValueError, match="not a cursor"):
            decode_cursor(bad)


def test_a_feed_item_says_no_more_than_statuses_dates_and_codes() -> None:
    item = feed_item(
        GP, GP, "ref-1", WELFARE, "contacted", WHEN, WHEN, date(2026, 3, 2),
        {"created": WHEN.isoformat(), "first_attendance": "x"}, "note", OUTCOMES,
    )  # fmt: skip
    assert item["role"] == "sent"
    assert item["outcome"] is None
    assert item["first_attendance_on"] == "2026-03-02"
    assert "first_attendance" not in item["milestones"]


def test_sealed_secrets_open_only_with_the_same_master_secret() -> None:
    box = SecretBox("master-secret-" + uuid.uuid4().hex)
    sealed = box.seal("whsec_abc")
    assert b"whsec_abc" not in sealed
    assert box.open(sealed) == "whsec_abc"
    with pytest.raises(InvalidTag):
        SecretBox("another-master-secret-000000000000").open(sealed)


def test_the_readme_receiver_verifies_a_delivery_and_refuses_a_forged_one() -> None:
    """The receiver example of README's "for referrers" works as printed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("### For referrers", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = textwrap.dedent(block.split("HTTPServer((", 1)[0])  # all but serving forever
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    secret = new_secret()
    namespace["SECRET"] = base64.b64decode(secret.removeprefix("whsec_"))
    body = body_of(_status(), GP, WELFARE, OUTCOMES)
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "webhook-id": "msg-9",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature([new_secret(), secret], "msg-9", now, body),
    }
    assert namespace["verified"](headers, body)
    assert not namespace["verified"](headers, body.replace(b"accepted", b"declined"))
    assert not namespace["verified"]({**headers, "webhook-id": "msg-10"}, body)
