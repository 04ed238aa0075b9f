"""The registrations service's unit of work: its repositories, each a small role."""

from __future__ import annotations

import abc
from collections.abc import Collection
from typing import Protocol

from services.registrations.domain.decide import Activity, Key, Registration
from shared.auth import ApiKey, KeyInfo
from shared.pipeline.decisions import IdempotencyKey, Remembered
from shared.pipeline.unit_of_work import AbstractUnitOfWork

__all__ = [
    "ActivityRecords",
    "AttendanceRecords",
    "RegistrationRecords",
    "RegistrationsUnitOfWork",
    "VolunteerKeys",
]


class ActivityRecords(Protocol):
    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Activity]:
        """The activities with these keys that exist; ``lock``: until the transaction ends."""
        ...

    async def of_organisation(self, organisation_id: str) -> list[Activity]:
        """Every activity of the organisation, active ones first, then by title and id."""
        ...


class RegistrationRecords(Protocol):
    async def load(
        self, keys: Collection[Key], *, lock: bool = False
    ) -> dict[Key, Registration]: ...


class AttendanceRecords(Protocol):
    async def statuses(
        self, organisation_id: str, attendance_ids: Collection[str]
    ) -> dict[str, str]:
        """The recorded status (`attended`, `no_show`) of these attendance ids, where recorded."""
        ...


class VolunteerKeys(Protocol):
    """An organisation's keys for its volunteers (scope `attendance` only), in ``platform``."""

    async def issue(
        self, organisation_id: str, label: str | None, created_by: str | None
    ) -> tuple[ApiKey, KeyInfo]: ...

    async def of_organisation(self, organisation_id: str) -> list[KeyInfo]: ...

    async def revoke(self, organisation_id: str, key_id: str) -> bool: ...


class RegistrationsUnitOfWork(AbstractUnitOfWork):
    activities: ActivityRecords
    registrations: RegistrationRecords
    attendance: AttendanceRecords
    keys: VolunteerKeys

    @abc.abstractmethod
    async def activities_and_answers(
        self, keys: Collection[Key], answers: Collection[IdempotencyKey]
    ) -> tuple[dict[Key, Activity], dict[IdempotencyKey, Remembered]]:
        """Activities (not locked) and the answers remembered under ``answers``, in one read
        (one snapshot): all a registration or attendance needs, which changes no record it
        loads. (Where a write changes a record, that record is locked and loaded first, then the
        answers: ``remembered.load``.)"""
