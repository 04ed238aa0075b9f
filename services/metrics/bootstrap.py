"""Composition root of the metrics service: HTTP API, Kafka consumer, gauges snapshot."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.metrics.adapters.changes import ChangeNotifier, listen_for_changes
from services.metrics.adapters.facts import FactWriter
from services.metrics.domain.baseline import Baseline, load_baseline
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS, MetricsConsumer
from services.metrics.entrypoints.http import build_router
from services.metrics.service_layer.indicators import IndicatorService
from services.metrics.service_layer.rebuild import REBUILD_LOCK
from services.metrics.service_layer.release_schedule import ReleaseSchedule
from services.metrics.service_layer.snapshot import IndicatorSnapshot
from services.metrics.settings import MetricsSettings
from shared.consumer import BatchConsumer
from shared.db import create_pool, require_migrated
from shared.events import Topic
from shared.http import create_app
from shared.kafka import ensure_topics
from shared.reference import ReferenceData, load_reference

__all__ = ["MIGRATIONS", "SCHEMA", "build_app", "indicator_service"]

SCHEMA = "metrics"
MIGRATIONS = "services.metrics.adapters.migrations"


def indicator_service(
    settings: MetricsSettings,
    pool: asyncpg.Pool,
    reference: ReferenceData | None = None,
    baseline: Baseline | None = None,
) -> IndicatorService:
    """The indicators under disclosure control, as configured (the app and the CLI's release)."""
    return IndicatorService(
        pool,
        baseline or load_baseline(settings.baseline_file),
        reference or load_reference(settings.reference_file),
        k=settings.suppression_k,
        cache_seconds=settings.indicator_cache_seconds,
        max_stale_seconds=settings.indicator_max_stale_seconds,
        thresholds=settings.thresholds(),
        signal_trainings=settings.signal_training_codes,
        control=settings.disclosure_control,
        release_timeout=settings.release_timeout_seconds,
    )


def build_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    baseline = load_baseline(settings.baseline_file)
    reference = load_reference(settings.reference_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, max_size=settings.db_pool_max)
        try:
            await require_migrated(pool, SCHEMA, MIGRATIONS)
        except BaseException:
            await pool.close()
            raise
        app.state.pool = pool
        service = indicator_service(settings, pool, reference, baseline)
        app.state.indicators = service
        consumer: MetricsConsumer | None = None
        snapshot = IndicatorSnapshot(
            service,
            settings.snapshot_interval_seconds,
            # The snapshot waits while the consumer group catches up (service_layer/snapshot.py).
            behind=lambda: consumer.behind() if consumer is not None else None,
        )
        REGISTRY.register(snapshot)
        stop = asyncio.Event()
        # Breakdowns come from releases (domain.md §7 rule 6), cut here on the interval.
        schedule = ReleaseSchedule(service, settings.release_interval)
        app.state.release_schedule = schedule
        tasks = [
            asyncio.create_task(snapshot.run(stop)),
            asyncio.create_task(schedule.run(stop)),
            # Changes of the facts, told by whichever instance applied them: this instance's
            # answers show them at once instead of after indicator_cache_seconds.
            asyncio.create_task(listen_for_changes(pool, SCHEMA, service.facts_changed, stop)),
        ]
        notifier = ChangeNotifier(pool, SCHEMA)
        if settings.consume:
            # Only the topics this service reads and writes: its Kafka user may see no others.
            await ensure_topics(
                settings.kafka(),
                settings.topic_prefix,
                partitions=settings.topic_partitions,
                replication=settings.topic_replication,
                topics=(*CONSUMED_TOPICS, Topic.DEADLETTER),
            )
            consumer = MetricsConsumer(
                lambda sink: BatchConsumer(
                    pool,
                    SCHEMA,
                    FactWriter(SCHEMA, reference.services),
                    sink,
                    shared_lock=REBUILD_LOCK,
                    tracking="offsets",
                    synchronous_commit=settings.consumer_synchronous_commit,
                ),
                bootstrap=settings.kafka(),
                group_id=settings.consumer_group,
                prefix=settings.topic_prefix,
                max_records=settings.consumer_max_records,
                partition_fetch_bytes=settings.consumer_partition_fetch_bytes,
                fetch_bytes=settings.consumer_fetch_bytes,
                on_change=notifier.changed,
            )
            await consumer.start()
            tasks.append(asyncio.create_task(consumer.watch_lag(stop)))
        try:
            yield
        finally:
            stop.set()
            if consumer is not None:
                await consumer.stop()
            await notifier.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.close()
            REGISTRY.unregister(snapshot)
            await pool.close()

    return create_app(
        service=SCHEMA,
        title="Verbinding metrics service",
        description=(
            "Live indicators of the loneliness programme per subgoal (S1 loneliness, S2 "
            "participation, S3 signalling and referral), computed from the event stream, under "
            "disclosure control (docs/disclosure.md): municipality totals live, breakdowns from "
            "a daily release. Also serves the coalition dashboard at `/`."
        ),
        version="1.0.0",
        max_body_bytes=settings.max_body_bytes,
        kafka_bootstrap=settings.kafka_bootstrap,
        lifespan=lifespan,
        routers=[build_router()],
    )
