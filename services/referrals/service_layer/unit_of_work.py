"""The referrals service's unit of work: its repositories, each a small role."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Protocol

from services.referrals.domain.decide import Key, Measurement, Referral, StatusChange, Training
from services.referrals.service_layer.webhooks import WebhookRecords
from shared.pipeline.unit_of_work import AbstractUnitOfWork
from shared.referral_matching import AttendedSession, NamingRegistration

__all__ = [
    "AttendanceRecords",
    "MeasurementRecords",
    "Organisations",
    "ReferralRecords",
    "ReferralsUnitOfWork",
    "TrainingRecords",
]


class ReferralRecords(Protocol):
    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Referral]:
        """The referrals with these (referrer, id) keys; ``lock``: until the transaction ends."""
        ...

    async def received(
        self,
        organisation_id: str,
        referral_ids: Collection[str],
        services: Collection[str],
        *,
        lock: bool = False,
    ) -> list[Referral]:
        """Referrals with these ids that other organisations sent to ``organisation_id`` (its
        receiving side; ``services``: those it provides, for referrals made before the
        receiving side was recorded)."""
        ...

    async def history(self, organisation_id: str, referral_id: str) -> list[StatusChange]: ...

    async def feed(
        self,
        organisation_id: str,
        services: Collection[str],
        after: tuple[int, int],
        limit: int,
    ) -> list[tuple[Referral, tuple[int, int], dict[str, str], str | None]]:
        """Referrals the organisation sent or received, changed after the position ``after``,
        in change order, with their position, history moments and current outcome."""
        ...


class Organisations(Protocol):
    async def registered(self, organisation_ids: Collection[str]) -> set[str]:
        """Those of ``organisation_ids`` that are registered partner organisations."""
        ...


class TrainingRecords(Protocol):
    async def load(self, keys: Collection[Key]) -> dict[Key, Training]: ...


class MeasurementRecords(Protocol):
    async def load(self, keys: Collection[Key]) -> dict[Key, Measurement]: ...


Attendee = tuple[str, str, str]  # (organisation, activity, participant pseudonym)


class AttendanceRecords(Protocol):
    """What the first-attendance consumer keeps to match (domain/first_attendance.py)."""

    async def serialise(self) -> None:
        """Until the transaction ends, no other consumer batch decides first attendances."""
        ...

    async def named_by_attendee(
        self, attendees: Collection[Attendee]
    ) -> list[NamingRegistration]: ...

    async def named_by_referral(
        self, organisation_id: str, referral_ids: Collection[str]
    ) -> list[NamingRegistration]:
        """Registrations at ``organisation_id`` that name one of these referral ids."""
        ...

    async def sessions_by_attendee(
        self, attendees: Collection[Attendee]
    ) -> list[AttendedSession]: ...

    async def erase(self, erased: Sequence[tuple[str, datetime]]) -> None:
        """Delete what is kept about these erased (subject id, when) and remember them."""
        ...

    async def erased(self, subjects: Collection[str]) -> set[str]:
        """Those of ``subjects`` that were erased: their events are skipped."""
        ...

    async def forget(self, before: date) -> tuple[int, int]:
        """Delete what is no longer needed (docs/privacy.md); how many registrations and
        sessions went."""
        ...


class ReferralsUnitOfWork(AbstractUnitOfWork):
    referrals: ReferralRecords
    organisations: Organisations
    trainings: TrainingRecords
    measurements: MeasurementRecords
    attendance: AttendanceRecords
    webhooks: WebhookRecords
