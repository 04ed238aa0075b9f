"""SQL for the registrations service's own records (schema ``registrations``): loaded set-wise
for a batch, written set-based (one statement per table, joined into the batch's one statement
by the unit of work)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg
import orjson

from services.registrations.domain.decide import Activity, Attendance, Key, Registration
from shared.pipeline.postgres import Write

__all__ = ["SCHEMA", "PostgresActivities", "PostgresAttendance", "PostgresRegistrations"]

SCHEMA = "registrations"

_ACTIVITY_COLUMNS = (
    "organisation_id, activity_id, version, title, category, aimed_at_connection, "
    "neighbourhood, capacity, target_age_bands, active, updated_at"
)
_REGISTRATION_COLUMNS = (
    "organisation_id, registration_id, activity_id, participant_id, registered_at, "
    "referral_id, referring_organisation_id, cancelled_at"
)


def _activity(row: asyncpg.Record) -> Activity:
    values = dict(row)
    values["target_age_bands"] = tuple(values["target_age_bands"])
    return Activity(**values)


def _keys(keys: Collection[Key]) -> tuple[list[str], list[str]]:
    ordered = sorted(set(keys))  # locks are taken in key order: two batches never cross
    return [k[0] for k in ordered], [k[1] for k in ordered]


class PostgresActivities:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Activity]:
        if not keys:
            return {}
        orgs, ids = _keys(keys)
        rows = await self.conn.fetch(
            f"SELECT {', '.join('a.' + c.strip() for c in _ACTIVITY_COLUMNS.split(','))} "
            f"FROM {SCHEMA}.activities a "
            "JOIN unnest($1::text[], $2::text[]) AS k(o, id) "
            "ON a.organisation_id = k.o AND a.activity_id = k.id "
            "ORDER BY a.organisation_id, a.activity_id" + (" FOR UPDATE OF a" if lock else ""),
            orgs,
            ids,
        )
        return {(r["organisation_id"], r["activity_id"]): _activity(r) for r in rows}

    async def of_organisation(self, organisation_id: str) -> list[Activity]:
        rows = await self.conn.fetch(
            f"SELECT {_ACTIVITY_COLUMNS} FROM {SCHEMA}.activities WHERE organisation_id = $1 "
            "ORDER BY active DESC, lower(title), activity_id",
            organisation_id,
        )
        return [_activity(r) for r in rows]

    @staticmethod
    def writes(added: Sequence[Activity], changed: Sequence[Activity]) -> list[Write]:
        out = []
        # target_age_bands travel as one JSON array (text) per row: unnest cannot take an
        # array of arrays of different lengths.
        columns = (
            "$1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bool[], $7::text[], "
            "$8::int[], $9::text[], $10::bool[], $11::timestamptz[]"
        )
        names = "o, a, v, t, c, ac, n, cap, bands, act, u"
        if added:
            out.append(
                Write(
                    f"INSERT INTO {SCHEMA}.activities ({_ACTIVITY_COLUMNS}) "
                    "SELECT o, a, v, t, c, ac, n, cap, "
                    "ARRAY(SELECT jsonb_array_elements_text(bands::jsonb)), act, u "
                    f"FROM unnest({columns}) AS x({names})",
                    _activity_columns(added),
                )
            )
        if changed:
            out.append(
                Write(
                    f"UPDATE {SCHEMA}.activities AS t SET version = x.v, title = x.t, "
                    "category = x.c, aimed_at_connection = x.ac, neighbourhood = x.n, "
                    "capacity = x.cap, "
                    "target_age_bands = ARRAY(SELECT jsonb_array_elements_text(x.bands::jsonb)), "
                    "active = x.act, updated_at = x.u "
                    f"FROM unnest({columns}) AS x({names}) "
                    "WHERE t.organisation_id = x.o AND t.activity_id = x.a",
                    _activity_columns(changed),
                )
            )
        return out


def _activity_columns(rows: Sequence[Activity]) -> tuple[list[object], ...]:
    rows = sorted(rows, key=lambda a: (a.organisation_id, a.activity_id))
    return (
        [a.organisation_id for a in rows],
        [a.activity_id for a in rows],
        [a.version for a in rows],
        [a.title for a in rows],
        [a.category for a in rows],
        [a.aimed_at_connection for a in rows],
        [a.neighbourhood for a in rows],
        [a.capacity for a in rows],
        [orjson.dumps(a.target_age_bands).decode() for a in rows],
        [a.active for a in rows],
        [a.updated_at for a in rows],
    )


class PostgresRegistrations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Registration]:
        if not keys:
            return {}
        orgs, ids = _keys(keys)
        rows = await self.conn.fetch(
            f"SELECT {', '.join('r.' + c.strip() for c in _REGISTRATION_COLUMNS.split(','))} "
            f"FROM {SCHEMA}.registrations r "
            "JOIN unnest($1::text[], $2::text[]) AS k(o, id) "
            "ON r.organisation_id = k.o AND r.registration_id = k.id "
            "ORDER BY r.organisation_id, r.registration_id" + (" FOR UPDATE OF r" if lock else ""),
            orgs,
            ids,
        )
        return {(r["organisation_id"], r["registration_id"]): Registration(**dict(r)) for r in rows}

    @staticmethod
    def writes(added: Sequence[Registration], changed: Sequence[Registration]) -> list[Write]:
        out = []
        if added:
            rows = sorted(added, key=lambda r: (r.organisation_id, r.registration_id))
            out.append(
                Write(
                    f"INSERT INTO {SCHEMA}.registrations ({_REGISTRATION_COLUMNS}) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                    "$5::timestamptz[], $6::text[], $7::text[], $8::timestamptz[])",
                    (
                        [r.organisation_id for r in rows],
                        [r.registration_id for r in rows],
                        [r.activity_id for r in rows],
                        [r.participant_id for r in rows],
                        [r.registered_at for r in rows],
                        [r.referral_id for r in rows],
                        [r.referring_organisation_id for r in rows],
                        [r.cancelled_at for r in rows],
                    ),
                )
            )
        if changed:  # a registration changes only by its cancellation
            rows = sorted(changed, key=lambda r: (r.organisation_id, r.registration_id))
            out.append(
                Write(
                    f"UPDATE {SCHEMA}.registrations AS t SET cancelled_at = x.at "
                    "FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS x(o, id, at) "
                    "WHERE t.organisation_id = x.o AND t.registration_id = x.id",
                    (
                        [r.organisation_id for r in rows],
                        [r.registration_id for r in rows],
                        [r.cancelled_at for r in rows],
                    ),
                )
            )
        return out


class PostgresAttendance:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def statuses(
        self, organisation_id: str, attendance_ids: Collection[str]
    ) -> dict[str, str]:
        rows = await self.conn.fetch(
            f"SELECT attendance_id, status FROM {SCHEMA}.attendance "
            "WHERE organisation_id = $1 AND attendance_id = ANY($2::text[])",
            organisation_id,
            list(attendance_ids),
        )
        return {r["attendance_id"]: r["status"] for r in rows}

    @staticmethod
    def writes(added: Sequence[Attendance]) -> list[Write]:
        if not added:
            return []
        rows = sorted(added, key=lambda a: (a.organisation_id, a.attendance_id))
        return [
            Write(
                f"INSERT INTO {SCHEMA}.attendance (organisation_id, attendance_id, activity_id, "
                "participant_id, session_start, status) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                "$5::timestamptz[], $6::text[])",
                (
                    [a.organisation_id for a in rows],
                    [a.attendance_id for a in rows],
                    [a.activity_id for a in rows],
                    [a.participant_id for a in rows],
                    [a.session_start for a in rows],
                    [a.status for a in rows],
                ),
            )
        ]
