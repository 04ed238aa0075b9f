"""Composition root of the registrations service: the one place where parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.registrations.entrypoints.http import (
    BATCH_ITEM_SCHEMA,
    batch_item_adapter,
    build_router,
)
from services.registrations.service_layer.handlers import RegistrationHandlers
from services.registrations.settings import RegistrationsSettings
from shared.db import create_pool, migrate_service
from shared.http import create_app, document_schema
from shared.outbox import run_service_relay
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.writes import WriteContext

__all__ = ["SCHEMA", "build_app"]

SCHEMA = "registrations"
MIGRATIONS = "services.registrations.adapters.migrations"
log = logging.getLogger(__name__)


def build_app(settings: RegistrationsSettings | None = None) -> FastAPI:
    settings = settings or RegistrationsSettings()
    ctx = WriteContext(
        schema=SCHEMA,
        pseudonymiser=Pseudonymiser(settings.pseudonym_secret.get_secret_value()),
        topic_prefix=settings.topic_prefix,
    )
    handlers = RegistrationHandlers(ctx, load_reference(settings.reference_file))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        await migrate_service(pool, SCHEMA, MIGRATIONS)
        app.state.pool = pool
        stop = asyncio.Event()
        tasks = []
        if settings.relay_in_process:
            tasks.append(asyncio.create_task(run_service_relay(pool, SCHEMA, settings, stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.close()

    app = create_app(
        service=SCHEMA,
        title="Verbinding registrations service",
        description=(
            "Partner booking systems send their activities, registrations, cancellations and "
            "attendance here. Participant references are pseudonymised on arrival. Every write is "
            "idempotent per id; errors name the offending field."
        ),
        version="1.0.0",
        max_body_bytes=settings.max_body_bytes,
        kafka_bootstrap=settings.kafka_bootstrap,
        lifespan=lifespan,
        routers=[build_router(handlers, settings.batch_max_items)],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
