"""Composition root of the referrals service: the one place where parts are wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Collection
from datetime import UTC, date, datetime, timedelta

import asyncpg
from fastapi import FastAPI

from services.referrals.adapters.repository import PostgresReferrals
from services.referrals.adapters.unit_of_work import PostgresReferralsUnitOfWork
from services.referrals.adapters.webhook_http import HttpxPoster
from services.referrals.adapters.webhooks import PostgresWebhooks
from services.referrals.domain.decide import Key, Referral, Referrals, State
from services.referrals.domain.first_attendance import ConsumedItem, FirstAttendances
from services.referrals.domain.items import BATCH_ITEM_SCHEMA, BatchItem, batch_item_adapter
from services.referrals.entrypoints.consumer import ReferralsConsumer
from services.referrals.entrypoints.http import build_router
from services.referrals.service_layer.first_attendance import (
    FirstAttendanceConsumer,
    FirstAttendanceWrites,
    may_matter,
)
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from services.referrals.service_layer.views import ReferralViews
from services.referrals.service_layer.webhooks import (
    ReferralLookup,
    WebhookDispatch,
    WebhookEndpoints,
    WebhookRecords,
    WebhookSender,
    WebhookSettings,
)
from services.referrals.service_layer.writes import ReferralWrites
from services.referrals.settings import ReferralsSettings
from shared.auth import Scope
from shared.db import create_pool
from shared.erasure import ErasableTable, Eraser, like_literal
from shared.erasure_http import build_erasure_router
from shared.http import create_app, document_schema
from shared.kafka import ensure_topics
from shared.lifespan import writing_service_lifespan
from shared.outbox import AfterCommit
from shared.pipeline.pipeline import Pipeline
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from shared.secretbox import SecretBox

__all__ = ["ERASABLE", "SCHEMA", "build_app", "eraser", "resolve"]

SCHEMA = "referrals"
MIGRATIONS = "services.referrals.adapters.migrations"
# How often what is no longer needed is deleted (docs/privacy.md).
HOUSEKEEPING_SECONDS = 3600.0

log = logging.getLogger(__name__)


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (the webhooks' SSRF check)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def webhook_settings(settings: ReferralsSettings) -> WebhookSettings:
    return WebhookSettings(
        environment=settings.environment,
        max_attempts=settings.webhook_max_attempts,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
        secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
        concurrency=settings.webhook_concurrency,
        delivered_kept=timedelta(days=settings.webhook_delivered_kept_days),
    )


# The tables that hold a person's records, and the remembered answers of their writes (a status
# change is remembered per caller under `<referrer>/<referral id>:<status>`). Trainings name a
# trained professional or volunteer by a pseudonym of another purpose than a participant's
# (shared/pseudonym.py), so an erasure by `person_ref` finds them and one by `ref` does not.
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
    ErasableTable(
        "trainings",
        "training_id",
        lambda org, id_: [(org, "training", like_literal(id_))],
        moment_column="completed_at",
        person_column="person_id",
    ),
)


def eraser(pseudonymiser: Pseudonymiser, topic_prefix: str = "") -> Eraser:
    return Eraser(SCHEMA, ERASABLE, pseudonymiser, topic_prefix)


def build_app(settings: ReferralsSettings | None = None) -> FastAPI:
    settings = settings or ReferralsSettings()
    pseudonymiser = Pseudonymiser(settings.pseudonym_secret.get_secret_value())
    box = SecretBox(settings.pseudonym_secret.get_secret_value())
    reference = load_reference(settings.reference_file)
    decisions = Referrals(reference, settings.thresholds())
    writes: Pipeline[BatchItem, State, ReferralsUnitOfWork] = Pipeline(
        ReferralWrites(decisions), pseudonymiser
    )
    hooks = webhook_settings(settings)

    def unit_of_work(
        conn: asyncpg.Connection, after_commit: AfterCommit | None
    ) -> PostgresReferralsUnitOfWork:
        return PostgresReferralsUnitOfWork(
            conn, box, topic_prefix=settings.topic_prefix, after_commit=after_commit
        )

    @contextlib.asynccontextmanager
    async def workers(after_commit: AfterCommit | None) -> AsyncIterator[None]:
        """The consumers (first attendance, webhook queue) and the webhook sender, each on a
        pool of its own: neither a slow receiver nor a busy consumer takes a connection that a
        request needs."""
        if not settings.consume:
            yield
            return
        consumer_pool = await create_pool(settings.database_url, max_size=2)
        sender_pool = await create_pool(settings.database_url, max_size=2)

        @contextlib.asynccontextmanager
        async def units() -> AsyncIterator[ReferralsUnitOfWork]:
            async with consumer_pool.acquire() as conn:
                yield unit_of_work(conn, after_commit)

        def records_on(
            pool: asyncpg.Pool,
        ) -> contextlib.AbstractAsyncContextManager[WebhookRecords]:
            @contextlib.asynccontextmanager
            async def records() -> AsyncIterator[WebhookRecords]:
                async with pool.acquire() as conn:
                    yield PostgresWebhooks(conn, box)

            return records()

        @contextlib.asynccontextmanager
        async def lookup() -> AsyncIterator[ReferralLookup]:
            async with consumer_pool.acquire() as conn:
                repository = PostgresReferrals(conn)

                async def load(keys: Collection[Key]) -> dict[Key, Referral]:
                    return await repository.load(keys)

                yield load

        attendance_pipeline: Pipeline[ConsumedItem, State, ReferralsUnitOfWork] = Pipeline(
            FirstAttendanceWrites(FirstAttendances(reference.services), decisions), pseudonymiser
        )
        attendance = FirstAttendanceConsumer(attendance_pipeline, units, reference.services)
        dispatch = WebhookDispatch(
            lambda: records_on(consumer_pool),
            lookup,
            reference.services,
            reference.referral_outcomes,
        )
        sender = WebhookSender(
            lambda: records_on(sender_pool),
            hooks,
            resolve,
            HttpxPoster(hooks.timeout_seconds),
            wake=dispatch.wake,
        )
        consumer = ReferralsConsumer(
            {"first-attendance": attendance.apply, "webhooks": dispatch.apply},
            {
                "first-attendance": settings.attendance_consumer_group,
                "webhooks": settings.webhook_consumer_group,
            },
            bootstrap=settings.kafka(),
            prefix=settings.topic_prefix,
            needed={"first-attendance": may_matter},
        )
        stop = asyncio.Event()

        async def consume() -> None:
            # Kafka may be away at start: the API works without it, the consumers start when
            # it is back.
            while not stop.is_set():
                try:
                    await ensure_topics(
                        settings.kafka(),
                        settings.topic_prefix,
                        partitions=settings.topic_partitions,
                        replication=settings.topic_replication,
                    )
                    await consumer.start()
                    return
                except Exception as exc:
                    log.warning("referrals consumers cannot start yet", extra={"error": repr(exc)})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=5)

        async def housekeeping() -> None:
            while not stop.is_set():
                try:
                    await attendance.forget(settings.first_attendance_hold_days, date.today())
                    async with records_on(sender_pool) as records:
                        await records.forget_delivered(datetime.now(UTC) - hooks.delivered_kept)
                except Exception as exc:  # the database is away: next time
                    log.warning("referrals housekeeping failed", extra={"error": repr(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=HOUSEKEEPING_SECONDS)

        tasks = [
            asyncio.create_task(consume()),
            asyncio.create_task(sender.run(stop)),
            asyncio.create_task(housekeeping()),
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await consumer.stop()
            await consumer_pool.close()
            await sender_pool.close()

    app = create_app(
        service=SCHEMA,
        title="Verbinding referrals service",
        description=(
            "Referrers record signals of loneliness and refer residents (with consent) to "
            "activities or services; the organisation referred to moves the referral along, and "
            "the referrer hears back (the feed, signed webhooks), up to the resident's first "
            "attended session, which the service learns from the registrations topic. "
            "Trainers record completed trainings, and questionnaire systems send De Jong "
            "Gierveld answers, which are scored on arrival (only the scores are kept). "
            "Participant and person references are pseudonymised on arrival. Every write is "
            "idempotent per id; errors name the offending field."
        ),
        version="1.0.0",
        max_body_bytes=settings.max_body_bytes,
        kafka_bootstrap=settings.kafka_bootstrap,
        lifespan=writing_service_lifespan(settings, SCHEMA, MIGRATIONS, unit_of_work, workers),
        routers=[
            build_router(
                writes,
                ReferralViews(decisions),
                WebhookEndpoints(hooks, resolve),
                settings.batch_max_items,
            ),
            build_erasure_router(
                eraser(pseudonymiser, settings.topic_prefix),
                Scope.REFERRALS,
                Scope.MEASUREMENTS,
                person_scopes=(Scope.TRAININGS,),
            ),
        ],
    )
    document_schema(app, BATCH_ITEM_SCHEMA, batch_item_adapter())
    return app
