"""Rebuild: recompute every aggregate by replaying the topics from the beginning.

The replay goes into a fresh schema (``metrics_rebuild``) while the live schema keeps serving
the old figures, as a bulk load (adapters/rebuild_schema.py: secondary indexes after the load,
asynchronous commits until the swap). When the replay has reached the end of every partition,
the indexes are built; then the swap lock is taken (live batches wait on it, see
``REBUILD_LOCK``), what arrived meanwhile is replayed, and the schemas are swapped in one
transaction. The live consumer then carries on into the new schema from where it stands (after
a restart or rebalance: from the partition offsets the replay stored there); those offsets make
it skip what the replay already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from services.metrics.adapters.facts import FactWriter
from services.metrics.adapters.rebuild_schema import REBUILD_LOCK, RebuildSchema
from services.metrics.adapters.replay import Offsets, TopicReplay
from shared.consumer import BatchConsumer, BatchResult, DeadLetter
from shared.events import Topic, topic_name
from shared.kafka import KafkaTarget

__all__ = ["REBUILD_LOCK", "RebuildReport", "rebuild"]

log = logging.getLogger(__name__)

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
    fresh = RebuildSchema(pool, schema, NEW_SCHEMA, MIGRATIONS)
    await fresh.create(grant_to)
    sink = _CountingSink()
    # The rollups are filled once after the bulk load, then kept batch by batch again.
    writer = FactWriter(NEW_SCHEMA, services, rollups=False)
    target = BatchConsumer(
        pool,
        NEW_SCHEMA,
        writer,
        sink,
        tracking="offsets",
        synchronous_commit=False,
    )
    replay = TopicReplay(bootstrap, [topic_name(t, prefix) for t in topics], batch_size)
    total = await replay.start()
    totals = {"events": 0, "applied": 0}
    try:

        async def replay_until(targets: Offsets) -> None:
            # Everything fetched is applied, also past the targets: skipping records here would
            # lose them, since the next phase continues from the consumer's position.
            # Pipelined: the next batch is fetched and decoded while the current one's
            # transaction runs in PostgreSQL (one transaction at a time, in order).
            running: asyncio.Task[BatchResult] | None = None
            try:
                while await replay.behind(targets):
                    records = await replay.next_batch()
                    if not records:
                        continue
                    decoded = await target.decode(records)
                    if running is not None:
                        count(await running)
                    running = asyncio.create_task(target.apply_decoded(decoded))
                if running is not None:
                    count(await running)
                    running = None
            finally:
                if running is not None:  # a failure elsewhere: do not leave it behind
                    running.cancel()
                    with contextlib.suppress(BaseException):
                        await running

        def count(result: BatchResult) -> None:
            totals["events"] += result.applied + result.duplicates + result.dead_lettered
            totals["applied"] += result.applied
            if progress:
                progress(totals["events"], total)

        await replay_until(await replay.ends())
        await fresh.build_indexes()
        await fresh.fill_rollups()
        writer.rollups = True
        swapped = False
        if swap:

            async def catch_up() -> None:
                # Live batches now wait; replay what arrived during the rebuild.
                await replay_until(await replay.ends())

            await fresh.swap(catch_up)
            swapped = True
    finally:
        await replay.stop()
    seconds = time.perf_counter() - started
    log.info("rebuild done", extra={"events": totals["events"], "seconds": round(seconds, 1)})
    return RebuildReport(totals["events"], totals["applied"], sink.count, seconds, swapped)
