"""Live figures over the fact tables: what belongs to now, not to a period (the period figures
come from the year grid, :mod:`services.metrics.adapters.year_grid`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.referral_parties import RECEIVER_STATUSES, REFERRER_STATUSES

__all__ = ["live_figures"]


async def live_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """Open referrals without a change for more than 14 days, the newest event applied and how
    many events were applied."""
    # A referral's status is its last change by the side allowed to make it, in the order the
    # changes were made: `at`, then arrival (never the status name: `at` can tie).
    overdue = await conn.fetchval(
        f"""
        SELECT count(*) FROM {s}.referrals r
        LEFT JOIN LATERAL (
            SELECT status, at FROM {s}.referral_status x
            WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id
              AND ((x.status = ANY($1::text[]) AND x.changed_by = r.receiving_organisation_id)
                   OR (x.status = ANY($2::text[]) AND x.changed_by = r.organisation_id))
            ORDER BY at DESC, sequence DESC LIMIT 1
        ) last ON true
        WHERE coalesce(last.status, 'created') IN ('created', 'accepted', 'contacted')
          AND coalesce(last.at, r.created_at) < now() - interval '14 days'
        """,
        sorted(RECEIVER_STATUSES),
        sorted(REFERRER_STATUSES),
    )
    newest = await conn.fetchval(f"SELECT max(last_event_at) FROM {s}.organisation_activity")
    applied = await conn.fetchval(f"SELECT count(*) FROM {s}.processed_events")
    return {
        "referrals_overdue": int(overdue or 0),
        "newest_event_at": newest,
        "events_applied": int(applied or 0),
    }
