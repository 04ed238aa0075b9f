"""The first attendance of a referred resident, decided from what the `registrations` and
`referrals` topics tell the referrals service. Pure: no Kafka, no SQL.

Three facts must meet, in any order of arrival: the referral, a registration at its receiving
side that names it, and an attended session of that registration. Each consumed event is an item
(:class:`RegistrationNamed`, :class:`SessionAttended`, :class:`ReferralArrived`); the first two
are kept (``State.named``, ``State.sessions``: the least the rule of
shared/referral_matching.py needs), and after each item every referral it may complete is
checked. A referral's first attendance is decided once: a referral that has one
(``Referral.first_attended_on``) is never decided again, so a redelivered event changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

from services.referrals.domain.decide import Key, Referral, State, receiver_of
from shared.events import ReferralFirstAttended
from shared.pipeline.decisions import Context, Decision
from shared.referral_matching import (
    AttendedSession,
    NamingRegistration,
    counts_from,
    names,
    within_window,
)
from shared.timerules import local_date

__all__ = [
    "ConsumedItem",
    "FirstAttendances",
    "ReferralArrived",
    "RegistrationNamed",
    "SessionAttended",
]


@dataclass(frozen=True)
class RegistrationNamed:
    """A `registration.created` that names a referral."""

    event_id: UUID
    registration: NamingRegistration
    kind: str = "registration_named"


@dataclass(frozen=True)
class SessionAttended:
    """An `attendance.recorded` with status `attended`."""

    event_id: UUID
    session: AttendedSession
    kind: str = "session_attended"


@dataclass(frozen=True)
class ReferralArrived:
    """A `referral.created`: registrations and sessions may have been waiting for it."""

    event_id: UUID
    referrer: str
    referral_id: str
    kind: str = "referral_arrived"


ConsumedItem = RegistrationNamed | SessionAttended | ReferralArrived


class FirstAttendances:
    """``services``: the coalition's service list, for the receiving side of referrals made
    before it was recorded on them."""

    def __init__(self, services: Mapping[str, str]) -> None:
        self.services = services

    def note(self, state: State, item: ConsumedItem) -> None:
        """Keep what the item tells, for facts still to come (a replay finds it kept)."""
        if isinstance(item, RegistrationNamed):
            g = item.registration
            state.named.put((g.organisation_id, g.registration_id), g)
        elif isinstance(item, SessionAttended):
            s = item.session
            state.sessions.put((*s.attendee, s.session_start), s)

    def decide(self, item: ConsumedItem, state: State, context: Context) -> Decision:
        """The first attendances the item completes (usually none), as events. Call after
        :meth:`note`."""
        events = []
        for referral in self._affected(item, state):
            found = self.first(referral, state)
            if found is None:
                continue
            registration, session = found
            events.append(context.event(self._event(referral, registration, session)))
        return Decision(200, {"first_attendances": len(events)}, tuple(events))

    def referrers_of(self, receiver: str, referral_id: str, state: State) -> set[str]:
        """Every organisation that sent ``receiver`` a referral with this id (as loaded)."""
        return {
            r.organisation_id
            for r in state.referrals.values()
            if r.referral_id == referral_id and receiver_of(r, self.services) == receiver
        }

    def first(
        self, referral: Referral, state: State
    ) -> tuple[NamingRegistration, AttendedSession] | None:
        """The earliest session that counts for ``referral``, with its registration; None when
        there is none yet, or when the referral's first attendance was decided before."""
        if referral.first_attended_on is not None:
            return None
        receiver = receiver_of(referral, self.services)
        if receiver is None:
            return None
        referrers = self.referrers_of(receiver, referral.referral_id, state)
        referred_on = local_date(referral.created_at)
        best: tuple[NamingRegistration, AttendedSession] | None = None
        for g in state.named.values():
            if not names(g, referral.organisation_id, referral.referral_id, receiver, referrers):
                continue
            start = counts_from(g, referred_on)
            for s in _sessions_of(state, g.attendee):
                if s.session_on >= start and (
                    best is None
                    or (s.session_on, s.session_start) < (best[1].session_on, best[1].session_start)
                ):
                    best = (g, s)
        return best

    def _affected(self, item: ConsumedItem, state: State) -> list[Referral]:
        """The referrals the item may complete, in key order."""
        keys: set[Key] = set()
        if isinstance(item, ReferralArrived):
            keys.add((item.referrer, item.referral_id))
        else:
            registrations: Iterable[NamingRegistration]
            if isinstance(item, RegistrationNamed):
                registrations = [item.registration]
            else:
                registrations = [
                    g for g in state.named.values() if g.attendee == item.session.attendee
                ]
            for g in registrations:
                keys |= {
                    k
                    for k, r in state.referrals.items()
                    if r.referral_id == g.referral_id
                    and receiver_of(r, self.services) == g.organisation_id
                }
        return [state.referrals[k] for k in sorted(keys) if k in state.referrals]

    def _event(
        self, referral: Referral, registration: NamingRegistration, session: AttendedSession
    ) -> ReferralFirstAttended:
        referred_on = local_date(referral.created_at)
        return ReferralFirstAttended(
            organisation_id=referral.organisation_id,
            referral_id=referral.referral_id,
            participant_id=referral.participant_id,
            receiving_organisation_id=registration.organisation_id,
            registration_id=registration.registration_id,
            activity_id=registration.activity_id,
            session_start=session.session_start,
            referred_on=referred_on,
            attended_on=session.session_on,
            days_after_referral=(session.session_on - referred_on).days,
            within_window=within_window(referred_on, session.session_on),
            sequence=referral.status_sequence + 1,
        )


def _sessions_of(state: State, attendee: tuple[str, str, str]) -> list[AttendedSession]:
    return [s for s in state.sessions.values() if s.attendee == attendee]
