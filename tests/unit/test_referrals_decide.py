"""The referrals service's decisions, pure: who may change a referral, its lifecycle, the order
of its changes, which referral an id means. No database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.referrals.domain.decide import Referrals, State
from services.referrals.domain.items import batch_item_adapter
from services.referrals.domain.lifecycle import IllegalTransition
from shared.errors import ConflictError, FieldError, ForbiddenError, NotFoundError
from shared.events import MeasurementRecorded, ReferralStatusChanged
from shared.pipeline.decisions import Context, Decision, IdempotencyConflict, decide_and_apply
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFERENCE = load_reference()
DECISIONS = Referrals(REFERENCE, {})
PSEUDONYMS = Pseudonymiser("unit-test-secret-of-sufficient-length-000")
GP, WELFARE, OTHER = "huisarts", "welzijn", "bibliotheek"


def item(raw: dict[str, Any]) -> Any:
    return batch_item_adapter().validate_python(raw)


def referral(referral_id: str = "ref-1", to: str = WELFARE) -> Any:
    return item(
        {
            "kind": "referral",
            "body": {
                "referral_id": referral_id,
                "participant": {"ref": "p-9", "neighbourhood": "delfgauw", "age_band": "75+"},
                "referrer_role": "gp",
                "signals": ["social"],
                "referred_to": {"organisation_id": to, "activity_id": "koffie"},
                "consent": True,
                "created_at": "2026-03-01T10:00:00+01:00",
            },
        }
    )


def status(
    value: str,
    at: str = "2026-03-01T12:00:00+01:00",
    referral_id: str = "ref-1",
    referrer: str | None = None,
) -> Any:
    raw: dict[str, Any] = {
        "kind": "referral_status",
        "referral_id": referral_id,
        "body": {"status": value, "at": at},
    }
    if referrer is not None:
        raw["referring_organisation_id"] = referrer
    return item(raw)


def decide(state: State, org: str, *items: Any) -> list[Decision]:
    out = []
    for i in items:
        DECISIONS.check(i)
        out.append(decide_and_apply(DECISIONS, i, state, Context(org, NOW, PSEUDONYMS)))
    return out


def made(*referrals: tuple[str, str]) -> State:
    """A state in which each (referrer, receiver) pair made ``ref-1``."""
    state = State(organisations=dict.fromkeys((GP, WELFARE, OTHER), True))
    for referrer, receiver in referrals:
        decide(state, referrer, referral(to=receiver))
    return state


def test_a_referral_needs_a_registered_partner_as_its_receiver() -> None:
    with pytest.raises(FieldError) as refused:
        decide(State(organisations={WELFARE: False}), GP, referral())
    assert [f for f, _ in refused.value.details] == ["referred_to.organisation_id"]


def test_the_receiving_side_accepts_and_the_referrer_withdraws() -> None:
    state = made((GP, WELFARE))
    with pytest.raises(ForbiddenError, match=r"receiving organisation \(welzijn\)"):
        decide(state, GP, status("accepted"))
    with pytest.raises(ForbiddenError, match=r"referring organisation \(huisarts\)"):
        decide(state, WELFARE, status("withdrawn"))
    with pytest.raises(NotFoundError):  # a third party does not learn it exists
        decide(state, OTHER, status("accepted", referrer=GP))

    (accepted,) = decide(state, WELFARE, status("accepted"))
    (withdrawn,) = decide(state, GP, status("withdrawn", at="2026-03-01T13:00:00+01:00"))
    assert accepted.body["organisation_id"] == GP
    assert [d.events[0].data.changed_by for d in (accepted, withdrawn)] == [WELFARE, GP]


def test_changes_follow_the_lifecycle_in_time_and_in_arrival_order() -> None:
    state = made((GP, WELFARE))
    with pytest.raises(FieldError) as early:
        decide(state, WELFARE, status("accepted", at="2026-03-01T09:00:00+01:00"))
    assert [f for f, _ in early.value.details] == ["at"]
    with pytest.raises(IllegalTransition) as illegal:
        decide(state, WELFARE, status("contacted"))
    assert illegal.value.allowed == ["accepted", "declined", "withdrawn"]

    decisions = decide(
        state,
        WELFARE,
        status("accepted"),
        status("contacted", at="2026-03-01T12:00:00+01:00"),  # the same `at` is fine
        status("closed", at="2026-03-02T08:00:00+01:00"),
    )
    events = [d.events[0].data for d in decisions]
    assert all(isinstance(e, ReferralStatusChanged) for e in events)
    assert [e.previous_status for e in events] == ["created", "accepted", "contacted"]
    assert [e.sequence for e in events] == [2, 3, 4]  # the creation was 1
    assert state.referrals[(GP, "ref-1")].status == "closed"
    assert [h.status for h in state.history.added()] == [
        "created",
        "accepted",
        "contacted",
        "closed",
    ]


def test_a_status_change_is_replayed_per_side_and_status() -> None:
    state = made((GP, WELFARE))
    (first,) = decide(state, WELFARE, status("accepted"))
    (replay,) = decide(state, WELFARE, status("accepted"))
    assert (replay.status_code, replay.body, replay.events) == (200, first.body, ())
    with pytest.raises(IdempotencyConflict):
        decide(state, WELFARE, status("accepted", at="2026-03-01T12:30:00+01:00"))


def test_an_id_two_referrers_sent_needs_the_referrer_named() -> None:
    state = made((GP, WELFARE), (OTHER, WELFARE))
    with pytest.raises(ConflictError, match="referring_organisation_id"):
        decide(state, WELFARE, status("accepted"))
    (accepted,) = decide(state, WELFARE, status("accepted", referrer=OTHER))
    assert accepted.body["organisation_id"] == OTHER
    # The referrer's own referral is the one its id means to it.
    (withdrawn,) = decide(state, GP, status("withdrawn"))
    assert withdrawn.body["organisation_id"] == GP


def test_a_measurement_is_scored_and_only_scores_travel() -> None:
    answers = ["yes"] * 11
    measurement = item(
        {
            "kind": "measurement",
            "body": {
                "measurement_id": "m-1",
                "instrument": "djg11",
                "context": "survey",
                "participant": {"neighbourhood": "delfgauw", "age_band": "75+"},
                "answers": answers,
                "measured_at": "2026-03-01T10:00:00+01:00",
            },
        }
    )
    (decision,) = decide(State(), WELFARE, measurement)
    (event,) = decision.events
    assert isinstance(event.data, MeasurementRecorded)
    assert event.data.participant_id is None  # an anonymous survey
    assert decision.body["score"] == event.data.total
    assert "answers" not in event.model_dump_json()

    wrong = item({**measurement.model_dump(mode="json"), "body": {**measurement.body.model_dump(mode="json"), "answers": ["yes"] * 10}})  # fmt: skip
    with pytest.raises(FieldError):
        DECISIONS.check(wrong)
