"""Answers never wait for a refresh (issue 14, item 1): once a year's live totals have been
decided, a change of the facts starts one refresh in the background and readers get the
previous decisions at once, marked stale in ``freshness``, until it is done, for at most
``max_stale_seconds``; only a year's first computation blocks. Real PostgreSQL; the grid reads
of a refresh are held at a gate so that readers provably come while it runs."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import asyncpg

from services.metrics.domain.baseline import load_baseline
from services.metrics.domain.disclosure import YearGrid
from services.metrics.domain.periods import parse_period
from services.metrics.service_layer.indicators import IndicatorService
from shared.reference import load_reference
from tests.integration.test_metrics_change_marker import CountingSource, apply
from tests.integration.test_metrics_scenario import create_metrics_schema, drop_schema, scenario

YEAR = parse_period("2014")
BASELINE = dataclasses.replace(load_baseline(), baseline_year=2013)


class GatedSource(CountingSource):
    """The SQL grids; while ``gate`` is closed a grid read waits at it (a refresh under way)."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0

    async def grid(
        self,
        conn: asyncpg.Connection,
        year: int,
        *,
        totals_only: bool = False,
        query_timeout: float | None = None,
    ) -> YearGrid:
        if not self.gate.is_set():
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        return await super().grid(conn, year, totals_only=totals_only, query_timeout=query_timeout)


def service_on(
    pool: asyncpg.Pool,
    schema: str,
    source: Any = None,
    max_stale: float = 0.0,
    *,
    cache_seconds: float = 0.0,
) -> IndicatorService:
    return IndicatorService(
        pool,
        BASELINE,
        load_reference(),
        k=1,
        schema=schema,
        cache_seconds=cache_seconds,
        control="off",
        source=source,
        max_stale_seconds=max_stale,
    )


def figures(answer: dict[str, Any]) -> tuple[Any, Any]:
    return answer["s2"], answer["freshness"]["events_applied"]


async def until_waiting(source: GatedSource) -> None:
    """Until a refresh waits at the gate (bounded)."""
    for _ in range(500):
        if source.waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no refresh started")


async def test_readers_during_a_refresh_get_the_previous_figures_at_once_and_marked(
    pool: asyncpg.Pool,
) -> None:
    schema = await create_metrics_schema(pool)
    try:
        first, second = scenario()
        await apply(pool, schema, first)
        source = GatedSource(schema)
        service = service_on(pool, schema, source, max_stale=60.0)

        # The year's first computation blocks: the answer is the facts' as they are.
        before = await service.live(YEAR, lists=False)
        assert figures(before) == figures(await service_on(pool, schema).live(YEAR, lists=False))
        assert before["freshness"]["stale"] is False
        assert before["freshness"]["stale_seconds"] == 0.0
        assert before["freshness"]["figures_as_of"]
        assert sorted(source.read) == [2013, 2014]

        # The facts change; the refresh is held at the gate. Readers, several at once, get
        # the previous figures immediately, marked stale; one refresh runs, not one each.
        assert await apply(pool, schema, second) > 0
        source.gate.clear()
        answers = await asyncio.wait_for(
            asyncio.gather(*(service.live(YEAR, lists=False) for _ in range(5))), timeout=10
        )
        await until_waiting(source)
        for answer in answers:
            assert figures(answer) == figures(before)
            assert answer["freshness"]["stale"] is True
            assert answer["freshness"]["figures_as_of"] == before["freshness"]["figures_as_of"]
            assert 0 <= answer["freshness"]["stale_seconds"] < 10
        assert source.waiting == 1
        # Another reader while it still runs: the same, and still one refresh; the staleness
        # counts from when the change was first seen.
        await asyncio.sleep(0.2)
        again = await asyncio.wait_for(service.live(YEAR, lists=False), timeout=10)
        assert figures(again) == figures(before)
        assert again["freshness"]["stale"] is True
        assert again["freshness"]["stale_seconds"] >= 0.2
        assert source.waiting == 1

        # The refresh done, the new figures: those of a service that never saw the old facts.
        source.gate.set()
        await asyncio.wait_for(service._refreshing[YEAR.start.year].task, timeout=30)
        after = await service.live(YEAR, lists=False)
        fresh = await service_on(pool, schema).live(YEAR, lists=False)
        assert figures(after) == figures(fresh)
        assert figures(after) != figures(before)
        assert after["freshness"]["stale"] is False
        assert after["freshness"]["figures_as_of"] > before["freshness"]["figures_as_of"]
        # Both years once at first, both once more for the change: no refresh per reader.
        assert sorted(source.read) == [2013, 2013, 2014, 2014]
    finally:
        await drop_schema(pool, schema)


