"""SQL for the registrations service's own records (schema ``registrations``): loaded set-wise
for a batch and written set-based (shared/pipeline/tables.py), plus the reads of the views."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg

from services.registrations.domain.decide import Activity, Attendance, Key, Registration
from shared.pipeline.statements import Write
from shared.pipeline.tables import Table

__all__ = [
    "ACTIVITIES",
    "SCHEMA",
    "PostgresActivities",
    "PostgresAttendance",
    "PostgresRegistrations",
]

SCHEMA = "registrations"

ACTIVITIES = Table(f"{SCHEMA}.activities", Activity, key=("organisation_id", "activity_id"))
REGISTRATIONS = Table(
    f"{SCHEMA}.registrations", Registration, key=("organisation_id", "registration_id")
)
ATTENDANCE = Table(f"{SCHEMA}.attendance", Attendance, key=("organisation_id", "attendance_id"))


class PostgresActivities:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Activity]:
        return await ACTIVITIES.load(self.conn, keys, lock=lock)  # type: ignore[return-value]

    async def of_organisation(self, organisation_id: str) -> list[Activity]:
        rows = await self.conn.fetch(
            f"SELECT * FROM {ACTIVITIES.name} WHERE organisation_id = $1 "
            "ORDER BY active DESC, lower(title), activity_id",
            organisation_id,
        )
        return [ACTIVITIES.of(r) for r in rows]

    @staticmethod
    def writes(added: Sequence[Activity], changed: Sequence[Activity]) -> list[Write]:
        every_field = [c.field for c in ACTIVITIES.columns]
        return [*ACTIVITIES.insert(added), *ACTIVITIES.update(changed, every_field)]


class PostgresRegistrations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Registration]:
        return await REGISTRATIONS.load(self.conn, keys, lock=lock)  # type: ignore[return-value]

    @staticmethod
    def writes(added: Sequence[Registration], changed: Sequence[Registration]) -> list[Write]:
        # A registration changes only by its cancellation.
        return [*REGISTRATIONS.insert(added), *REGISTRATIONS.update(changed, ["cancelled_at"])]


class PostgresAttendance:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def statuses(
        self, organisation_id: str, attendance_ids: Collection[str]
    ) -> dict[str, str]:
        rows = await self.conn.fetch(
            f"SELECT attendance_id, status FROM {ATTENDANCE.name} "
            "WHERE organisation_id = $1 AND attendance_id = ANY($2::text[])",
            organisation_id,
            list(attendance_ids),
        )
        return {r["attendance_id"]: r["status"] for r in rows}

    @staticmethod
    def writes(added: Sequence[Attendance]) -> list[Write]:
        return ATTENDANCE.insert(added)
