"""The registrations service's unit of work on PostgreSQL (the one the bootstrap injects)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import asyncpg

from services.registrations.adapters.repository import (
    ACTIVITIES,
    SCHEMA,
    PostgresActivities,
    PostgresAttendance,
    PostgresRegistrations,
)
from services.registrations.domain.decide import Activity, Key, State
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.auth import ApiKey, KeyInfo, issue_volunteer_key, revoke_volunteer_key, volunteer_keys
from shared.pipeline.decisions import BatchState, IdempotencyKey, Remembered
from shared.pipeline.postgres import PostgresUnitOfWork
from shared.pipeline.statements import Write, read_together

__all__ = ["PostgresRegistrationsUnitOfWork", "PostgresVolunteerKeys"]


class PostgresVolunteerKeys:
    """Through the two platform functions the service's role may call (shared/auth.py)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def issue(
        self, organisation_id: str, label: str | None, created_by: str | None
    ) -> tuple[ApiKey, KeyInfo]:
        async with self.conn.transaction():
            key = await issue_volunteer_key(self.conn, organisation_id, label, created_by)
            info = next(
                k
                for k in await volunteer_keys(self.conn, organisation_id)
                if k.key_id == key.key_id
            )
        return key, info

    async def of_organisation(self, organisation_id: str) -> list[KeyInfo]:
        return await volunteer_keys(self.conn, organisation_id)

    async def revoke(self, organisation_id: str, key_id: str) -> bool:
        return await revoke_volunteer_key(self.conn, organisation_id, key_id)


class PostgresRegistrationsUnitOfWork(PostgresUnitOfWork, RegistrationsUnitOfWork):
    activities: PostgresActivities
    registrations: PostgresRegistrations
    attendance: PostgresAttendance
    keys: PostgresVolunteerKeys

    def __init__(self, conn: asyncpg.Connection, **options: Any) -> None:
        """``options``: those of :class:`PostgresUnitOfWork` (topic prefix, after commit)."""
        super().__init__(conn, SCHEMA, **options)
        self.activities = PostgresActivities(conn)
        self.registrations = PostgresRegistrations(conn)
        self.attendance = PostgresAttendance(conn)
        self.keys = PostgresVolunteerKeys(conn)

    async def activities_and_answers(
        self, keys: Collection[Key], answers: Collection[IdempotencyKey]
    ) -> tuple[dict[Key, Activity], dict[IdempotencyKey, Remembered]]:
        if not keys or not answers:
            return await self.activities.load(keys), await self.remembered.load(answers)
        activities, remembered = await read_together(
            self.conn, [ACTIVITIES.read(keys), self.remembered.read(answers)]
        )
        return ACTIVITIES.found(activities), self.remembered.found(remembered)  # type: ignore[return-value]

    def record_writes(self, state: BatchState) -> list[Write]:
        assert isinstance(state, State)
        return [
            *self.activities.writes(state.activities.added(), state.activities.changed()),
            *self.registrations.writes(state.registrations.added(), state.registrations.changed()),
            *self.attendance.writes(state.attendance.added()),
        ]
