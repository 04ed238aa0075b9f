"""Rebuild: recompute every aggregate by replaying the topics from the beginning.

The replay goes into a fresh schema (``metrics_rebuild``) while the live schema keeps serving
the old figures. When the replay has reached the end of every partition, it takes the swap lock
(live batches wait on it, see ``REBUILD_LOCK``), replays what arrived meanwhile, and swaps the
schemas in one transaction. The live consumer then carries on from its committed offsets into
the new schema; events the replay already applied are recognised by their tracking records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.metrics.adapters.facts import FactWriter
from shared.consumer import BatchConsumer, DeadLetter, RawRecord
from shared.db import apply_migrations, migration_files
from shared.db_roles import grant_service
from shared.events import Topic, topic_name
from shared.kafka import KafkaConnection, KafkaTarget, topic_partitions

__all__ = ["REBUILD_LOCK", "RebuildReport", "rebuild"]

log = logging.getLogger(__name__)

REBUILD_LOCK = 0x5EB1D  # advisory lock id shared by the live consumer and the rebuild
NEW_SCHEMA = "metrics_rebuild"
MIGRATIONS = "services.metrics.adapters.migrations"


@dataclass(frozen=True)
class RebuildReport:
    events: int
    applied: int
    skipped: int
    seconds: float
    swapped: bool

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class _CountingSink:
    """The live consumer already dead-lettered these; a replay only counts them."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.count += len(letters)


async def rebuild(
    pool: asyncpg.Pool,
    bootstrap: KafkaTarget,
    topics: Sequence[Topic],
    *,
    schema: str = "metrics",
    prefix: str = "",
    batch_size: int = 5000,
    swap: bool = True,
    progress: Callable[[int, int], None] | None = None,
    grant_to: str | None = None,
    services: Mapping[str, str] | None = None,
) -> RebuildReport:
    """Replay ``topics`` into a fresh schema and (with ``swap``) put it in place of ``schema``.

    Runs as the admin role (it creates and renames schemas); ``grant_to`` is the service role
    that gets its rights on the fresh schema before it is swapped in (shared/db_roles.py).
    ``services``: the service list (v1 referrals to a service are resolved with it)."""
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute(f"DROP SCHEMA IF EXISTS {NEW_SCHEMA} CASCADE")
        await apply_migrations(
            conn,
            NEW_SCHEMA,
            [*migration_files("shared.migrations.service"), *migration_files(MIGRATIONS)],
        )
        if grant_to is not None:
            await grant_service(conn, NEW_SCHEMA, grant_to)
    sink = _CountingSink()
    target = BatchConsumer(pool, NEW_SCHEMA, FactWriter(NEW_SCHEMA, services), sink)
    physical = [topic_name(t, prefix) for t in topics]
    consumer = AIOKafkaConsumer(
        **KafkaConnection.of(bootstrap).client_options(),
        enable_auto_commit=False,
        max_poll_records=batch_size,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    totals = {"events": 0, "applied": 0}
    try:
        partitions = await topic_partitions(bootstrap, physical)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        total = sum(end[tp] - begin[tp] for tp in partitions)

        async def behind(targets: dict[TopicPartition, int]) -> bool:
            for tp, offset in targets.items():
                if await consumer.position(tp) < offset:
                    return True
            return False

        async def replay_until(targets: dict[TopicPartition, int]) -> None:
            # Everything fetched is applied, also past the targets: skipping records here would
            # lose them, since the next phase continues from the consumer's position.
            while await behind(targets):
                batch = await consumer.getmany(timeout_ms=500, max_records=batch_size)
                records = [
                    RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
                    for msgs in batch.values()
                    for r in msgs
                ]
                if records:
                    result = await target.handle(records)
                    totals["events"] += len(records)
                    totals["applied"] += result.applied
                    if progress:
                        progress(totals["events"], total)

        await replay_until(end)
        swapped = False
        if swap:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", REBUILD_LOCK)
                # Live batches now wait; replay what arrived during the rebuild, then swap.
                await replay_until(await consumer.end_offsets(partitions))
                # The published release stays published until a fresh one of the rebuilt facts
                # is cut (the CLI does so at once): breakdowns never answer "no release" here.
                for table in ("releases", "release_answers"):
                    await conn.execute(
                        f"INSERT INTO {NEW_SCHEMA}.{table} OVERRIDING SYSTEM VALUE "
                        f"SELECT * FROM {schema}.{table}"
                        if table == "releases"
                        else f"INSERT INTO {NEW_SCHEMA}.{table} SELECT * FROM {schema}.{table}"
                    )
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{NEW_SCHEMA}.releases', 'release_id'), "
                    f"coalesce((SELECT max(release_id) FROM {NEW_SCHEMA}.releases), 0) + 1, false)"
                )
                retired = f"{schema}_retired"
                await conn.execute(f"DROP SCHEMA IF EXISTS {retired} CASCADE")
                await conn.execute(f"ALTER SCHEMA {schema} RENAME TO {retired}")
                await conn.execute(f"ALTER SCHEMA {NEW_SCHEMA} RENAME TO {schema}")
                # Dropped in the same transaction so that no statement prepared against the
                # old tables can keep writing into them after the swap.
                await conn.execute(f"DROP SCHEMA {retired} CASCADE")
            swapped = True
    finally:
        await consumer.stop()
    seconds = time.perf_counter() - started
    log.info("rebuild done", extra={"events": totals["events"], "seconds": round(seconds, 1)})
    return RebuildReport(totals["events"], totals["applied"], sink.count, seconds, swapped)
