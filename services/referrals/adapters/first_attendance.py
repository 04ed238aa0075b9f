"""SQL for what the first-attendance consumer keeps (schema ``referrals``): registrations that
name a referral and attended sessions, loaded by attendee or by referral id, written set-based,
and deleted when no longer needed (docs/privacy.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import date, datetime

import asyncpg

from shared.pipeline.statements import Write
from shared.pipeline.tables import Table
from shared.referral_matching import AttendedSession, NamingRegistration

__all__ = ["NAMED", "SESSIONS", "PostgresAttendance"]

NAMED = Table(
    "referrals.named_registrations", NamingRegistration, key=("organisation_id", "registration_id")
)
SESSIONS = Table(
    "referrals.attended_sessions",
    AttendedSession,
    key=("organisation_id", "activity_id", "participant_id", "session_start"),
)
_N = ", ".join(c.name for c in NAMED.columns)
_S = ", ".join(c.name for c in SESSIONS.columns)
# Batches of the consumer take it, so that two instances never decide on the same referral from
# states that miss each other's uncommitted facts.
_LOCK = int.from_bytes(hashlib.sha256(b"referrals:first-attendance").digest()[:4], "big")

Attendee = tuple[str, str, str]


class PostgresAttendance:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def serialise(self) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)

    async def named_by_attendee(self, attendees: Collection[Attendee]) -> list[NamingRegistration]:
        if not attendees:
            return []
        orgs, activities, participants = zip(*sorted(set(attendees)), strict=True)
        rows = await self.conn.fetch(
            f"SELECT {_N} FROM {NAMED.name} JOIN unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(o, a, p) ON organisation_id = k.o AND activity_id = k.a AND participant_id = k.p",
            list(orgs),
            list(activities),
            list(participants),
        )
        return [NAMED.of(r) for r in rows]

    async def named_by_referral(
        self, organisation_id: str, referral_ids: Collection[str]
    ) -> list[NamingRegistration]:
        if not referral_ids:
            return []
        rows = await self.conn.fetch(
            f"SELECT {_N} FROM {NAMED.name} "
            "WHERE organisation_id = $1 AND referral_id = ANY($2::text[])",
            organisation_id,
            sorted(set(referral_ids)),
        )
        return [NAMED.of(r) for r in rows]

    async def sessions_by_attendee(self, attendees: Collection[Attendee]) -> list[AttendedSession]:
        if not attendees:
            return []
        orgs, activities, participants = zip(*sorted(set(attendees)), strict=True)
        rows = await self.conn.fetch(
            f"SELECT {_S} FROM {SESSIONS.name} JOIN unnest($1::text[], $2::text[], $3::text[]) "
            "AS k(o, a, p) ON organisation_id = k.o AND activity_id = k.a AND participant_id = k.p",
            list(orgs),
            list(activities),
            list(participants),
        )
        return [SESSIONS.of(r) for r in rows]

    @staticmethod
    def writes(
        named: Sequence[NamingRegistration], sessions: Sequence[AttendedSession]
    ) -> list[Write]:
        return [*NAMED.insert(named), *SESSIONS.insert(sessions)]

    async def erase(self, erased: Sequence[tuple[str, datetime]]) -> None:
        """The matching data of erased subjects goes; they are remembered, so that their later
        events are skipped (docs/privacy.md "Erasure")."""
        subjects = sorted({s for s, _ in erased})
        await self.conn.execute(
            "INSERT INTO referrals.erased_subjects (subject_id, erased_at) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[]) ON CONFLICT DO NOTHING",
            [s for s, _ in erased],
            [at for _, at in erased],
        )
        for table in (NAMED.name, SESSIONS.name):
            await self.conn.execute(
                f"DELETE FROM {table} WHERE participant_id = ANY($1::text[])", subjects
            )

    async def erased(self, subjects: Collection[str]) -> set[str]:
        """Those of ``subjects`` that were erased."""
        rows = await self.conn.fetch(
            "SELECT subject_id FROM referrals.erased_subjects WHERE subject_id = ANY($1::text[])",
            list(subjects),
        )
        return {r["subject_id"] for r in rows}

    async def forget(self, before: date) -> tuple[int, int]:
        """Delete what the rule no longer needs: registrations whose referral has its first
        attendance, and registrations and sessions older than ``before``. Returns how many of
        each were deleted."""
        named = await self.conn.execute(
            f"DELETE FROM {NAMED.name} n WHERE n.registered_on < $1 OR EXISTS ("
            "SELECT 1 FROM referrals.referrals r WHERE r.first_attended_on IS NOT NULL "
            "AND r.referral_id = n.referral_id AND r.receiving_organisation_id = n.organisation_id "
            "AND (n.referring_organisation_id IS NULL OR r.organisation_id = n.referring_organisation_id))",
            before,
        )
        sessions = await self.conn.execute(
            f"DELETE FROM {SESSIONS.name} WHERE session_on < $1", before
        )
        return int(named.split()[-1]), int(sessions.split()[-1])
