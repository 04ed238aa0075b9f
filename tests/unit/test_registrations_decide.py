"""The registrations service's decisions, pure: a command and a state in, a decision or a
domain error out. No database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.registrations.domain.decide import Registrations, State
from services.registrations.domain.items import batch_item_adapter
from shared.errors import ConflictError, FieldError
from shared.events import ActivityUpserted, RegistrationCancelled, RegistrationCreated
from shared.pipeline.decisions import (
    Context,
    Decision,
    IdempotencyConflict,
    Records,
    decide_and_apply,
)
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference

ORG = "buurthuis"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DECISIONS = Registrations(load_reference())
PSEUDONYMS = Pseudonymiser("unit-test-secret-of-sufficient-length-000")


def item(raw: dict[str, Any]) -> Any:
    return batch_item_adapter().validate_python(raw)


def activity(activity_id: str = "koffie", **changes: Any) -> Any:
    body = {
        "title": "Koffie-ochtend",
        "category": "meeting",
        "aimed_at_connection": True,
        "neighbourhood": "delfgauw",
        **changes,
    }
    return item({"kind": "activity", "activity_id": activity_id, "body": body})


def registration(registration_id: str = "r1", activity_id: str = "koffie", **changes: Any) -> Any:
    body = {
        "registration_id": registration_id,
        "activity_id": activity_id,
        "participant": {"ref": "p-1", "neighbourhood": "delfgauw", "age_band": "75+"},
        "registered_at": "2026-03-01T10:00:00+01:00",
        **changes,
    }
    return item({"kind": "registration", "body": body})


def cancellation(registration_id: str = "r1", at: str = "2026-03-01T12:00:00+01:00") -> Any:
    return item(
        {"kind": "cancellation", "registration_id": registration_id, "body": {"cancelled_at": at}}
    )


def decide(state: State, *items: Any, org: str = ORG) -> list[Decision]:
    """Decide the items in turn, each seeing the effects of those before (as a batch does)."""
    return [decide_and_apply(DECISIONS, i, state, Context(org, NOW, PSEUDONYMS)) for i in items]


def test_a_new_activity_is_version_1_and_the_same_state_again_changes_nothing() -> None:
    state = State()
    first, again, changed = decide(
        state, activity(), activity(), activity(title="Koffie-ochtend (nieuw)")
    )

    assert first.status_code == 201
    (event,) = first.events
    assert isinstance(event.data, ActivityUpserted)
    assert (event.data.version, event.data.updated_at) == (1, NOW)
    assert first.body["version"] == 1
    assert (again.status_code, again.events, again.body) == (200, (), first.body)
    assert changed.status_code == 200
    assert changed.events[0].data.version == 2
    assert changed.body["title"] == "Koffie-ochtend (nieuw)"
    assert first.remember is None  # a PUT is compared with the state, not replayed


def test_a_registration_needs_an_activity_of_the_organisation() -> None:
    with pytest.raises(FieldError) as refused:
        decide(State(), registration())
    assert [f for f, _ in refused.value.details] == ["activity_id"]

    state = State()
    decide(state, activity(), org="other-organisation")  # the same id elsewhere is no help
    with pytest.raises(FieldError):
        decide(state, registration())


def test_a_registration_is_pseudonymised_and_its_replay_answers_as_the_first_time() -> None:
    state = State()
    _, first, replay = decide(state, activity(), registration(), registration())

    (event,) = first.events
    assert isinstance(event.data, RegistrationCreated)
    assert event.data.participant.id == PSEUDONYMS.participant(ORG, "p-1")
    assert "p-1" not in event.model_dump_json()
    assert first.body == {
        "registration_id": "r1",
        "activity_id": "koffie",
        "status": "registered",
        "event_id": str(event.id),
    }
    assert (replay.status_code, replay.body, replay.events) == (200, first.body, ())


def test_the_same_id_with_another_body_is_a_conflict() -> None:
    state = State()
    decide(state, activity(), registration())
    with pytest.raises(IdempotencyConflict):
        decide(state, registration(registered_at="2026-03-01T11:00:00+01:00"))


def test_a_cancellation_needs_the_registration_once_and_after_it() -> None:
    with pytest.raises(FieldError) as missing:
        decide(State(), cancellation())
    assert [f for f, _ in missing.value.details] == ["registration_id"]

    state = State()
    decide(state, activity(), registration())
    with pytest.raises(FieldError) as early:
        decide(state, cancellation(at="2026-03-01T09:00:00+01:00"))
    assert [f for f, _ in early.value.details] == ["cancelled_at"]

    (cancelled,) = decide(state, cancellation())
    assert isinstance(cancelled.events[0].data, RegistrationCancelled)
    assert cancelled.events[0].data.participant_id == PSEUDONYMS.participant(ORG, "p-1")
    (replay,) = decide(state, cancellation())
    assert (replay.status_code, replay.body) == (200, cancelled.body)
    with pytest.raises(IdempotencyConflict):  # another cancellation of it: a different body
        decide(state, cancellation(at="2026-03-01T13:00:00+01:00"))
    # A registration cancelled without a remembered answer (as loaded from the database).
    loaded = State(registrations=Records(dict(state.registrations)))
    with pytest.raises(ConflictError, match="already cancelled"):
        decide(loaded, cancellation(at="2026-03-01T13:00:00+01:00"))


def test_the_rules_without_state_name_every_field() -> None:
    bad = registration(
        participant={"ref": "p", "neighbourhood": "atlantis", "age_band": "old"},
        registered_at=(datetime.now(UTC) + timedelta(days=3)).isoformat(),
    )
    with pytest.raises(FieldError) as refused:
        DECISIONS.check(bad)
    assert sorted(f for f, _ in refused.value.details) == [
        "participant.age_band",
        "participant.neighbourhood",
        "registered_at",
    ]


def test_the_state_says_what_the_decisions_added_and_changed() -> None:
    state = State()
    decide(state, activity(), registration(), cancellation())

    assert [a.activity_id for a in state.activities.added()] == ["koffie"]
    (added,) = state.registrations.added()  # created and cancelled: written once, cancelled
    assert added.cancelled_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert state.registrations.changed() == []
    assert sorted(k[1] for k, _ in state.remembered.added_items()) == [
        "cancellation",
        "registration",
    ]
