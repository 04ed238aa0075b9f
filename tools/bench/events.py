"""The simulator's writes as the events the services would publish, without going through HTTP.

Used to pre-fill a topic with a million events in a minute instead of an hour. Each write is
validated with the services' own batch item models, pseudonymised with the services'
``participant_of`` and ``Pseudonymiser``, scored with the referrals service's scorer, and turned
into the same event model the service's handler builds. What a handler reads from its database
(the registration a cancellation refers to, the referral a status change moves) is kept here
in dictionaries. The event's ``time`` is the simulated moment of the write, not the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.referrals.domain.commands import ParticipantIn as ReferralParticipantIn
from services.referrals.domain.scoring import score
from services.referrals.entrypoints.http import batch_item_adapter as referral_items
from services.registrations.entrypoints.http import batch_item_adapter as registration_items
from shared.events import (
    ActivityUpserted,
    AttendanceRecorded,
    CloudEvent,
    EventData,
    MeasurementRecorded,
    ReferralCreated,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCancelled,
    RegistrationCreated,
    TrainingCompleted,
    encode_event,
    new_event,
    topic_name,
)
from shared.pseudonym import Pseudonymiser, participant_of
from shared.reference import load_reference
from shared.timerules import local_date
from tools.simulator.generate import Write

__all__ = ["EncodedEvent", "EventFactory", "encoded"]


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    topic: str
    key: bytes
    value: bytes


@dataclass
class _Referral:
    organisation_id: str
    participant_id: str
    receiver: str
    status: str


class EventFactory:
    """Stateful, like the services' databases: feed it one simulation's writes in time order."""

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self.p = pseudonymiser
        self._registrations = registration_items()
        self._referrals = referral_items()
        self.activity_versions: dict[tuple[str, str], int] = {}
        self.registered: dict[tuple[str, str], tuple[str, str]] = {}  # -> activity, participant
        self.referral_state: dict[tuple[str, str], _Referral] = {}
        self.sent_to: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.services = load_reference().services
        self.sequence = 0  # the referrals service's arrival order of status changes
        self._at = datetime.now(UTC)  # the moment of the write being converted

    def event(self, w: Write) -> CloudEvent[Any] | None:
        """The event the service publishes for ``w``; None where it would publish none."""
        adapter = self._registrations if w.service == "registrations" else self._referrals
        item = adapter.validate_python(w.item)
        self._at = w.at
        data = getattr(self, f"_{w.kind}")(w.organisation, item)
        return None if data is None else new_event(data, w.organisation, time=w.at)

    def events(self, writes: Iterable[Write]) -> Iterator[CloudEvent[Any]]:
        for w in writes:
            event = self.event(w)
            if event is not None:
                yield event

    # ------------------------------------------------------------------------- registrations

    def _activity(self, org: str, item: Any) -> EventData:
        cmd = item.body
        key = (org, item.activity_id)
        version = self.activity_versions.get(key, 0) + 1
        self.activity_versions[key] = version
        return ActivityUpserted(
            organisation_id=org,
            activity_id=item.activity_id,
            version=version,
            title=cmd.title,
            category=cmd.category,
            aimed_at_connection=cmd.aimed_at_connection,
            neighbourhood=cmd.neighbourhood,
            capacity=cmd.capacity,
            target_age_bands=tuple(cmd.target_age_bands),
            active=cmd.active,
            updated_at=self._at,  # the service stamps its clock
        )

    def _registration(self, org: str, item: Any) -> EventData:
        cmd = item.body
        participant = participant_of(cmd.participant, org, self.p)
        self.registered[(org, cmd.registration_id)] = (cmd.activity_id, participant.id)
        return RegistrationCreated(
            organisation_id=org,
            registration_id=cmd.registration_id,
            activity_id=cmd.activity_id,
            participant=participant,
            registered_at=cmd.registered_at,
            referral_id=cmd.referral_id,
            referring_organisation_id=cmd.referring_organisation_id,
        )

    def _cancellation(self, org: str, item: Any) -> EventData | None:
        found = self.registered.get((org, item.registration_id))
        if found is None:  # the service answers 422 and publishes nothing
            return None
        activity_id, participant_id = found
        return RegistrationCancelled(
            organisation_id=org,
            registration_id=item.registration_id,
            activity_id=activity_id,
            participant_id=participant_id,
            cancelled_at=item.body.cancelled_at,
            reason=item.body.reason,
        )

    def _attendance(self, org: str, item: Any) -> EventData:
        cmd = item.body
        return AttendanceRecorded(
            organisation_id=org,
            attendance_id=cmd.attendance_id,
            activity_id=cmd.activity_id,
            participant=participant_of(cmd.participant, org, self.p),
            session_start=cmd.session_start,
            session_date=local_date(cmd.session_start),
            status=cmd.status,
        )

    # ----------------------------------------------------------------------------- referrals

    def _referral(self, org: str, item: Any) -> EventData:
        cmd = item.body
        participant = participant_of(cmd.participant, org, self.p)
        to = cmd.referred_to
        key = (org, cmd.referral_id)
        receiver = to.organisation_id or self.services[to.service or ""]
        self.referral_state[key] = _Referral(org, participant.id, receiver, "created")
        if receiver != org:
            self.sent_to.setdefault((receiver, cmd.referral_id), []).append(key)
        return ReferralCreated(
            organisation_id=org,
            referral_id=cmd.referral_id,
            participant=participant,
            referrer_role=cmd.referrer_role,
            signals=tuple(cmd.signals),
            referred_to=ReferredTo(
                organisation_id=to.organisation_id, activity_id=to.activity_id, service=to.service
            ),
            receiving_organisation_id=receiver,
            created_at=cmd.created_at,
        )

    def _referral_status(self, org: str, item: Any) -> EventData | None:
        key = (item.referring_organisation_id or org, item.referral_id)
        if key not in self.referral_state:
            sent = self.sent_to.get(key, [])
            if len(sent) != 1:  # 404 or 409 at the service
                return None
            key = sent[0]
        referral = self.referral_state[key]
        self.sequence += 1
        previous, referral.status = referral.status, item.body.status
        return ReferralStatusChanged(
            organisation_id=referral.organisation_id,
            referral_id=item.referral_id,
            participant_id=referral.participant_id,
            changed_by=org,
            previous_status=previous,  # type: ignore[arg-type]
            status=item.body.status,
            at=item.body.at,
            sequence=self.sequence,
            outcome=item.body.outcome,
        )

    def _training(self, org: str, item: Any) -> EventData:
        cmd = item.body
        return TrainingCompleted(
            organisation_id=org,
            training_id=cmd.training_id,
            person_id=self.p.person(org, cmd.person_ref),
            role=cmd.role,
            training=cmd.training,
            completed_at=cmd.completed_at,
        )

    def _measurement(self, org: str, item: Any) -> EventData:
        cmd = item.body
        scored = score(cmd.instrument, cmd.answers)
        p = cmd.participant
        participant_id = (
            None
            if p.ref is None
            else participant_of(
                ReferralParticipantIn.model_validate(p.model_dump()), org, self.p
            ).id
        )
        return MeasurementRecorded(
            organisation_id=org,
            measurement_id=cmd.measurement_id,
            instrument=cmd.instrument,
            context=cmd.context,
            participant_id=participant_id,
            neighbourhood=p.neighbourhood,
            age_band=p.age_band,
            measured_at=cmd.measured_at,
            total=scored.total,
            emotional=scored.emotional,
            social=scored.social,
            category=scored.category.value if scored.category is not None else None,  # type: ignore[arg-type]
        )


def encoded(events: Iterable[CloudEvent[Any]], prefix: str) -> Iterator[EncodedEvent]:
    for e in events:
        yield EncodedEvent(topic_name(e.data.topic, prefix), e.key, encode_event(e))