async def test_a_reader_waits_once_the_figures_are_older_than_the_bound(
    pool: asyncpg.Pool,
) -> None:
    """Staleness is bounded: figures known to be outdated for longer than
    ``max_stale_seconds`` are not served; the reader waits for figures computed after it saw
    the change. A quiet spell before the change does not count."""
    schema = await create_metrics_schema(pool)
    try:
        first, second = scenario()
        await apply(pool, schema, first)
        source = GatedSource(schema)
        service = service_on(pool, schema, source, max_stale=0.3)
        before = await service.live(YEAR, lists=False)
        await asyncio.sleep(0.4)  # quiet, longer than the bound
        assert await apply(pool, schema, second) > 0
        source.gate.clear()
        stale = await asyncio.wait_for(service.live(YEAR, lists=False), timeout=10)
        assert figures(stale) == figures(before)
        assert stale["freshness"]["stale"] is True
        await until_waiting(source)
        await asyncio.sleep(0.4)  # the change known for longer than the bound
        reader = asyncio.create_task(service.live(YEAR, lists=False))
        await asyncio.sleep(0.2)
        assert not reader.done()  # waiting for the refresh, not served the old figures
        source.gate.set()
        after = await asyncio.wait_for(reader, timeout=30)
        assert figures(after) == figures(await service_on(pool, schema).live(YEAR, lists=False))
        assert figures(after) != figures(before)
        assert after["freshness"]["stale"] is False
    finally:
        await drop_schema(pool, schema)


async def test_the_first_computation_blocks_and_is_shared(pool: asyncpg.Pool) -> None:
    """No previous figures: every reader waits, for one computation; a reader that gives up
    does not cancel it for the others. Two instances each compute their own, equal."""
    schema = await create_metrics_schema(pool)
    try:
        first, _ = scenario()
        await apply(pool, schema, first)
        source = GatedSource(schema)
        service = service_on(pool, schema, source, max_stale=60.0)
        source.gate.clear()
        readers = [asyncio.create_task(service.live(YEAR, lists=False)) for _ in range(4)]
        await until_waiting(source)
        await asyncio.sleep(0.1)
        assert not any(r.done() for r in readers)
        readers[0].cancel()
        source.gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*readers[1:]), timeout=30)
        assert sorted(source.read) == [2013, 2014]
        other = service_on(pool, schema, max_stale=60.0)
        expected = figures(await other.live(YEAR, lists=False))
        assert all(figures(a) == expected for a in answers)
        assert all(a["freshness"]["stale"] is False for a in answers)
    finally:
        await drop_schema(pool, schema)


async def test_a_failed_refresh_is_not_served_as_fresh_and_the_next_reader_retries(
    pool: asyncpg.Pool,
) -> None:
    """A background refresh that fails leaves the previous figures marked stale; the next
    reader starts another."""
    schema = await create_metrics_schema(pool)
    try:
        first, second = scenario()
        await apply(pool, schema, first)
        source = GatedSource(schema)
        service = service_on(pool, schema, source, max_stale=60.0)
        before = await service.live(YEAR, lists=False)
        assert await apply(pool, schema, second) > 0

        failing = True
        real = source.grid

        async def grid(conn: asyncpg.Connection, year: int, **kw: Any) -> YearGrid:
            if failing:
                raise RuntimeError("the database went away")
            return await real(conn, year, **kw)

        source.grid = grid  # type: ignore[method-assign]
        stale = await service.live(YEAR, lists=False)
        assert figures(stale) == figures(before)
        assert stale["freshness"]["stale"] is True
        task = service._refreshing[YEAR.start.year].task
        await asyncio.gather(task, return_exceptions=True)
        assert isinstance(task.exception(), RuntimeError)
        still = await service.live(YEAR, lists=False)
        assert figures(still) == figures(before)
        assert still["freshness"]["stale"] is True
        failing = False
        await asyncio.wait_for(service._refreshing[YEAR.start.year].task, timeout=30)
        after = await service.live(YEAR, lists=False)
        assert after["freshness"]["stale"] is False
        assert figures(after) != figures(before)
    finally:
        await drop_schema(pool, schema)
