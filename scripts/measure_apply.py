"""The metrics consumer's decode + apply, two versions of the code in one process (issue 14).

Not part of `make bench` (which runs the service as a process, with Kafka): a harness for the
consumer's own CPU per event, which on a shared machine moves with the load by more than the
changes it is meant to show. So both versions run in one process, batch by batch alternately,
each into a fresh database of its own, and each side's CPU is summed over its own batches only:
the load of the moment falls on both alike.

    .venv/bin/python scripts/measure_apply.py --before /path/to/checkout-of-main [--events 200000]

``--before`` is a checkout of the code to compare with (e.g. ``git archive main | tar -x -C
/tmp/main``): its ``shared/consumer.py`` and ``services/metrics/adapters/facts.py`` are loaded
beside this checkout's, and the ``adapters/rollups.py`` that its ``facts.py`` calls (everything
else, the schema included, is this checkout's). The events are the bench's simulator events (tools/bench/prefill.py's chunks, seed 1), as raw records with the offsets of
four partitions per topic, each batch's records partition by partition (as a Kafka fetch
hands them over); every 2,000 of them are decoded and applied by ``BatchConsumer``
(``"offsets"`` tracking) with ``FactWriter``, as the service does. Printed per side: CPU per event
of decoding and of applying (this process, ``time.process_time``), and of PostgreSQL (the side's
one backend, ``/proc``; PostgreSQL must run on this machine), and the rows written (equal for
both, or something is wrong). Both databases are analysed every ``--analyze-every`` batches
(10), uncounted, so that both sides plan with statistics as a long-lived database has them (left
to autovacuum, the same code measured 25 against 198 µs of PostgreSQL per event: a plan made
for a nearly empty table kept on one side). Uses ``VERBINDING_DATABASE_URL``'s server; creates and drops the
databases ``measure_apply_before`` and ``measure_apply_after``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import sys
import time
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

BASE_DSN = os.environ.get(
    "VERBINDING_DATABASE_URL", "postgresql://postgres@127.0.0.1:55432/verbinding"
)
BATCH = 2000
TICK = os.sysconf("SC_CLK_TCK")
# Compared between the sides, value by value (``fact_changes``' slot is the process id's).
TABLES = (
    "activity_versions",
    "attendance",
    "registrations",
    "cancellations",
    "referrals",
    "referral_status",
    "trainings",
    "measurements",
    "organisation_activity",
    "first_attendance",
    "open_referrals",
    "erased_subjects",
    "processed_events",
    "consumer_offsets",
)
COLUMNS = {"processed_events": "event_id, topic, kafka_partition, kafka_offset"}  # not the time


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def records(events: int) -> list[Any]:
    from shared.consumer import RawRecord
    from tools.bench.prefill import _chunk

    out: list[RawRecord] = []
    offsets: dict[tuple[str, int], int] = {}
    index = 0
    while len(out) < events:
        for topic, key, value in _chunk(1, index, date.today(), "00" * 32):
            partition = sum(key) % 4
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            out.append(RawRecord(topic, partition, offset, key, value))
        index += 1
    # Each batch partition by partition, in offset order, as a Kafka fetch hands it over.
    out = out[:events]
    return [
        r
        for start in range(0, len(out), BATCH)
        for r in sorted(out[start : start + BATCH], key=lambda r: (r.topic, r.partition))
    ]


async def fresh_pool(database: str) -> asyncpg.Pool:
    from services.registry import SERVICES
    from shared.db import create_pool, migrate_services
    from tools.simulator.partners import create_partners
    from tools.simulator.scenario import default_scenario

    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = BASE_DSN.rpartition("/")[0] + "/" + database
    pool = await create_pool(dsn, max_size=4)
    await migrate_services(pool, {name: s.migrations for name, s in SERVICES.items()})
    await pool.close()
    await create_partners(dsn, default_scenario().organisations, joined=date(2000, 1, 1))
    return await create_pool(dsn, min_size=1, max_size=1)


class NoLetters:
    async def send(self, letters: Any) -> None:
        raise AssertionError(f"dead letters: {letters[:2]}")


async def main(before: Path, events: int, analyze_every: int) -> None:
    from services.metrics.adapters.facts import FactWriter
    from shared.consumer import BatchConsumer

    raw = records(events)
    old_consumer = load("measure_apply_consumer", before / "shared" / "consumer.py")
    old_facts = load(
        "measure_apply_facts", before / "services" / "metrics" / "adapters" / "facts.py"
    )
    # The rollups' upkeep it calls, its own too (a module global, looked up at each call).
    old_facts.rollups = load(  # type: ignore[attr-defined]
        "measure_apply_rollups", before / "services" / "metrics" / "adapters" / "rollups.py"
    )
    sides: dict[str, dict[str, Any]] = {}
    for name, writer, consumer in (
        ("before", old_facts.FactWriter("metrics"), old_consumer.BatchConsumer),
        ("after", FactWriter("metrics"), BatchConsumer),
    ):
        pool = await fresh_pool(f"measure_apply_{name}")
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        batches = consumer(pool, "metrics", writer, NoLetters(), tracking="offsets")
        sides[name] = {"batches": batches, "pool": pool, "pid": pid, "decode": 0.0, "apply": 0.0}
        sides[name]["pg"] = 0.0
    gc.set_threshold(50_000, 10, 10)  # as the service does (tune_gc_for_batches)
    for n, start in enumerate(range(0, len(raw), BATCH)):
        if analyze_every and n % analyze_every == analyze_every - 1:
            # Statistics as autovacuum keeps them in a long-lived database, on both sides at
            # once (not counted): left to autovacuum, which visits each database when it will,
            # one side planned its statements for a nearly empty table far longer than the
            # other (a sequential scan in the rollup's upkeep: 3 against 11 s in one run).
            for side in sides.values():
                async with side["pool"].acquire() as conn:
                    await conn.execute("ANALYZE")
        for name in ("before", "after") if n % 2 == 0 else ("after", "before"):
            side = sides[name]
            pg, began = backend_cpu(side["pid"]), time.process_time()
            batch = await side["batches"].decode(raw[start : start + BATCH])
            decoded = time.process_time()
            await side["batches"].apply_decoded(batch)
            side["decode"] += decoded - began
            side["apply"] += time.process_time() - decoded
            side["pg"] += backend_cpu(side["pid"]) - pg
    digests: dict[str, list[str]] = {}
    for name, side in sides.items():
        async with side["pool"].acquire() as conn:
            rows = [
                await conn.fetchval(f"SELECT count(*) FROM metrics.{table}")
                for table in ("attendance", "registrations", "measurements", "first_attendance")
            ]
            # Every value of every table the writer and the consumer write (in one order).
            digests[name] = [
                await conn.fetchval(
                    f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                    f"FROM (SELECT {COLUMNS.get(table, '*')} FROM metrics.{table}) t"
                )
                for table in TABLES
            ]
        await side["pool"].close()
        us = {k: 1e6 * side[k] / len(raw) for k in ("decode", "apply", "pg")}
        print(
            f"{name:6}  decode {us['decode']:5.1f}  apply {us['apply']:5.1f}  "
            f"own {us['decode'] + us['apply']:5.1f}  PostgreSQL {us['pg']:5.1f} µs/event  "
            f"rows {rows}"
        )
    differ = [t for t, a, b in zip(TABLES, *digests.values(), strict=True) if a != b]
    print(f"tables that differ between the sides: {', '.join(differ) or 'none'}")
    print(f"{len(raw):,} events; load average {os.getloadavg()[0]:.1f}")
    admin = await asyncpg.connect(BASE_DSN)
    for name in sides:
        await admin.execute(f'DROP DATABASE IF EXISTS "measure_apply_{name}" WITH (FORCE)')
    await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout to compare with")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--analyze-every",
        type=int,
        default=10,
        help="ANALYZE both databases every this many batches, uncounted (0: leave it to autovacuum)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.before, args.events, args.analyze_every))
