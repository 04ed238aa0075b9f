"""SQL for the referrals service's own records (schema ``referrals``): loaded set-wise for a
batch and written set-based (shared/pipeline/tables.py), plus the reads of the views. Every
query is scoped to an organisation: the referring one, or the one a referral was sent to."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg

from services.referrals.domain.decide import Key, Measurement, Referral, StatusChange, Training
from shared.pipeline.statements import Write
from shared.pipeline.tables import Table

__all__ = [
    "SCHEMA",
    "PostgresMeasurements",
    "PostgresOrganisations",
    "PostgresReferrals",
    "PostgresTrainings",
]

SCHEMA = "referrals"

REFERRALS = Table(f"{SCHEMA}.referrals", Referral, key=("organisation_id", "referral_id"))
HISTORY = Table(
    f"{SCHEMA}.referral_status_history",
    StatusChange,
    key=("organisation_id", "referral_id", "status"),
    columns={"sequence": "seq"},
)
TRAININGS = Table(f"{SCHEMA}.trainings", Training, key=("organisation_id", "training_id"))
MEASUREMENTS = Table(
    f"{SCHEMA}.measurements", Measurement, key=("organisation_id", "measurement_id")
)
_R = ", ".join(f"r.{c.name}" for c in REFERRALS.columns)


class PostgresReferrals:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Referral]:
        return await REFERRALS.load(self.conn, keys, lock=lock)  # type: ignore[return-value]

    async def received(
        self,
        organisation_id: str,
        referral_ids: Collection[str],
        services: Collection[str],
        *,
        lock: bool = False,
    ) -> list[Referral]:
        rows = await self.conn.fetch(
            f"SELECT {_R} FROM {REFERRALS.name} r "
            "WHERE r.referral_id = ANY($2::text[]) AND r.organisation_id <> $1 "
            "AND (r.receiving_organisation_id = $1 OR (r.receiving_organisation_id IS NULL "
            "AND r.referred_to_service = ANY($3::text[]))) "
            "ORDER BY r.organisation_id, r.referral_id" + (" FOR UPDATE OF r" if lock else ""),
            organisation_id,
            sorted(set(referral_ids)),
            list(services),
        )
        return [REFERRALS.of(r) for r in rows]

    async def history(self, organisation_id: str, referral_id: str) -> list[StatusChange]:
        rows = await self.conn.fetch(
            f"SELECT * FROM {HISTORY.name} WHERE organisation_id = $1 AND referral_id = $2 "
            "ORDER BY seq",
            organisation_id,
            referral_id,
        )
        return [HISTORY.of(r) for r in rows]

    async def feed(
        self,
        organisation_id: str,
        services: Collection[str],
        after: tuple[int, int],
        limit: int,
    ) -> list[tuple[Referral, tuple[int, int], dict[str, str], str | None]]:
        """Referrals ``organisation_id`` sent or received, changed after ``after``, in change
        order: each with its position, the moments of its history and its current outcome.
        Only changes of transactions older than any still running (see 005_feed.sql)."""
        rows = await self.conn.fetch(
            f"SELECT {_R}, r.changed_xid::text AS xid, r.changed_seq, "
            f"(SELECT jsonb_object_agg(h.status, h.at) FROM {HISTORY.name} h "
            " WHERE h.organisation_id = r.organisation_id AND h.referral_id = r.referral_id) AS milestones, "
            f"(SELECT h.outcome FROM {HISTORY.name} h WHERE h.organisation_id = r.organisation_id "
            " AND h.referral_id = r.referral_id AND h.status = r.status) AS outcome "
            f"FROM {REFERRALS.name} r "
            "WHERE (r.organisation_id = $1 OR r.receiving_organisation_id = $1 "
            "       OR (r.receiving_organisation_id IS NULL AND r.referred_to_service = ANY($2::text[]))) "
            "AND (r.changed_xid, r.changed_seq) > ($3::text::xid8, $4::bigint) "
            "AND r.changed_xid < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY r.changed_xid, r.changed_seq LIMIT $5",
            organisation_id,
            list(services),
            str(after[0]),
            after[1],
            limit,
        )
        return [
            (
                REFERRALS.of(r),
                (int(r["xid"]), r["changed_seq"]),
                dict(r["milestones"] or {}),
                r["outcome"],
            )
            for r in rows
        ]

    @staticmethod
    def writes(
        added: Sequence[Referral], changed: Sequence[Referral], history: Sequence[StatusChange]
    ) -> list[Write]:
        # A referral changes by its status and its first attendance; each adds to its history.
        moved = ["status", "status_changed_at", "status_sequence", "first_attended_on"]
        return [
            *REFERRALS.insert(added),
            *REFERRALS.update(changed, moved),
            *HISTORY.insert(history),
        ]


class PostgresOrganisations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def registered(self, organisation_ids: Collection[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT id FROM platform.organisations WHERE id = ANY($1::text[])",
            list(organisation_ids),
        )
        return {r["id"] for r in rows}


class PostgresTrainings:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key]) -> dict[Key, Training]:
        return await TRAININGS.load(self.conn, keys)  # type: ignore[return-value]

    @staticmethod
    def writes(added: Sequence[Training]) -> list[Write]:
        return TRAININGS.insert(added)


class PostgresMeasurements:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key]) -> dict[Key, Measurement]:
        return await MEASUREMENTS.load(self.conn, keys)  # type: ignore[return-value]

    @staticmethod
    def writes(added: Sequence[Measurement]) -> list[Write]:
        return MEASUREMENTS.insert(added)
