"""SQL for the registrations service's own state (schema ``registrations``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = ["ActivityRow", "RegistrationRow", "Repository"]

SCHEMA = "registrations"


@dataclass(frozen=True)
class ActivityRow:
    organisation_id: str
    activity_id: str
    version: int
    title: str
    category: str
    aimed_at_connection: bool
    neighbourhood: str
    capacity: int | None
    target_age_bands: tuple[str, ...]
    active: bool
    updated_at: datetime


@dataclass(frozen=True)
class RegistrationRow:
    organisation_id: str
    registration_id: str
    activity_id: str
    participant_id: str
    registered_at: datetime
    referral_id: str | None
    referring_organisation_id: str | None
    cancelled_at: datetime | None


class Repository:
    """Role: read and save the service's records, scoped to one organisation by every query."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def activity(
        self, organisation_id: str, activity_id: str, *, lock: bool = False
    ) -> ActivityRow | None:
        if lock:
            # FOR UPDATE locks a row that exists; two first PUTs of a new activity find none and
            # would both create version 1 (two events for one activity). The id is locked
            # instead, until the end of the transaction.
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"{SCHEMA}\x1factivity\x1f{organisation_id}\x1f{activity_id}",
            )
        row = await self.conn.fetchrow(
            "SELECT organisation_id, activity_id, version, title, category, aimed_at_connection, "
            "neighbourhood, capacity, target_age_bands, active, updated_at "
            f"FROM {SCHEMA}.activities WHERE organisation_id = $1 AND activity_id = $2"
            + (" FOR UPDATE" if lock else ""),
            organisation_id,
            activity_id,
        )
        if row is None:
            return None
        values = dict(row)
        values["target_age_bands"] = tuple(values["target_age_bands"])
        return ActivityRow(**values)

    async def activities(self, organisation_id: str) -> list[ActivityRow]:
        """Every activity of the organisation, active ones first, then by title and id."""
        rows = await self.conn.fetch(
            "SELECT organisation_id, activity_id, version, title, category, aimed_at_connection, "
            "neighbourhood, capacity, target_age_bands, active, updated_at "
            f"FROM {SCHEMA}.activities WHERE organisation_id = $1 "
            "ORDER BY active DESC, lower(title), activity_id",
            organisation_id,
        )
        return [
            ActivityRow(**{**dict(r), "target_age_bands": tuple(r["target_age_bands"])})
            for r in rows
        ]

    async def attendance_status(
        self, organisation_id: str, attendance_ids: list[str]
    ) -> dict[str, str]:
        """The recorded status (`attended`, `no_show`) of these attendance ids, where recorded."""
        rows = await self.conn.fetch(
            f"SELECT attendance_id, status FROM {SCHEMA}.attendance "
            "WHERE organisation_id = $1 AND attendance_id = ANY($2::text[])",
            organisation_id,
            attendance_ids,
        )
        return {r["attendance_id"]: r["status"] for r in rows}

    async def save_activity(self, a: ActivityRow) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.activities (organisation_id, activity_id, version, title, category, "
            "aimed_at_connection, neighbourhood, capacity, target_age_bands, active, updated_at) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) "
            "ON CONFLICT (organisation_id, activity_id) DO UPDATE SET version = EXCLUDED.version, "
            "title = EXCLUDED.title, category = EXCLUDED.category, "
            "aimed_at_connection = EXCLUDED.aimed_at_connection, "
            "neighbourhood = EXCLUDED.neighbourhood, capacity = EXCLUDED.capacity, "
            "target_age_bands = EXCLUDED.target_age_bands, active = EXCLUDED.active, "
            "updated_at = EXCLUDED.updated_at",
            a.organisation_id,
            a.activity_id,
            a.version,
            a.title,
            a.category,
            a.aimed_at_connection,
            a.neighbourhood,
            a.capacity,
            list(a.target_age_bands),
            a.active,
            a.updated_at,
        )

    async def registration(
        self, organisation_id: str, registration_id: str
    ) -> RegistrationRow | None:
        row = await self.conn.fetchrow(
            "SELECT organisation_id, registration_id, activity_id, participant_id, registered_at, "
            f"referral_id, referring_organisation_id, cancelled_at FROM {SCHEMA}.registrations "
            "WHERE organisation_id = $1 AND registration_id = $2",
            organisation_id,
            registration_id,
        )
        return RegistrationRow(**dict(row)) if row else None

    async def add_registration(self, r: RegistrationRow) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.registrations (organisation_id, registration_id, activity_id, "
            "participant_id, registered_at, referral_id, referring_organisation_id) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7)",
            r.organisation_id,
            r.registration_id,
            r.activity_id,
            r.participant_id,
            r.registered_at,
            r.referral_id,
            r.referring_organisation_id,
        )

    async def cancel_registration(
        self, organisation_id: str, registration_id: str, at: datetime
    ) -> None:
        await self.conn.execute(
            f"UPDATE {SCHEMA}.registrations SET cancelled_at = $3 "
            "WHERE organisation_id = $1 AND registration_id = $2",
            organisation_id,
            registration_id,
            at,
        )

    async def add_attendance(
        self,
        organisation_id: str,
        attendance_id: str,
        activity_id: str,
        participant_id: str,
        session_start: datetime,
        status: str,
    ) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.attendance (organisation_id, attendance_id, activity_id, "
            "participant_id, session_start, status) VALUES ($1,$2,$3,$4,$5,$6)",
            organisation_id,
            attendance_id,
            activity_id,
            participant_id,
            session_start,
            status,
        )
