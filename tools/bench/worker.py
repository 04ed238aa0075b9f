"""Measured work that runs in a process of its own (so that it gets a core to itself, as the
service does, and its memory is its own); prints one JSON object on stdout.

    python -m tools.bench.worker bare --bootstrap HOST:PORT --topics T1,T2 [--no-decode]
    python -m tools.bench.worker rebuild --bootstrap HOST:PORT --prefix P --database-url DSN
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["bare_consume", "main"]


async def bare_consume(
    bootstrap: str,
    topics: list[str],
    *,
    decode: bool = True,
    max_records: int = 2000,
    max_partition_fetch_bytes: int = 4 * 1024 * 1024,
) -> dict[str, Any]:
    """Read ``topics`` from the beginning to their current end, decoding every value with the
    services' ``decode_event`` and nothing else: the ceiling of a Python consumer of these
    events. Fetch settings are the metrics subscriber's, so that the ratio isolates what the
    service does per event."""
    from shared.events import decode_event

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
    )
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        total = sum(ends[tp] - begins[tp] for tp in parts)
        done = 0
        first: float | None = None
        first_cpu = time.process_time()
        started = time.perf_counter()
        while done < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            if first is None and batch:
                first = time.perf_counter()
                first_cpu = time.process_time()
            for records in batch.values():
                for record in records:
                    if decode:
                        decode_event(record.value or b"")
                done += len(records)
            if time.perf_counter() - started > 3600:
                raise TimeoutError(f"read {done} of {total} records in an hour")
        finished = time.perf_counter()
        cpu = time.process_time() - first_cpu
    finally:
        await consumer.stop()
    seconds = finished - (first or started)
    return {
        "events": done,
        "seconds": seconds,
        "events_per_second": done / seconds,
        "cpu_us_per_event": cpu / done * 1e6,
    }


async def run_rebuild(
    bootstrap: str, prefix: str, database_url: str, batch_size: int
) -> dict[str, Any]:
    """``verbinding metrics rebuild`` on the pre-filled topics, swapping into ``metrics``."""
    from services.metrics.bootstrap import MIGRATIONS, SCHEMA
    from services.metrics.entrypoints.consumer import CONSUMED_TOPICS, tune_gc_for_batches
    from services.metrics.service_layer.rebuild import rebuild
    from shared.db import create_pool, migrate_service
    from shared.db_roles import role_of

    tune_gc_for_batches()  # as `verbinding metrics rebuild` does
    cpu = time.process_time()
    pool = await create_pool(database_url, max_size=4)
    try:
        await migrate_service(pool, SCHEMA, MIGRATIONS, role=role_of(SCHEMA))
        report = await rebuild(
            pool,
            bootstrap,
            CONSUMED_TOPICS,
            schema=SCHEMA,
            prefix=prefix,
            batch_size=batch_size,
            swap=True,
            grant_to=role_of(SCHEMA),
        )
    finally:
        await pool.close()
    return {
        "cpu_us_per_event": (time.process_time() - cpu) / max(report.events, 1) * 1e6,
        "events": report.events,
        "applied": report.applied,
        "seconds": report.seconds,
        "events_per_second": report.events_per_second,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.worker")
    sub = parser.add_subparsers(dest="what", required=True)
    bare = sub.add_parser("bare")
    bare.add_argument("--bootstrap", required=True)
    bare.add_argument("--topics", required=True)
    bare.add_argument("--no-decode", action="store_true")
    rebuild = sub.add_parser("rebuild")
    rebuild.add_argument("--bootstrap", required=True)
    rebuild.add_argument("--prefix", required=True)
    rebuild.add_argument("--database-url", required=True)
    rebuild.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.what == "bare":
        result = asyncio.run(
            bare_consume(args.bootstrap, args.topics.split(","), decode=not args.no_decode)
        )
    else:
        result = asyncio.run(
            run_rebuild(args.bootstrap, args.prefix, args.database_url, args.batch_size)
        )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
