"""Rebuild: recompute every aggregate by replaying the topics from the beginning.

The replay goes into a fresh schema (``metrics_rebuild``) while the live schema keeps serving
the old figures, as a bulk load (adapters/rebuild_schema.py: secondary indexes after the load,
asynchronous commits until the swap), in three phases:

1. The erasures topic, alone and first: every erased person is known before any of their
   events is replayed, so those events are skipped (never inserted, then deleted).
2. The other topics' partitions up to their ends of now, split among ``workers`` processes
   (one Python process uses at most one core; decoding and the apply's Python are most of a
   rebuild's CPU). Each owns disjoint partitions and applies them as the live consumer does
   (``"offsets"`` tracking: its partitions' next offsets go into the fresh schema with every
   batch). Concurrent writers stay exact for the same reasons that two live instances equal
   one: a fact that reached a topic twice has one natural key (ON CONFLICT: the second writer
   waits for the first's commit, then skips it), each organisation's last event time is
   upserted "greatest wins" in the writer's own slot, and no worker writes ``erased_subjects``,
   which phase 1 filled and nobody changes until phase 3.
3. In this process, from the offsets the workers stored: what arrived meanwhile on every topic
   (an erasure too: applied alone, after every worker committed, it deletes all of the person's
   facts). Then the indexes are built and the rollups filled (each on several connections side
   by side: the rollup of first attendances in shares of people); then the swap lock is taken (live
   batches wait on it, see ``REBUILD_LOCK``), what arrived since is replayed, and the schemas are
   swapped in one transaction.

The live consumer then carries on into the new schema from where it stands (after a restart or
rebalance: from the partition offsets the replay stored there); those offsets make it skip what
the replay already applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import asyncpg

from services.metrics.adapters.facts import FactWriter
from services.metrics.adapters.rebuild_schema import REBUILD_LOCK, RebuildSchema
from services.metrics.adapters.replay import Offsets, TopicReplay
from shared.consumer import BatchConsumer, BatchResult, DeadLetter
from shared.db import create_pool
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
    # Seconds of each phase (see the module): where a rebuild's time goes.
    phases: Mapping[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class _CountingSink:
    """The live consumer already dead-lettered these; a replay only counts them."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.count += len(letters)


def _bulk_consumer(pool: asyncpg.Pool, writer: FactWriter, sink: _CountingSink) -> BatchConsumer:
    return BatchConsumer(
        pool, NEW_SCHEMA, writer, sink, tracking="offsets", synchronous_commit=False
    )


async def _replay_until(
    replay: TopicReplay,
    target: BatchConsumer,
    targets: Offsets,
    count: Callable[[BatchResult], None],
) -> None:
    """Apply ``replay``'s records until every partition has reached ``targets``.

    Everything fetched is applied, also past the targets: skipping records here would lose
    them, since the next phase continues from the position (or the offsets stored).
    Pipelined: the next batch is fetched and decoded while the current one's transaction runs
    in PostgreSQL (one transaction at a time, in order)."""
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


@dataclass(frozen=True)
class _Share:
    """What one worker process replays: its partitions up to their ends (topic, partition,
    offset), into the fresh schema."""

    dsn: str
    bootstrap: KafkaTarget
    services: dict[str, str] | None
    batch_size: int
    targets: tuple[tuple[str, int, int], ...]


def _worker(
    share: _Share,
    done: Synchronized,  # type: ignore[type-arg]
    answer: Connection,
    prepare: Callable[[], None] | None,
) -> None:
    """A worker process's body: replay its share, answer (events, applied, dead letters) or
    the failure."""
    if prepare is not None:
        prepare()
    try:
        counts = asyncio.run(_replay_share(share, done))
    except BaseException:
        answer.send(("failed", traceback.format_exc()))
        raise
    else:
        answer.send(("done", counts))
    finally:
        answer.close()


async def _replay_share(share: _Share, done: Synchronized) -> tuple[int, int, int]:  # type: ignore[type-arg]
    pool = await create_pool(share.dsn, max_size=2, command_timeout=None)  # a batch job
    sink = _CountingSink()
    target = _bulk_consumer(pool, FactWriter(NEW_SCHEMA, share.services, rollups=False), sink)
    targets = {(t, p): end for t, p, end in share.targets}
    replay = TopicReplay(
        share.bootstrap, sorted({t for t, _, _ in share.targets}), share.batch_size, list(targets)
    )
    totals = [0, 0]
    parent = multiprocessing.parent_process()

    def count(result: BatchResult) -> None:
        if parent is not None and not parent.is_alive():
            # The rebuild that started this worker is gone (killed): stop writing into a
            # schema that nobody will swap in (the next rebuild drops it).
            raise RuntimeError("the rebuild that started this worker is gone")
        events = result.applied + result.duplicates + result.dead_lettered
        totals[0] += events
        totals[1] += result.applied
        with done.get_lock():
            done.value += events

    try:
        await replay.start()
        await _replay_until(replay, target, targets, count)
    finally:
        await replay.stop()
        await pool.close()
    return totals[0], totals[1], sink.count


