"""Composition root of the registrations service: the one place where parts are wired."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from services.registrations.adapters.unit_of_work import PostgresRegistrationsUnitOfWork
from services.registrations.domain.decide import Registrations, State
from services.registrations.domain.items import BATCH_ITEM_SCHEMA, BatchItem, batch_item_adapter
from services.registrations.domain.sheets import Limits
from services.registrations.entrypoints.http import build_router
from services.registrations.entrypoints.keys import build_keys_router
from services.registrations.entrypoints.page import build_page_router
from services.registrations.entrypoints.uploads import build_uploads_router
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from services.registrations.service_layer.uploads import Uploads
from services.registrations.service_layer.writes import RegistrationWrites
from services.registrations.settings import RegistrationsSettings
from shared.auth import Scope
from shared.erasure import ErasableTable, Eraser, like_literal
from shared.erasure_http import build_erasure_router
from shared.http import create_app, document_schema
from shared.lifespan import writing_service_lifespan
from shared.outbox import AfterCommit
from shared.pipeline.pipeline import Pipeline
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference

__all__ = ["ERASABLE", "SCHEMA", "build_app", "eraser"]

SCHEMA = "registrations"
MIGRATIONS = "services.registrations.adapters.migrations"

# The tables that hold a person's records, and the remembered answers of their writes.
ERASABLE = (
    ErasableTable(
        "registrations",
        "registration_id",
        lambda org, id_: [
            (org, "registration", like_literal(id_)),
            (org, "cancellation", like_literal(id_)),
        ],
        moment_column="registered_at",
    ),
    ErasableTable(
        "attendance",
        "attendance_id",
        lambda org, id_: [(org, "attendance", like_literal(id_))],
        moment_column="session_start",
    ),
)


def eraser(pseudonymiser: Pseudonymiser, topic_prefix: str = "") -> Eraser:
    return Eraser(SCHEMA, ERASABLE, pseudonymiser, topic_prefix)


def build_app(settings: RegistrationsSettings | None = None) -> FastAPI:
    settings = settings or RegistrationsSettings()
    pseudonymiser = Pseudonymiser(settings.pseudonym_secret.get_secret_value())
    reference = load_reference(settings.reference_file)
    writes: Pipeline[BatchItem, State, RegistrationsUnitOfWork] = Pipeline(
        RegistrationWrites(Registrations(reference)), pseudonymiser
    )
    uploads = Uploads(
        writes,
        reference,
        pseudonymiser,
        Limits(
            max_bytes=settings.upload_max_bytes,
            max_unpacked_bytes=settings.upload_max_unpacked_bytes,
            max_rows=settings.upload_max_rows,
        ),
    )

    def unit_of_work(
        conn: asyncpg.Connection, after_commit: AfterCommit | None
    ) -> PostgresRegistrationsUnitOfWork:
        return PostgresRegistrationsUnitOfWork(
            conn, topic_prefix=settings.topic_prefix, after_commit=after_commit
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
        lifespan=writing_service_lifespan(settings, SCHEMA, MIGRATIONS, unit_of_work),
        routers=[
            build_router(writes, settings.batch_max_items),
            build_uploads_router(uploads, reference),
            build_keys_router(),
            build_erasure_router(eraser(pseudonymiser, settings.topic_prefix), Scope.REGISTRATIONS),
            build_page_router(),
        ],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
