"""Which registration converts which referral, and when its first attendance counts (domain.md
§6 `referral_conversion`), written once: the referrals service records the first attendance by
it (``referral.first_attendance``). The metrics service counts conversion with SQL of its own
that states the same rule (services/metrics/adapters/year_grid.py, ``_s3``), with this module's
``CONVERSION_DAYS``; tests/integration/test_metrics_scenario.py holds the two to the same
hand-computed scenario (docs/disclosure.md, "The S3 referral funnel", says why).

A registration converts a referral when it was made at the referral's receiving side and names
it: by referring organisation and id, or by the id alone when no other organisation sent the
receiving side a referral with that id. A registration never converts another referrer's
referral. The first attendance is the earliest attended session of such a registration (its
activity, its participant) on or after the day of the registration and the day of the referral;
it converts the referral when it lies within ``CONVERSION_DAYS`` of the referral's day.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "CONVERSION_DAYS",
    "AttendedSession",
    "NamingRegistration",
    "counts_from",
    "names",
    "within_window",
]

CONVERSION_DAYS = 60  # an attended session on the referral's day up to 60 days later


@dataclass(frozen=True)
class NamingRegistration:
    """A registration that names a referral, as much of it as the rule needs."""

    organisation_id: str  # the registering organisation
    registration_id: str
    activity_id: str
    participant_id: str  # the registering organisation's pseudonym of the resident
    registered_on: date  # Europe/Amsterdam
    referral_id: str
    referring_organisation_id: str | None  # None: named by the id alone

    @property
    def attendee(self) -> tuple[str, str, str]:
        return (self.organisation_id, self.activity_id, self.participant_id)


@dataclass(frozen=True)
class AttendedSession:
    """An attended session of one participant at one activity (no-shows never count)."""

    organisation_id: str
    activity_id: str
    participant_id: str
    session_start: datetime
    session_on: date  # Europe/Amsterdam

    @property
    def attendee(self) -> tuple[str, str, str]:
        return (self.organisation_id, self.activity_id, self.participant_id)


def names(
    registration: NamingRegistration,
    referrer: str,
    referral_id: str,
    receiver: str | None,
    referrers_of_id: Collection[str],
) -> bool:
    """Whether ``registration`` names the referral (``referrer``, ``referral_id``) received by
    ``receiver``. ``referrers_of_id``: every organisation that sent ``receiver`` a referral with
    this id (the referral's own referrer among them)."""
    if receiver is None or registration.organisation_id != receiver:
        return False
    if registration.referral_id != referral_id:
        return False
    if registration.referring_organisation_id is not None:
        return registration.referring_organisation_id == referrer
    return set(referrers_of_id) <= {referrer}


def counts_from(registration: NamingRegistration, referred_on: date) -> date:
    """The first day a session of ``registration`` counts for the referral."""
    return max(registration.registered_on, referred_on)


def within_window(referred_on: date, attended_on: date) -> bool:
    """Within the conversion window: on the referral's day up to ``CONVERSION_DAYS`` later."""
    return referred_on <= attended_on <= referred_on + timedelta(days=CONVERSION_DAYS)
