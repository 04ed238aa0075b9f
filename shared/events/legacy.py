"""Earlier major versions of event types that are still on the topics, and how each becomes the
current version when it is decoded (upcasting).

Events are kept forever and rebuilds replay them, so an event once published must decode for
good. Where a field's meaning changed, the type got a new major version; the old version is
described here exactly as it was published, and :func:`upcast` says what it means in the terms of
the current one. A consumer therefore only ever sees current versions.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from shared.events.envelope import EventData, register_legacy
from shared.events.models import (
    ID,
    ORG,
    PSEUDONYM,
    Participant,
    ReferralCreated,
    ReferralStatus,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCreated,
    Slug,
)
from shared.events.topics import Topic

__all__ = ["ReferralCreatedV1", "ReferralStatusChangedV1", "RegistrationCreatedV1"]


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
    referred_to: ReferredTo
    created_at: AwareDatetime

    def upcast(self) -> ReferralCreated:
        # An activity's organisation receives the referral. A service's provider comes from the
        # service list, which is configuration: consumers that need it resolve it themselves.
        return ReferralCreated(
            **self.model_dump(), receiving_organisation_id=self.referred_to.organisation_id
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
            **self.model_dump(), sequence=_DEPTH_AFTER.get(self.previous_status, 0)
        )
