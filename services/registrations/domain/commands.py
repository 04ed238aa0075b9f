"""What a partner booking system asks the registrations service to do.

These models are the contract's request bodies (contract.md "registrations service"): the HTTP
entrypoint and the Kafka ingress both validate against them. Unknown fields are rejected.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from shared.commands import Command as _Command
from shared.commands import Id, ParticipantIn
from shared.identifiers import ORGANISATION_ID_PATTERN
from shared.minimisation import Code

__all__ = [
    "ActivityCommand",
    "AttendanceCommand",
    "CancellationCommand",
    "ParticipantIn",
    "RegistrationCommand",
]


class ActivityCommand(_Command):
    """The whole state of an activity (PUT)."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    category: str = Field(description="meeting, sport, culture, learning, support-group, ...")
    aimed_at_connection: bool = Field(
        description="True when aimed at meeting people or at preventing/reducing loneliness."
    )
    neighbourhood: str
    capacity: int | None = Field(None, ge=0, le=100_000)
    target_age_bands: list[str] = Field(default_factory=list, max_length=6)
    active: bool = True


class RegistrationCommand(_Command):
    registration_id: Id
    activity_id: Id
    participant: ParticipantIn
    registered_at: AwareDatetime
    referral_id: Id | None = Field(
        None, description="The referral that led here, as written on the referral."
    )
    referring_organisation_id: (
        Annotated[str, StringConstraints(pattern=ORGANISATION_ID_PATTERN)] | None
    ) = Field(
        None,
        description="The organisation that made that referral (referral ids are unique per "
        "referring organisation only). Needed unless the referral was sent to your organisation "
        "and no other organisation sent you one with the same id.",
    )


class CancellationCommand(_Command):
    cancelled_at: AwareDatetime
    reason: Code | None = Field(
        None,
        description="A code of the reference list `cancellation_reasons` (e.g. `illness`, "
        "`transport`, `other`); free text is not accepted.",
    )


class AttendanceCommand(_Command):
    attendance_id: Id
    activity_id: Id
    session_start: AwareDatetime = Field(description="Local date-time WITH its UTC offset.")
    participant: ParticipantIn
    status: Literal["attended", "no_show"]
