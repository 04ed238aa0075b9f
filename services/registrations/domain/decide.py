"""The registrations service's decisions: every rule of a write in one place, pure.

``decide(item, state, context)`` answers one batch item (a single endpoint's write is an item
too) with a :class:`Decision` (status, answer, events) or a domain error; ``evolve(state, event)``
is what the event changes in the state. Fields are mapped once: the command becomes the event
here, the event becomes the record (:func:`evolve`) and the answer.

Order of the checks, as partners have always seen them: the rules that need no state
(:meth:`Registrations.check`), then a replay or conflict of the id, then what the state says
(an unknown activity, a registration that is not there or already cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.registrations.domain import rules
from services.registrations.domain.commands import ActivityCommand
from services.registrations.domain.items import (
    ActivityItem,
    AttendanceItem,
    BatchItem,
    CancellationItem,
    RegistrationItem,
)
from shared.errors import ConflictError, FieldError
from shared.events import (
    ActivityUpserted,
    AttendanceRecorded,
    CloudEvent,
    RegistrationCancelled,
    RegistrationCreated,
)
from shared.pipeline.decisions import (
    BatchState,
    Context,
    Decision,
    IdempotencyKey,
    Records,
    replayed,
)
from shared.pseudonym import participant_of
from shared.reference import ReferenceData
from shared.timerules import local_date

__all__ = [
    "Activity",
    "Attendance",
    "Key",
    "Registration",
    "Registrations",
    "State",
    "activity_view",
    "answer_key",
    "registration_view",
]

Key = tuple[str, str]  # (organisation, id): ids are unique within an organisation only


@dataclass(frozen=True)
class Activity:
    organisation_id: str
    activity_id: str
    version: int
    title: str
    category: str
    aimed_at_connection: bool
    neighbourhood: str
    capacity: int | None
    target_age_bands: tuple[str, ...]
    active: bool
    updated_at: datetime

    @classmethod
    def of(cls, e: ActivityUpserted) -> Activity:
        return cls(
            organisation_id=e.organisation_id,
            activity_id=e.activity_id,
            version=e.version,
            title=e.title,
            category=e.category,
            aimed_at_connection=e.aimed_at_connection,
            neighbourhood=e.neighbourhood,
            capacity=e.capacity,
            target_age_bands=e.target_age_bands,
            active=e.active,
            updated_at=e.updated_at,
        )

    def states(self, cmd: ActivityCommand) -> bool:
        """Whether ``cmd`` asks for exactly this state (a PUT of it again changes nothing)."""
        return (
            self.title == cmd.title
            and self.category == cmd.category
            and self.aimed_at_connection == cmd.aimed_at_connection
            and self.neighbourhood == cmd.neighbourhood
            and self.capacity == cmd.capacity
            and self.target_age_bands == tuple(cmd.target_age_bands)
            and self.active == cmd.active
        )


@dataclass(frozen=True)
class Registration:
    organisation_id: str
    registration_id: str
    activity_id: str
    participant_id: str
    registered_at: datetime
    referral_id: str | None
    referring_organisation_id: str | None
    cancelled_at: datetime | None


@dataclass(frozen=True)
class Attendance:
    organisation_id: str
    attendance_id: str
    activity_id: str
    participant_id: str
    session_start: datetime
    status: str


@dataclass
class State(BatchState):
    """The records the decisions of a batch consult, and those they add or change."""

    activities: Records[Key, Activity] = field(default_factory=Records)
    registrations: Records[Key, Registration] = field(default_factory=Records)
    attendance: Records[Key, Attendance] = field(default_factory=Records)


def activity_view(a: Activity) -> dict[str, Any]:
    """An activity as the API shows it (the answer of a PUT, and GET)."""
    return {
        "activity_id": a.activity_id,
        "version": a.version,
        "title": a.title,
        "category": a.category,
        "aimed_at_connection": a.aimed_at_connection,
        "neighbourhood": a.neighbourhood,
        "capacity": a.capacity,
        "target_age_bands": list(a.target_age_bands),
        "active": a.active,
        "updated_at": a.updated_at.isoformat(),
    }


def registration_view(r: Registration) -> dict[str, Any]:
    return {
        "registration_id": r.registration_id,
        "activity_id": r.activity_id,
        "registered_at": r.registered_at.isoformat(),
        "referral_id": r.referral_id,
        "referring_organisation_id": r.referring_organisation_id,
        "cancelled_at": r.cancelled_at.isoformat() if r.cancelled_at else None,
    }


def answer_key(organisation_id: str, item: BatchItem) -> IdempotencyKey | None:
    """Under which key an item's first answer is remembered for its replays: its kind and id.
    None for an activity: a PUT is compared with the activity's state instead."""
    if isinstance(item, RegistrationItem):
        return (organisation_id, item.kind, item.body.registration_id)
    if isinstance(item, CancellationItem):
        return (organisation_id, item.kind, item.registration_id)
    if isinstance(item, AttendanceItem):
        return (organisation_id, item.kind, item.body.attendance_id)
    return None


