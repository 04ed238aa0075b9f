"""Live figures over the fact tables: what belongs to now, not to a period (the period figures
come from the year grid, :mod:`services.metrics.adapters.year_grid`), and the change marker that
says whether the facts changed since a figure was computed."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = [
    "Marker",
    "change_marker",
    "closed_years",
    "fact_figures",
    "last_event_times",
    "live_figures",
    "referrals_overdue",
]

# The change marker: equal markers, equal facts (migration 006). The partner registry is part of
# it, because the partner figures count the registry's organisations; so are the years closed by
# retention (migration 011), which every answer must know and which change with the facts.
Marker = tuple[Any, ...]


async def change_marker(conn: asyncpg.Connection, s: str) -> Marker:
    """The schema's generation, its changes and events so far, a fingerprint of the partner
    registry and the closed years: a few rows, whatever the history."""
    row = await conn.fetchrow(
        f"""
        SELECT (SELECT generation FROM {s}.fact_generation) AS generation,
               (SELECT sum(changes) FROM {s}.fact_changes) AS changes,
               (SELECT md5(string_agg(organisation_id || '/' || joined || '/'
                                      || coalesce(left_on::text, ''), ',' ORDER BY organisation_id))
                FROM platform.partners) AS partners,
               (SELECT array_agg(year ORDER BY year) FROM {s}.closed_years) AS closed
        """
    )
    assert row is not None
    return (
        row["generation"],
        int(row["changes"] or 0),
        row["partners"],
        tuple(row["closed"] or ()),
    )


def closed_years(marker: Marker) -> tuple[int, ...]:
    """The years closed by retention when ``marker`` was read."""
    closed: tuple[int, ...] = marker[3]
    return closed


async def fact_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """The newest event applied and how many events were applied (the freshness of an
    answer): they change only with the facts."""
    newest = await conn.fetchval(f"SELECT max(last_event_at) FROM {s}.organisation_activity")
    applied = await conn.fetchval(f"SELECT sum(events) FROM {s}.fact_changes")
    return {"newest_event_at": newest, "events_applied": int(applied or 0)}


async def referrals_overdue(conn: asyncpg.Connection, s: str) -> int:
    """Open referrals without a change for more than 14 days: this one changes with the clock
    too, not only with the facts. Read from the open referrals (migration 009, kept by the
    fact writer), not from every referral of history."""
    overdue = await conn.fetchval(
        f"SELECT count(*) FROM {s}.open_referrals WHERE since < now() - interval '14 days'"
    )
    return int(overdue or 0)


async def live_figures(conn: asyncpg.Connection, s: str) -> dict[str, Any]:
    """Open referrals without a change for more than 14 days, the newest event applied and how
    many events were applied."""
    return {"referrals_overdue": await referrals_overdue(conn, s), **await fact_figures(conn, s)}


async def last_event_times(conn: asyncpg.Connection, s: str) -> dict[str, float]:
    """Each organisation's newest event applied (seconds since the epoch): a row per
    organisation and writer slot (migration 012), whatever the history."""
    rows = await conn.fetch(
        f"SELECT organisation_id, extract(epoch FROM max(last_event_at))::float AS t "
        f"FROM {s}.organisation_activity GROUP BY organisation_id"
    )
    return {r["organisation_id"]: r["t"] for r in rows}
