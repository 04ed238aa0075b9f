"""SQL of the webhooks (schema ``referrals``): endpoints with their secrets sealed at rest, and the
deliveries, claimed with a lease (one in flight per endpoint, in order per referral)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.referrals.domain.webhooks import Delivery, Endpoint
from shared.secretbox import SecretBox

__all__ = ["Claimed", "PostgresWebhooks"]

E = "referrals.webhook_endpoints"
D = "referrals.webhook_deliveries"

Claimed = tuple[int, int, Delivery, Endpoint]  # (delivery id, attempts so far, delivery, endpoint)


class PostgresWebhooks:
    def __init__(self, conn: asyncpg.Connection, box: SecretBox) -> None:
        self.conn = conn
        self.box = box

    def _endpoint(self, r: asyncpg.Record) -> Endpoint:
        return Endpoint(
            organisation_id=r["organisation_id"],
            webhook_id=r["webhook_id"],
            url=r["url"],
            description=r["description"],
            secret=self.box.open(r["secret"]),
            previous_secret=self.box.open(r["previous_secret"]) if r["previous_secret"] else None,
            previous_expires_at=r["previous_expires_at"],
            created_at=r["created_at"],
            disabled_at=r["disabled_at"],
        )

    async def endpoint(self, organisation_id: str, webhook_id: str) -> tuple[Endpoint, bool] | None:
        """The endpoint and whether it was deleted."""
        r = await self.conn.fetchrow(
            f"SELECT * FROM {E} WHERE organisation_id = $1 AND webhook_id = $2",
            organisation_id,
            webhook_id,
        )
        return None if r is None else (self._endpoint(r), r["deleted_at"] is not None)

    async def add(self, e: Endpoint) -> bool:
        """False when the id was taken meanwhile."""
        status = await self.conn.execute(
            f"INSERT INTO {E} (organisation_id, webhook_id, url, description, secret, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            e.organisation_id,
            e.webhook_id,
            e.url,
            e.description,
            self.box.seal(e.secret),
            e.created_at,
        )
        return status.endswith(" 1")

    async def listed(self, organisation_id: str) -> list[Endpoint]:
        rows = await self.conn.fetch(
            f"SELECT * FROM {E} WHERE organisation_id = $1 AND deleted_at IS NULL "
            "ORDER BY created_at, webhook_id",
            organisation_id,
        )
        return [self._endpoint(r) for r in rows]

    async def delete(self, organisation_id: str, webhook_id: str, now: datetime) -> bool:
        async with self.conn.transaction():
            status = await self.conn.execute(
                f"UPDATE {E} SET deleted_at = $3 WHERE organisation_id = $1 AND webhook_id = $2 "
                "AND deleted_at IS NULL",
                organisation_id,
                webhook_id,
                now,
            )
            await self.conn.execute(
                f"DELETE FROM {D} WHERE organisation_id = $1 AND webhook_id = $2",
                organisation_id,
                webhook_id,
            )
        return status.endswith(" 1")

    async def rotate(
        self, organisation_id: str, webhook_id: str, secret: str, previous_until: datetime
    ) -> bool:
        status = await self.conn.execute(
            f"UPDATE {E} SET previous_secret = secret, previous_expires_at = $4, secret = $3 "
            "WHERE organisation_id = $1 AND webhook_id = $2 AND deleted_at IS NULL",
            organisation_id,
            webhook_id,
            self.box.seal(secret),
            previous_until,
        )
        return status.endswith(" 1")

    async def active(self, organisation_ids: Collection[str]) -> list[Endpoint]:
        rows = await self.conn.fetch(
            f"SELECT * FROM {E} WHERE organisation_id = ANY($1::text[]) AND deleted_at IS NULL "
            "AND disabled_at IS NULL ORDER BY organisation_id, webhook_id",
            sorted(set(organisation_ids)),
        )
        return [self._endpoint(r) for r in rows]

    async def enqueue(self, queued: Sequence[tuple[str, Delivery]], now: datetime) -> int:
        """Queue each (webhook id, delivery) in the order given; one already queued (the same
        event for the same endpoint) is left as it is."""
        if not queued:
            return 0
        status = await self.conn.execute(
            f"INSERT INTO {D} (organisation_id, webhook_id, event_id, event_type, "
            "referring_organisation_id, referral_id, body, next_attempt_at, created_at) "
            "SELECT o, w, e, t, ro, r, b, $8, $8 FROM unnest($1::text[], $2::text[], $3::uuid[], "
            "$4::text[], $5::text[], $6::text[], $7::bytea[]) WITH ORDINALITY AS u(o, w, e, t, ro, r, b, n) "
            "ORDER BY n ON CONFLICT DO NOTHING",
            [d.organisation_id for _, d in queued],
            [w for w, _ in queued],
            [d.event_id for _, d in queued],
            [d.event_type for _, d in queued],
            [d.referrer for _, d in queued],
            [d.referral_id for _, d in queued],
            [d.body for _, d in queued],
            now,
        )
        return int(status.split()[-1])

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        """Due deliveries, at most one per endpoint and only for endpoints with none in flight,
        each the earliest pending one of its referral; leased for ``lease_seconds``."""
        rows = await self.conn.fetch(
            f"""
            WITH due AS (
                SELECT DISTINCT ON (d.organisation_id, d.webhook_id) d.id
                FROM {D} d JOIN {E} e USING (organisation_id, webhook_id)
                WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                  AND e.deleted_at IS NULL AND e.disabled_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM {D} f WHERE f.state = 'pending'
                      AND f.organisation_id = d.organisation_id AND f.webhook_id = d.webhook_id
                      AND f.leased_until > now())
                  AND NOT EXISTS (SELECT 1 FROM {D} p WHERE p.state = 'pending'
                      AND p.organisation_id = d.organisation_id AND p.webhook_id = d.webhook_id
                      AND p.referring_organisation_id = d.referring_organisation_id
                      AND p.referral_id = d.referral_id AND p.id < d.id)
                ORDER BY d.organisation_id, d.webhook_id, d.next_attempt_at, d.id
                LIMIT $1
            )
            UPDATE {D} d SET leased_until = now() + make_interval(secs => $2)
            FROM due WHERE d.id = due.id AND d.state = 'pending'
              AND (d.leased_until IS NULL OR d.leased_until <= now())
            RETURNING d.*
            """,
            limit,
            lease_seconds,
        )
        if not rows:
            return []
        endpoints = {
            (e.organisation_id, e.webhook_id): e
            for e in await self.active({r["organisation_id"] for r in rows})
        }
        out = []
        for r in rows:
            endpoint = endpoints.get((r["organisation_id"], r["webhook_id"]))
            if endpoint is None:
                continue
            delivery = Delivery(
                organisation_id=r["organisation_id"],
                event_id=str(r["event_id"]),
                event_type=r["event_type"],
                referrer=r["referring_organisation_id"],
                referral_id=r["referral_id"],
                body=bytes(r["body"]),
            )
            out.append((r["id"], r["attempts"], delivery, endpoint))
        return out

    async def delivered(self, delivery_id: int) -> None:
        await self.conn.execute(
            f"UPDATE {D} SET state = 'delivered', attempts = attempts + 1, finished_at = now(), "
            "leased_until = NULL, last_error = NULL WHERE id = $1",
            delivery_id,
        )

    async def failed(self, delivery_id: int, error: str, retry_in: float | None) -> None:
        """A failed attempt: tried again in ``retry_in`` seconds, or dead (None)."""
        await self.conn.execute(
            f"UPDATE {D} SET attempts = attempts + 1, last_error = $2, leased_until = NULL, "
            "state = CASE WHEN $3::float8 IS NULL THEN 'dead' ELSE 'pending' END, "
            "finished_at = CASE WHEN $3::float8 IS NULL THEN now() END, "
            "next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0)) "
            "WHERE id = $1",
            delivery_id,
            error[:500],
            retry_in,
        )

    async def gone(self, organisation_id: str, webhook_id: str, error: str) -> None:
        """The receiver answered 410 Gone: the endpoint is disabled, its pending deliveries are
        dead (its organisation can read and redeliver them)."""
        async with self.conn.transaction():
            await self.conn.execute(
                f"UPDATE {E} SET disabled_at = now() WHERE organisation_id = $1 AND webhook_id = $2",
                organisation_id,
                webhook_id,
            )
            await self.conn.execute(
                f"UPDATE {D} SET state = 'dead', finished_at = now(), leased_until = NULL, "
                "last_error = $3 WHERE organisation_id = $1 AND webhook_id = $2 AND state = 'pending'",
                organisation_id,
                webhook_id,
                error,
            )

    async def failures(self, organisation_id: str, webhook_id: str) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            f"SELECT id, event_id, event_type, referring_organisation_id, referral_id, attempts, "
            f"last_error, finished_at, created_at FROM {D} WHERE organisation_id = $1 "
            "AND webhook_id = $2 AND state = 'dead' ORDER BY id",
            organisation_id,
            webhook_id,
        )
        return [
            {
                "delivery_id": r["id"],
                "webhook_message_id": str(r["event_id"]),
                "type": r["event_type"],
                "referring_organisation_id": r["referring_organisation_id"],
                "referral_id": r["referral_id"],
                "attempts": r["attempts"],
                "last_error": r["last_error"],
                "queued_at": r["created_at"].isoformat(),
                "failed_at": r["finished_at"].isoformat() if r["finished_at"] else None,
            }
            for r in rows
        ]

    async def redeliver(
        self, organisation_id: str, webhook_id: str, delivery_id: int | None
    ) -> int:
        """Queue dead deliveries again (one, or all of the endpoint), from their first attempt;
        a disabled endpoint is enabled again."""
        async with self.conn.transaction():
            status = await self.conn.execute(
                f"UPDATE {D} SET state = 'pending', attempts = 0, next_attempt_at = now(), "
                "finished_at = NULL, leased_until = NULL WHERE organisation_id = $1 "
                "AND webhook_id = $2 AND state = 'dead' AND ($3::bigint IS NULL OR id = $3)",
                organisation_id,
                webhook_id,
                delivery_id,
            )
            count = int(status.split()[-1])
            if count:
                await self.conn.execute(
                    f"UPDATE {E} SET disabled_at = NULL WHERE organisation_id = $1 "
                    "AND webhook_id = $2",
                    organisation_id,
                    webhook_id,
                )
        return count

    async def backlog(self) -> tuple[int, float]:
        """Pending deliveries of active endpoints, and the age in seconds of the oldest."""
        row = await self.conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(d.created_at)), 0) "
            f"AS age FROM {D} d JOIN {E} e USING (organisation_id, webhook_id) "
            "WHERE d.state = 'pending' AND e.deleted_at IS NULL AND e.disabled_at IS NULL"
        )
        return int(row["n"]), float(row["age"])

    async def forget_delivered(self, before: datetime) -> int:
        status = await self.conn.execute(
            f"DELETE FROM {D} WHERE state = 'delivered' AND finished_at < $1", before
        )
        return int(status.split()[-1])
