"""Measured work that runs in a process of its own (so that it gets a core to itself, as the
service does, and its memory is its own); prints one JSON object on stdout.

    python -m tools.bench.worker bare --bootstrap HOST:PORT --topics T1,T2 [--no-decode]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from services.metrics.settings import MetricsSettings
from shared.kafka import topic_partitions

__all__ = ["bare_consume", "main"]

_SUBSCRIBER = MetricsSettings.model_fields


async def bare_consume(
    bootstrap: str,
    topics: list[str],
    *,
    decode: bool = True,
    # The metrics subscriber's defaults, so that the ratio isolates what the service does per
    # event. The fetch sizes, measured on 1M pre-filled events, alternated: 67,487 / 68,965
    # events/s with 4 MiB and 50 MB, 69,902 / 68,849 with these.
    max_records: int = _SUBSCRIBER["consumer_max_records"].default,
    max_partition_fetch_bytes: int = _SUBSCRIBER["consumer_partition_fetch_bytes"].default,
    fetch_max_bytes: int = _SUBSCRIBER["consumer_fetch_bytes"].default,
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
        fetch_max_bytes=fetch_max_bytes,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.worker")
    sub = parser.add_subparsers(dest="what", required=True)
    bare = sub.add_parser("bare")
    bare.add_argument("--bootstrap", required=True)
    bare.add_argument("--topics", required=True)
    bare.add_argument("--no-decode", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(
        bare_consume(args.bootstrap, args.topics.split(","), decode=not args.no_decode)
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
