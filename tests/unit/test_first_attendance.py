"""The first attendance of a referred resident, decided from consumed events (pure): the matching
rule of shared/referral_matching.py, every order of arrival, exactly once, the 60-day window."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.referrals.domain.decide import Referrals, State
from services.referrals.domain.first_attendance import (
    FirstAttendances,
    ReferralArrived,
    RegistrationNamed,
    SessionAttended,
)
from services.referrals.domain.items import batch_item_adapter
from services.referrals.service_layer.first_attendance import FirstAttendanceWrites
from shared.events import ReferralFirstAttended
from shared.pipeline.decisions import Context, decide_and_apply
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.referral_matching import (
    AttendedSession,
    NamingRegistration,
    counts_from,
    names,
    within_window,
)
from shared.timerules import AMSTERDAM

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DECISIONS = Referrals(load_reference(), {})
WRITES = FirstAttendanceWrites(FirstAttendances(load_reference().services), DECISIONS)
PSEUDONYMS = Pseudonymiser("unit-test-secret-of-sufficient-length-000")
GP, OTHER_GP, WELFARE = "huisarts", "huisarts-2", "welzijn"
REFERRED = date(2026, 3, 1)


def refer(state: State, referrer: str = GP, referral_id: str = "ref-1") -> None:
    raw: dict[str, Any] = {
        "kind": "referral",
        "body": {
            "referral_id": referral_id,
            "participant": {"ref": "p-9", "neighbourhood": "delfgauw", "age_band": "75+"},
            "referrer_role": "gp",
            "signals": ["social"],
            "referred_to": {"organisation_id": WELFARE, "activity_id": "koffie"},
            "consent": True,
            "created_at": "2026-03-01T10:00:00+01:00",
        },
    }
    state.organisations[WELFARE] = True
    decide_and_apply(DECISIONS, batch_item_adapter().validate_python(raw), state, ctx(referrer))


def ctx(org: str) -> Context:
    return Context(org, NOW, PSEUDONYMS)


def registration(
    on: date = REFERRED, referrer: str | None = GP, at: str = WELFARE, reg: str = "reg-1"
) -> RegistrationNamed:
    return RegistrationNamed(
        uuid.uuid4(),
        NamingRegistration(
            organisation_id=at,
            registration_id=reg,
            activity_id="koffie",
            participant_id="w" * 64,
            registered_on=on,
            referral_id="ref-1",
            referring_organisation_id=referrer,
        ),
    )


def session(on: date, at: str = WELFARE) -> SessionAttended:
    start = datetime(on.year, on.month, on.day, 10, tzinfo=AMSTERDAM)
    return SessionAttended(uuid.uuid4(), AttendedSession(at, "koffie", "w" * 64, start, on))


def feed(state: State, *items: Any) -> list[ReferralFirstAttended]:
    """Decide the items in turn (as the consumer does, under the receiving organisation)."""
    found = []
    for item in items:
        decision = decide_and_apply(WRITES, item, state, ctx(WELFARE))
        found += [e.data for e in decision.events]
    return found


def test_registration_then_attendance_records_the_first_attendance_once() -> None:
    state = State()
    refer(state)
    later = REFERRED + timedelta(days=4)
    (first,) = feed(state, registration(), session(later), session(later + timedelta(days=7)))
    assert (first.organisation_id, first.referral_id, first.attended_on) == (GP, "ref-1", later)
    assert (first.receiving_organisation_id, first.registration_id) == (WELFARE, "reg-1")
    assert (first.days_after_referral, first.within_window, first.sequence) == (4, True, 2)
    assert state.referrals[(GP, "ref-1")].first_attended_on == later
    # A redelivered registration or session decides nothing again.
    assert feed(state, registration(), session(later)) == []


def test_every_order_of_arrival_gives_the_same_first_attendance() -> None:
    day = REFERRED + timedelta(days=10)
    # the attendance before the registration
    state = State()
    refer(state)
    assert [e.attended_on for e in feed(state, session(day), registration())] == [day]
    # the registration and the attendance before the referral
    state = State()
    assert feed(state, registration(), session(day)) == []
    refer(state)
    (first,) = feed(state, ReferralArrived(uuid.uuid4(), GP, "ref-1"))
    assert first.attended_on == day


def test_sessions_before_the_registration_or_the_referral_do_not_count() -> None:
    state = State()
    refer(state)
    registered = REFERRED + timedelta(days=5)
    assert feed(state, session(REFERRED - timedelta(days=1)), session(REFERRED)) == []
    assert feed(state, registration(on=registered)) == []
    (first,) = feed(state, session(registered))
    assert first.attended_on == registered


def test_only_the_receiving_side_and_an_unambiguous_id_convert() -> None:
    state = State()
    refer(state)
    # a registration at another organisation never converts it
    assert feed(state, registration(at="bibliotheek"), session(REFERRED, at="bibliotheek")) == []
    # the id alone is ambiguous once two referrers sent the receiver a referral with that id
    refer(state, referrer=OTHER_GP)
    assert feed(state, registration(referrer=None), session(REFERRED)) == []
    # naming the referrer settles it
    (first,) = feed(state, registration(reg="reg-2"))
    assert (first.organisation_id, first.registration_id) == (GP, "reg-2")


def test_a_first_attendance_after_the_window_is_reported_marked_outside_it() -> None:
    state = State()
    refer(state)
    late = REFERRED + timedelta(days=61)
    (first,) = feed(state, registration(), session(late))
    assert (first.days_after_referral, first.within_window) == (61, False)


def test_the_rule_itself() -> None:
    g = registration(referrer=None).registration
    assert names(g, GP, "ref-1", WELFARE, {GP})
    assert not names(g, GP, "ref-1", WELFARE, {GP, OTHER_GP})
    assert not names(g, GP, "ref-1", "bibliotheek", {GP})
    assert not names(g, GP, "ref-2", WELFARE, {GP})
    assert counts_from(g, REFERRED + timedelta(days=3)) == REFERRED + timedelta(days=3)
    assert within_window(REFERRED, REFERRED)
    assert within_window(REFERRED, REFERRED + timedelta(60))
    assert not within_window(REFERRED, REFERRED + timedelta(61))
