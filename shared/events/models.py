"""Every event type of the contract, as frozen pydantic models (the ``data`` of a CloudEvent).

Names are past tense: they say what happened. Field descriptions flow into AsyncAPI.
Participants travel only as a pseudonym plus coarse attributes (domain.md §3).

No free text travels on Kafka (domain.md §3, docs/privacy.md "Minimisation"): every string field
is an id, a code from a reference list, a moment or an enumeration, each with a pattern or a
closed set of values. tests/unit/test_event_minimisation.py walks every event schema and fails on
a string field without one (the few exceptions are listed there, each with its reason).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.events.envelope import EventData, register
from shared.events.topics import Topic
from shared.identifiers import ORGANISATION_ID_PATTERN

__all__ = [
    "CODE_PATTERN",
    "UNCODED",
    "ActivityUpserted",
    "AttendanceRecorded",
    "DeadLettered",
    "MeasurementRecorded",
    "Participant",
    "PersonErased",
    "ReferralCreated",
    "ReferralFirstAttended",
    "ReferralStatusChanged",
    "ReferredTo",
    "RegistrationCancelled",
    "RegistrationCreated",
    "TrainingCompleted",
]

Pseudonym = str
PSEUDONYM = Field(
    pattern=r"^[0-9a-f]{64}$",
    description="The person's subject id: 64 random hex digits per person and writing service, "
    "which nothing links to the person once they are erased (docs/privacy.md section 5). Events "
    "of earlier versions carry an HMAC-SHA256 pseudonym of the same shape.",
)
ORG = Field(pattern=ORGANISATION_ID_PATTERN, description="Organisation id.")
# A partner's id: the commands refuse whitespace and `/` (services' ``Id``), so an id cannot
# carry a sentence.
ID_PATTERN = r"^[^\s/]+$"
ID = Field(
    min_length=1,
    max_length=128,
    pattern=ID_PATTERN,
    description="The partner's id, unique in its organisation.",
)
# A code of a reference list (neighbourhood, age band, category, role, signal, reason, outcome):
# lowercase letters, digits and `+._-` only.
CODE_PATTERN = r"^[a-z0-9][a-z0-9+._-]*$"
Slug = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
# What an earlier free-text note becomes when its event is upcast: the text is not carried over.
UNCODED = "other"


class Participant(BaseModel):
    """A participant as the platform knows them: a pseudonym and coarse attributes only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Pseudonym = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Resident pseudonym when the partner sent a resident token (counts one "
        "person once across organisations), else the organisation-scoped pseudonym.",
    )
    scope: Literal["resident", "organisation"] = Field(description="Which pseudonym `id` is.")
    neighbourhood: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    age_band: str = Field(min_length=1, max_length=16, pattern=CODE_PATTERN)

    @model_validator(mode="before")
    @classmethod
    def _drop_lives_alone(cls, data: Any) -> Any:
        # Events published before minimisation carry `lives_alone`, which no indicator used; it
        # is no longer published, and dropped when an old event is decoded (docs/privacy.md).
        if isinstance(data, dict) and "lives_alone" in data:
            data = {k: v for k, v in data.items() if k != "lives_alone"}
        return data


@register
class ActivityUpserted(EventData):
    """An activity was created or changed (the whole new state)."""

    event_name: ClassVar[str] = "activity.upserted"
    topic: ClassVar[Topic] = Topic.ACTIVITIES

    organisation_id: str = ORG
    activity_id: str = ID
    version: int = Field(
        ge=1,
        description="Increases with every change. Each version is in force from `updated_at` "
        "until the next version's: a session counts with the version in force at its start "
        "(before the first version: the first), so a change never rewrites earlier periods.",
    )
    title: str = Field(max_length=200)
    category: str = Slug
    aimed_at_connection: bool = Field(description="Aimed at meeting people / less loneliness.")
    neighbourhood: str = Slug
    capacity: int | None = Field(None, ge=0)
    target_age_bands: tuple[Annotated[str, StringConstraints(pattern=CODE_PATTERN)], ...] = ()
    active: bool = True
    updated_at: AwareDatetime = Field(description="When the platform accepted this version.")

    def partition_key(self) -> str:
        return f"{self.organisation_id}:{self.activity_id}"


@register
class RegistrationCreated(EventData):
    """A participant registered for an activity.

    v2: a referral is named by (referring organisation, referral id); v1 named the id alone,
    which any referrer's referral with that id matched (v1 events are upcast on decoding)."""

    event_name: ClassVar[str] = "registration.created"
    major: ClassVar[int] = 2
    topic: ClassVar[Topic] = Topic.REGISTRATIONS

    organisation_id: str = ORG
    registration_id: str = ID
    activity_id: str = ID
    participant: Participant
    registered_at: AwareDatetime
    referral_id: str | None = Field(
        None,
        max_length=128,
        pattern=ID_PATTERN,
        description="The referral that led here, as the referring organisation wrote its id.",
    )
    referring_organisation_id: str | None = Field(
        None,
        pattern=ORGANISATION_ID_PATTERN,
        description="The organisation that wrote the referral. Absent only when the registering "
        "organisation is the one the referral was sent to and left it out: the referral is then "
        "the one with `referral_id` sent to it, if there is exactly one.",
    )

    @model_validator(mode="after")
    def _referrer_names_a_referral(self) -> RegistrationCreated:
        if self.referring_organisation_id is not None and self.referral_id is None:
            raise ValueError("referring_organisation_id names the referrer of `referral_id`")
        return self

    def partition_key(self) -> str:
        return self.participant.id

    def subject(self) -> str | None:
        return self.participant.id


