"""`verbinding retention run`: the platform enforces how long it keeps each kind of data
(docs/privacy.md "Retention", where the table of periods is). Run it daily (cron, a systemd
timer or a Kubernetes CronJob); it is idempotent.

It runs as the admin role across the services' schemas, like ``verbinding migrate``: retention is
the platform's rule, not a service's.
"""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.registry import SERVICES, writing_services
from shared.settings import AdminSettings

__all__ = ["RetentionSettings", "fact_horizon", "run_retention"]


class RetentionSettings(AdminSettings):
    """How long each kind of data is kept (``VERBINDING_RETENTION_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="VERBINDING_", extra="ignore", hide_input_in_errors=True
    )

    retention_record_years: int = Field(
        5,
        ge=1,
        description="Person-level records of the writing services (registrations, attendance, "
        "referrals with their status history, measurements) and the metrics facts: kept for "
        "the current year and this many years before it; the baseline year's facts are kept.",
    )
    retention_idempotency_days: int = Field(
        90,
        ge=1,
        description="Remembered answers of writes (replays of a write answer as the first time "
        "within this period; erasure tombstones included).",
    )
    retention_deadletter_days: int = Field(
        30, ge=1, description="Records on the dead-letter topic (Kafka `retention.ms`)."
    )
    baseline_file: str | None = Field(
        None, description="The metrics service's baseline file (its year is kept)."
    )


def fact_horizon(today: date, years: int) -> date:
    """The first day kept: 1 January of the year ``years`` before this one (the API's trend
    reaches back 60 months, so 5 years keeps every period it publishes)."""
    return date(today.year - years, 1, 1)


async def run_retention(settings: RetentionSettings, today: date | None = None) -> dict[str, Any]:
    from shared.db import create_pool

    today = today or datetime.now(UTC).date()
    before = fact_horizon(today, settings.retention_record_years)
    answers_before = datetime.now(UTC) - timedelta(days=settings.retention_idempotency_days)
    report: dict[str, Any] = {"records_before": before.isoformat()}
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            for name in writing_services():
                tables = importlib.import_module(SERVICES[name].bootstrap).ERASABLE
                report[name] = await _prune_records(conn, name, tables, before, answers_before)
            for name, service in SERVICES.items():
                if service.retention is not None:
                    hook = importlib.import_module(service.retention)
                    report[name] = await hook.prune(
                        conn, name, before, baseline_file=settings.baseline_file
                    )
    finally:
        await pool.close()
    report["deadletter_retention_ms"] = await _deadletter_retention(settings)
    return report


async def _prune_records(
    conn: Any, schema: str, tables: Any, before: date, answers_before: datetime
) -> dict[str, int]:
    s = f'"{schema}"'
    deleted: dict[str, int] = {}
    moment = datetime(before.year, 1, 1, tzinfo=UTC)
    async with conn.transaction():
        for table in tables:
            for dependent in table.dependents:
                status = await conn.execute(
                    f"DELETE FROM {s}.{dependent} d USING {s}.{table.name} t "
                    f"WHERE d.organisation_id = t.organisation_id "
                    f"AND d.{table.id_column} = t.{table.id_column} "
                    f"AND t.{table.moment_column} < $1",
                    moment,
                )
                deleted[dependent] = _count(status)
            status = await conn.execute(
                f"DELETE FROM {s}.{table.name} WHERE {table.moment_column} < $1", moment
            )
            deleted[table.name] = _count(status)
        status = await conn.execute(
            f"DELETE FROM {s}.idempotency WHERE created_at < $1", answers_before
        )
        deleted["answers"] = _count(status)
        # A subject id nobody's record names any more links nothing: it goes too, so that the
        # person's next write starts a new subject.
        referenced = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM {s}.{t.name} x WHERE x.{t.person_column} = j.pseudonym)"
            for t in tables
        )
        status = await conn.execute(f"DELETE FROM {s}.subjects j WHERE {referenced}")
        deleted["subjects"] = _count(status)
    return deleted


async def _deadletter_retention(settings: RetentionSettings) -> int:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from shared.events import Topic, topic_name

    ms = settings.retention_deadletter_days * 24 * 3600 * 1000
    admin = AIOKafkaAdminClient(**settings.kafka().client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic_name(Topic.DEADLETTER, settings.topic_prefix),
                    configs={"retention.ms": str(ms)},
                )
            ]
        )
    finally:
        await admin.close()
    return ms


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
