"""Live figures over the fact tables: what belongs to now, not to a period (the period figures
come from the year grid, :mod:`services.metrics.adapters.year_grid`), and the change marker that
says whether the facts changed since a figure was computed."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.referral_parties import RECEIVER_STATUSES, REFERRER_STATUSES

__all__ = ["Marker", "change_marker", "fact_figures", "live_figures", "referrals_overdue"]

# The change marker: equal markers, equal facts (migration 006). The partner registry is part of
# it, because the partner figures count the registry's organisations.
Marker = tuple[Any, ...]


async def change_marker(conn: asyncpg.Connection, s: str) -> Marker:
    """The schema's generation, its changes and events so far, and a fingerprint of the
    partner registry: a few rows, whatever the history."""
    row = await conn.fetchrow(
        f"""
        SELECT (SELECT generation FROM {s}.fact_generation) AS generation,
               (SELECT sum(changes) FROM {s}.fact_changes) AS changes,
               (SELECT md5(string_agg(organisation_id || '/' || joined || '/'
                                      || coalesce(left_on::text, ''), ',' ORDER BY organisation_id))
                FROM platform.partners) AS partners
        """
    )
    assert row is not None
    return (row["generation"], int(row["changes"] or 0), row["partners"])


async def fact_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """The newest event applied and how many events were applied (the freshness of an
    answer): they change only with the facts."""
    newest = await conn.fetchval(f"SELECT max(last_event_at) FROM {s}.organisation_activity")
    applied = await conn.fetchval(f"SELECT sum(events) FROM {s}.fact_changes")
    return {"newest_event_at": newest, "events_applied": int(applied or 0)}


async def referrals_overdue(conn: asyncpg.Connection, s: str) -> int:
    """Open referrals without a change for more than 14 days: this one changes with the clock
    too, not only with the facts."""
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
    return int(overdue or 0)


async def live_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """Open referrals without a change for more than 14 days, the newest event applied and how
    many events were applied."""
    return {"referrals_overdue": await referrals_overdue(conn, s), **await fact_figures(conn, s)}
