"""Retention of the metrics facts (docs/privacy.md "Retention"): person-level facts dated before
the oldest period the platform publishes are deleted; the baseline year's are kept, because every
figure is shown beside it. A year's facts go only together with closing the year: the answers
the latest release published for it are kept (anonymous figures under disclosure control), so
its published figures stay; a year no release has decided keeps its facts until one has."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import asyncpg

from services.metrics.adapters.changes import notify_changed
from services.metrics.adapters.releases import ReleaseStore
from services.metrics.adapters.rollups import fill_first_attendance, fill_open_referrals
from services.metrics.adapters.totals import forget_totals
from services.metrics.adapters.year_grid import years_with_data
from services.metrics.domain.baseline import load_baseline

__all__ = ["FACT_DATES", "prune", "prune_facts"]

log = logging.getLogger(__name__)

# Fact table -> the date that places it in a period. Cancellations and status changes hang off a
# registration or a referral and go with it.
FACT_DATES: dict[str, str] = {
    "registrations": "registered_date",
    "attendance": "session_date",
    "referrals": "created_date",
    "trainings": "completed_date",
    "measurements": "measured_date",
}


async def prune(
    conn: asyncpg.Connection, schema: str, before: date, *, baseline_file: str | None
) -> dict[str, Any]:
    """The registry's retention hook (services/registry.py): the facts dated before ``before``
    go, the baseline year's stay."""
    return await prune_facts(conn, schema, before, load_baseline(baseline_file).baseline_year)


async def prune_facts(
    conn: asyncpg.Connection, schema: str, before: date, baseline_year: int
) -> dict[str, Any]:
    """Close the years before ``before`` (except ``baseline_year``) and delete their facts;
    a year the latest release does not hold keeps its facts (``years_waiting_for_release``)."""
    s = f'"{schema}"'
    releases = ReleaseStore(s)
    deleted: dict[str, Any] = {}
    old = "{d} < $1 AND NOT (extract(year FROM {d})::int = ANY($2::integer[]))"
    async with conn.transaction():
        closed = await releases.closed_years(conn)
        due = [y for y in await years_with_data(conn, s) if y < before.year and y != baseline_year]
        # Closed before (a rebuild replayed their events): their facts go again.
        folded = await releases.close_years(conn, [y for y in due if y not in closed])
        waiting = sorted(y for y in due if y not in closed and y not in folded)
        if waiting:
            log.warning(
                "facts past the retention horizon kept until a release holds their years: "
                "cut one (verbinding metrics release) and run retention again",
                extra={"years": waiting},
            )
        keep = [baseline_year, *waiting]
        status = await conn.execute(
            f"DELETE FROM {s}.cancellations c USING {s}.registrations r "
            "WHERE c.organisation_id = r.organisation_id AND c.registration_id = r.registration_id "
            f"AND r.{old.format(d='registered_date')}",
            before,
            keep,
        )
        deleted["cancellations"] = int(status.rsplit(" ", 1)[-1])
        status = await conn.execute(
            f"DELETE FROM {s}.referral_status x USING {s}.referrals r "
            "WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id "
            f"AND r.{old.format(d='created_date')}",
            before,
            keep,
        )
        deleted["referral_status"] = int(status.rsplit(" ", 1)[-1])
        for table, column in FACT_DATES.items():
            status = await conn.execute(
                f"DELETE FROM {s}.{table} WHERE {old.format(d=column)}", before, keep
            )
            deleted[table] = int(status.rsplit(" ", 1)[-1])
        changed = any(deleted.values())
        if changed:
            # The rollups from the facts that stay (a first attendance may have gone).
            await fill_first_attendance(conn, s)
            await fill_open_referrals(conn, s)
            # The totals' shares from the facts that stay: every year again at its next
            # refresh (the deletes did not go through the fact writer, which tells who changed).
            await forget_totals(conn, s, schema)
            # The change marker (migration 006): readers recompute the live totals.
            await conn.execute(
                f"INSERT INTO {s}.fact_changes (slot, changes, events) VALUES (0, 1, 0) "
                f"ON CONFLICT (slot) DO UPDATE SET changes = {s}.fact_changes.changes + 1"
            )
    if changed:
        # After the commit (services/metrics/adapters/changes.py): readers see it at once.
        await notify_changed(conn, schema)
    deleted["years_closed"] = folded
    deleted["years_waiting_for_release"] = waiting
    return deleted
