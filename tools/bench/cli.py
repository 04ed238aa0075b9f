"""``python -m tools.bench`` (``make bench``): start the stack, run every case, print one table,
write the figures as JSON. See docs/benchmarks.md for what each case measures and why."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from tools.bench import cases
from tools.bench.kafka_tools import KafkaTools
from tools.bench.memory import MemoryWatch
from tools.bench.prefill import prefill
from tools.bench.report import render_table, targets
from tools.bench.stack import REPO, Stack

__all__ = ["main"]

CASES = ("aggregation", "rebuild", "disclosure", "ingestion", "latency", "freshness", "reads")
# Not in a default run: it pre-fills, loads and releases every scale (5M: most of an hour).
DEFAULT_CASES = CASES[:-1]


def say(message: str) -> None:
    print(message, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000, help="pre-filled events (1,000,000)")
    p.add_argument(
        "--quick", action="store_true", help="~100k events and short cases, for trying it out"
    )
    p.add_argument("--ingest-writes", type=int, help="writes sent through HTTP (100,000)")
    p.add_argument(
        "--rates",
        default="25,50,100,200,300,400",
        help="offered single writes per second, one open-loop step each (25,50,100,200,300,400)",
    )
    p.add_argument("--step-seconds", type=float, help="length of each rate step (30)")
    p.add_argument("--closed", type=int, help="requests one after the other: service time (500)")
    p.add_argument("--freshness-rate", type=float, default=1000.0, help="events/s (1,000)")
    p.add_argument("--freshness-seconds", type=float, help="length of the freshness run (30)")
    p.add_argument(
        "--repeat",
        type=int,
        help="runs of each cheap baseline and of the aggregation's deployment; the medians "
        "count (3)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help=f"comma-separated subset of {','.join(CASES)} (reads only when asked)",
    )
    p.add_argument(
        "--scales",
        default="100000,1000000,5000000",
        help="reads: pre-filled events of each size (100000,1000000,5000000)",
    )
    p.add_argument(
        "--shapes",
        default="year,history",
        help="reads: 'year' (every event in the last twelve months) and/or 'history' "
        "(a fixed yearly volume, --yearly-events, over as many years as the size holds)",
    )
    p.add_argument(
        "--yearly-events",
        type=int,
        default=1_000_000,
        help="reads, history shape: events per year (1,000,000: 5M = 5 years)",
    )
    p.add_argument(
        "--output", type=Path, default=REPO / "docs" / "benchmarks.json", help="the JSON file"
    )
    p.add_argument("--work-dir", type=Path, help="logs, payloads, profiles (<state>/bench)")
    p.add_argument("--refill", action="store_true", help="pre-fill again even if reusable")
    p.add_argument(
        "--keep-databases",
        action="store_true",
        help="reads: keep each size's database; measure a kept one again without loading it",
    )
    p.add_argument(
        "--instances",
        type=int,
        default=2,
        help="aggregation: metrics service instances in one consumer group, as deployed (2); "
        "one instance is measured too",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the aggregating service")
    p.add_argument(
        "--keep-stack", action="store_true", help="leave running what the benchmark started"
    )
    args = p.parse_args(argv)
    quick = args.quick
    if quick and args.events == 1_000_000:
        args.events = 100_000
    args.ingest_writes = args.ingest_writes or (20_000 if quick else 100_000)
    args.step_seconds = args.step_seconds or (8.0 if quick else 30.0)
    args.closed = args.closed or (200 if quick else 500)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    args.freshness_seconds = args.freshness_seconds or (10.0 if quick else 30.0)
    args.repeat = args.repeat or (1 if quick else 3)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CASES))
    if unknown:
        p.error(f"unknown cases {', '.join(unknown)}; choose from {', '.join(CASES)}")
    args.cases = wanted
    args.scales = [int(x) for x in args.scales.split(",") if x.strip()]
    args.shapes = [x.strip() for x in args.shapes.split(",") if x.strip()]
    if set(args.shapes) - {"year", "history"}:
        p.error("--shapes: choose from year, history")
    return args


async def run_reads(args: argparse.Namespace, bench: cases.Bench) -> dict[str, Any]:
    """The reads case at every scale and shape; a history scale that fits in one year is the
    same data as the year shape's and is measured once."""
    runs: list[dict[str, Any]] = []
    measured: dict[str, dict[str, Any]] = {}
    for shape in args.shapes:
        for events in sorted(args.scales):
            years = 1 if shape == "year" else max(1, events // args.yearly_events)
            key = f"{events}-y{years}"
            if key in measured:
                runs.append({**measured[key], "shape": shape, "same_data_as": "year"})
                continue
            say(f"reads: pre-fill {events:,} events over {years} year(s) ...")
            filled = await prefill(
                bench.stack.bootstrap,
                bench.stack.state,
                events=events,
                seed=args.seed,
                secret=bench.stack.pseudonym_secret,
                refill=args.refill,
                years=years,
            )
            say(
                f"  pre-fill: {filled.events:,} events on {filled.prefix}* "
                + ("(reused)" if filled.reused else f"in {filled.seconds:.0f}s")
            )
            result = await cases.reads(bench, filled, shape, keep_database=args.keep_databases)
            result["years"] = years
            result["prefill_seconds"] = filled.seconds
            measured[key] = result
            runs.append(result)
            # A long run (5M: most of an hour) leaves what it has measured so far.
            partial = args.output.with_suffix(".partial.json")
            partial.write_bytes(orjson.dumps({"runs": runs}, option=orjson.OPT_INDENT_2))
    return {"runs": runs, "growth": cases.reads_growth(runs)}


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    from tools.simulator.partners import create_partners
    from tools.simulator.scenario import default_scenario

    work = args.work_dir or stack.state / "bench"
    work.mkdir(parents=True, exist_ok=True)
    memory = MemoryWatch()
    memory.start()
    for name, pid in stack.service_pids().items():
        memory.watch(name, pid)
    keys = await create_partners(
        stack.dsn, default_scenario().organisations, joined=date(2000, 1, 1)
    )
    bench = cases.Bench(
        stack=stack,
        memory=memory,
        kafka=KafkaTools(stack.kafka_lib, stack.bootstrap),
        keys=keys,
        work=work,
        repeat=args.repeat,
        seed=args.seed,
        profile=args.profile,
        say=say,
    )
    results: dict[str, Any] = {}
    started = time.perf_counter()
    load = {"start": load_average()}
    filled = None
    errors: dict[str, str] = {}
    try:
        if {"aggregation", "rebuild", "disclosure"} & set(args.cases):
            say(f"pre-fill: {args.events:,} simulator events ...")
            filled = await prefill(
                stack.bootstrap,
                stack.state,
                events=args.events,
                seed=args.seed,
                secret=stack.pseudonym_secret,
                refill=args.refill,
            )
            say(
                f"pre-fill: {filled.events:,} events on {filled.prefix}* "
                + ("(reused)" if filled.reused else f"in {filled.seconds:.0f}s")
            )
            results["prefill"] = {
                "prefix": filled.prefix,
                "events": filled.events,
                "per_topic": filled.per_topic,
                "seconds": filled.seconds,
                "reused": filled.reused,
                "mean_value_bytes": filled.mean_value_bytes,
                "how": "simulator writes converted to the services' events (same validation, "
                "pseudonymisation, scoring and models) and produced straight to Kafka",
            }
        bare_rate = 0.0

        async def attempt(name: str, case: Callable[[], Awaitable[dict[str, Any]]]) -> None:
            """Run one case; its failure is reported with what the others measured (a late
            case's failure used to lose the whole report)."""
            try:
                results[name] = await case()
            except Exception as exc:
                say(f"  {name} FAILED: {type(exc).__name__}: {exc}")
                errors[name] = f"{type(exc).__name__}: {exc}"

        if {"aggregation", "disclosure"} & set(args.cases) and filled is not None:
            say("aggregation ...")
            await attempt("aggregation", lambda: cases.aggregation(bench, filled, args.instances))
            bare_rate = (
                results.get("aggregation", {}).get("bare_decode", {}).get("events_per_second", 0.0)
            )
        if "rebuild" in args.cases and filled is not None:
            say("rebuild ...")

            async def rebuild() -> dict[str, Any]:
                assert filled is not None
                dsn = results.get("aggregation", {}).get("database") or await cases.fresh_database(
                    bench, "verbinding_bench"
                )
                found = await cases.rebuild(bench, filled, dsn, bare_rate)
                say(f"  rebuild: {found['events_per_second']:,.0f}/s")
                return found

            await attempt("rebuild", rebuild)
        if "disclosure" in args.cases and filled is not None:
            if "aggregation" not in results:
                errors["disclosure"] = "not run: it measures the aggregation case's database"
            else:
                say("disclosure: a release, then /v1/indicators with and without suppression ...")
                aggregated = results["aggregation"]
                await attempt(
                    "disclosure",
                    lambda: cases.disclosure(
                        bench,
                        filled,
                        aggregated["database"],
                        aggregated["metrics_service"]["group"],
                    ),
                )
        if "ingestion" in args.cases:
            say(f"ingestion: {args.ingest_writes:,} writes through POST /v1/batch ...")
            await attempt("ingestion", lambda: cases.ingestion(bench, args.ingest_writes, filled))
            if "ingestion" in results:
                say(f"  ingestion: {results['ingestion']['events_per_second']:,.0f}/s")
        if "latency" in args.cases:
            say(
                f"latency: {args.closed} single POSTs one by one, then open-loop steps of "
                f"{args.step_seconds:.0f}s at {', '.join(f'{r:.0f}' for r in args.rates)}/s ..."
            )
            await attempt(
                "latency",
                lambda: cases.latency(bench, args.rates, args.step_seconds, args.closed),
            )
        if "freshness" in args.cases:
            say(
                f"freshness: {args.freshness_rate:,.0f} events/s for "
                f"{args.freshness_seconds:.0f}s, probes read from /v1/indicators ..."
            )
            await attempt(
                "freshness",
                lambda: cases.freshness(bench, args.freshness_rate, args.freshness_seconds),
            )
        if "reads" in args.cases:
            await attempt("reads", lambda: run_reads(args, bench))
    finally:
        memory.stop()
        if "aggregation" in results or "rebuild" in results:
            await cases.drop_database(stack.dsn, "verbinding_bench")
    load["end"] = load_average()
    results["memory"] = memory.peaks_mib()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": load,
        "options": {
            "events": args.events,
            "quick": args.quick,
            "ingest_writes": args.ingest_writes,
            "rates": args.rates,
            "step_seconds": args.step_seconds,
            "closed": args.closed,
            "freshness_rate": args.freshness_rate,
            "freshness_seconds": args.freshness_seconds,
            "repeat": args.repeat,
            "seed": args.seed,
            "instances": args.instances,
            "cases": args.cases,
            "scales": args.scales,
            "shapes": args.shapes,
            "yearly_events": args.yearly_events,
        },
        "stack": {
            "kafka": stack.bootstrap,
            "database": stack.dsn,
            "started_by_bench": stack.started,
            "snapshot_interval_seconds": os.environ.get("VERBINDING_SNAPSHOT_INTERVAL_SECONDS"),
        },
        "seconds": time.perf_counter() - started,
        "results": results,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The stack's own metrics service refreshes its gauge snapshot (every indicator, every
    # period) every 15 s: quiet while the write cases run, so that it measures the writes, not
    # that. (A stack that was running before keeps its settings: see "stack" in the JSON.)
    os.environ.setdefault("VERBINDING_SNAPSHOT_INTERVAL_SECONDS", "3600")
    stack = Stack(keep=args.keep_stack)
    say(f"stack: {stack.bootstrap}, {stack.dsn}, state {stack.state}")
    stack.up()
    try:
        report = asyncio.run(run(args, stack))
    finally:
        stack.down()
    report["targets"] = targets(report["results"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    print()
    print(render_table(report))
    print(f"\nwritten: {args.output}")
    for name, error in report["errors"].items():
        print(f"case {name} failed: {error}")
    return 1 if report["errors"] else 0
