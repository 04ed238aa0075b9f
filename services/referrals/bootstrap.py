"""Composition root of the referrals service: the one place where parts are wired."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from services.referrals.adapters.unit_of_work import PostgresReferralsUnitOfWork
from services.referrals.domain.decide import Referrals, State
from services.referrals.domain.items import BATCH_ITEM_SCHEMA, BatchItem, batch_item_adapter
from services.referrals.entrypoints.http import build_router
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from services.referrals.service_layer.views import ReferralViews
from services.referrals.service_layer.writes import ReferralWrites
from services.referrals.settings import ReferralsSettings
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

SCHEMA = "referrals"
MIGRATIONS = "services.referrals.adapters.migrations"

# The tables that hold a person's records, and the remembered answers of their writes (a status
# change is remembered per caller under `<referrer>/<referral id>:<status>`). Trainings name a
# trained professional, not a participant: they are not erased with a participant.
ERASABLE = (
    ErasableTable(
        "referrals",
        "referral_id",
        lambda org, id_: [
            (org, "referral", like_literal(id_)),
            (None, "referral_status", like_literal(f"{org}/{id_}:") + "%"),
        ],
        moment_column="created_at",
        dependents=("referral_status_history",),
    ),
    ErasableTable(
        "measurements",
        "measurement_id",
        lambda org, id_: [(org, "measurement", like_literal(id_))],
        moment_column="measured_at",
    ),
)


def eraser(pseudonymiser: Pseudonymiser, topic_prefix: str = "") -> Eraser:
    return Eraser(SCHEMA, ERASABLE, pseudonymiser, topic_prefix)


def build_app(settings: ReferralsSettings | None = None) -> FastAPI:
    settings = settings or ReferralsSettings()
    pseudonymiser = Pseudonymiser(settings.pseudonym_secret.get_secret_value())
    decisions = Referrals(load_reference(settings.reference_file), settings.thresholds())
    writes: Pipeline[BatchItem, State, ReferralsUnitOfWork] = Pipeline(
        ReferralWrites(decisions), pseudonymiser
    )

    def unit_of_work(
        conn: asyncpg.Connection, after_commit: AfterCommit | None
    ) -> PostgresReferralsUnitOfWork:
        return PostgresReferralsUnitOfWork(
            conn, topic_prefix=settings.topic_prefix, after_commit=after_commit
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
        lifespan=writing_service_lifespan(settings, SCHEMA, MIGRATIONS, unit_of_work),
        routers=[
            build_router(writes, ReferralViews(decisions), settings.batch_max_items),
            build_erasure_router(
                eraser(pseudonymiser, settings.topic_prefix), Scope.REFERRALS, Scope.MEASUREMENTS
            ),
        ],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
