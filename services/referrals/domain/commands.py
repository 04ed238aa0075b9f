"""What referrers, trainers and questionnaire systems ask the referrals service to do.

These models are the contract's request bodies (contract.md "referrals service"). Unknown fields
are rejected. Checks that need the reference lists or the stored state live in ``rules`` and
the handlers, so that every offending field is named with a message a partner can act on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.commands import Command as _Command
from shared.commands import Id, ParticipantIn, Ref
from shared.identifiers import ORGANISATION_ID_PATTERN
from shared.minimisation import Code, lives_alone_ignored

__all__ = [
    "CONSENT_REQUIRED",
    "Instrument",
    "MeasurementCommand",
    "MeasurementContext",
    "MeasurementParticipantIn",
    "ParticipantIn",
    "ReferralCommand",
    "ReferredToIn",
    "StatusCommand",
    "TargetStatus",
    "TrainingCommand",
]

OrganisationId = Annotated[str, StringConstraints(pattern=ORGANISATION_ID_PATTERN)]

TargetStatus = Literal["accepted", "declined", "contacted", "withdrawn", "closed"]
Instrument = Literal["djg11", "djg6"]
MeasurementContext = Literal["intake", "follow_up", "survey"]
AnswerIn = Literal["no", "more_or_less", "yes"] | None

CONSENT_REQUIRED = (
    'a referral needs the resident\'s consent: send `"consent": true` once the resident has '
    "agreed; without consent nothing is recorded"
)


class MeasurementParticipantIn(_Command):
    """Who answered a questionnaire. Without `ref` the answer is anonymous (surveys only)."""

    ref: Ref | None = Field(
        None,
        description="The partner's participant reference; required for `intake` and "
        "`follow_up`, optional for `survey` (without it the measurement is anonymous).",
    )
    resident_token: Ref | None = Field(
        None,
        description="Coalition-wide resident token; only together with `ref`, because an "
        "anonymous measurement carries nothing that identifies the resident.",
    )
    neighbourhood: str = Field(description="One of the municipality's neighbourhoods.")
    age_band: str = Field(description="`0-15`, `16-25`, `26-64`, `65-74`, `75+` or `unknown`.")
    lives_alone: bool | None = lives_alone_ignored()


class ReferredToIn(_Command):
    """Where the resident is referred: `{"activity_id", "organisation_id"}` (an activity of a
    registered partner organisation) or `{"service"}` (help outside the partner activities)."""

    activity_id: Id | None = Field(None, description="The activity, as its organisation names it.")
    organisation_id: OrganisationId | None = Field(
        None, description="The registered partner organisation that runs the activity."
    )
    service: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = Field(None, description="A service, e.g. `buddy-programme` or `social-work-intake`.")


class ReferralCommand(_Command):
    """A professional or volunteer recorded a signal of loneliness and referred a resident."""

    referral_id: Id = Field(description="Your id for the referral, unique in your organisation.")
    participant: ParticipantIn
    referrer_role: str = Field(description="`gp`, `poh-ggz`, `district-nurse`, ... (domain.md §4).")
    signals: list[str] = Field(
        min_length=1,
        max_length=20,
        description="The signals seen, each once: `emotional`, `social`, `practical`, `health`, "
        "`other`.",
    )
    referred_to: ReferredToIn
    consent: Literal[True] = Field(
        description="The resident agreed to the referral. Must be `true`: a referral without "
        "recorded consent is rejected (domain.md §3)."
    )
    created_at: AwareDatetime = Field(description="When the referral was made, with UTC offset.")

    @model_validator(mode="before")
    @classmethod
    def _consent_is_named_when_missing(cls, data: Any) -> Any:
        # Without this a missing consent would only say "required field is missing"; the
        # partner should learn why it is required. The field validator below then rejects it.
        if isinstance(data, dict) and "consent" not in data:
            return {**data, "consent": None}
        return data

    @field_validator("consent", mode="before")
    @classmethod
    def _consent_is_literally_true(cls, value: Any) -> Any:
        # Literally `true`: "yes", 1 or "true" could be a partner's misread field, not consent.
        if value is not True:
            raise PydanticCustomError("consent_required", CONSENT_REQUIRED)
        return value


class StatusCommand(_Command):
    """A referral moved in its lifecycle: created → accepted | declined | withdrawn;
    accepted → contacted | withdrawn | closed; contacted → closed | withdrawn."""

    status: TargetStatus = Field(description="The new status.")
    at: AwareDatetime = Field(
        description="When it changed; not before the referral nor before its last change."
    )
    outcome: Code | None = Field(
        None,
        description="A code of the reference list `referral_outcomes` (e.g. `joined-activity`, "
        "`no-contact-possible`, `other`); free text is not accepted.",
    )


class TrainingCommand(_Command):
    """A professional or volunteer completed a training in recognising loneliness."""

    training_id: Id = Field(description="Your id for this completion, unique in your organisation.")
    person_ref: Ref = Field(
        description="Your reference for the trained person; pseudonymised on arrival, never "
        "stored. The same person keeps the same reference, so that people are counted once."
    )
    role: str = Field(description="The person's role: `gp`, `poh-ggz`, `volunteer`, ...")
    training: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$"
        ),
    ] = Field(
        description="Short code of the training, e.g. `signaling-loneliness` (lowercase letters, "
        "digits, `.`, `_`, `-`)."
    )
    completed_at: AwareDatetime = Field(description="When it was completed, with UTC offset.")


class MeasurementCommand(_Command):
    """One De Jong Gierveld questionnaire. Only the scores are kept; the answers are not."""

    measurement_id: Id = Field(description="Your id, unique in your organisation.")
    instrument: Instrument = Field(description="`djg11` (11 items) or `djg6` (6 items).")
    context: MeasurementContext = Field(
        description="`intake` (at referral), `follow_up` or `survey` (population survey)."
    )
    participant: MeasurementParticipantIn
    answers: list[AnswerIn] = Field(
        max_length=50,
        description="One answer per item in item order (djg6: items 3, 4, 7, 8, 9, 10 of the "
        "11-item scale): `no`, `more_or_less`, `yes`, or null for an unanswered item.",
    )
    measured_at: AwareDatetime = Field(description="When it was answered, with UTC offset.")
