"""Sub-commands ``verbinding simulate`` and ``verbinding demo-report`` (loaded by tools/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    from tools.simulator.scenario import Scenario
    from tools.simulator.send import Batch

__all__ = ["parse_duration", "parse_speed", "register"]

REPO = Path(__file__).resolve().parents[2]
YEAR_SECONDS = 365.25 * 86400


def _env_url(service: str, port: int) -> str:
    return os.environ.get(f"VERBINDING_{service.upper()}_URL") or f"http://127.0.0.1:{port}"


def parse_duration(raw: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", raw)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a duration such as 60s, 5m or 1h")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def parse_speed(raw: str) -> float | None:
    """``max`` (None: no waiting) or a compression factor (simulated seconds per second)."""
    if raw.strip().lower() == "max":
        return None
    try:
        factor = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--speed {raw!r}: give `max` or a factor such as 1 (real time) or 525960 "
            "(a year in a minute; --year-in 60s says the same)"
        ) from None
    if factor <= 0:
        raise argparse.ArgumentTypeError("--speed must be positive")
    return factor


def _date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date YYYY-MM-DD") from None


def _today() -> date:
    from datetime import datetime

    from shared.timerules import AMSTERDAM

    return datetime.now(AMSTERDAM).date()


def register(subparsers: Any) -> None:
    sim = subparsers.add_parser(
        "simulate",
        help="play the partners of a municipality through the public HTTP APIs",
        description=(
            "Generates a seeded, reproducible year (or any span up to today) of a municipality's "
            "partner organisations (activities, registrations, cancellations, attendance, "
            "referrals and their status, signal trainings, De Jong Gierveld measurements) and "
            "sends it through POST /v1/batch of the registrations and referrals services."
        ),
    )
    sim.add_argument("--registrations-url", default=_env_url("registrations", 8001))
    sim.add_argument("--referrals-url", default=_env_url("referrals", 8002))
    sim.add_argument(
        "--keys",
        type=Path,
        help="JSON file {organisation id: API key} (written by --create-partners)",
    )
    sim.add_argument(
        "--create-partners",
        action="store_true",
        help="register the organisations and issue keys in VERBINDING_DATABASE_URL, write --keys",
    )
    sim.add_argument(
        "--scenario",
        type=Path,
        help="the municipality's scenario file (default Pijnacker-Nootdorp)",
    )
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--residents", type=int, default=1500, help="size of the population")
    sim.add_argument("--months", type=int, default=12, help="simulated span, ending today")
    sim.add_argument("--today", type=_date, help="end of the span (default: today, local)")
    sim.add_argument(
        "--run-id",
        help="prefix of all ids and references (default s<seed>-n<residents>-m<months>-<today>)",
    )
    pace = sim.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=parse_speed,
        default=None,
        help="`max` (default: as fast as the services take it) or a compression factor",
    )
    pace.add_argument(
        "--year-in", type=parse_duration, help="compress a simulated year into this, e.g. 60s"
    )
    sim.add_argument("--batch-size", type=int, default=500, help="items per POST /v1/batch")
    sim.add_argument("--concurrency", type=int, default=4, help="requests in flight at most")
    sim.add_argument(
        "--retry-for", type=parse_duration, default=300.0, help="retry a batch this long (300s)"
    )
    sim.add_argument(
        "--ledger", type=Path, help="append one JSON line per write: kind, organisation, id, status"
    )
    sim.add_argument("--summary-json", type=Path, help="write the summary as JSON here")
    sim.add_argument(
        "--dump", type=Path, help="write the request bodies (one batch per line) and send nothing"
    )
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.set_defaults(run=_run_simulate)

    rep = subparsers.add_parser(
        "demo-report",
        help="wait until the indicators caught up, print them per subgoal beside the baseline",
    )
    rep.add_argument("--metrics-url", default=_env_url("metrics", 8003))
    rep.add_argument("--registrations-url", default=_env_url("registrations", 8001))
    rep.add_argument("--referrals-url", default=_env_url("referrals", 8002))
    rep.add_argument("--key", help="a key with scope `indicators` (or VERBINDING_INDICATORS_KEY)")
    rep.add_argument("--today", type=_date, help="report date (default: today, local)")
    rep.add_argument(
        "--min-events", type=int, help="wait until the metrics service applied this many events"
    )
    rep.add_argument(
        "--wait", type=parse_duration, default=180.0, help="wait at most this long (180s)"
    )
    rep.add_argument(
        "--events-applied",
        action="store_true",
        help="only print how many events the metrics service has applied, and exit",
    )
    rep.set_defaults(run=_run_report)


# --------------------------------------------------------------------------------- simulate


def _run_simulate(args: argparse.Namespace) -> int:
    from tools.simulator.generate import generate
    from tools.simulator.scenario import default_scenario, load_scenario
    from tools.simulator.send import plan_batches

    if args.residents < 0 or args.months < 1 or args.batch_size < 1 or args.concurrency < 1:
        raise SystemExit("--residents >= 0, --months >= 1, --batch-size and --concurrency >= 1")
    if not (args.dump or args.keys or args.create_partners):
        raise SystemExit("give --keys FILE (organisation id -> API key) or --create-partners")
    today = args.today or _today()
    speed = YEAR_SECONDS / args.year_in if args.year_in else args.speed
    scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    writes = generate(
        args.seed, args.residents, args.months, today, scenario=scenario, run_id=args.run_id
    )
    # Paced runs send a simulated day at a time; flat out, batches are as full as they can be.
    batches = plan_batches(writes, args.batch_size, timedelta(days=1) if speed else None)
    if args.dump != Path("-"):
        print(
            f"simulated {len(writes):,} writes of {len(scenario.organisations)} organisations "
            f"({args.residents:,} residents, {args.months} month{'s' * (args.months != 1)} "
            f"to {today}, seed {args.seed}) in {len(batches):,} batches"
        )
    if args.dump:
        return _dump(batches, args.dump)
    return asyncio.run(_simulate(args, scenario, batches, speed))


def _dump(batches: Sequence[Batch], target: Path) -> int:
    """The request bodies, one batch a line, after its service and organisation."""
    out = sys.stdout.buffer if target == Path("-") else target.open("wb")
    try:
        for b in batches:
            out.write(orjson.dumps({"service": b.service, "organisation": b.organisation}))
            out.write(b"\t" + b.body() + b"\n")
        out.flush()
    except BrokenPipeError:  # `--dump - | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


async def _simulate(
    args: argparse.Namespace, scenario: Scenario, batches: Sequence[Batch], speed: float | None
) -> int:
    from tools.simulator.partners import create_partners, read_keys, write_keys
    from tools.simulator.send import SendOptions, open_clients, send

    if args.create_partners:
        from shared.settings import CommonSettings

        state = Path(os.environ.get("VERBINDING_STATE_DIR") or REPO / ".local")
        keys_path = args.keys or state / "simulator" / "keys.json"
        from tools.simulator.generate import span

        # Partners of the coalition from the start of the simulated span on.
        joined = span(args.months, args.today or _today())[0].date()
        keys = await create_partners(
            CommonSettings().database_url, scenario.organisations, joined=joined
        )
        write_keys(keys_path, keys)
        print(f"created keys for {len(keys)} organisations in {keys_path}")
    else:
        keys = read_keys(args.keys)

    urls = {"registrations": args.registrations_url, "referrals": args.referrals_url}
    async with open_clients(urls, args.concurrency) as clients:
        summary = await send(
            batches,
            clients=clients,
            keys=keys,
            options=SendOptions(
                concurrency=args.concurrency, speed=speed, retry_for=args.retry_for
            ),
            ledger=args.ledger,
            progress=not args.no_progress,
        )
    print(summary.render())
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_bytes(
            orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    return 0 if summary.ok else 1


# ------------------------------------------------------------------------------ demo-report


def _run_report(args: argparse.Namespace) -> int:
    return asyncio.run(_report(args))


async def _report(args: argparse.Namespace) -> int:
    from tools.simulator.report import (
        Addresses,
        fetch_report,
        last_complete_month,
        render_addresses,
        render_report,
        wait_until_caught_up,
    )

    key = args.key or os.environ.get("VERBINDING_INDICATORS_KEY")
    if not key:
        raise SystemExit("give --key (a key with scope `indicators`) or VERBINDING_INDICATORS_KEY")
    today = args.today or _today()
    addresses = Addresses(
        metrics=args.metrics_url.rstrip("/"),
        registrations=args.registrations_url.rstrip("/"),
        referrals=args.referrals_url.rstrip("/"),
        key=key,
        asyncapi=REPO / "docs" / "asyncapi.yaml",
    )
    # A year of indicators can take the metrics service a while to compute on a large history.
    async with httpx.AsyncClient(base_url=addresses.metrics, timeout=120) as client:
        if args.events_applied:
            _, applied = await wait_until_caught_up(client, key, min_events=0, at_most=args.wait)
            print(applied)
            return 0
        print(f"waiting for the metrics service to apply the events (at most {args.wait:.0f}s) ...")
        done, applied = await wait_until_caught_up(
            client, key, min_events=args.min_events, at_most=args.wait
        )
        if not done:
            wanted = f" of {args.min_events:,}" if args.min_events is not None else ""
            print(
                f"warning: not caught up after {args.wait:.0f}s ({applied:,}{wanted} events applied)"
            )
        try:
            year, month, breakdowns = await fetch_report(client, key, today)
        except httpx.HTTPError as exc:
            print(f"warning: no table: /v1/indicators did not answer ({type(exc).__name__} {exc})")
            print()
            print(render_addresses(addresses, last_complete_month(today)))
            return 1
    print()
    print(render_report(year, month, addresses, breakdowns=breakdowns))
    return 0
