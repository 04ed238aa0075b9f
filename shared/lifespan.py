"""The lifespan every writing service shares: the requests' pool (as the service's own database
role), a check that ``verbinding migrate`` prepared the schema, the in-process outbox relay on a
connection of its own, and the factory of the request's unit of work
(``app.state.unit_of_work(connection)``), which wakes that relay after a commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
from fastapi import FastAPI

from shared.db import create_pool, require_migrated
from shared.outbox import AfterCommit, OutboxRelay, run_service_relay, wakeup
from shared.settings import ServiceSettings

__all__ = ["writing_service_lifespan"]


def writing_service_lifespan(
    settings: ServiceSettings,
    schema: str,
    migrations: str,
    unit_of_work: Callable[[asyncpg.Connection, AfterCommit | None], Any],
    workers: Callable[[AfterCommit | None], AbstractAsyncContextManager[None]] | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``unit_of_work(connection, after_commit)``: the service's unit of work on a connection;
    ``after_commit`` tells the relay that rows were committed. ``workers(after_commit)``: what
    else runs beside the requests (consumers, senders) on connections of its own, for as long
    as the context lasts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The requests' statements: lookups by key and set writes (shared/db.py).
        pool = await create_pool(
            settings.database_url, max_size=settings.db_pool_max, generic_plans=True
        )
        pools = [pool]
        try:
            await require_migrated(pool, schema, migrations)
            relay = None
            if settings.relay_in_process:
                # The relay's connection holds its lock and its LISTEN: a pool of its own.
                relay_pool = await create_pool(settings.database_url, max_size=1)
                pools.append(relay_pool)
                relay = OutboxRelay(relay_pool, schema, settings.kafka())
        except BaseException:
            for p in pools:
                await p.close()
            raise
        after_commit = wakeup(schema, relay)
        app.state.pool = pool
        app.state.unit_of_work = lambda conn: unit_of_work(conn, after_commit)
        stop = asyncio.Event()
        tasks = []
        if relay is not None:
            tasks.append(asyncio.create_task(run_service_relay(relay, settings, stop)))
        try:
            async with workers(after_commit) if workers else contextlib.nullcontext():
                yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for p in pools:
                await p.close()

    return lifespan