def _require_activity(state: State, organisation_id: str, activity_id: str) -> None:
    if (organisation_id, activity_id) not in state.activities:
        raise FieldError(
            [
                (
                    "activity_id",
                    f"no activity {activity_id!r} of your organisation; "
                    "PUT /v1/activities/{id} first",
                )
            ]
        )


class Registrations:
    """The decisions of the registrations service, given the municipality's reference lists."""

    def __init__(self, reference: ReferenceData) -> None:
        self.reference = reference

    def check(self, item: BatchItem) -> None:
        """The rules that need no state (unknown list values, moments out of range)."""
        if isinstance(item, ActivityItem):
            FieldError.raise_if(rules.check_activity(item.body, self.reference))
        elif isinstance(item, RegistrationItem):
            FieldError.raise_if(rules.check_registration(item.body, self.reference))
        elif isinstance(item, CancellationItem):
            FieldError.raise_if(rules.check_cancellation(item.body, self.reference))
        else:
            FieldError.raise_if(rules.check_attendance(item.body, self.reference))

    def decide(self, item: BatchItem, state: State, context: Context) -> Decision:
        if isinstance(item, ActivityItem):
            return self._activity(item, state, context)
        key = answer_key(context.organisation_id, item)
        assert key is not None
        digest = context.digest(key, item.body)
        if (replay := replayed(state.remembered, key, digest)) is not None:
            return replay
        if isinstance(item, RegistrationItem):
            decision = self._registration(item, state, context)
        elif isinstance(item, CancellationItem):
            decision = self._cancellation(item, state, context)
        else:
            decision = self._attendance(item, state, context)
        # Not dataclasses.replace: it inspects the fields on every call (2 µs, against 0.6 µs).
        return Decision(
            decision.status_code, decision.body, decision.events, remember=(key, digest)
        )

    def evolve(self, state: State, event: CloudEvent[Any]) -> None:
        e = event.data
        if isinstance(e, ActivityUpserted):
            state.activities.put((e.organisation_id, e.activity_id), Activity.of(e))
        elif isinstance(e, RegistrationCreated):
            state.registrations.put(
                (e.organisation_id, e.registration_id),
                Registration(
                    organisation_id=e.organisation_id,
                    registration_id=e.registration_id,
                    activity_id=e.activity_id,
                    participant_id=e.participant.id,
                    registered_at=e.registered_at,
                    referral_id=e.referral_id,
                    referring_organisation_id=e.referring_organisation_id,
                    cancelled_at=None,
                ),
            )
        elif isinstance(e, RegistrationCancelled):
            key = (e.organisation_id, e.registration_id)
            state.registrations.put(
                key, replace(state.registrations[key], cancelled_at=e.cancelled_at)
            )
        elif isinstance(e, AttendanceRecorded):
            state.attendance.put(
                (e.organisation_id, e.attendance_id),
                Attendance(
                    organisation_id=e.organisation_id,
                    attendance_id=e.attendance_id,
                    activity_id=e.activity_id,
                    participant_id=e.participant.id,
                    session_start=e.session_start,
                    status=e.status,
                ),
            )

    # ---------------------------------------------------------------------------- the kinds

    def _activity(self, item: ActivityItem, state: State, context: Context) -> Decision:
        """Create or change an activity: the whole state (PUT). The same state again is a
        no-op (200, no event); every change is a new version."""
        org, cmd = context.organisation_id, item.body
        current = state.activities.get((org, item.activity_id))
        if current is not None and current.states(cmd):
            return Decision(200, activity_view(current))
        event = context.event(
            ActivityUpserted(
                organisation_id=org,
                activity_id=item.activity_id,
                version=(current.version + 1) if current else 1,
                title=cmd.title,
                category=cmd.category,
                aimed_at_connection=cmd.aimed_at_connection,
                neighbourhood=cmd.neighbourhood,
                capacity=cmd.capacity,
                target_age_bands=tuple(cmd.target_age_bands),
                active=cmd.active,
                updated_at=context.now,
            )
        )
        return Decision(
            201 if current is None else 200, activity_view(Activity.of(event.data)), (event,)
        )

    def _registration(self, item: RegistrationItem, state: State, context: Context) -> Decision:
        org, cmd = context.organisation_id, item.body
        _require_activity(state, org, cmd.activity_id)
        event = context.event(
            RegistrationCreated(
                organisation_id=org,
                registration_id=cmd.registration_id,
                activity_id=cmd.activity_id,
                participant=participant_of(cmd.participant, org, context.pseudonymiser),
                registered_at=cmd.registered_at,
                referral_id=cmd.referral_id,
                referring_organisation_id=cmd.referring_organisation_id,
            )
        )
        body = {
            "registration_id": cmd.registration_id,
            "activity_id": cmd.activity_id,
            "status": "registered",
            "event_id": str(event.id),
        }
        return Decision(201, body, (event,))

    def _cancellation(self, item: CancellationItem, state: State, context: Context) -> Decision:
        org, cmd, registration_id = context.organisation_id, item.body, item.registration_id
        registration = state.registrations.get((org, registration_id))
        if registration is None:
            raise FieldError(
                [("registration_id", f"no registration {registration_id!r} of your organisation")]
            )
        if registration.cancelled_at is not None:
            raise ConflictError(f"registration {registration_id!r} is already cancelled")
        if cmd.cancelled_at < registration.registered_at:
            raise FieldError([("cancelled_at", "lies before the registration itself")])
        event = context.event(
            RegistrationCancelled(
                organisation_id=org,
                registration_id=registration_id,
                activity_id=registration.activity_id,
                participant_id=registration.participant_id,
                cancelled_at=cmd.cancelled_at,
                reason=cmd.reason,
            )
        )
        body = {
            "registration_id": registration_id,
            "status": "cancelled",
            "event_id": str(event.id),
        }
        return Decision(201, body, (event,))

    def _attendance(self, item: AttendanceItem, state: State, context: Context) -> Decision:
        org, cmd = context.organisation_id, item.body
        _require_activity(state, org, cmd.activity_id)
        event = context.event(
            AttendanceRecorded(
                organisation_id=org,
                attendance_id=cmd.attendance_id,
                activity_id=cmd.activity_id,
                participant=participant_of(cmd.participant, org, context.pseudonymiser),
                session_start=cmd.session_start,
                session_date=local_date(cmd.session_start),
                status=cmd.status,
            )
        )
        body = {
            "attendance_id": cmd.attendance_id,
            "activity_id": cmd.activity_id,
            "status": cmd.status,
            "event_id": str(event.id),
        }
        return Decision(201, body, (event,))
