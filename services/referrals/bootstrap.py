"""Composition root of the referrals service: the one place where parts are wired."""

from __future__ import annotations

from fastapi import FastAPI

from services.referrals.entrypoints.http import (
    BATCH_ITEM_SCHEMA,
    batch_item_adapter,
    build_router,
)
from services.referrals.service_layer.handlers import ReferralHandlers
from services.referrals.settings import ReferralsSettings
from shared.http import create_app, document_schema
from shared.lifespan import writing_service_lifespan
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.writes import WriteContext

__all__ = ["SCHEMA", "build_app"]

SCHEMA = "referrals"
MIGRATIONS = "services.referrals.adapters.migrations"


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
        settings.thresholds(),
    )

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
        lifespan=writing_service_lifespan(settings, SCHEMA, MIGRATIONS),
        routers=[build_router(handlers, settings.batch_max_items)],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
