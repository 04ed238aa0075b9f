"""Measured work that runs in a process of its own (so that it gets a core to itself, as the
service does, and its memory is its own); prints one JSON object on stdout.

    python -m tools.bench.worker bare --bootstrap HOST:PORT --topics T1,T2 [--no-decode]
    python -m tools.bench.worker refresh --dsn DSN --year YYYY --kind totals|snapshot
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from shared.kafka import topic_partitions

__all__ = ["bare_consume", "main", "refresh"]


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
        parts = await topic_partitions(bootstrap, topics)
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


async def refresh(dsn: str, year: int, kind: str) -> dict[str, Any]:
    """A full refresh on a fresh indicator service (nothing decided yet, as after a start or
    when everything changed), configured as the service configures it, answer cache off:

    - ``totals``: its first live totals of ``year`` (``indicators(year)``, what
      ``GET /v1/indicators?period=<year>`` waits for): the year's totals grid and the growth
      baseline year's, decided;
    - ``snapshot``: the ``/metrics`` gauge snapshot's refresh (the current month, quarter and
      year, one live refresh of the current year for all three).

    Its wall time and this process's CPU (the service's share; PostgreSQL's is measured by the
    caller around this process)."""
    from services.metrics.bootstrap import indicator_service
    from services.metrics.service_layer.snapshot import IndicatorSnapshot
    from services.metrics.settings import MetricsSettings
    from shared.db import create_pool

    settings = MetricsSettings(database_url=dsn, indicator_cache_seconds=0)
    pool = await create_pool(dsn, max_size=4)
    try:
        service = indicator_service(settings, pool)
        cpu, started = time.process_time(), time.perf_counter()
        if kind == "totals":
            await service.indicators(str(year))
        else:
            await IndicatorSnapshot(service).refresh()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        await service.close()
    finally:
        await pool.close()
    return {"seconds": seconds, "cpu_seconds": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.worker")
    sub = parser.add_subparsers(dest="what", required=True)
    bare = sub.add_parser("bare")
    bare.add_argument("--bootstrap", required=True)
    bare.add_argument("--topics", required=True)
    bare.add_argument("--no-decode", action="store_true")
    fresh = sub.add_parser("refresh")
    fresh.add_argument("--dsn", required=True)
    fresh.add_argument("--year", type=int, required=True)
    fresh.add_argument("--kind", choices=("totals", "snapshot"), required=True)
    args = parser.parse_args(argv)
    if args.what == "refresh":
        result = asyncio.run(refresh(args.dsn, args.year, args.kind))
    else:
        result = asyncio.run(
            bare_consume(args.bootstrap, args.topics.split(","), decode=not args.no_decode)
        )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
