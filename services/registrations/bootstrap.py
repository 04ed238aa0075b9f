"""Composition root of the registrations service: the one place where parts are wired."""

from __future__ import annotations

from fastapi import FastAPI

from services.registrations.domain.sheets import Limits
from services.registrations.entrypoints.http import build_router
from services.registrations.entrypoints.keys import build_keys_router
from services.registrations.entrypoints.page import build_page_router
from services.registrations.entrypoints.uploads import build_uploads_router
from services.registrations.service_layer.batch import (
    BATCH_ITEM_SCHEMA,
    BatchWriter,
    batch_item_adapter,
)
from services.registrations.service_layer.handlers import RegistrationHandlers
from services.registrations.service_layer.uploads import Uploads
from services.registrations.settings import RegistrationsSettings
from shared.http import create_app, document_schema
from shared.lifespan import writing_service_lifespan
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.writes import WriteContext

__all__ = ["SCHEMA", "build_app"]

SCHEMA = "registrations"
MIGRATIONS = "services.registrations.adapters.migrations"


def build_app(settings: RegistrationsSettings | None = None) -> FastAPI:
    settings = settings or RegistrationsSettings()
    ctx = WriteContext(
        schema=SCHEMA,
        pseudonymiser=Pseudonymiser(settings.pseudonym_secret.get_secret_value()),
        topic_prefix=settings.topic_prefix,
    )
    reference = load_reference(settings.reference_file)
    handlers = RegistrationHandlers(ctx, reference)
    writer = BatchWriter(handlers)
    uploads = Uploads(
        writer,
        reference,
        ctx.pseudonymiser,
        Limits(
            max_bytes=settings.upload_max_bytes,
            max_unpacked_bytes=settings.upload_max_unpacked_bytes,
            max_rows=settings.upload_max_rows,
        ),
    )

    app = create_app(
        service=SCHEMA,
        title="Verbinding registrations service",
        description=(
            "Partner booking systems send their activities, registrations, cancellations and "
            "attendance here. Participant references are pseudonymised on arrival. Every write is "
            "idempotent per id; errors name the offending field. Partners without a booking "
            "system upload spreadsheets (`/v1/uploads/*`, templates at `/v1/templates/*`) or use "
            "the volunteers' page at `/invoer/`, with a volunteer key (`/v1/keys`)."
        ),
        version="1.0.0",
        max_body_bytes=settings.max_body_bytes,
        kafka_bootstrap=settings.kafka_bootstrap,
        lifespan=writing_service_lifespan(settings, SCHEMA, MIGRATIONS),
        routers=[
            build_router(handlers, writer, settings.batch_max_items),
            build_uploads_router(uploads, reference),
            build_keys_router(),
            build_page_router(),
        ],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