@register
class RegistrationCancelled(EventData):
    """A registration was cancelled.

    v2: `reason` is a code of the reference list `cancellation_reasons`; v1 carried free text,
    which is not carried over when a v1 event is upcast (it becomes `other`)."""

    event_name: ClassVar[str] = "registration.cancelled"
    major: ClassVar[int] = 2
    topic: ClassVar[Topic] = Topic.REGISTRATIONS

    organisation_id: str = ORG
    registration_id: str = ID
    activity_id: str = ID
    participant_id: Pseudonym = PSEUDONYM
    cancelled_at: AwareDatetime
    reason: str | None = Field(
        None,
        max_length=64,
        pattern=CODE_PATTERN,
        description="A code of the reference list `cancellation_reasons`; never free text.",
    )

    def partition_key(self) -> str:
        return self.participant_id

    def subject(self) -> str | None:
        return self.participant_id


@register
class AttendanceRecorded(EventData):
    """A participant attended a session, or did not show up."""

    event_name: ClassVar[str] = "attendance.recorded"
    topic: ClassVar[Topic] = Topic.REGISTRATIONS

    organisation_id: str = ORG
    attendance_id: str = ID
    activity_id: str = ID
    participant: Participant
    session_start: AwareDatetime = Field(description="Local date-time with its UTC offset.")
    session_date: date = Field(description="The session's date in Europe/Amsterdam.")
    status: Literal["attended", "no_show"]

    def partition_key(self) -> str:
        return self.participant.id

    def subject(self) -> str | None:
        return self.participant.id


class ReferredTo(BaseModel):
    """An activity of a partner organisation, or a service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organisation_id: str | None = Field(None, pattern=ORGANISATION_ID_PATTERN)
    activity_id: str | None = Field(None, max_length=128, pattern=ID_PATTERN)
    service: str | None = Field(None, max_length=200, pattern=CODE_PATTERN)


ReferralStatus = Literal["created", "accepted", "declined", "withdrawn", "contacted", "closed"]


@register
class ReferralCreated(EventData):
    """A professional or volunteer recorded a signal and referred a resident (with consent).

    A referral is identified by (`organisation_id`, `referral_id`): ids are unique per referring
    organisation only. v2 adds the receiving organisation (v1 events are upcast on decoding)."""

    event_name: ClassVar[str] = "referral.created"
    major: ClassVar[int] = 2
    topic: ClassVar[Topic] = Topic.REFERRALS

    organisation_id: str = Field(
        pattern=ORGANISATION_ID_PATTERN, description="The referring organisation."
    )
    referral_id: str = ID
    participant: Participant
    referrer_role: str = Slug
    signals: tuple[Annotated[str, StringConstraints(pattern=CODE_PATTERN)], ...] = Field(
        min_length=1
    )
    referred_to: ReferredTo
    receiving_organisation_id: str | None = Field(
        None,
        pattern=ORGANISATION_ID_PATTERN,
        description="The receiving side, which accepts, declines, contacts and closes: the "
        "organisation referred to, or the provider of the service (the coalition's service "
        "list); the referrer itself when it referred to its own activity. Absent only on a "
        "referral to a service recorded as v1, before the service list.",
    )
    created_at: AwareDatetime

    def partition_key(self) -> str:
        return self.participant.id

    def subject(self) -> str | None:
        return self.participant.id


@register
class ReferralStatusChanged(EventData):
    """A referral moved in its lifecycle.

    The order of a referral's changes is (`at`, `sequence`): two changes can carry the same `at`.
    v2 adds `sequence`; v3 makes `outcome` a code of the reference list `referral_outcomes`
    (v1 and v2 events are upcast on decoding; their free-text outcome becomes `other`)."""

    event_name: ClassVar[str] = "referral.status_changed"
    major: ClassVar[int] = 3
    topic: ClassVar[Topic] = Topic.REFERRALS

    organisation_id: str = Field(
        pattern=ORGANISATION_ID_PATTERN, description="The referring organisation."
    )
    referral_id: str = ID
    participant_id: Pseudonym = PSEUDONYM
    changed_by: str = Field(
        pattern=ORGANISATION_ID_PATTERN, description="Organisation that made the change."
    )
    previous_status: ReferralStatus
    status: ReferralStatus
    at: AwareDatetime
    sequence: int = Field(
        ge=0,
        description="Arrival order of the change at the referrals service: of two changes of "
        "one referral, the one with the higher `sequence` was made later.",
    )
    outcome: str | None = Field(
        None,
        max_length=64,
        pattern=CODE_PATTERN,
        description="A code of the reference list `referral_outcomes`; never free text.",
    )

    def partition_key(self) -> str:
        return self.participant_id

    def subject(self) -> str | None:
        return self.participant_id


@register
class ReferralFirstAttended(EventData):
    """The referred resident attended a session for the first time: the referrals service saw a
    registration at the receiving side that names the referral, then an attended session of that
    registration (its activity, its participant) on or after the day of the registration and of
    the referral. Recorded once per referral, whatever the order in which the three arrived.

    Derived by the referrals service from the `registrations` topic (it never calls the
    registrations service). Keyed like the referral's other events, so that it follows them."""

    event_name: ClassVar[str] = "referral.first_attendance"
    topic: ClassVar[Topic] = Topic.REFERRALS

    organisation_id: str = Field(
        pattern=ORGANISATION_ID_PATTERN, description="The referring organisation."
    )
    referral_id: str = ID
    participant_id: Pseudonym = PSEUDONYM
    receiving_organisation_id: str = Field(
        pattern=ORGANISATION_ID_PATTERN,
        description="The receiving side, where the resident registered and attended.",
    )
    registration_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="The receiving side's registration that names the referral (its "
        "`registration.created`), which the attended session belongs to.",
    )
    activity_id: str = ID
    session_start: AwareDatetime = Field(
        description="Start of the first attended session, with its UTC offset."
    )
    referred_on: date = Field(description="The referral's day (Europe/Amsterdam).")
    attended_on: date = Field(description="The session's day (Europe/Amsterdam).")
    days_after_referral: int = Field(
        ge=0, description="`attended_on` minus `referred_on`, in days."
    )
    within_window: bool = Field(
        description="Within the conversion window of domain.md §6 (60 days from the referral's "
        "day, both ends included): the referral counts as converted. A first attendance after "
        "the window is still recorded and reported to both sides, marked false."
    )
    sequence: int = Field(
        ge=0,
        description="Place among the referral's changes (`referral.status_changed`'s "
        "`sequence`): of two changes of one referral, the higher was recorded later.",
    )

    def partition_key(self) -> str:
        return self.participant_id

    def subject(self) -> str | None:
        return self.participant_id


