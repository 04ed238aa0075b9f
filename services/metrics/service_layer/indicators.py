"""Use cases: the indicators of a period, under disclosure control (domain.md §7).

- Municipality totals are **live**: the year's totals-only grid, decided by the engine from the
  totals alone (cached for ``cache_seconds``), so every channel shows the same decision for a
  total (rule 5): ``/v1/indicators``, the trend, the dashboard, ``/metrics``.
- Breakdowns, the lists of the municipality answer (trained people by role, referrals by
  signal) and a partner's own figures come from the latest **release** (rule 6): every answer
  with ``by`` of every period of every year with data, decided once with the exact check and
  stored (:meth:`IndicatorService.cut_release`). Before the first release they are not there
  (:class:`NoRelease`).
- A year **closed** by retention (its facts past the horizon, deleted) answers on every channel
  from the answers the last release published for it, kept for good (migration 011): the
  published figures stay, and no later release decides the year again.
- :meth:`IndicatorService.compute` answers from the facts as they are now, the way a release
  would (tests, and the release itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import asyncpg
import orjson
from prometheus_client import Histogram

from services.metrics.adapters import queries
from services.metrics.adapters.grids import SqlGridSource
from services.metrics.adapters.reading import no_swap, read_snapshot, totals_snapshot, use_work_mem
from services.metrics.adapters.releases import Release, ReleaseStore, release_lock
from services.metrics.adapters.year_grid import GridOptions
from services.metrics.domain import answers
from services.metrics.domain.baseline import Baseline
from services.metrics.domain.disclosure import (
    TOTAL,
    Decisions,
    YearGrid,
    suppress,
    unsuppressed,
    year_periods,
)
from services.metrics.domain.disclosure.fingerprint import (
    decisions_document,
    fingerprint,
    from_document,
)
from services.metrics.domain.growth import baselines as growth_baselines
from services.metrics.domain.periods import Period, parse_period
from services.metrics.domain.windows import provisional
from shared.reference import ReferenceData
from shared.scale import DEFAULT_THRESHOLDS, Thresholds
from shared.timerules import AMSTERDAM

__all__ = [
    "BREAKDOWN_NAMES",
    "Control",
    "GridSource",
    "IndicatorService",
    "NoRelease",
    "ReleaseReport",
]

log = logging.getLogger(__name__)

BREAKDOWN_NAMES = tuple(answers.BREAKDOWNS)
# full: the engine (rules 1-5); primary: rules 1-3 only (the audit's own test); off: no control
# (tests and benchmarks that compare with unsuppressed figures). Never anything but full in
# production (MetricsSettings refuses it).
Control = Literal["full", "primary", "off"]
# How long the count of overdue referrals (which moves with the clock, not only with the facts)
# may go uncounted while the facts do not change.
OVERDUE_SECONDS = 60.0
# PostgreSQL's memory per sort or hash of a live totals refresh (the default, 4 MB, spills the
# year's aggregates to disk at 100,000 events in a year).
LIVE_WORK_MEM = "64MB"
# Release answers kept decoded in memory (a dashboard asks the same few again and again).
RELEASE_CACHE_SIZE = 512

# A live refresh: a year's totals (and the baseline year's, when not at hand) computed again
# after the facts changed. What it costs grows with the year's rows (docs/scale.md "Reads").
LIVE_REFRESH = Histogram(
    "verbinding_metrics_live_refresh_seconds",
    "Time to compute a year's live municipality totals again after the facts changed.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


class GridSource(Protocol):
    """Where the year grids come from (the query layer; issue 14 swaps it for rollups)."""

    async def years(self, conn: asyncpg.Connection) -> list[int]: ...

    async def grid(
        self,
        conn: asyncpg.Connection,
        year: int,
        *,
        totals_only: bool = False,
        query_timeout: float | None = None,
    ) -> YearGrid: ...


class NoRelease(Exception):
    """Breakdowns are published from a release, and none has been cut yet."""


@dataclass(frozen=True)
class YearDecisions:
    grid: YearGrid
    decisions: Decisions
    # What the decisions were decided from (a release's years only), and whether they were
    # taken from the previous release instead of the engine.
    fingerprint: str = ""
    reused: bool = False


# A year's decisions stored by a kept release for this fingerprint, else None.
Reuse = Callable[[int, str], Awaitable[Decisions | None]]


@dataclass(frozen=True)
class _LiveYear:
    """A year's live totals, decided from one snapshot of the facts."""

    marker: queries.Marker  # the change marker of that snapshot
    decided: YearDecisions
    facts: dict[str, Any]  # newest event, events applied: as of the snapshot
    began: float  # monotonic, before the snapshot was taken: the figures are at most this old
    as_of: datetime  # the same moment on the wall clock


