"""SQL for the referrals service's own state (schema ``referrals``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

__all__ = ["MeasurementRow", "ReferralRow", "Repository", "StatusRow", "TrainingRow"]

SCHEMA = "referrals"

_REFERRAL_COLUMNS = (
    "organisation_id, referral_id, participant_id, referrer_role, signals, "
    "referred_to_organisation_id, referred_to_activity_id, referred_to_service, "
    "receiving_organisation_id, created_at, status, status_changed_at"
)


@dataclass(frozen=True)
class ReferralRow:
    organisation_id: str
    referral_id: str
    participant_id: str
    referrer_role: str
    signals: tuple[str, ...]
    referred_to_organisation_id: str | None
    referred_to_activity_id: str | None
    referred_to_service: str | None
    receiving_organisation_id: str | None  # None: a service referral from before migration 002
    created_at: datetime
    status: str
    status_changed_at: datetime


@dataclass(frozen=True)
class StatusRow:
    organisation_id: str
    referral_id: str
    status: str
    previous_status: str | None
    at: datetime
    changed_by: str
    outcome: str | None
    event_id: uuid.UUID


@dataclass(frozen=True)
class TrainingRow:
    organisation_id: str
    training_id: str
    person_id: str
    role: str
    training: str
    completed_at: datetime


@dataclass(frozen=True)
class MeasurementRow:
    organisation_id: str
    measurement_id: str
    instrument: str
    context: str
    participant_id: str | None
    neighbourhood: str
    age_band: str
    measured_at: datetime
    total: int | None
    emotional: int | None
    social: int | None
    category: str | None


def _referral(row: asyncpg.Record) -> ReferralRow:
    values = dict(row)
    values["signals"] = tuple(values["signals"])
    return ReferralRow(**values)


class Repository:
    """Role: read and save the service's records. Every query is scoped to an organisation:
    the referring one, or the one a referral was sent to."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def referral(
        self, organisation_id: str, referral_id: str, *, lock: bool = False
    ) -> ReferralRow | None:
        """A referral made by ``organisation_id``."""
        row = await self.conn.fetchrow(
            f"SELECT {_REFERRAL_COLUMNS} FROM {SCHEMA}.referrals "
            "WHERE organisation_id = $1 AND referral_id = $2" + (" FOR UPDATE" if lock else ""),
            organisation_id,
            referral_id,
        )
        return _referral(row) if row else None

    async def referrals_received(
        self, organisation_id: str, referral_id: str, services: list[str]
    ) -> list[ReferralRow]:
        """Referrals with this id that other organisations sent to ``organisation_id`` (its
        receiving side; ``services``: the services it provides, for referrals made before the
        receiving side was recorded).

        Ids are unique per referring organisation only, so there can be more than one.
        """
        rows = await self.conn.fetch(
            f"SELECT {_REFERRAL_COLUMNS} FROM {SCHEMA}.referrals "
            "WHERE referral_id = $2 AND organisation_id <> $1 AND (receiving_organisation_id = $1 "
            "OR (receiving_organisation_id IS NULL AND referred_to_service = ANY($3::text[]))) "
            "ORDER BY organisation_id",
            organisation_id,
            referral_id,
            services,
        )
        return [_referral(r) for r in rows]

    async def add_referral(self, r: ReferralRow) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.referrals ({_REFERRAL_COLUMNS}) "
            "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
            r.organisation_id,
            r.referral_id,
            r.participant_id,
            r.referrer_role,
            list(r.signals),
            r.referred_to_organisation_id,
            r.referred_to_activity_id,
            r.referred_to_service,
            r.receiving_organisation_id,
            r.created_at,
            r.status,
            r.status_changed_at,
        )

    async def change_status(self, s: StatusRow) -> int:
        """Move the referral to ``s.status`` and add the change to its history; returns the
        change's place in the arrival order."""
        await self.conn.execute(
            f"UPDATE {SCHEMA}.referrals SET status = $3, status_changed_at = $4 "
            "WHERE organisation_id = $1 AND referral_id = $2",
            s.organisation_id,
            s.referral_id,
            s.status,
            s.at,
        )
        return await self.add_history(s)

    async def add_history(self, s: StatusRow) -> int:
        """Add a change to the history; returns its ``seq``, the order in which changes arrived
        (a referral's changes are serialised by the row lock, so its ``seq`` only grows)."""
        seq: int = await self.conn.fetchval(
            f"INSERT INTO {SCHEMA}.referral_status_history (organisation_id, referral_id, status, "
            "previous_status, at, changed_by, outcome, event_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
            "RETURNING seq",
            s.organisation_id,
            s.referral_id,
            s.status,
            s.previous_status,
            s.at,
            s.changed_by,
            s.outcome,
            s.event_id,
        )
        return seq

    async def history(self, organisation_id: str, referral_id: str) -> list[StatusRow]:
        rows = await self.conn.fetch(
            "SELECT organisation_id, referral_id, status, previous_status, at, changed_by, "
            f"outcome, event_id FROM {SCHEMA}.referral_status_history "
            "WHERE organisation_id = $1 AND referral_id = $2 ORDER BY seq",
            organisation_id,
            referral_id,
        )
        return [StatusRow(**dict(r)) for r in rows]

    async def add_training(self, t: TrainingRow) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.trainings (organisation_id, training_id, person_id, role, "
            "training, completed_at) VALUES ($1,$2,$3,$4,$5,$6)",
            t.organisation_id,
            t.training_id,
            t.person_id,
            t.role,
            t.training,
            t.completed_at,
        )

    async def training(self, organisation_id: str, training_id: str) -> TrainingRow | None:
        row = await self.conn.fetchrow(
            "SELECT organisation_id, training_id, person_id, role, training, completed_at "
            f"FROM {SCHEMA}.trainings WHERE organisation_id = $1 AND training_id = $2",
            organisation_id,
            training_id,
        )
        return TrainingRow(**dict(row)) if row else None

    async def add_measurement(self, m: MeasurementRow) -> None:
        await self.conn.execute(
            f"INSERT INTO {SCHEMA}.measurements (organisation_id, measurement_id, instrument, "
            "context, participant_id, neighbourhood, age_band, measured_at, total, emotional, "
            "social, category) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
            m.organisation_id,
            m.measurement_id,
            m.instrument,
            m.context,
            m.participant_id,
            m.neighbourhood,
            m.age_band,
            m.measured_at,
            m.total,
            m.emotional,
            m.social,
            m.category,
        )

    async def measurement(self, organisation_id: str, measurement_id: str) -> MeasurementRow | None:
        row = await self.conn.fetchrow(
            "SELECT organisation_id, measurement_id, instrument, context, participant_id, "
            "neighbourhood, age_band, measured_at, total, emotional, social, category "
            f"FROM {SCHEMA}.measurements WHERE organisation_id = $1 AND measurement_id = $2",
            organisation_id,
            measurement_id,
        )
        return MeasurementRow(**dict(row)) if row else None
