"""Retention of the metrics facts (docs/privacy.md "Retention"): person-level facts dated before
the oldest period the platform publishes are deleted; the baseline year's are kept, because every
figure is shown beside it."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.metrics.adapters.changes import notify_changed
from services.metrics.adapters.rollups import fill_first_attendance, fill_open_referrals
from services.metrics.domain.baseline import load_baseline

__all__ = ["FACT_DATES", "prune", "prune_facts"]

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
) -> dict[str, int]:
    """The registry's retention hook (services/registry.py): the facts dated before ``before``
    go, the baseline year's stay."""
    return await prune_facts(conn, schema, before, load_baseline(baseline_file).baseline_year)


async def prune_facts(
    conn: asyncpg.Connection, schema: str, before: date, baseline_year: int
) -> dict[str, int]:
    """Delete the facts dated before ``before``, except those of ``baseline_year``."""
    s = f'"{schema}"'
    keep = (date(baseline_year, 1, 1), date(baseline_year, 12, 31))
    deleted: dict[str, int] = {}
    old = "{d} < $1 AND NOT ({d} BETWEEN $2 AND $3)"
    async with conn.transaction():
        status = await conn.execute(
            f"DELETE FROM {s}.cancellations c USING {s}.registrations r "
            "WHERE c.organisation_id = r.organisation_id AND c.registration_id = r.registration_id "
            f"AND r.{old.format(d='registered_date')}",
            before,
            *keep,
        )
        deleted["cancellations"] = int(status.rsplit(" ", 1)[-1])
        status = await conn.execute(
            f"DELETE FROM {s}.referral_status x USING {s}.referrals r "
            "WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id "
            f"AND r.{old.format(d='created_date')}",
            before,
            *keep,
        )
        deleted["referral_status"] = int(status.rsplit(" ", 1)[-1])
        for table, column in FACT_DATES.items():
            status = await conn.execute(
                f"DELETE FROM {s}.{table} WHERE {old.format(d=column)}", before, *keep
            )
            deleted[table] = int(status.rsplit(" ", 1)[-1])
        if any(deleted.values()):
            # The rollups from the facts that stay (a first attendance may have gone).
            await fill_first_attendance(conn, s)
            await fill_open_referrals(conn, s)
            # The change marker (migration 006): readers recompute the live totals.
            await conn.execute(
                f"INSERT INTO {s}.fact_changes (slot, changes, events) VALUES (0, 1, 0) "
                f"ON CONFLICT (slot) DO UPDATE SET changes = {s}.fact_changes.changes + 1"
            )
    if any(deleted.values()):
        # After the commit (services/metrics/adapters/changes.py): readers see it at once.
        await notify_changed(conn, schema)
    return deleted