async def _in_workers(
    shares: Sequence[_Share],
    prepare: Callable[[], None] | None,
    progress: Callable[[int], None],
) -> tuple[int, int, int]:
    """Run one process per share (spawned: a fork would inherit this process's event loop and
    connections); their summed counts. A failure in one stops the others and raises."""
    ctx = multiprocessing.get_context("spawn")
    done = ctx.Value("q", 0)
    running: list[tuple[Any, Connection]] = []
    try:
        for share in shares:
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_worker,
                args=(share, done, writer, prepare),
                name="rebuild-worker",
                daemon=True,  # ended with this process if it exits before joining them
            )
            proc.start()
            writer.close()  # the child holds its end; EOF here when it is gone
            running.append((proc, reader))
        totals = [0, 0, 0]
        waiting = list(running)
        while waiting:
            for proc, reader in list(waiting):
                if reader.poll():
                    try:
                        status, payload = reader.recv()
                    except EOFError:
                        status, payload = "failed", f"exit code {proc.exitcode}"
                    if status != "done":
                        raise RuntimeError(f"a rebuild worker failed:\n{payload}")
                    totals = [a + b for a, b in zip(totals, payload, strict=True)]
                    waiting.remove((proc, reader))
                elif not proc.is_alive() and not reader.poll():
                    raise RuntimeError(f"a rebuild worker died (exit code {proc.exitcode})")
            progress(int(done.value))
            if waiting:
                await asyncio.sleep(0.2)
        return totals[0], totals[1], totals[2]
    finally:
        for proc, reader in running:
            if proc.is_alive():
                proc.terminate()
            await asyncio.to_thread(proc.join)
            reader.close()


def _shares(
    ends: Offsets, workers: int, dsn: str, bootstrap: KafkaTarget, services: Any, batch_size: int
) -> list[_Share]:
    """The partitions dealt round-robin, each topic's partitions over as many workers as it can
    have (the registrations topic holds most of the events)."""
    dealt: list[list[tuple[str, int, int]]] = [[] for _ in range(workers)]
    for n, (topic, partition) in enumerate(sorted(ends)):
        dealt[n % workers].append((topic, partition, ends[(topic, partition)]))
    services = dict(services) if services is not None else None
    return [_Share(dsn, bootstrap, services, batch_size, tuple(d)) for d in dealt if d]


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
    workers: int = 1,
    dsn: str | None = None,
    prepare_worker: Callable[[], None] | None = None,
) -> RebuildReport:
    """Replay ``topics`` into a fresh schema and (with ``swap``) put it in place of ``schema``.

    Runs as the admin role (it creates and renames schemas); ``grant_to`` is the service role
    that gets its rights on the fresh schema before it is swapped in (shared/db_roles.py).
    ``services``: the service list (v1 referrals to a service are resolved with it).
    ``workers`` > 1: phase 2 (see the module) in that many processes, each connecting to
    ``dsn`` (the database of ``pool``, as the same role); ``prepare_worker``, a module-level
    function, runs first in each."""
    if workers > 1 and dsn is None:
        raise ValueError("a rebuild in worker processes needs the database's dsn")
    started = time.perf_counter()
    fresh = RebuildSchema(pool, schema, NEW_SCHEMA, MIGRATIONS)
    await fresh.create(grant_to)
    sink = _CountingSink()
    # The rollups are filled once after the bulk load, then kept batch by batch again.
    writer = FactWriter(NEW_SCHEMA, services, rollups=False)
    target = _bulk_consumer(pool, writer, sink)
    totals = {"events": 0, "applied": 0, "skipped": 0, "total": 0}
    phases: dict[str, float] = {}
    mark = [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 2)
        mark[0] = now

    lap("schema")

    def count(result: BatchResult) -> None:
        totals["events"] += result.applied + result.duplicates + result.dead_lettered
        totals["applied"] += result.applied
        if progress:
            progress(totals["events"], totals["total"])

    # Phase 1: the erasures, alone.
    erasures = [topic_name(t, prefix) for t in topics if t is Topic.ERASURES]
    if erasures:
        first = TopicReplay(bootstrap, erasures, batch_size)
        try:
            totals["total"] += await first.start()
            await _replay_until(first, target, await first.ends(), count)
        finally:
            await first.stop()
    lap("erasures")
    others = [topic_name(t, prefix) for t in topics if t is not Topic.ERASURES]
    replay = TopicReplay(bootstrap, [*others, *erasures], batch_size)
    totals["total"] += await replay.start()
    try:
        # Phase 2: the other topics up to their ends of now.
        ends = {tp: end for tp, end in (await replay.ends()).items() if tp[0] in others}
        if workers > 1:
            assert dsn is not None
            base = totals["events"]

            def shown(done: int) -> None:
                if progress:
                    progress(base + done, totals["total"])

            replay.pause()
            events, applied, skipped = await _in_workers(
                _shares(ends, workers, dsn, bootstrap, services, batch_size),
                prepare_worker,
                shown,
            )
            replay.resume()
            totals["events"] += events
            totals["applied"] += applied
            totals["skipped"] += skipped
            lap("workers")
        # Phase 3: from where phases 1 and 2 stopped (the offsets stored with their batches).
        await replay.skip_to(await target.stored_offsets(replay.partitions))
        await _replay_until(replay, target, await replay.ends(), count)
        lap("replay")
        # Side by side on as many connections as there were workers (at least two).
        await fresh.build_indexes(max(2, workers))
        lap("indexes")
        await fresh.fill_rollups(max(2, workers))
        lap("rollups")
        writer.rollups = True
        swapped = False
        if swap:

            async def catch_up() -> None:
                # Live batches now wait; replay what arrived during the rebuild.
                await _replay_until(replay, target, await replay.ends(), count)

            await fresh.swap(catch_up)
            swapped = True
            lap("swap")
    finally:
        await replay.stop()
    seconds = time.perf_counter() - started
    log.info("rebuild done", extra={"events": totals["events"], "seconds": round(seconds, 1)})
    return RebuildReport(
        totals["events"],
        totals["applied"],
        sink.count + totals["skipped"],
        seconds,
        swapped,
        phases,
    )