@register
class TrainingCompleted(EventData):
    """A professional or volunteer completed a training. Every training is published; the
    indicators count people trained in recognising signals of loneliness (configured codes)."""

    event_name: ClassVar[str] = "training.completed"
    topic: ClassVar[Topic] = Topic.TRAININGS

    organisation_id: str = ORG
    training_id: str = ID
    person_id: Pseudonym = PSEUDONYM
    role: str = Slug
    training: str = Field(min_length=1, max_length=100, pattern=CODE_PATTERN)
    completed_at: AwareDatetime

    def partition_key(self) -> str:
        return self.organisation_id


@register
class MeasurementRecorded(EventData):
    """A De Jong Gierveld questionnaire was scored. Only scores travel, not the answers."""

    event_name: ClassVar[str] = "measurement.recorded"
    topic: ClassVar[Topic] = Topic.MEASUREMENTS

    organisation_id: str = ORG
    measurement_id: str = ID
    instrument: Literal["djg11", "djg6"]
    context: Literal["intake", "follow_up", "survey"]
    participant_id: Pseudonym | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="None for an anonymous survey."
    )
    neighbourhood: str = Slug
    age_band: str = Field(min_length=1, max_length=16, pattern=CODE_PATTERN)
    measured_at: AwareDatetime
    total: int | None = Field(ge=0, le=11)
    emotional: int | None = Field(ge=0, le=6)
    social: int | None = Field(ge=0, le=5)
    category: (
        Literal["not_lonely", "moderately_lonely", "severely_lonely", "very_severely_lonely"] | None
    )

    def partition_key(self) -> str:
        return self.participant_id or f"{self.organisation_id}:{self.measurement_id}"

    def subject(self) -> str | None:
        return self.participant_id


@register
class PersonErased(EventData):
    """A person was erased on request (AVG art. 17). Every consumer deletes what it holds about
    the subject id and skips the subject's events, now and in every rebuild; the service that
    published them no longer knows whom the id stood for (docs/privacy.md "Erasure")."""

    event_name: ClassVar[str] = "person.erased"
    topic: ClassVar[Topic] = Topic.ERASURES

    subject_id: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="The subject id under which the person's events were published.",
    )
    erased_at: AwareDatetime

    def partition_key(self) -> str:
        return self.subject_id

    def subject(self) -> str | None:
        return self.subject_id


@register
class DeadLettered(EventData):
    """A message that could not be processed, with the reason and the original bytes."""

    event_name: ClassVar[str] = "deadletter"
    topic: ClassVar[Topic] = Topic.DEADLETTER

    consumer: str = Field(description="Consumer group or service that gave up on it.")
    reason: str
    origin_topic: str
    origin_partition: int | None = None
    origin_offset: int | None = None
    original_key: str | None = Field(None, description="Base64 of the original key.")
    original_value: str = Field(description="Base64 of the original bytes.")
    failed_at: AwareDatetime

    def partition_key(self) -> str:
        return f"{self.origin_topic}:{self.origin_partition}"
