"""Composition root of the referrals service: the one place where parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.referrals.domain.scoring import Thresholds
from services.referrals.entrypoints.http import (
    BATCH_ITEM_SCHEMA,
    batch_item_adapter,
    build_router,
)
from services.referrals.service_layer.handlers import ReferralHandlers
from services.referrals.settings import ReferralsSettings
from shared.db import create_pool, migrate_service
from shared.http import create_app, document_schema
from shared.outbox import run_service_relay
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.writes import WriteContext

__all__ = ["SCHEMA", "build_app"]

SCHEMA = "referrals"
MIGRATIONS = "services.referrals.adapters.migrations"
log = logging.getLogger(__name__)


def build_app(settings: ReferralsSettings | None = None) -> FastAPI:
    settings = settings or ReferralsSettings()
    ctx = WriteContext(
        schema=SCHEMA,
        pseudonymiser=Pseudonymiser(settings.pseudonym_secret.get_secret_value()),
        topic_prefix=settings.topic_prefix,
    )
    handlers = ReferralHandlers(
        ctx,
        load_reference(settings.reference_file),
        Thresholds(
            emotional=settings.djg_emotional_threshold, social=settings.djg_social_threshold
        ),
    )

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
        title="Verbinding referrals service",
        description=(
            "Referrers record signals of loneliness and refer residents (with consent) to "
            "activities or services; the organisation referred to moves the referral along. "
            "Trainers record completed trainings, and questionnaire systems send De Jong "
            "Gierveld answers, which are scored on arrival (only the scores are kept). "
            "Participant and person references are pseudonymised on arrival. Every write is "
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
