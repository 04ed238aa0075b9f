"""The year grids the service layer decides on (its ``GridSource``): a release's whole grid
from the facts (services/metrics/adapters/year_grid.py), the live municipality totals from the
totals' sums (services/metrics/adapters/totals.py)."""

from __future__ import annotations

import asyncpg

from services.metrics.adapters.totals import refresh_totals
from services.metrics.adapters.year_grid import GridOptions, read_year_grid, years_with_data
from services.metrics.domain.disclosure import YearGrid

__all__ = ["SqlGridSource"]


class SqlGridSource:
    """The year grids of schema ``schema``. A totals-only grid brings the totals' sums up to
    date, so it needs a read-write snapshot of its own (services/metrics/adapters/reading.py
    ``totals_snapshot``)."""

    def __init__(self, schema: str, options: GridOptions) -> None:
        self.schema = schema
        self.options = options

    async def years(self, conn: asyncpg.Connection) -> list[int]:
        return await years_with_data(conn, self.schema)

    async def grid(
        self,
        conn: asyncpg.Connection,
        year: int,
        *,
        totals_only: bool = False,
        query_timeout: float | None = None,
    ) -> YearGrid:
        if totals_only:
            return await refresh_totals(
                conn, self.schema, year, self.options, query_timeout=query_timeout
            )
        return await read_year_grid(
            conn, self.schema, year, self.options, query_timeout=query_timeout
        )
