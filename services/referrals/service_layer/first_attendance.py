"""The first-attendance consumer's side of the write pipeline: which consumed events become
items, the state their decisions need, and applying a batch of events (one pipeline run per
organisation, each its own transaction; the Kafka offsets are committed after all of them)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, timedelta
from typing import Any

from services.referrals.domain.decide import Key, Referrals, State
from services.referrals.domain.first_attendance import (
    ConsumedItem,
    FirstAttendances,
    ReferralArrived,
    RegistrationNamed,
    SessionAttended,
)
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from shared.auth import Principal
from shared.events import (
    AttendanceRecorded,
    CloudEvent,
    PersonErased,
    ReferralCreated,
    RegistrationCreated,
    event_name_of,
)
from shared.pipeline.decisions import Context, Decision, Records
from shared.pipeline.pipeline import Pipeline
from shared.referral_matching import AttendedSession, NamingRegistration
from shared.timerules import local_date

__all__ = [
    "FirstAttendanceConsumer",
    "FirstAttendanceWrites",
    "UnitsOfWork",
    "item_of",
    "may_matter",
]


def may_matter(doc: Any) -> bool:
    """Whether a consumed event's parsed document may matter here (become an item of
    :func:`item_of`, or erase a person), looked at before it is validated: full validation was
    about half of this consumer's CPU, and most events on `registrations` do not matter.

    False only where decoding cannot change the outcome: a known event type whose decoded form
    :func:`item_of` drops whatever its other fields say (a registration without a referral, a
    no-show, a cancellation, a status change...). Everything else is decoded as before, so
    what is not a known event (not JSON, an unknown type or version) is still dead-lettered;
    what is passed over is not validated, so a malformed no-show is no longer dead-lettered
    here (the metrics consumer still dead-letters it)."""
    name = event_name_of(doc)
    data = doc.get("data") if name is not None else None
    if not isinstance(data, dict):
        return True
    if name == RegistrationCreated.event_name:
        return data.get("referral_id") is not None  # absent or null: a referral it names not
    if name == AttendanceRecorded.event_name:
        return data.get("status") != "no_show"  # the one status that is not "attended"
    return name in _MATTER


# Every version of these types matters as it is; an earlier version is upcast to the same name.
_MATTER = frozenset({ReferralCreated.event_name, PersonErased.event_name})


def item_of(event: CloudEvent[Any], services: Mapping[str, str]) -> tuple[str, ConsumedItem] | None:
    """The organisation under which a consumed event is decided, and its item; None for an
    event that cannot complete a first attendance (a registration without a referral, a
    no-show, a cancellation, a status change...). A cancelled registration still counts, as in
    the metrics service: the resident came."""
    e = event.data
    if isinstance(e, RegistrationCreated) and e.referral_id is not None:
        return e.organisation_id, RegistrationNamed(
            event.id,
            NamingRegistration(
                organisation_id=e.organisation_id,
                registration_id=e.registration_id,
                activity_id=e.activity_id,
                participant_id=e.participant.id,
                registered_on=local_date(e.registered_at),
                referral_id=e.referral_id,
                referring_organisation_id=e.referring_organisation_id,
            ),
        )
    if isinstance(e, AttendanceRecorded) and e.status == "attended":
        return e.organisation_id, SessionAttended(
            event.id,
            AttendedSession(
                organisation_id=e.organisation_id,
                activity_id=e.activity_id,
                participant_id=e.participant.id,
                session_start=e.session_start,
                session_on=e.session_date,
            ),
        )
    if isinstance(e, ReferralCreated):
        receiver = e.receiving_organisation_id or services.get(e.referred_to.service or "")
        if receiver is not None:
            return receiver, ReferralArrived(event.id, e.organisation_id, e.referral_id)
    return None


class FirstAttendanceWrites:
    """The write model of consumed items (they come valid and authorised from the topics, so
    only :meth:`load`, :meth:`decide` and :meth:`evolve` are used, through ``Pipeline.apply``)."""

    def __init__(self, decisions: FirstAttendances, referrals: Referrals) -> None:
        self.decisions = decisions
        self.referrals = referrals

    def parse(self, raw: Any) -> ConsumedItem:
        raise TypeError("consumed items come from events, never from a request")

    def scope_problem(self, principal: Principal, item: ConsumedItem) -> str | None:
        return "consumed items are not written over the API"

    def own_fields(self, item: ConsumedItem) -> Collection[str]:
        return ()

    def check(self, item: ConsumedItem) -> None:
        return None

    def locks_nothing(self, items: Sequence[Any]) -> bool:
        return False  # load serialises on an advisory lock and reads what it changes

    async def load(
        self, uow: ReferralsUnitOfWork, organisation_id: str, items: Sequence[ConsumedItem]
    ) -> State:
        org = organisation_id
        await uow.attendance.serialise()
        attendees = {
            i.registration.attendee if isinstance(i, RegistrationNamed) else i.session.attendee
            for i in items
            if not isinstance(i, ReferralArrived)
        }
        arrived = {i.referral_id for i in items if isinstance(i, ReferralArrived)}
        named = {
            (g.organisation_id, g.registration_id): g
            for g in [
                *await uow.attendance.named_by_attendee(attendees),
                *await uow.attendance.named_by_referral(org, arrived),
            ]
        }
        attendees |= {g.attendee for g in named.values()}
        sessions = await uow.attendance.sessions_by_attendee(attendees)
        ids = (
            arrived
            | {g.referral_id for g in named.values()}
            | {i.registration.referral_id for i in items if isinstance(i, RegistrationNamed)}
        )
        # Every referral with these ids that the organisation received (its own to itself among
        # them), locked like a status change locks it: the two never decide on stale state.
        own = {
            k: r
            for k, r in (await uow.referrals.load({(org, i) for i in ids}, lock=True)).items()
            if r.receiving_organisation_id == org
        }
        received = await uow.referrals.received(
            org, ids, self.referrals.provided_by(org), lock=True
        )
        referrals: dict[Key, Any] = {
            **own,
            **{(r.organisation_id, r.referral_id): r for r in received},
        }
        return State(
            referrals=Records(referrals),
            named=Records(named),
            sessions=Records({(*s.attendee, s.session_start): s for s in sessions}),
        )

    def decide(self, item: ConsumedItem, state: State, context: Context) -> Decision:
        self.decisions.note(state, item)
        return self.decisions.decide(item, state, context)

    def evolve(self, state: State, event: CloudEvent[Any]) -> None:
        self.referrals.evolve(state, event)


# A unit of work on a connection of its own, for as long as the context lasts (the bootstrap's).
UnitsOfWork = Callable[[], AbstractAsyncContextManager[ReferralsUnitOfWork]]


class FirstAttendanceConsumer:
    """Applies a batch of consumed events: one pipeline run per organisation (the receiving
    side), each its own transaction. Applying the same events again changes nothing: what is
    kept is keyed by what it is, and a referral's first attendance is decided once."""

    def __init__(
        self,
        pipeline: Pipeline[ConsumedItem, State, ReferralsUnitOfWork],
        units: UnitsOfWork,
        services: Mapping[str, str],
    ) -> None:
        self.pipeline = pipeline
        self.units = units
        self.services = services

    async def apply(self, events: Sequence[CloudEvent[Any]]) -> None:
        erasures = [e.data for e in events if isinstance(e.data, PersonErased)]
        subjects = {e.subject for e in events if e.subject and not isinstance(e.data, PersonErased)}
        if erasures or subjects:
            # An erased person's matching data goes, and their events are skipped, also those
            # that arrive later (docs/privacy.md "Erasure").
            async with self.units() as uow, uow:
                if erasures:
                    await uow.attendance.erase([(e.subject_id, e.erased_at) for e in erasures])
                erased = await uow.attendance.erased(subjects) if subjects else set()
                await uow.commit()
            events = [
                e
                for e in events
                if not isinstance(e.data, PersonErased) and e.subject not in erased
            ]
        grouped: dict[str, list[ConsumedItem]] = {}
        for event in events:
            found = item_of(event, self.services)
            if found is not None:
                grouped.setdefault(found[0], []).append(found[1])
        if not grouped:
            return
        async with self.units() as uow:
            for organisation_id, items in grouped.items():
                for outcome in await self.pipeline.apply(uow, organisation_id, items):
                    if isinstance(outcome, Exception):  # never refused; if it is, say so
                        raise outcome

    async def forget(self, hold_days: int, today: date) -> tuple[int, int]:
        """Delete what matching no longer needs (docs/privacy.md)."""
        async with self.units() as uow, uow:
            forgotten = await uow.attendance.forget(today - timedelta(days=hold_days))
            await uow.commit()
        return forgotten
