"""The lifespan every writing service shares: pool (as the service's own database role), a check
that ``verbinding migrate`` prepared the schema, the in-process outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from shared.db import create_pool, require_migrated
from shared.outbox import run_service_relay
from shared.settings import ServiceSettings

__all__ = ["writing_service_lifespan"]


def writing_service_lifespan(
    settings: ServiceSettings, schema: str, migrations: str
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        try:
            await require_migrated(pool, schema, migrations)
        except BaseException:
            await pool.close()
            raise
        app.state.pool = pool
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
