"""The rebuild's SQL: a fresh schema loaded in bulk, then swapped in place of the live one.

Bulk load (issue 14): the fresh schema's secondary indexes are dropped before the replay and
built once after it (one sorted build instead of a random insert per row per index); the primary
keys stay, because they are the natural keys that make a fact that reaches a topic twice count
once. The replay's transactions commit asynchronously (``synchronous_commit = off``): a crash
before the swap loses nothing that matters, since a rebuild that did not swap starts again from
scratch, and the swap itself commits synchronously, which flushes the WAL of every transaction
before it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from services.metrics.adapters.changes import notify_changed
from services.metrics.adapters.rollups import fill_first_attendance_share, fill_open_referrals
from shared.db import apply_migrations, migration_files
from shared.db_roles import grant_service

__all__ = ["REBUILD_LOCK", "RebuildSchema"]

REBUILD_LOCK = 0x5EB1D  # advisory lock id shared by the live consumer and the rebuild

# Tables derived from the facts after the load (adapters/rollups.py).
ROLLUP_TABLES = ("first_attendance", "open_referrals")


class RebuildSchema:
    """Role: the fresh schema ``new`` of a rebuild of ``live`` (both names of schemas)."""

    def __init__(self, pool: asyncpg.Pool, live: str, new: str, migrations: str) -> None:
        self.pool = pool
        self.live = live
        self.new = new
        self.migrations = migrations
        self._deferred: list[str] = []

    async def create(self, grant_to: str | None) -> None:
        """Drop a leftover, migrate afresh, grant ``grant_to``; drop the secondary indexes until
        :meth:`build_indexes` (their definitions are kept)."""
        async with self.pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.new} CASCADE")
            await apply_migrations(
                conn,
                self.new,
                [*migration_files("shared.migrations.service"), *migration_files(self.migrations)],
            )
            if grant_to is not None:
                await grant_service(conn, self.new, grant_to)
            rows = await conn.fetch(
                "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS ddl "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1 AND NOT i.indisprimary AND NOT i.indisunique "
                "ORDER BY 1",
                self.new,
            )
            for row in rows:
                await conn.execute(f"DROP INDEX {row['name']}")
            self._deferred = [row["ddl"] for row in rows]

    async def build_indexes(self, connections: int = 1) -> None:
        """The secondary indexes of the facts, each built once over the loaded rows, and fresh
        statistics; on up to ``connections`` connections side by side (one statement uses one
        core; a CREATE INDEX takes a lock that other index builds of its table share). The
        rollups' own indexes wait for :meth:`fill_rollups`."""
        facts = [ddl for ddl in self._deferred if not self._on_rollup(ddl)]
        async with self.pool.acquire() as conn:
            tables = [t for t in await self._tables(conn) if t not in ROLLUP_TABLES]
        await self._side_by_side(
            [*(self._build(ddl) for ddl in facts), *(self._analyze(t) for t in tables)],
            connections,
        )
        self._deferred = [ddl for ddl in self._deferred if self._on_rollup(ddl)]

    async def fill_rollups(self, connections: int = 1) -> None:
        """The rollups from the loaded facts, once (the bulk load does not keep them): the
        first attendances in ``connections`` shares of people side by side, then the rollups'
        indexes and statistics."""
        shares = max(1, connections)

        async def first_attendance(share: int, conn: asyncpg.Connection) -> None:
            await fill_first_attendance_share(conn, self.new, share, shares)

        async def open_referrals(conn: asyncpg.Connection) -> None:
            await fill_open_referrals(conn, self.new)

        await self._side_by_side(
            [open_referrals, *(functools.partial(first_attendance, n) for n in range(shares))],
            connections,
        )
        rollup_indexes, self._deferred = self._deferred, []
        await self._side_by_side(
            [
                *(self._build(ddl) for ddl in rollup_indexes),
                *(self._analyze(t) for t in ROLLUP_TABLES),
            ],
            connections,
        )

    def _on_rollup(self, ddl: str) -> bool:
        return any(f" ON {self.new}.{t} " in ddl for t in ROLLUP_TABLES)

    def _build(self, ddl: str) -> Callable[[asyncpg.Connection], Awaitable[None]]:
        async def build(conn: asyncpg.Connection) -> None:
            # A sort in memory rather than on disk.
            await conn.execute("SET maintenance_work_mem = '256MB'")
            try:
                await conn.execute(ddl)
            finally:
                await conn.execute("RESET maintenance_work_mem")

        return build

    def _analyze(self, table: str) -> Callable[[asyncpg.Connection], Awaitable[None]]:
        async def analyze(conn: asyncpg.Connection) -> None:
            await conn.execute(f"ANALYZE {self.new}.{table}")

        return analyze

    async def _side_by_side(
        self, jobs: Sequence[Callable[[asyncpg.Connection], Awaitable[None]]], connections: int
    ) -> None:
        """Each job on a connection of its own, at most ``connections`` at a time (each in its
        own transaction: the fresh schema is not live, and a failure fails the rebuild)."""
        queue = list(jobs)

        async def run() -> None:
            async with self.pool.acquire() as conn:
                while queue:
                    await queue.pop(0)(conn)

        tasks = [asyncio.create_task(run()) for _ in range(max(1, min(connections, len(queue))))]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _tables(self, conn: asyncpg.Connection) -> list[str]:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", self.new
        )
        return [r["tablename"] for r in rows]

    async def swap(self, catch_up: Callable[[], Awaitable[None]]) -> None:
        """Take the swap lock (live batches and reads wait on it), ``catch_up`` with what
        arrived meanwhile, and make the fresh schema the live one, in one transaction that
        commits synchronously."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REBUILD_LOCK)
            await catch_up()
            await self._carry_releases(conn)
            retired = f"{self.live}_retired"
            await conn.execute(f"DROP SCHEMA IF EXISTS {retired} CASCADE")
            await conn.execute(f"ALTER SCHEMA {self.live} RENAME TO {retired}")
            await conn.execute(f"ALTER SCHEMA {self.new} RENAME TO {self.live}")
            # Dropped in the same transaction so that no statement prepared against the old
            # tables can keep writing into them after the swap.
            await conn.execute(f"DROP SCHEMA {retired} CASCADE")
            # Delivered at the commit: readers read the marker (the new generation) at once.
            await notify_changed(conn, self.live)

    async def _carry_releases(self, conn: asyncpg.Connection) -> None:
        """The published release stays published until a fresh one of the rebuilt facts is cut
        (the CLI does so at once): breakdowns never answer "no release" after a rebuild. The
        closed years' answers stay too."""
        await conn.execute(
            f"INSERT INTO {self.new}.releases OVERRIDING SYSTEM VALUE "
            f"SELECT * FROM {self.live}.releases"
        )
        await conn.execute(
            f"INSERT INTO {self.new}.release_answers SELECT * FROM {self.live}.release_answers"
        )
        # The decisions the next cut may reuse: sound after a rebuild too, since a year is
        # reused only when its grid, rebuilt from the facts, has the same fingerprint.
        await conn.execute(
            f"INSERT INTO {self.new}.release_years SELECT * FROM {self.live}.release_years"
        )
        # Closed years (retention, migration 011) keep their published answers for good: the
        # replayed facts of such a year are not theirs to decide again.
        await conn.execute(
            f"INSERT INTO {self.new}.closed_years SELECT * FROM {self.live}.closed_years"
        )
        await conn.execute(
            f"INSERT INTO {self.new}.closed_answers SELECT * FROM {self.live}.closed_answers"
        )
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{self.new}.releases', 'release_id'), "
            f"coalesce((SELECT max(release_id) FROM {self.new}.releases), 0) + 1, false)"
        )
