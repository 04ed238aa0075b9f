"""The referrals service's decisions: every rule of a write in one place, pure.

``decide(item, state, context)`` answers one batch item (a single endpoint's write is an item
too) with a :class:`Decision` or a domain error; ``evolve(state, event)`` is what the event
changes in the state. The command becomes the event here, the event the record and the answer.

Order of the checks, as partners have always seen them: the rules that need no state
(:meth:`Referrals.check`); for a status change, which referral the caller means (404 for one it
may not see, 409 when the id alone is ambiguous); a replay or conflict of the id; then who may
make the change (403), the lifecycle (409) and the order in time (422).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from services.referrals.domain import lifecycle, rules
from services.referrals.domain.commands import ParticipantIn
from services.referrals.domain.items import (
    BatchItem,
    MeasurementItem,
    ReferralItem,
    ReferralStatusItem,
    TrainingItem,
)
from services.referrals.domain.scoring import Score, ScoringError, Thresholds, score
from shared.errors import FieldError, NotFoundError
from shared.events import (
    CloudEvent,
    MeasurementRecorded,
    ReferralCreated,
    ReferralFirstAttended,
    ReferralStatusChanged,
    ReferredTo,
    TrainingCompleted,
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
from shared.referral_matching import AttendedSession, NamingRegistration
from shared.timerules import AMSTERDAM

__all__ = [
    "FIRST_ATTENDANCE",
    "Key",
    "Measurement",
    "Referral",
    "Referrals",
    "State",
    "StatusChange",
    "Training",
    "measurement_view",
    "training_view",
]

Key = tuple[str, str]  # (organisation, id); a referral's organisation is its referrer
# The history's name for the resident's first attended session (a milestone beside the statuses).
FIRST_ATTENDANCE = "first_attendance"


@dataclass(frozen=True)
class Referral:
    organisation_id: str  # the referring organisation
    referral_id: str
    participant_id: str
    referrer_role: str
    signals: tuple[str, ...]
    referred_to_organisation_id: str | None
    referred_to_activity_id: str | None
    referred_to_service: str | None
    receiving_organisation_id: str | None  # None: a service referral from before migration 002
    created_at: datetime
    status: str
    status_changed_at: datetime
    # The sequence of its last change: the next change gets the next number, so that of two
    # changes of one referral the later arrival has the higher one.
    status_sequence: int
    # The day of the resident's first attended session (domain/first_attendance.py), once seen.
    first_attended_on: date | None = None


@dataclass(frozen=True)
class StatusChange:
    """A referral's status as it was set, its creation included (the history)."""

    organisation_id: str
    referral_id: str
    status: str
    previous_status: str | None
    at: datetime
    changed_by: str
    outcome: str | None
    event_id: UUID
    sequence: int


@dataclass(frozen=True)
class Training:
    organisation_id: str
    training_id: str
    person_id: str
    role: str
    training: str
    completed_at: datetime


@dataclass(frozen=True)
class Measurement:
    organisation_id: str
    measurement_id: str
    instrument: str
    context: str
    participant_id: str | None
    neighbourhood: str
    age_band: str
    measured_at: datetime
    total: int | None
    emotional: int | None
    social: int | None
    category: str | None


@dataclass
class State(BatchState):
    """The records the decisions of a batch consult, and those they add or change."""

    referrals: Records[Key, Referral] = field(default_factory=Records)
    # (receiving organisation, referral id) -> the referrals with that id that other
    # organisations sent it: an id is unique per referrer only.
    received: dict[Key, list[Key]] = field(default_factory=dict)
    # The registered partner organisations among those the batch refers to.
    organisations: dict[str, bool] = field(default_factory=dict)
    history: Records[tuple[str, str, str], StatusChange] = field(default_factory=Records)
    trainings: Records[Key, Training] = field(default_factory=Records)
    measurements: Records[Key, Measurement] = field(default_factory=Records)
    # What the first-attendance consumer keeps to match (domain/first_attendance.py): the
    # registrations that name a referral, by (organisation, registration id), and attended
    # sessions, by (organisation, activity, participant, session start).
    named: Records[Key, NamingRegistration] = field(default_factory=Records)
    sessions: Records[tuple[str, str, str, datetime], AttendedSession] = field(
        default_factory=Records
    )


def receiver_of(referral: Referral, services: Mapping[str, str]) -> str | None:
    """The receiving side; a service referral made before it was recorded takes the service's
    current provider."""
    if referral.receiving_organisation_id is not None:
        return referral.receiving_organisation_id
    return services.get(referral.referred_to_service or "")


