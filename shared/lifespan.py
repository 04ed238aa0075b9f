"""The lifespan every writing service shares: pool (as the service's own database role), a check
that ``verbinding migrate`` prepared the schema, the in-process outbox relay, and the factory of
the request's unit of work (``app.state.unit_of_work(connection)``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
from fastapi import FastAPI

from shared.db import create_pool, require_migrated
from shared.outbox import run_service_relay
from shared.pipeline.postgres import AfterCommit
from shared.settings import ServiceSettings

__all__ = ["writing_service_lifespan"]


def writing_service_lifespan(
    settings: ServiceSettings,
    schema: str,
    migrations: str,
    unit_of_work: Callable[[asyncpg.Connection, AfterCommit | None], Any],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``unit_of_work(connection, after_commit)``: the service's unit of work on a connection;
    ``after_commit`` tells the relay that rows were committed."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        try:
            await require_migrated(pool, schema, migrations)
        except BaseException:
            await pool.close()
            raise
        app.state.pool = pool
        app.state.unit_of_work = lambda conn: unit_of_work(conn, None)
        stop = asyncio.Event()
        tasks = []
        if settings.relay_in_process:
            tasks.append(asyncio.create_task(run_service_relay(pool, schema, settings, stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.close()

    return lifespan