@dataclass(frozen=True)
class _Refresh:
    """One computation of a year's live totals under way (in the background)."""

    task: asyncio.Task[None]
    began: float  # monotonic, before its snapshot: it sees every change committed before


@dataclass(frozen=True)
class ReleaseReport:
    release: Release
    # per year: seconds for its grid and for the engine, figures decided, cells left unprotected
    years: dict[int, dict[str, float]]
    seconds: float


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
        control: Control = "full",
        source: GridSource | None = None,
        release_timeout: float = 1800.0,
        max_stale_seconds: float = 0.0,
    ) -> None:
        self.pool = pool
        # How old the live totals may be, once the facts changed, while one refresh runs in the
        # background (stale-while-revalidate); after that a reader waits for the refresh. 0:
        # every reader waits for figures computed after it saw the change (tests that write
        # and read at once).
        self.max_stale_seconds = max_stale_seconds
        # Seconds a release's grid queries (and a live refresh's) may take: both run in the
        # background, so they may take longer than an answer (the pool's 30 s command timeout).
        self.release_timeout = release_timeout
        self.baseline = baseline
        self.reference = reference
        self.k = k
        self.schema = schema
        self.cache_seconds = cache_seconds
        self.control: Control = control
        # Each instrument with its own cut-offs, the ones the referrals service scores with
        # (shared/scale.py): the 6-item subscales only reach 3.
        options = GridOptions(
            reference,
            {name: (cut.emotional, cut.social) for name, cut in thresholds.items()},
            tuple(signal_trainings),
        )
        self.source: GridSource = source or SqlGridSource(schema, options)
        self.releases = ReleaseStore(schema)
        # The change marker, when it was read (monotonic) and the count of changes told
        # (:meth:`facts_changed`) before it was read.
        self._marker: tuple[queries.Marker, float, int] | None = None
        self._told = 0
        self._years: dict[int, _LiveYear] = {}
        self._refreshing: dict[int, _Refresh] = {}
        # Per year: the decisions (by their snapshot's start) found outdated, and when first.
        self._outdated: dict[int, tuple[float, float]] = {}
        # The grids read under one marker, so that the years refreshed under it share the
        # baseline year's grid.
        self._grids_of: tuple[queries.Marker, dict[int, YearGrid]] | None = None
        self._overdue: tuple[int, float, queries.Marker] | None = None  # and when, under which
        self._latest: tuple[float, Release | None] | None = None
        self._answers: dict[tuple[int, str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------------ reading

    def _snapshot(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """One read-only snapshot (services/metrics/adapters/reading.py)."""
        return read_snapshot(self.pool)

    async def _grids(
        self,
        conn: asyncpg.Connection,
        years: Sequence[int],
        *,
        totals_only: bool,
        baseline: bool = True,
        query_timeout: float | None = None,
    ) -> tuple[dict[int, YearGrid], dict[int, float]]:
        """The grids of ``years`` and (``baseline``) of the baseline year (growth rests on it),
        with the seconds each took."""
        grids: dict[int, YearGrid] = {}
        seconds: dict[int, float] = {}
        wanted = {*years, self.baseline.baseline_year} if baseline else set(years)
        for year in sorted(wanted):
            started = time.perf_counter()
            grids[year] = await self.source.grid(
                conn, year, totals_only=totals_only, query_timeout=query_timeout
            )
            seconds[year] = time.perf_counter() - started
        return grids, seconds

    # ----------------------------------------------------------------------- deciding

    def _engine(self, grid: YearGrid, exact: bool) -> Decisions:
        if self.control == "off":
            return unsuppressed(grid)
        return suppress(grid, self.k, exact=exact, secondary=self.control == "full")

    async def _decide(
        self,
        grids: Mapping[int, YearGrid],
        *,
        exact: bool,
        seconds: dict[int, float] | None = None,
        reuse: Reuse | None = None,
    ) -> dict[int, YearDecisions]:
        """Every year's decisions, the baseline year's first: whether a reader knows a
        baseline is the baseline year's decision. The exact check (a release) runs in a
        thread, so that the service keeps answering meanwhile. With ``reuse`` (a release),
        a year whose engine input has the fingerprint of decisions a kept release stored takes
        those instead (the engine is deterministic): the fingerprint is of the grid with the
        baselines it carries, so a changed baseline year changes the years that rest on it."""
        first = self.baseline.baseline_year
        out: dict[int, YearDecisions] = {}
        base: YearDecisions | None = None
        for year in sorted(grids, key=lambda y: (y != first, y)):
            started = time.perf_counter()
            grid = grids[year]
            grid = dataclasses.replace(
                grid,
                baselines=growth_baselines(
                    grid,
                    first,
                    self.baseline.participants_unique,
                    base.grid if base else None,
                    base.decisions if base else None,
                ),
            )
            fp = ""
            decisions: Decisions | None = None
            if reuse is not None:
                fp = await asyncio.to_thread(
                    fingerprint, grid, k=self.k, control=self.control, exact=exact
                )
                decisions = await reuse(year, fp)
            reused = decisions is not None
            if decisions is None:
                decisions = (
                    await asyncio.to_thread(self._engine, grid, True)
                    if exact
                    else self._engine(grid, False)
                )
            if decisions.unprotected:
                log.error(
                    "the disclosure engine left cells unprotected",
                    extra={"year": year, "cells": [str(c) for c in decisions.unprotected[:20]]},
                )
            out[year] = YearDecisions(grid, decisions, fp, reused)
            if year == first:
                base = out[year]
            if seconds is not None:
                seconds[year] = time.perf_counter() - started
        return out

    async def _live_totals(self, year: int) -> tuple[YearDecisions, dict[str, Any]]:
        """The municipality totals of ``year``, decided from the totals alone, and the live
        figures (as of the snapshot they were computed from).

        Computed again only when the change marker moved (the facts or the partner registry
        changed), and each year's grid once per change, whoever asks (every period of the year,
        the trend's months, ``/metrics``, the growth baseline of other years): an unchanged
        database costs one query of a few rows, and none within ``cache_seconds`` unless a
        change was told (:meth:`facts_changed`).

        Once a year has been decided, a change does not make readers wait: one refresh of the
        year runs in the background (one at a time per year in this instance) and readers get
        the previous decisions, marked stale in ``freshness``, until it is done, for at most
        ``max_stale_seconds`` after this instance first saw the change; after that they wait
        for figures computed after they saw the change. The year's first computation blocks.
        The count of overdue referrals also moves with the clock: it is counted again after
        ``OVERDUE_SECONDS`` (a count over the open referrals, which does not wait for a
        refresh)."""
        marker, seen = await self._current_marker()
        known = self._years.get(year)
        stale, stale_for = False, 0.0
        # Decisions from a snapshot taken after the marker was read are not outdated by it,
        # even where their own marker is newer (the facts moved between the two reads): else
        # every answer between two reads of a moving marker would start another refresh.
        if known is not None and known.marker != marker and known.began < seen:
            stale_for = time.monotonic() - self._outdated_since(year, known, seen)
            stale = stale_for <= self.max_stale_seconds
            if stale:
                self._refresh(year)  # the running one, or a new one
            else:
                known = None
        if known is None:
            # Computed after this reader saw the marker: as fresh as what it saw (a marker
            # that moved meanwhile is newer facts, not staler figures).
            known, stale, stale_for = await self._fresh(year, seen), False, 0.0
        live = {
            **known.facts,
            "referrals_overdue": await self._overdue_count(marker),
            "as_of": known.as_of,
            "stale": stale,
            "stale_seconds": stale_for,
        }
        return known.decided, live

    def _outdated_since(self, year: int, known: _LiveYear, seen: float) -> float:
        """When this instance first saw that ``year``'s decisions ``known`` no longer match
        the facts (monotonic): the staleness bound counts from then, not from their snapshot,
        so that after a quiet hour one change does not make the next reader wait."""
        since = self._outdated.get(year)
        if since is None or since[0] != known.began:
            since = (known.began, seen)
            self._outdated[year] = since
        return since[1]

    def facts_changed(self) -> None:
        """Told that a change of the facts committed (services/metrics/adapters/changes.py):
        the next answer reads the change marker again instead of waiting out
        ``cache_seconds``."""
        self._told += 1

    async def _current_marker(self) -> tuple[queries.Marker, float]:
        """The change marker and when it was read (monotonic): read again once a change was
        told since, and at the latest after ``cache_seconds`` (a change that was not told)."""
        now = time.monotonic()
        hit = self._marker
        if hit is None or hit[2] != self._told or now - hit[1] >= self.cache_seconds:
            told = self._told
            async with self.pool.acquire() as conn, no_swap(conn):
                marker = await queries.change_marker(conn, self.schema)
            self._marker = hit = (marker, time.monotonic(), told)
        return hit[0], hit[1]

    async def _fresh(self, year: int, seen: float) -> _LiveYear:
        """``year``'s totals from a snapshot taken after ``seen`` (monotonic): they include
        every change the reader saw. A refresh already under way that began after it serves;
        one that began before is waited for and another started."""
        while True:
            refresh = self._refresh(year)
            # Shielded: a reader that gives up (a closed request) does not cancel the refresh
            # the other readers wait for.
            await asyncio.shield(refresh.task)
            known = self._years.get(year)
            if refresh.began >= seen and known is not None and known.began >= refresh.began:
                return known

    def _refresh(self, year: int) -> _Refresh:
        """The refresh of ``year`` under way, or a new one started in the background."""
        running = self._refreshing.get(year)
        if running is not None and not running.task.done():
            return running
        began = time.monotonic()
        refresh = _Refresh(asyncio.create_task(self._compute(year, began)), began)
        self._refreshing[year] = refresh
        refresh.task.add_done_callback(_log_failure)
        return refresh

    async def _compute(self, year: int, began: float) -> None:
        """Decide ``year`` (and the baseline year, which its growth rests on) from one
        snapshot; the marker is read in the same snapshot as the figures. Newer decisions
        already in place are kept."""
        first = self.baseline.baseline_year
        started = time.perf_counter()
        # Read-write: the totals' sums are brought up to date with the people who changed.
        async with totals_snapshot(self.pool, self.schema) as conn:
            # The totals grid's aggregates over the year's rows fit in memory instead of
            # spilling to disk (about 20% of a totals grid at 100,000 events; a live refresh
            # runs one at a time per year).
            await use_work_mem(conn, LIVE_WORK_MEM)
            as_of = datetime.now(UTC)
            marker = await queries.change_marker(conn, self.schema)
            if self._grids_of is None or self._grids_of[0] != marker:
                self._grids_of = (marker, {})
            grids = self._grids_of[1]
            wanted = sorted({year, first} - set(grids))
            # A refresh runs in the background (shielded, shared by its readers), like a
            # release's cut: its grid queries get the release's time, not an answer's 30 s,
            # which a busy year outgrows (docs/benchmarks.md, reads at 5M events).
            read, _ = await self._grids(
                conn,
                wanted,
                totals_only=True,
                baseline=False,
                query_timeout=self.release_timeout,
            )
            grids.update(read)
            facts = await queries.fact_figures(conn, self.schema)
        decided = await self._decide({y: grids[y] for y in {year, first}}, exact=False)
        for y, decisions in decided.items():
            known = self._years.get(y)
            if known is None or known.began <= began:
                self._years[y] = _LiveYear(marker, decisions, facts, began, as_of)
        LIVE_REFRESH.observe(time.perf_counter() - started)

    async def _overdue_count(self, marker: queries.Marker) -> int:
        """Open referrals without a change for 14 days: counted again when the facts changed
        or after ``OVERDUE_SECONDS`` (a count over the open referrals' index)."""
        now = time.monotonic()
        hit = self._overdue
        if hit is None or hit[2] != marker or now - hit[1] >= OVERDUE_SECONDS:
            async with self.pool.acquire() as conn, no_swap(conn):
                count = await queries.referrals_overdue(conn, self.schema)
            self._overdue = hit = (count, now, marker)
        return hit[0]

    async def close(self) -> None:
        """Stop the refreshes under way (the service is stopping; its pool closes next)."""
        tasks = [r.task for r in self._refreshing.values() if not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------------ answers

    def _prevalence_baselines(self, by: str = TOTAL, key: str = "") -> dict[str, float | None]:
        return {
            name: self.baseline.prevalence_for(name, by or None, key or None)
            for name in answers.PREVALENCES
        }

    def _k_shown(self) -> int:
        return 1 if self.control == "off" else self.k

    def _answer(
        self,
        period: Period,
        by: str | None,
        decided: YearDecisions,
        live: Mapping[str, Any],
        *,
        lists: bool,
        generated_at: datetime,
    ) -> dict[str, Any]:
        decisions, grid = decided.decisions, decided.grid
        newest = live["newest_event_at"]
        overdue = int(live["referrals_overdue"])
        result: dict[str, Any] = {
            "period": period.label,
            "period_kind": period.kind,
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "by": by,
            "k": self.k,
            "generated_at": generated_at.isoformat(),
            "freshness": {
                "newest_event_at": newest.isoformat() if newest else None,
                "events_applied": live["events_applied"],
                **_staleness(live),
            },
            "baseline_year": self.baseline.baseline_year,
            **answers.sections(
                decisions,
                period.label,
                self._prevalence_baselines(),
                lists=grid.keys if lists else None,
            ),
        }
        # A live figure of no period, about people: hidden below k like any count.
        result["s3"]["referrals_overdue"] = (
            {"value": overdue, "suppressed": False}
            if overdue >= self._k_shown()
            else {"value": None, "suppressed": True, "reason": "primary"}
        )
        if by is not None:
            result["breakdown"] = [
                answers.cell(decisions, by, key, period.label, self._prevalence_baselines(by, key))
                for key in grid.keys.get(by, ())
            ]
        result["reasons"] = answers.reasons(self.k)
        return result

    @staticmethod
    def _mark(result: dict[str, Any], period: Period, today: date | None) -> dict[str, Any]:
        """Provisional marks as of ``today`` (default: today in Amsterdam)."""
        windows_open = provisional(period.end, today or datetime.now(AMSTERDAM).date())
        answers.mark_provisional(result, windows_open)
        for cell in result.get("breakdown", []):
            answers.mark_provisional(cell, windows_open)
        return result

    async def compute(
        self,
        period: Period,
        by: str | None = None,
        *,
        today: date | None = None,
        exact: bool = False,
    ) -> dict[str, Any]:
        """The answer as a release cut now would give it (``exact``: with the exact check of
        everything, as a release does), from the facts as they are. ``today`` (default: today
        in Amsterdam) decides which figures are still provisional."""
        if by is not None and by not in answers.BREAKDOWNS:
            raise ValueError(f"by must be one of {', '.join(answers.BREAKDOWNS)}")
        year = period.start.year
        async with self._snapshot() as conn:
            grids, _ = await self._grids(conn, [year], totals_only=False)
            live = await queries.live_figures(conn, self.schema)
        decided = (await self._decide(grids, exact=exact))[year]
        result = self._answer(period, by, decided, live, lists=True, generated_at=datetime.now(UTC))
        return self._mark(result, period, today)

    async def live(
        self, period: Period, *, today: date | None = None, lists: bool = True
    ) -> dict[str, Any]:
        """The municipality answer: live totals; the lists (by role, by signal) from the
        latest release, empty before the first (``lists`` False: without them, for
        ``/metrics``, which carries no breakdown)."""
        closed = await self._closed_answer(period, "")
        if closed is not None:
            return self._mark(closed, period, today)
        decided, live = await self._live_totals(period.start.year)
        result = self._answer(
            period, None, decided, live, lists=False, generated_at=datetime.now(UTC)
        )
        if lists:
            release = await self.latest_release()
            result["released_at"] = release.released_at.isoformat() if release else None
            released = await self._released_answer(release, period, "") if release else None
            for name in answers.LISTS:
                result["s3"][name] = released["s3"].get(name, {}) if released else {}
        return self._mark(result, period, today)

    async def indicators(self, period_label: str, by: str | None = None) -> dict[str, Any]:
        """``GET /v1/indicators``: live municipality totals, or a breakdown from the release."""
        period = parse_period(period_label)
        if by is None:
            return await self.live(period)
        return await self.released(period, by)

    async def released(
        self, period: Period, by: str, *, today: date | None = None
    ) -> dict[str, Any]:
        """A breakdown answer from the latest release (NoRelease before the first)."""
        if by not in answers.BREAKDOWNS:
            raise ValueError(f"by must be one of {', '.join(answers.BREAKDOWNS)}")
        closed = await self._closed_answer(period, by)
        if closed is not None:
            return self._mark(closed, period, today)
        release = await self.latest_release()
        if release is None:
            raise NoRelease()
        result = await self._released_answer(release, period, by)
        if result is None:
            # Nothing recorded in that year when the release was cut: every cell empty.
            result = self._empty_answer(period, by, release)
        result["released_at"] = release.released_at.isoformat()
        return self._mark(result, period, today)

    def _empty_answer(self, period: Period, by: str | None, release: Release) -> dict[str, Any]:
        grid = YearGrid(year=period.start.year, keys={}, counts={})
        decided = YearDecisions(
            grid, Decisions(k=release.k, year=grid.year, figures={}, baselines={})
        )
        live = {
            "newest_event_at": release.newest_event_at,
            "events_applied": release.events_applied,
            "referrals_overdue": 0,
        }
        return self._answer(
            period, by, decided, live, lists=False, generated_at=release.released_at
        )

    async def own_indicators(
        self, period_label: str, organisation_id: str, *, today: date | None = None
    ) -> dict[str, Any]:
        """A partner's own figures: its cell of the release's breakdown by organisation,
        exactly as the analysts see it (one decision per cell, domain.md §7 rule 5). An
        organisation without a cell (nothing recorded in the year) gets an empty cell."""
        period = parse_period(period_label)
        by_organisation = await self.released(period, "organisation", today=today)
        found = next((c for c in by_organisation["breakdown"] if c["key"] == organisation_id), None)
        if found is None:
            found = answers.empty_cell("organisation", organisation_id, self.k, period.start.year)
            found.pop("key")
            answers.mark_provisional(
                found, provisional(period.end, today or datetime.now(AMSTERDAM).date())
            )
        return {
            "period": by_organisation["period"],
            "period_kind": by_organisation["period_kind"],
            "from": by_organisation["from"],
            "to": by_organisation["to"],
            "organisation_id": organisation_id,
            "k": by_organisation["k"],
            "generated_at": by_organisation["generated_at"],
            "released_at": by_organisation["released_at"],
            "freshness": by_organisation["freshness"],
            "s2": found["s2"],
            "s3": found["s3"],
            "reasons": by_organisation["reasons"],
        }

    async def trend(self, months: list[Period]) -> list[dict[str, Any]]:
        """Monthly unique and new participants: the live totals' decisions of their years."""
        out = []
        for month in months:
            closed = await self._closed_answer(month, "")
            if closed is not None:
                section = closed["s2"]
            else:
                decided, _ = await self._live_totals(month.start.year)
                section = answers.s2_section(decided.decisions, TOTAL, "", month.label)
            out.append(
                {
                    "period": month.label,
                    "participants_unique": section["participants_unique"],
                    "participants_new": section["participants_new"],
                }
            )
        return out

    # ----------------------------------------------------------------------- releases

    async def _closed_answer(self, period: Period, by: str) -> dict[str, Any] | None:
        """The answer kept for ``period`` if its year is closed (``by`` "" for the
        municipality answer), with the moment it was released; else None. Whether a year is
        closed comes with the change marker, which every live answer reads anyway."""
        marker, _ = await self._current_marker()
        year = period.start.year
        if year not in queries.closed_years(marker):
            return None
        key = (-year, period.label, by)  # apart from the releases' (positive) ids
        hit = self._answers.get(key)
        if hit is None:
            async with self.pool.acquire() as conn:
                hit = await self.releases.closed_answer(conn, year, period.label, by)
            if hit is None:
                return None  # (cannot be: a closed year keeps every answer of its release)
            if len(self._answers) >= RELEASE_CACHE_SIZE:
                self._answers.clear()
            self._answers[key] = hit
        return _copy(hit)

    async def latest_release(self) -> Release | None:
        hit = self._latest
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        async with self.pool.acquire() as conn:
            release = await self.releases.latest(conn)
        self._latest = (time.monotonic(), release)
        return release

    async def _released_answer(
        self, release: Release, period: Period, by: str
    ) -> dict[str, Any] | None:
        key = (release.release_id, period.label, by)
        hit = self._answers.get(key)
        if hit is None:
            async with self.pool.acquire() as conn:
                hit = await self.releases.answer(conn, release.release_id, period.label, by)
            if hit is None:
                return None
            if len(self._answers) >= RELEASE_CACHE_SIZE:
                self._answers.clear()
            self._answers[key] = hit
        # A copy: the caller marks it (provisional, released_at).
        return _copy(hit)

    async def cut_release(self, *, wait: bool = True) -> ReleaseReport | None:
        """Decide every year with data (exact check of everything) and store every breakdown
        answer as the new release, atomically. One cut at a time across instances: with
        ``wait`` False, None when another cut is under way."""
        async with self.pool.acquire() as conn, release_lock(conn, wait=wait) as taken:
            return await self._cut() if taken else None

    async def _cut(self) -> ReleaseReport:
        started = time.perf_counter()
        released_at = datetime.now(UTC)
        async with self._snapshot() as conn:
            # A closed year is answered from the answers kept when it closed, never decided
            # again (facts a rebuild replayed for it go with the next retention run).
            closed = await self.releases.closed_years(conn)
            years = [y for y in await self.source.years(conn) if y not in closed]
            grids, grid_seconds = await self._grids(
                conn, years, totals_only=False, query_timeout=self.release_timeout
            )
            live = await queries.live_figures(conn, self.schema)
        engine_seconds: dict[int, float] = {}
        decided = await self._decide(
            grids, exact=True, seconds=engine_seconds, reuse=await self._reuse()
        )
        rows: list[tuple[str, str, dict[str, Any]]] = []
        timings: dict[int, dict[str, float]] = {}
        for year in years:
            yd = decided[year]
            for label in year_periods(year):
                period = parse_period(label)
                for by in (None, *answers.BREAKDOWNS):
                    answer = self._answer(
                        period, by, yd, live, lists=by is None, generated_at=released_at
                    )
                    rows.append((label, by or "", answer))
            timings[year] = {
                "grid_seconds": round(grid_seconds[year], 3),
                "engine_seconds": round(engine_seconds[year], 3),
                "figures": len(yd.decisions),
                "unprotected": len(yd.decisions.unprotected),
                "reused": yd.reused,
            }
        async with self.pool.acquire() as conn, no_swap(conn):
            release = await self.releases.save(
                conn,
                released_at=released_at,
                k=self.k,
                control=self.control,
                newest_event_at=live["newest_event_at"],
                events_applied=live["events_applied"],
                years={str(y): t for y, t in timings.items()},
                answers=rows,
                decisions={
                    y: (yd.fingerprint, decisions_document(yd.decisions))
                    for y, yd in decided.items()
                },
            )
        self._latest = (time.monotonic(), release)
        seconds = time.perf_counter() - started
        log.info(
            "release cut",
            extra={
                "release": release.release_id,
                "years": len(years),
                "reused": sorted(y for y in years if decided[y].reused),
                "seconds": round(seconds, 1),
            },
        )
        return ReleaseReport(release, timings, seconds)

    async def _reuse(self) -> Reuse:
        """The decisions the kept releases stored (the newest and the one before it), by year
        and fingerprint; none before the first release."""
        async with self.pool.acquire() as conn:
            stored = await self.releases.fingerprints(conn)

        async def reuse(year: int, fp: str) -> Decisions | None:
            release_id = stored.get((year, fp))
            if release_id is None:
                return None
            async with self.pool.acquire() as conn:
                doc = await self.releases.decisions(conn, release_id, year, fp)
            # (None: that release was dropped meanwhile, by a cut elsewhere; decide afresh.)
            return None if doc is None else await asyncio.to_thread(from_document, doc)

        return reuse


def _staleness(live: Mapping[str, Any]) -> dict[str, Any]:
    """What the live totals' freshness adds: the moment of the snapshot the figures were
    computed from (``figures_as_of``: every fact applied by then is in them), whether the facts
    changed since (``stale``: a refresh is under way) and for how long this service has known
    that (``stale_seconds``, bounded by ``max_stale_seconds``). A release's answer has none of
    them: it says ``released_at``."""
    as_of = live.get("as_of")
    if as_of is None:
        return {}
    stale = bool(live.get("stale"))
    return {
        "figures_as_of": as_of.isoformat(),
        "stale": stale,
        "stale_seconds": round(float(live.get("stale_seconds") or 0.0), 3) if stale else 0.0,
    }


def _log_failure(task: asyncio.Task[None]) -> None:
    """A background refresh that failed: logged (a reader waiting for it gets the error too;
    the next reader starts another)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("a refresh of the live totals failed", exc_info=task.exception())


def _copy(answer: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document (cheaper than copy.deepcopy for plain data)."""
    copied: dict[str, Any] = orjson.loads(orjson.dumps(answer))
    return copied
