"""Earlier major versions of event types that are still on the topics, and how each becomes the
current version when it is decoded (upcasting).

Events are kept forever and rebuilds replay them, so an event once published must decode for
good. Where a field's meaning changed, the type got a new major version; the old version is
described here exactly as it was published, and :func:`upcast` says what it means in the terms of
the current one. A consumer therefore only ever sees current versions.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.envelope import EventData, register_legacy
from shared.events.models import (
    CODE_PATTERN,
    ID,
    ORG,
    PSEUDONYM,
    UNCODED,
    Participant,
    ReferralCreated,
    ReferralStatus,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCancelled,
    RegistrationCreated,
    Slug,
)
from shared.events.topics import Topic
from shared.identifiers import ORGANISATION_ID_PATTERN

__all__ = [
    "ReferralCreatedV1",
    "ReferralStatusChangedV1",
    "ReferralStatusChangedV2",
    "RegistrationCancelledV1",
    "RegistrationCreatedV1",
]


def _coded(note: str | None) -> str | None:
    """An earlier free-text note as a code: `other` if there was one. The text itself is never
    carried over (docs/privacy.md "Minimisation"): it may hold a name or a health detail."""
    return UNCODED if note else None


@register_legacy
class RegistrationCreatedV1(EventData):
    """v1 named a referral by its id alone."""

    event_name: ClassVar[str] = "registration.created"
    major: ClassVar[int] = 1
    topic: ClassVar[Topic] = Topic.REGISTRATIONS

    organisation_id: str = ORG
    registration_id: str = ID
    activity_id: str = ID
    participant: Participant
    registered_at: AwareDatetime
    referral_id: str | None = Field(None, max_length=128)

    def upcast(self) -> RegistrationCreated:
        # The referrer is not known: the referral is matched among those sent to the registering
        # organisation, the rule of v2 for a registration that leaves the referrer out.
        return RegistrationCreated(**self.model_dump())


@register_legacy
class RegistrationCancelledV1(EventData):
    """v1 carried a free-text `reason`."""

    event_name: ClassVar[str] = "registration.cancelled"
    major: ClassVar[int] = 1
    topic: ClassVar[Topic] = Topic.REGISTRATIONS

    organisation_id: str = ORG
    registration_id: str = ID
    activity_id: str = ID
    participant_id: str = PSEUDONYM
    cancelled_at: AwareDatetime
    reason: str | None = Field(None, max_length=500)

    def upcast(self) -> RegistrationCancelled:
        return RegistrationCancelled(
            **self.model_dump(exclude={"reason"}), reason=_coded(self.reason)
        )


class ReferredToV1(BaseModel):
    """v1's destination: `service` was not yet a code of the service list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organisation_id: str | None = Field(None, pattern=ORGANISATION_ID_PATTERN)
    activity_id: str | None = Field(None, max_length=128)
    service: str | None = Field(None, max_length=200)

    def current(self) -> ReferredTo:
        service = self.service
        if service is not None and not re.fullmatch(CODE_PATTERN, service):
            service = UNCODED  # a free-text service name is not carried over
        return ReferredTo(
            organisation_id=self.organisation_id, activity_id=self.activity_id, service=service
        )


@register_legacy
class ReferralCreatedV1(EventData):
    """v1 did not name the receiving organisation."""

    event_name: ClassVar[str] = "referral.created"
    major: ClassVar[int] = 1
    topic: ClassVar[Topic] = Topic.REFERRALS

    organisation_id: str = ORG
    referral_id: str = ID
    participant: Participant
    referrer_role: str = Slug
    signals: tuple[str, ...] = Field(min_length=1)
    referred_to: ReferredToV1
    created_at: AwareDatetime

    def upcast(self) -> ReferralCreated:
        # An activity's organisation receives the referral. A service's provider comes from the
        # service list, which is configuration: consumers that need it resolve it themselves.
        return ReferralCreated(
            **self.model_dump(exclude={"referred_to"}),
            referred_to=self.referred_to.current(),
            receiving_organisation_id=self.referred_to.organisation_id,
        )


# v1 changes carry no arrival order. The lifecycle only moves forward and never reaches a status
# twice, so how deep the previous status lies in it orders a referral's changes as they were made.
_DEPTH_AFTER: dict[str, int] = {"created": 1, "accepted": 2, "contacted": 3}


@register_legacy
class ReferralStatusChangedV1(EventData):
    """v1 had no `sequence`: changes with equal `at` could not be ordered."""

    event_name: ClassVar[str] = "referral.status_changed"
    major: ClassVar[int] = 1
    topic: ClassVar[Topic] = Topic.REFERRALS

    organisation_id: str = ORG
    referral_id: str = ID
    participant_id: str = PSEUDONYM
    changed_by: str = ORG
    previous_status: ReferralStatus
    status: ReferralStatus
    at: AwareDatetime
    outcome: str | None = Field(None, max_length=500)

    def upcast(self) -> ReferralStatusChanged:
        return ReferralStatusChanged(
            **self.model_dump(exclude={"outcome"}),
            sequence=_DEPTH_AFTER.get(self.previous_status, 0),
            outcome=_coded(self.outcome),
        )


@register_legacy
class ReferralStatusChangedV2(ReferralStatusChangedV1):
    """v2 added `sequence`; its `outcome` was still free text."""

    major: ClassVar[int] = 2

    sequence: int = Field(ge=0)

    def upcast(self) -> ReferralStatusChanged:
        return ReferralStatusChanged(
            **self.model_dump(exclude={"outcome"}), outcome=_coded(self.outcome)
        )
