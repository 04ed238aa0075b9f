"""The live totals' grid (``totals_only``: the municipality totals counted in two steps, per
month and person then per period and person) holds exactly the municipality cells of the full
grid (one step, count(DISTINCT ...) per grouping set, what a release and the hand-computed
scenario use): on the hand-computed scenario and on simulated events of a year."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.metrics.domain.disclosure import TOTAL, YearGrid
from shared.events import decode_event
from tests.integration.test_metrics_change_marker import CountingSource, apply
from tests.integration.test_metrics_scenario import create_metrics_schema, drop_schema, scenario
from tools.bench.prefill import _chunk


def municipality(grid: YearGrid) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    return (
        {k: v for k, v in grid.counts.items() if k[1] == TOTAL},
        {k: v for k, v in grid.sections.items() if k[1] == TOTAL},
        {k: v for k, v in grid.statistics.items() if k[1] == TOTAL},
    )


async def totals_equal_full(pool: asyncpg.Pool, schema: str, years: list[int]) -> int:
    source = CountingSource(schema)
    figures = 0
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        for year in years:
            totals = await source.grid(conn, year, totals_only=True)
            full = await source.grid(conn, year)
            assert municipality(totals) == municipality(full), year
            assert totals.counts == municipality(full)[0]
            figures += len(totals.counts)
    return figures


async def test_the_totals_grid_equals_the_full_grids_municipality_cells(
    pool: asyncpg.Pool,
) -> None:
    schema = await create_metrics_schema(pool)
    try:
        first, second = scenario()
        await apply(pool, schema, [*first, *second])
        assert await totals_equal_full(pool, schema, [2013, 2014, 2015]) > 20
    finally:
        await drop_schema(pool, schema)


async def test_the_totals_grid_equals_the_full_grid_on_simulated_events(
    pool: asyncpg.Pool,
) -> None:
    """Sessions reported by several rows, no-shows, registrations and cancellations of many
    people, the people of a month also in other months."""
    schema = await create_metrics_schema(pool)
    try:
        events = [decode_event(v) for _, _, v in _chunk(7, 0, date(2014, 12, 31), "00" * 32)]
        for at in range(0, 12_000, 2_000):
            await apply(pool, schema, events[at : at + 2_000])
        sessions = await pool.fetchval(
            f'SELECT count(DISTINCT (organisation_id, activity_id, session_start)) FROM "{schema}".attendance'
        )
        assert sessions > 100
        assert await totals_equal_full(pool, schema, [2013, 2014]) > 100
    finally:
        await drop_schema(pool, schema)
