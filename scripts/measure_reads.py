"""Measure the metrics service's reads on N pre-filled events, in process (issue 14, item 1).

Not part of `make bench` (which runs the services as processes): a harness for the read path
alone, runnable against the code of any checkout (``PYTHONPATH=<checkout>``) on the same
database, so that before and after are measured on the same facts in the same minutes.

    .venv/bin/python scripts/measure_reads.py fill --events 100000 --database verbinding_reads_100k
    .venv/bin/python scripts/measure_reads.py read --database verbinding_reads_100k [--rounds 5]
    .venv/bin/python scripts/measure_reads.py drop --database verbinding_reads_100k

``fill`` generates the bench's simulator events (tools/bench/prefill.py's chunks, same seed) and
applies them through the metrics service's FactWriter in batches of 2,000, with the partners
registered as the bench registers them; ``--years N`` spreads the chunks over N years back from
today (history: the current year holds about 1/N of the events); it reports the events/s of
the writer's transactions alone, and ``--no-rollups`` fills the rollups once at the end instead
of batch by batch (their upkeep's cost is the difference). ``read`` measures, on the busiest year:

- **refresh**: a fresh IndicatorService's first live totals (every figure of the year's totals
  grid and the growth baseline's, decided) — what a change of the facts costs a reader;
- **snapshot**: the ``/metrics`` snapshot's refresh (current month, quarter, year), repeated;
- **totals answers**: ``IndicatorService.indicators(period)`` for the 17 periods of the year,
  ``rounds`` times, answer cache off (``cache_seconds=0``): the service layer behind
  ``GET /v1/indicators`` (HTTP and JSON rendering not included), p50 and p99;
- **answers with a change between them** (``--changes N``, ``--pause S``): N times, one new
  event applied through the FactWriter (from a simulator chunk beyond the fill: a real change
  of the facts, the change marker moves), then ``indicators(period)`` of the next period, S
  seconds apart (a dashboard's reader, while the consumer applies): p50, p99, max, and how
  many answers were marked stale (``freshness.stale``, where the code has it) and how old
  their figures were at most. The service is the one ``bootstrap`` configures from the
  settings' defaults (``indicator_max_stale_seconds``), with the answer cache off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import date
from typing import Any

import asyncpg

BASE_DSN = os.environ.get(
    "VERBINDING_DATABASE_URL", "postgresql://postgres@127.0.0.1:55432/verbinding"
)


def dsn_for(database: str) -> str:
    return BASE_DSN.rpartition("/")[0] + "/" + database


async def fill(database: str, events: int, seed: int, years: int, rollups: bool) -> None:
    from services.metrics.adapters.facts import FactWriter
    from services.registry import SERVICES
    from shared.db import create_pool, migrate_services
    from shared.events import decode_event
    from tools.bench.prefill import _chunk
    from tools.simulator.partners import create_partners
    from tools.simulator.scenario import default_scenario

    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    pool = await create_pool(dsn_for(database), max_size=4)
    await migrate_services(pool, {name: s.migrations for name, s in SERVICES.items()})
    await create_partners(
        dsn_for(database), default_scenario().organisations, joined=date(2000, 1, 1)
    )
    writer = FactWriter("metrics", rollups=rollups)
    applied, index, started, applying = 0, 0, time.perf_counter(), 0.0
    secret = "00" * 32
    while applied < events:
        # With ``years`` > 1, chunk i simulates the year ending i % years years ago: history.
        today = date.today()
        today = today.replace(year=today.year - index % years)
        chunk = _chunk(seed, index, today, secret)
        index += 1
        decoded = [decode_event(v) for _, _, v in chunk[: events - applied]]
        for i in range(0, len(decoded), 2000):
            began = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await writer(conn, decoded[i : i + 2000])
            applying += time.perf_counter() - began
        applied += len(decoded)
        print(
            f"fill: {applied:,} events in {time.perf_counter() - started:.0f} s, "
            f"{applying:.1f} s of it applying ({applied / applying:,.0f} events/s)",
            flush=True,
        )
    if not rollups:
        async with pool.acquire() as conn:
            began = time.perf_counter()
            await conn.execute("SELECT 1")  # the rollups, filled once (as a rebuild does)
            from services.metrics.adapters import rollups as tables

            await tables.fill_first_attendance(conn, "metrics")
            if hasattr(tables, "fill_open_referrals"):  # the code before migration 009 has none
                await tables.fill_open_referrals(conn, "metrics")
            print(f"fill: rollups filled in {time.perf_counter() - began:.1f} s", flush=True)
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE")
    await pool.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def read(database: str, rounds: int, changes: int, pause: float) -> dict[str, Any]:
    from services.metrics.bootstrap import indicator_service
    from services.metrics.domain.periods import parse_period
    from services.metrics.service_layer.snapshot import IndicatorSnapshot
    from services.metrics.settings import MetricsSettings
    from shared.db import create_pool

    settings = MetricsSettings(database_url=dsn_for(database), indicator_cache_seconds=0)
    pool = await create_pool(dsn_for(database), max_size=4)
    async with pool.acquire() as conn:
        year = await conn.fetchval(
            "SELECT extract(year FROM session_date)::int FROM metrics.attendance "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
        events = await conn.fetchval("SELECT count(*) FROM metrics.attendance")
    periods = [str(year), *(f"{year}-Q{q}" for q in range(1, 5))]
    periods += [f"{year}-{m:02d}" for m in range(1, 13)]
    out: dict[str, Any] = {"year": year, "attendance_rows": events}
    if os.environ.get("MEASURE_YEAR"):  # the year read, if not the busiest
        year = int(os.environ["MEASURE_YEAR"])
        periods = [str(year), *(f"{year}-Q{q}" for q in range(1, 5))]
        periods += [f"{year}-{m:02d}" for m in range(1, 13)]
        out["year"] = year
    refresh = []
    for _ in range(3):
        service = indicator_service(settings, pool)
        started = time.perf_counter()
        await service.indicators(periods[0])
        refresh.append(time.perf_counter() - started)
    out["refresh_s"] = refresh
    service = indicator_service(settings, pool)
    snapshot = IndicatorSnapshot(service)
    snaps = []
    for _ in range(3):
        started = time.perf_counter()
        await snapshot.refresh()
        snaps.append(time.perf_counter() - started)
    out["snapshot_s"] = snaps
    times = []
    for _ in range(rounds):
        for label in periods:
            started = time.perf_counter()
            await service.indicators(label)
            times.append(time.perf_counter() - started)
    out["answers"] = len(times)
    out["answer_p50_ms"] = pct(times, 50) * 1000
    out["answer_p99_ms"] = pct(times, 99) * 1000
    if changes:
        out.update(await changing(pool, service, periods, changes, pause))
    out["load_average"] = os.getloadavg()
    await pool.close()
    assert parse_period(periods[0])
    return out


async def changing(
    pool: asyncpg.Pool, service: Any, periods: list[str], changes: int, pause: float
) -> dict[str, Any]:
    """Answers each right after a change of the facts (see the module's docstring)."""
    from services.metrics.adapters.facts import FactWriter
    from shared.events import decode_event
    from tools.bench.prefill import _chunk

    year = int(periods[0])
    # A chunk no fill reaches (fills use indexes from 0 up), of the year measured.
    extra = [decode_event(v) for _, _, v in _chunk(1, 9_999, date(year, 12, 31), "00" * 32)]
    writer = FactWriter("metrics")
    times, stale, oldest, at = [], 0, 0.0, 0
    for n in range(changes):
        applied = 0
        while not applied:  # an event that changes the facts (not every one is a fact)
            async with pool.acquire() as conn, conn.transaction():
                applied = len(await writer(conn, [extra[at]]))
            at += 1
        started = time.perf_counter()
        answer = await service.indicators(periods[n % len(periods)])
        times.append(time.perf_counter() - started)
        if answer["freshness"].get("stale"):
            stale += 1
            oldest = max(oldest, answer["freshness"]["stale_seconds"])
        await asyncio.sleep(pause)
    return {
        "changed_answers": len(times),
        "changed_p50_ms": pct(times, 50) * 1000,
        "changed_p99_ms": pct(times, 99) * 1000,
        "changed_max_ms": max(times) * 1000,
        "changed_stale": stale,
        "changed_stale_seconds_max": oldest,
    }


async def drop(database: str) -> None:
    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("what", choices=("fill", "read", "drop"))
    p.add_argument("--database", required=True)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--changes", type=int, default=0, help="read: answers after a change each")
    p.add_argument("--pause", type=float, default=0.2, help="read: seconds between those")
    p.add_argument("--years", type=int, default=1, help="fill: spread the chunks over years")
    p.add_argument(
        "--no-rollups", action="store_true", help="fill: rollups once at the end, not per batch"
    )
    args = p.parse_args()
    if args.what == "fill":
        asyncio.run(fill(args.database, args.events, args.seed, args.years, not args.no_rollups))
    elif args.what == "read":
        print(asyncio.run(read(args.database, args.rounds, args.changes, args.pause)))
    else:
        asyncio.run(drop(args.database))


if __name__ == "__main__":
    main()
