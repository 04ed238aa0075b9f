"""Use case: the indicators of a period, optionally broken down, ready to publish."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.metrics.adapters import queries
from services.metrics.domain import figures
from services.metrics.domain.baseline import Baseline
from services.metrics.domain.periods import Period, parse_period
from services.metrics.domain.windows import provisional
from services.metrics.service_layer.rebuild import REBUILD_LOCK
from shared.reference import ReferenceData
from shared.scale import DEFAULT_THRESHOLDS, Thresholds
from shared.timerules import AMSTERDAM

__all__ = ["BREAKDOWN_NAMES", "IndicatorService"]

BREAKDOWN_NAMES = tuple(queries.BREAKDOWNS)


@contextlib.asynccontextmanager
async def _no_swap(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the rebuild's swap lock shared, taken before the read transaction and its snapshot.

    Without it a rebuild's swap (which drops the old tables) deadlocks with a reader that holds
    some of them and waits for others, and a snapshot taken while waiting would miss the swap."""
    await conn.execute("SELECT pg_advisory_lock_shared($1)", REBUILD_LOCK)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock_shared($1)", REBUILD_LOCK)


class IndicatorService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        baseline: Baseline,
        reference: ReferenceData,
        *,
        k: int = 10,
        schema: str = "metrics",
        cache_seconds: float = 2.0,
        thresholds: Mapping[str, Thresholds] = DEFAULT_THRESHOLDS,
        signal_trainings: Sequence[str] = ("signaling-loneliness",),
    ) -> None:
        self.pool = pool
        self.baseline = baseline
        self.reference = reference
        self.k = k
        self.schema = schema
        self.cache_seconds = cache_seconds
        self.thresholds = thresholds
        self.signal_trainings = tuple(signal_trainings)
        self._cache: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    async def indicators(self, period_label: str, by: str | None = None) -> dict[str, Any]:
        """Cached for a moment: a dashboard polled by many people costs one computation."""
        key = (period_label, by)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < self.cache_seconds:
                return hit[1]
            result = await self.compute(parse_period(period_label), by)
            self._cache[key] = (time.monotonic(), result)
            return result

    async def own_indicators(self, period_label: str, organisation_id: str) -> dict[str, Any]:
        """A partner's own figures: its cell of the breakdown by organisation, exactly as the
        analysts see it (one decision per cell, domain.md §7 rule 5). An organisation without
        a cell (nothing recorded in the period) gets the figures of an empty cell."""
        by_organisation = await self.indicators(period_label, "organisation")
        cell = next((c for c in by_organisation["breakdown"] if c["key"] == organisation_id), None)
        if cell is None:
            cell = {
                "s2": figures.s2_figures({}, self.k, 0),
                "s3": figures.s3_figures({}, self.k, False),
            }
        return {
            "period": by_organisation["period"],
            "period_kind": by_organisation["period_kind"],
            "from": by_organisation["from"],
            "to": by_organisation["to"],
            "organisation_id": organisation_id,
            "k": self.k,
            "generated_at": by_organisation["generated_at"],
            "freshness": by_organisation["freshness"],
            "s2": cell["s2"],
            "s3": cell["s3"],
        }

    async def compute(
        self, period: Period, by: str | None = None, *, today: date | None = None
    ) -> dict[str, Any]:
        """``today`` (default: today in Amsterdam) decides which figures are still provisional."""
        if by is not None and by not in queries.BREAKDOWNS:
            raise ValueError(f"by must be one of {', '.join(queries.BREAKDOWNS)}")
        k, s = self.k, self.schema
        # Each instrument with its own cut-offs, the ones the referrals service scores with
        # (shared/scale.py): the 6-item subscales only reach 3.
        thresholds = {name: (cut.emotional, cut.social) for name, cut in self.thresholds.items()}
        signal = self.signal_trainings
        windows_open = provisional(period.end, today or datetime.now(AMSTERDAM).date())
        base_period = period.shifted_to_year(self.baseline.baseline_year)
        async with (
            self.pool.acquire() as conn,
            _no_swap(conn),
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot for all queries: figures of one answer are mutually consistent.
            raw1 = await queries.s1(conn, s, period.start, period.end, None, thresholds)
            raw2 = await queries.s2(conn, s, period.start, period.end, None)
            raw3 = await queries.s3(conn, s, period.start, period.end, None, signal)
            base2 = await queries.participants_unique(
                conn, s, base_period.start, base_period.end, None
            )
            live = await queries.live_figures(conn, s)
            events_applied = await conn.fetchval(f"SELECT count(*) FROM {s}.processed_events")
            cells_raw: dict[str, dict[str, Any]] = {}
            base_cells: dict[str, Any] = {}
            if by is not None:
                for subgoal, fetch in (
                    ("s1", queries.s1(conn, s, period.start, period.end, by, thresholds)),
                    ("s2", queries.s2(conn, s, period.start, period.end, by)),
                    ("s3", queries.s3(conn, s, period.start, period.end, by, signal)),
                ):
                    for key, values in (await fetch).items():
                        cells_raw.setdefault(key, {})[subgoal] = values
                base_cells = await queries.participants_unique(
                    conn, s, base_period.start, base_period.end, by
                )

        result: dict[str, Any] = {
            "period": period.label,
            "period_kind": period.kind,
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "by": by,
            "k": k,
            "generated_at": datetime.now(UTC).isoformat(),
            "freshness": {
                "newest_event_at": live["newest_event_at"].isoformat()
                if live["newest_event_at"]
                else None,
                "events_applied": events_applied,
            },
            "baseline_year": self.baseline.baseline_year,
            "s1": figures.s1_figures(raw1.get("", {}), k, self._prevalence_baselines(), True),
            "s2": figures.s2_figures(
                raw2.get("", {}), k, self._baseline_unique(base_period, base2.get("", {}))
            ),
            "s3": {
                **figures.s3_figures(raw3.get("", {}), k, True),
                "referrals_overdue": figures.count(live["referrals_overdue"], k),
            },
        }
        figures.mark_provisional(result, windows_open)
        if by is not None:
            result["breakdown"] = self._cells(by, cells_raw, base_cells, base_period)
            for cell in result["breakdown"]:
                figures.mark_provisional(cell, windows_open)
        return result

    def _prevalence_baselines(
        self, by: str | None = None, key: str | None = None
    ) -> dict[str, float | None]:
        return {
            name: self.baseline.prevalence_for(name, by, key)
            for name in (
                "prevalence_lonely",
                "prevalence_severe",
                "prevalence_emotional",
                "prevalence_social",
            )
        }

    def _baseline_unique(self, base_period: Period, raw: dict[str, Any]) -> int | None:
        configured = self.baseline.participants_unique.get(base_period.label)
        if configured is not None:
            return configured
        value = raw.get("participants_unique")
        return int(value) if value is not None else 0

    def _cells(
        self,
        by: str,
        cells_raw: dict[str, dict[str, Any]],
        base_cells: dict[str, Any],
        base_period: Period,
    ) -> list[dict[str, Any]]:
        known = {
            "neighbourhood": self.reference.neighbourhood_order,
            "age_band": self.reference.age_band_order,
            "category": tuple(sorted(self.reference.activity_categories)),
            "referrer_role": tuple(sorted(self.reference.referrer_roles)),
        }.get(by, ())
        # Every known key gets a cell, so that an absent cell cannot be read as "zero".
        keys = list(known) + sorted(set(cells_raw) - set(known))
        applicable = queries.BREAKDOWNS[by]
        cells = []
        for key in keys:
            raw = cells_raw.get(key, {})
            cell: dict[str, Any] = {"key": key}
            if "s1" in applicable:
                cell["s1"] = figures.s1_figures(
                    raw.get("s1", {}), self.k, self._prevalence_baselines(by, key), False
                )
            if "s2" in applicable:
                base = base_cells.get(key, {}).get("participants_unique", 0)
                cell["s2"] = figures.s2_figures(raw.get("s2", {}), self.k, int(base or 0))
            if "s3" in applicable:
                cell["s3"] = figures.s3_figures(raw.get("s3", {}), self.k, False)
            cells.append(cell)
        return figures.breakdown_cells(cells, [cells_raw.get(c["key"], {}) for c in cells])

    async def trend(self, months: list[Period]) -> list[dict[str, Any]]:
        """Monthly unique and new participants (suppressed like everything else)."""
        out = []
        async with (
            self.pool.acquire() as conn,
            _no_swap(conn),
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for month in months:
                raw = (await queries.s2(conn, self.schema, month.start, month.end, None)).get(
                    "", {}
                )
                out.append(
                    {
                        "period": month.label,
                        "participants_unique": figures.count(
                            raw.get("participants_unique"), self.k
                        ),
                        "participants_new": figures.count(raw.get("participants_new"), self.k),
                    }
                )
        return out
