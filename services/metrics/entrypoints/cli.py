"""`verbinding metrics ...`: operator commands of the metrics service."""

from __future__ import annotations

import argparse
import asyncio
import functools
from typing import Any

__all__ = ["register"]

# Processes replaying partitions side by side in `verbinding metrics rebuild`: one Python process
# uses one core, and a rebuild is mostly Python (decoding, building the statements' arrays).
# More than the machine's cores only adds switching (PostgreSQL needs its share of them too);
# docs/benchmarks.md "Issue 14, item 3".
REBUILD_WORKERS = 2


def register(sub: Any) -> None:
    metrics = sub.add_parser("metrics", help="metrics service operations")
    msub = metrics.add_subparsers(dest="metrics_command", required=True)
    rebuild = msub.add_parser(
        "rebuild",
        help="recompute every aggregate by replaying the topics into fresh tables, then swap them in",
    )
    rebuild.add_argument("--batch-size", type=int, default=5000)
    rebuild.add_argument("--no-swap", action="store_true", help="replay only; keep the live tables")
    rebuild.add_argument(
        "--workers",
        type=int,
        default=REBUILD_WORKERS,
        help="processes that replay the topics' partitions side by side "
        f"(default {REBUILD_WORKERS}; 1: all in this process)",
    )
    rebuild.set_defaults(run=_run_rebuild)
    release = msub.add_parser(
        "release",
        help="cut a release now: decide every year with data (exact check) and publish its "
        "breakdowns (the service does this on VERBINDING_RELEASE_INTERVAL)",
    )
    release.set_defaults(run=_run_release)


def _run_release(args: argparse.Namespace) -> int:
    return asyncio.run(_release())


async def _release() -> int:
    """As the metrics service's own role, with the service's settings: the same cut the
    service makes on its interval."""
    from services.metrics.bootstrap import indicator_service
    from services.metrics.settings import MetricsSettings
    from shared.db import create_pool

    settings = MetricsSettings()
    pool = await create_pool(settings.database_url, max_size=3)
    try:
        report = await indicator_service(settings, pool).cut_release()
    finally:
        await pool.close()
    assert report is not None  # waited for the lock: always a report
    print(describe_release(report))
    return 0


def describe_release(report: Any) -> str:
    lines = [
        f"release {report.release.release_id} cut at {report.release.released_at:%Y-%m-%d %H:%M:%S %Z} "
        f"(k = {report.release.k}): {len(report.years)} years in {report.seconds:.1f} s"
    ]
    for year, t in sorted(report.years.items()):
        lines.append(
            f"  {year}: grid {t['grid_seconds']:.2f} s, engine {t['engine_seconds']:.2f} s, "
            f"{t['figures']:,} figures decided"
            + (" (reused: grid unchanged since the last release)" if t.get("reused") else "")
            + (f", {t['unprotected']} LEFT UNPROTECTED" if t["unprotected"] else "")
        )
    return "\n".join(lines)


def _run_rebuild(args: argparse.Namespace) -> int:
    return asyncio.run(_rebuild(args))


async def _rebuild(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from services.metrics.bootstrap import MIGRATIONS, SCHEMA
    from services.metrics.entrypoints.consumer import CONSUMED_TOPICS, tune_gc_for_batches
    from services.metrics.service_layer.rebuild import rebuild
    from services.metrics.settings import MetricsSettings
    from shared.db import create_pool, migrate_service
    from shared.db_roles import role_of
    from shared.reference import load_reference
    from shared.settings import CommonSettings

    settings = MetricsSettings()
    tune_gc_for_batches(args.batch_size)
    # An operator's command, like migrate: it creates and swaps schemas, so it connects as the
    # admin role and grants the metrics role its rights on the fresh schema.
    dsn = CommonSettings().database_url
    # No statement bound: the bulk load's rollup fills and index builds grow with the facts
    # (the first attendances of 5M events in one year took longer than 30 s on a loaded
    # machine, docs/benchmarks.md), and no reader waits for them.
    pool = await create_pool(dsn, max_size=4, command_timeout=None)
    try:
        await migrate_service(pool, SCHEMA, MIGRATIONS, role=role_of(SCHEMA))
        with tqdm(unit="ev", desc="replaying", dynamic_ncols=True) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            report = await rebuild(
                pool,
                settings.kafka(),
                CONSUMED_TOPICS,
                schema=SCHEMA,
                prefix=settings.topic_prefix,
                batch_size=args.batch_size,
                swap=not args.no_swap,
                progress=progress,
                grant_to=role_of(SCHEMA),
                services=load_reference(settings.reference_file).services,
                workers=args.workers,
                dsn=dsn,
                prepare_worker=functools.partial(tune_gc_for_batches, args.batch_size),
            )
    finally:
        await pool.close()
    print(
        f"replayed {report.events} events ({report.applied} applied, {report.skipped} dead letters "
        f"skipped) in {report.seconds:.1f} s = {report.events_per_second:,.0f} events/s; "
        f"{'swapped in' if report.swapped else 'not swapped (--no-swap)'}; phases: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.phases.items())
    )
    if report.swapped:
        # The published breakdowns are still the last release of the old facts (carried over
        # by the swap): a fresh one, of the rebuilt facts, at once.
        await _release()
    return 0
