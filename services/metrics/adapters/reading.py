"""How the read side holds PostgreSQL: one consistent snapshot per answer or release, and never
across a rebuild's swap. The service layer asks for these by name and sends no SQL itself."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from services.metrics.adapters.rebuild_schema import REBUILD_LOCK
from services.metrics.adapters.totals import TOTALS_LOCK

__all__ = ["TOTALS_LOCK", "no_swap", "read_snapshot", "totals_snapshot", "use_work_mem"]


@contextlib.asynccontextmanager
async def no_swap(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold the rebuild's swap lock shared, taken before the read transaction and its snapshot.

    Without it a rebuild's swap (which drops the old tables) deadlocks with a reader that holds
    some of them and waits for others, and a snapshot taken while waiting would miss the swap."""
    await conn.execute("SELECT pg_advisory_lock_shared($1)", REBUILD_LOCK)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock_shared($1)", REBUILD_LOCK)


@contextlib.asynccontextmanager
async def read_snapshot(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One read-only snapshot: the figures of one answer (or release) agree.

    Without JIT compilation: the grid's range joins (the activity version in force) make
    the planner misestimate its rows by orders of magnitude, and compiling the resulting
    plans cost more than running them (at 100k events a totals grid took 3.4-5.0 s with
    JIT, 1.2-1.8 s without; docs/benchmarks.md)."""
    async with (
        pool.acquire() as conn,
        no_swap(conn),
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        await conn.execute("SET LOCAL jit = off")
        yield conn


@contextlib.asynccontextmanager
async def totals_snapshot(pool: asyncpg.Pool, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """One snapshot that may also bring the totals' sums up to date
    (services/metrics/adapters/totals.py): as :func:`read_snapshot`, but read-write, and one
    at a time per schema. The lock is taken before the transaction begins, so that its
    snapshot sees what the refresh before it committed (in one repeatable-read transaction
    that waited for the lock, it would not, and its updates of the same sums would fail)."""
    async with pool.acquire() as conn, no_swap(conn):
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", TOTALS_LOCK, schema)
        try:
            async with conn.transaction(isolation="repeatable_read"):
                await conn.execute("SET LOCAL jit = off")
                yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", TOTALS_LOCK, schema)


async def use_work_mem(conn: asyncpg.Connection, size: str) -> None:
    """PostgreSQL's memory per sort or hash for the rest of this transaction (e.g. "64MB")."""
    await conn.execute(f"SET LOCAL work_mem = '{size}'")
