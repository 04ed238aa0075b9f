"""SQL for the referrals service's own records (schema ``referrals``): loaded set-wise for a
batch, written set-based (one statement per table, joined into the batch's one statement by the
unit of work). Every query is scoped to an organisation: the referring one, or the one a
referral was sent to."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import asyncpg
import orjson

from services.referrals.domain.decide import Key, Measurement, Referral, StatusChange, Training
from shared.pipeline.postgres import Write

__all__ = [
    "SCHEMA",
    "PostgresMeasurements",
    "PostgresOrganisations",
    "PostgresReferrals",
    "PostgresTrainings",
]

SCHEMA = "referrals"

_REFERRAL_COLUMNS = (
    "organisation_id, referral_id, participant_id, referrer_role, signals, "
    "referred_to_organisation_id, referred_to_activity_id, referred_to_service, "
    "receiving_organisation_id, created_at, status, status_changed_at, status_sequence"
)
_R = ", ".join(f"r.{c.strip()}" for c in _REFERRAL_COLUMNS.split(","))
_TRAINING_COLUMNS = "organisation_id, training_id, person_id, role, training, completed_at"
_MEASUREMENT_COLUMNS = (
    "organisation_id, measurement_id, instrument, context, participant_id, neighbourhood, "
    "age_band, measured_at, total, emotional, social, category"
)


def _referral(row: asyncpg.Record) -> Referral:
    values = dict(row)
    values["signals"] = tuple(values["signals"])
    return Referral(**values)


def _keys(keys: Collection[Key]) -> tuple[list[str], list[str]]:
    ordered = sorted(set(keys))  # locks are taken in key order: two batches never cross
    return [k[0] for k in ordered], [k[1] for k in ordered]


class PostgresReferrals:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key], *, lock: bool = False) -> dict[Key, Referral]:
        if not keys:
            return {}
        orgs, ids = _keys(keys)
        rows = await self.conn.fetch(
            f"SELECT {_R} FROM {SCHEMA}.referrals r "
            "JOIN unnest($1::text[], $2::text[]) AS k(o, id) "
            "ON r.organisation_id = k.o AND r.referral_id = k.id "
            "ORDER BY r.organisation_id, r.referral_id" + (" FOR UPDATE OF r" if lock else ""),
            orgs,
            ids,
        )
        return {(r["organisation_id"], r["referral_id"]): _referral(r) for r in rows}

    async def received(
        self,
        organisation_id: str,
        referral_ids: Collection[str],
        services: Collection[str],
        *,
        lock: bool = False,
    ) -> list[Referral]:
        rows = await self.conn.fetch(
            f"SELECT {_R} FROM {SCHEMA}.referrals r "
            "WHERE r.referral_id = ANY($2::text[]) AND r.organisation_id <> $1 "
            "AND (r.receiving_organisation_id = $1 OR (r.receiving_organisation_id IS NULL "
            "AND r.referred_to_service = ANY($3::text[]))) "
            "ORDER BY r.organisation_id, r.referral_id" + (" FOR UPDATE OF r" if lock else ""),
            organisation_id,
            sorted(set(referral_ids)),
            list(services),
        )
        return [_referral(r) for r in rows]

    async def history(self, organisation_id: str, referral_id: str) -> list[StatusChange]:
        rows = await self.conn.fetch(
            "SELECT organisation_id, referral_id, status, previous_status, at, changed_by, "
            f"outcome, event_id, seq AS sequence FROM {SCHEMA}.referral_status_history "
            "WHERE organisation_id = $1 AND referral_id = $2 ORDER BY seq",
            organisation_id,
            referral_id,
        )
        return [StatusChange(**dict(r)) for r in rows]

    @staticmethod
    def writes(
        added: Sequence[Referral], changed: Sequence[Referral], history: Sequence[StatusChange]
    ) -> list[Write]:
        out = []
        if added:
            rows = sorted(added, key=lambda r: (r.organisation_id, r.referral_id))
            # signals travel as one JSON array (text) per row: unnest cannot take an array of
            # arrays of different lengths.
            out.append(
                Write(
                    f"INSERT INTO {SCHEMA}.referrals ({_REFERRAL_COLUMNS}) "
                    "SELECT o, id, p, role, ARRAY(SELECT jsonb_array_elements_text(s::jsonb)), "
                    "to_o, to_a, to_s, recv, c, st, sat, seq "
                    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
                    "$6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], "
                    "$11::text[], $12::timestamptz[], $13::bigint[]) "
                    "AS x(o, id, p, role, s, to_o, to_a, to_s, recv, c, st, sat, seq)",
                    (
                        [r.organisation_id for r in rows],
                        [r.referral_id for r in rows],
                        [r.participant_id for r in rows],
                        [r.referrer_role for r in rows],
                        [orjson.dumps(r.signals).decode() for r in rows],
                        [r.referred_to_organisation_id for r in rows],
                        [r.referred_to_activity_id for r in rows],
                        [r.referred_to_service for r in rows],
                        [r.receiving_organisation_id for r in rows],
                        [r.created_at for r in rows],
                        [r.status for r in rows],
                        [r.status_changed_at for r in rows],
                        [r.status_sequence for r in rows],
                    ),
                )
            )
        if changed:  # a referral changes only by its status
            rows = sorted(changed, key=lambda r: (r.organisation_id, r.referral_id))
            out.append(
                Write(
                    f"UPDATE {SCHEMA}.referrals AS t SET status = x.st, status_changed_at = x.at, "
                    "status_sequence = x.seq "
                    "FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], "
                    "$5::bigint[]) AS x(o, id, st, at, seq) "
                    "WHERE t.organisation_id = x.o AND t.referral_id = x.id",
                    (
                        [r.organisation_id for r in rows],
                        [r.referral_id for r in rows],
                        [r.status for r in rows],
                        [r.status_changed_at for r in rows],
                        [r.status_sequence for r in rows],
                    ),
                )
            )
        if history:
            changes = sorted(history, key=lambda h: (h.organisation_id, h.referral_id, h.sequence))
            out.append(
                Write(
                    f"INSERT INTO {SCHEMA}.referral_status_history (organisation_id, "
                    "referral_id, status, previous_status, at, changed_by, outcome, event_id, "
                    "seq) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                    "$5::timestamptz[], $6::text[], $7::text[], $8::uuid[], $9::bigint[])",
                    (
                        [h.organisation_id for h in changes],
                        [h.referral_id for h in changes],
                        [h.status for h in changes],
                        [h.previous_status for h in changes],
                        [h.at for h in changes],
                        [h.changed_by for h in changes],
                        [h.outcome for h in changes],
                        [h.event_id for h in changes],
                        [h.sequence for h in changes],
                    ),
                )
            )
        return out


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
        orgs, ids = _keys(keys)
        rows = await self.conn.fetch(
            f"SELECT {', '.join('t.' + c.strip() for c in _TRAINING_COLUMNS.split(','))} "
            f"FROM {SCHEMA}.trainings t JOIN unnest($1::text[], $2::text[]) AS k(o, id) "
            "ON t.organisation_id = k.o AND t.training_id = k.id",
            orgs,
            ids,
        )
        return {(r["organisation_id"], r["training_id"]): Training(**dict(r)) for r in rows}

    @staticmethod
    def writes(added: Sequence[Training]) -> list[Write]:
        if not added:
            return []
        rows = sorted(added, key=lambda t: (t.organisation_id, t.training_id))
        return [
            Write(
                f"INSERT INTO {SCHEMA}.trainings ({_TRAINING_COLUMNS}) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                "$5::text[], $6::timestamptz[])",
                (
                    [t.organisation_id for t in rows],
                    [t.training_id for t in rows],
                    [t.person_id for t in rows],
                    [t.role for t in rows],
                    [t.training for t in rows],
                    [t.completed_at for t in rows],
                ),
            )
        ]


class PostgresMeasurements:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, keys: Collection[Key]) -> dict[Key, Measurement]:
        orgs, ids = _keys(keys)
        rows = await self.conn.fetch(
            f"SELECT {', '.join('m.' + c.strip() for c in _MEASUREMENT_COLUMNS.split(','))} "
            f"FROM {SCHEMA}.measurements m JOIN unnest($1::text[], $2::text[]) AS k(o, id) "
            "ON m.organisation_id = k.o AND m.measurement_id = k.id",
            orgs,
            ids,
        )
        return {(r["organisation_id"], r["measurement_id"]): Measurement(**dict(r)) for r in rows}

    @staticmethod
    def writes(added: Sequence[Measurement]) -> list[Write]:
        if not added:
            return []
        rows = sorted(added, key=lambda m: (m.organisation_id, m.measurement_id))
        return [
            Write(
                f"INSERT INTO {SCHEMA}.measurements ({_MEASUREMENT_COLUMNS}) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
                "$5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::int[], $10::int[], "
                "$11::int[], $12::text[])",
                (
                    [m.organisation_id for m in rows],
                    [m.measurement_id for m in rows],
                    [m.instrument for m in rows],
                    [m.context for m in rows],
                    [m.participant_id for m in rows],
                    [m.neighbourhood for m in rows],
                    [m.age_band for m in rows],
                    [m.measured_at for m in rows],
                    [m.total for m in rows],
                    [m.emotional for m in rows],
                    [m.social for m in rows],
                    [m.category for m in rows],
                ),
            )
        ]