def training_view(t: Training) -> dict[str, Any]:
    return {
        "training_id": t.training_id,
        "role": t.role,
        "training": t.training,
        "completed_at": t.completed_at.isoformat(),
    }


def measurement_view(m: Measurement) -> dict[str, Any]:
    return {
        "measurement_id": m.measurement_id,
        "instrument": m.instrument,
        "context": m.context,
        "anonymous": m.participant_id is None,
        "neighbourhood": m.neighbourhood,
        "age_band": m.age_band,
        "measured_at": m.measured_at.isoformat(),
        "score": m.total,
        "emotional": m.emotional,
        "social": m.social,
        "category": m.category,
    }


def _scores(s: Score) -> dict[str, Any]:
    return {
        "score": s.total,
        "emotional": s.emotional,
        "social": s.social,
        "category": s.category.value if s.category is not None else None,
        "emotionally_lonely": s.emotionally_lonely,
        "socially_lonely": s.socially_lonely,
    }


def _dotted(field_name: str) -> str:
    # The scorer names items like Python (`answers[3]`); every other field in an answer is a
    # dotted path (`signals.1`), and a partner's client should meet one style only.
    return re.sub(r"\[(\d+)\]", r".\1", field_name)


class Referrals:
    """The decisions of the referrals service, given the reference lists (the service list
    says who provides a service) and the scale's cut-offs."""

    def __init__(self, reference: ReferenceData, thresholds: Mapping[str, Thresholds]) -> None:
        self.reference = reference
        self.thresholds = thresholds

    def check(self, item: BatchItem) -> None:
        """The rules that need no state (lists, moments, consent, the questionnaire)."""
        if isinstance(item, ReferralItem):
            FieldError.raise_if(rules.check_referral(item.body, self.reference))
        elif isinstance(item, ReferralStatusItem):
            FieldError.raise_if(rules.check_status(item.body, self.reference))
        elif isinstance(item, TrainingItem):
            FieldError.raise_if(rules.check_training(item.body, self.reference))
        else:
            self._score(item)

    def _score(self, item: MeasurementItem) -> Score:
        cmd = item.body
        problems = rules.check_measurement(cmd, self.reference)
        scored: Score | None = None
        try:
            scored = score(cmd.instrument, cmd.answers, self.thresholds.get(cmd.instrument))
        except ScoringError as exc:
            problems.append((_dotted(exc.field), exc.message))
        if scored is None or problems:
            raise FieldError(problems)
        return scored

    def provided_by(self, organisation_id: str) -> list[str]:
        """The services of the service list that ``organisation_id`` provides."""
        return [name for name, by in self.reference.services.items() if by == organisation_id]

    def visible(
        self, organisation_id: str, referral_id: str, referrer: str | None, state: State
    ) -> Referral:
        """The referral ``organisation_id`` means: the one of ``referrer`` if named, else see
        :func:`rules.choose_referral`. Only its two sides see it; to anyone else it is reported
        as not existing (404), worded as for an id nobody used."""
        if referrer is not None:
            found = state.referrals.get((referrer, referral_id))
            sides = (
                (found.organisation_id, receiver_of(found, self.reference.services))
                if found
                else ()
            )
            if found is not None and organisation_id in sides:
                return found
            raise NotFoundError(
                f"no referral {referral_id!r} of {referrer!r} made by or sent to your organisation"
            )
        own = state.referrals.get((organisation_id, referral_id))
        received = (
            []
            if own
            else [
                state.referrals[k] for k in state.received.get((organisation_id, referral_id), ())
            ]
        )
        return rules.choose_referral(organisation_id, referral_id, own, received)

    def answer_key(self, organisation_id: str, item: BatchItem, state: State) -> IdempotencyKey:
        """Under which key an item's first answer is remembered for its replays. A status change
        is keyed by the caller and the referral (referrer and id): each side retries its own
        changes; one status per key is enough because no status is reached twice. Raises the
        404 or 409 of a referral the caller cannot name."""
        if isinstance(item, ReferralStatusItem):
            referrer = self.visible(
                organisation_id, item.referral_id, item.referring_organisation_id, state
            ).organisation_id
            return (
                organisation_id,
                item.kind,
                f"{referrer}/{item.referral_id}:{item.body.status}",
            )
        if isinstance(item, ReferralItem):
            return (organisation_id, item.kind, item.body.referral_id)
        if isinstance(item, TrainingItem):
            return (organisation_id, item.kind, item.body.training_id)
        return (organisation_id, item.kind, item.body.measurement_id)

    def decide(self, item: BatchItem, state: State, context: Context) -> Decision:
        key = self.answer_key(context.organisation_id, item, state)
        digest = context.digest(key, item.body)
        if (replay := replayed(state.remembered, key, digest)) is not None:
            return replay
        remember = (key, digest)
        if isinstance(item, ReferralItem):
            return self._referral(item, state, context, remember)
        if isinstance(item, ReferralStatusItem):
            return self._status(item, state, context, remember)
        if isinstance(item, TrainingItem):
            return self._training(item, context, remember)
        return self._measurement(item, context, remember)

    def evolve(self, state: State, event: CloudEvent[Any]) -> None:
        e = event.data
        if isinstance(e, ReferralCreated):
            key = (e.organisation_id, e.referral_id)
            state.referrals.put(
                key,
                Referral(
                    organisation_id=e.organisation_id,
                    referral_id=e.referral_id,
                    participant_id=e.participant.id,
                    referrer_role=e.referrer_role,
                    signals=e.signals,
                    referred_to_organisation_id=e.referred_to.organisation_id,
                    referred_to_activity_id=e.referred_to.activity_id,
                    referred_to_service=e.referred_to.service,
                    receiving_organisation_id=e.receiving_organisation_id,
                    created_at=e.created_at,
                    status="created",
                    status_changed_at=e.created_at,
                    status_sequence=1,
                ),
            )
            state.history.put(
                (*key, "created"),
                StatusChange(
                    organisation_id=e.organisation_id,
                    referral_id=e.referral_id,
                    status="created",
                    previous_status=None,
                    at=e.created_at,
                    changed_by=e.organisation_id,
                    outcome=None,
                    event_id=event.id,
                    sequence=1,
                ),
            )
            receiver = e.receiving_organisation_id
            if receiver is not None and receiver != e.organisation_id:
                state.received.setdefault((receiver, e.referral_id), []).append(key)
        elif isinstance(e, ReferralStatusChanged):
            key = (e.organisation_id, e.referral_id)
            state.referrals.put(
                key,
                replace(
                    state.referrals[key],
                    status=e.status,
                    status_changed_at=e.at,
                    status_sequence=e.sequence,
                ),
            )
            state.history.put(
                (*key, e.status),
                StatusChange(
                    organisation_id=e.organisation_id,
                    referral_id=e.referral_id,
                    status=e.status,
                    previous_status=e.previous_status,
                    at=e.at,
                    changed_by=e.changed_by,
                    outcome=e.outcome,
                    event_id=event.id,
                    sequence=e.sequence,
                ),
            )
        elif isinstance(e, ReferralFirstAttended):
            key = (e.organisation_id, e.referral_id)
            referral = state.referrals[key]
            state.referrals.put(
                key,
                replace(referral, first_attended_on=e.attended_on, status_sequence=e.sequence),
            )
            # A milestone, not a status: the referral keeps its status; the history shows when
            # the resident first attended (the session's day, at midnight in Amsterdam).
            state.history.put(
                (*key, FIRST_ATTENDANCE),
                StatusChange(
                    organisation_id=e.organisation_id,
                    referral_id=e.referral_id,
                    status=FIRST_ATTENDANCE,
                    previous_status=referral.status,
                    at=datetime.combine(e.attended_on, time(), AMSTERDAM),
                    changed_by=e.receiving_organisation_id,
                    outcome=None,
                    event_id=event.id,
                    sequence=e.sequence,
                ),
            )
        elif isinstance(e, TrainingCompleted):
            state.trainings.put(
                (e.organisation_id, e.training_id),
                Training(
                    organisation_id=e.organisation_id,
                    training_id=e.training_id,
                    person_id=e.person_id,
                    role=e.role,
                    training=e.training,
                    completed_at=e.completed_at,
                ),
            )
        elif isinstance(e, MeasurementRecorded):
            state.measurements.put(
                (e.organisation_id, e.measurement_id),
                Measurement(
                    organisation_id=e.organisation_id,
                    measurement_id=e.measurement_id,
                    instrument=e.instrument,
                    context=e.context,
                    participant_id=e.participant_id,
                    neighbourhood=e.neighbourhood,
                    age_band=e.age_band,
                    measured_at=e.measured_at,
                    total=e.total,
                    emotional=e.emotional,
                    social=e.social,
                    category=e.category,
                ),
            )

    # ---------------------------------------------------------------------------- the kinds

    def _referral(
        self, item: ReferralItem, state: State, context: Context, remember: Any
    ) -> Decision:
        """A referral (status `created`), made with the resident's consent."""
        org, cmd = context.organisation_id, item.body
        to = cmd.referred_to
        receiver = rules.receiving_organisation(org, to, self.reference.services)
        if to.organisation_id is not None and not state.organisations.get(to.organisation_id):
            raise FieldError(
                [
                    (
                        "referred_to.organisation_id",
                        f"no registered partner organisation {to.organisation_id!r}; "
                        "use the organisation id the platform gave that partner",
                    )
                ]
            )
        event = context.event(
            ReferralCreated(
                organisation_id=org,
                referral_id=cmd.referral_id,
                participant=participant_of(cmd.participant, org, context.pseudonymiser),
                referrer_role=cmd.referrer_role,
                signals=tuple(cmd.signals),
                referred_to=ReferredTo(
                    organisation_id=to.organisation_id,
                    activity_id=to.activity_id,
                    service=to.service,
                ),
                receiving_organisation_id=receiver,
                created_at=cmd.created_at,
            )
        )
        body = {"referral_id": cmd.referral_id, "status": "created", "event_id": str(event.id)}
        return Decision(201, body, (event,), remember=remember)

    def _status(
        self, item: ReferralStatusItem, state: State, context: Context, remember: Any
    ) -> Decision:
        """Move a referral in its lifecycle: the receiving side accepts, declines, marks
        contacted and closes; the referring organisation withdraws (403 for the other side)."""
        org, cmd = context.organisation_id, item.body
        referral = self.visible(org, item.referral_id, item.referring_organisation_id, state)
        referrer = referral.organisation_id
        receiver = receiver_of(referral, self.reference.services)
        rules.check_may_change(cmd.status, org, referrer, receiver)
        lifecycle.check_transition(referral.status, cmd.status)
        # The last change is never before the creation, so one comparison covers both.
        if cmd.at < referral.status_changed_at:
            last = (
                "the referral was made"
                if referral.status == "created"
                else f"the referral's last change, to {referral.status!r}"
            )
            raise FieldError(
                [("at", f"lies before {last} ({referral.status_changed_at.isoformat()})")]
            )
        event = context.event(
            ReferralStatusChanged(
                organisation_id=referrer,
                referral_id=item.referral_id,
                participant_id=referral.participant_id,
                changed_by=org,
                previous_status=referral.status,  # type: ignore[arg-type]
                status=cmd.status,
                at=cmd.at,
                sequence=referral.status_sequence + 1,
                outcome=cmd.outcome,
            )
        )
        body = {
            "referral_id": item.referral_id,
            "organisation_id": referrer,
            "status": cmd.status,
            "previous_status": referral.status,
            "event_id": str(event.id),
        }
        return Decision(201, body, (event,), remember=remember)

    def _training(self, item: TrainingItem, context: Context, remember: Any) -> Decision:
        """A person of the organisation completed a training; the person becomes a pseudonym."""
        org, cmd = context.organisation_id, item.body
        event = context.event(
            TrainingCompleted(
                organisation_id=org,
                training_id=cmd.training_id,
                person_id=context.pseudonymiser.person(org, cmd.person_ref),
                role=cmd.role,
                training=cmd.training,
                completed_at=cmd.completed_at,
            )
        )
        body = {"training_id": cmd.training_id, "status": "recorded", "event_id": str(event.id)}
        return Decision(201, body, (event,), remember=remember)

    def _measurement(self, item: MeasurementItem, context: Context, remember: Any) -> Decision:
        """A De Jong Gierveld questionnaire, scored; the scores are kept, never the answers."""
        org, cmd = context.organisation_id, item.body
        scored = self._score(item)
        p = cmd.participant
        participant_id = (
            None
            if p.ref is None
            else participant_of(
                ParticipantIn.model_validate(p.model_dump()), org, context.pseudonymiser
            ).id
        )
        event = context.event(
            MeasurementRecorded(
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
        )
        body = {
            "measurement_id": cmd.measurement_id,
            "status": "recorded",
            **_scores(scored),
            "event_id": str(event.id),
        }
        return Decision(201, body, (event,), remember=remember)
