"""The referrals service's unit of work: its repositories, each a small role."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from services.referrals.domain.decide import Key, Measurement, Referral, StatusChange, Training
from shared.pipeline.unit_of_work import AbstractUnitOfWork

__all__ = [
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


class Organisations(Protocol):
    async def registered(self, organisation_ids: Collection[str]) -> set[str]:
        """Those of ``organisation_ids`` that are registered partner organisations."""
        ...


class TrainingRecords(Protocol):
    async def load(self, keys: Collection[Key]) -> dict[Key, Training]: ...


class MeasurementRecords(Protocol):
    async def load(self, keys: Collection[Key]) -> dict[Key, Measurement]: ...


class ReferralsUnitOfWork(AbstractUnitOfWork):
    referrals: ReferralRecords
    organisations: Organisations
    trainings: TrainingRecords
    measurements: MeasurementRecords
