"""`verbinding disclosure audit` (also ``python -m tools.disclosure_audit``): read every figure
a reader can read about a year from a running metrics service and print every disclosure.

Exit code 0 when there is none, 1 when there are disclosures (or figures that contradict each
other), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main", "register"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-url",
        default=os.environ.get("VERBINDING_METRICS_URL") or "http://127.0.0.1:8003",
        help="the metrics service (or VERBINDING_METRICS_URL)",
    )
    parser.add_argument(
        "--year", type=int, default=datetime.now(UTC).year, help="the year to audit (this year)"
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("VERBINDING_INDICATORS_KEY"),
        help="the coalition's key, scope `indicators` (or VERBINDING_INDICATORS_KEY)",
    )
    parser.add_argument(
        "--analyst-key",
        default=os.environ.get("VERBINDING_ANALYST_KEY"),
        help="a key with scope `indicators:organisations`: adds the breakdown by organisation",
    )
    parser.add_argument(
        "--partner-key",
        action="append",
        default=[],
        help="a partner organisation's key: adds its own figures (repeatable)",
    )
    parser.add_argument(
        "--metrics-key",
        default=os.environ.get("VERBINDING_METRICS_KEY"),
        help="a key with scope `metrics`: adds the Prometheus exposition",
    )
    parser.add_argument(
        "--additive-lists",
        action="store_true",
        help="also assume every person has one role and every referral one signal (a "
        "stronger reader than the data allow)",
    )
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    parser.add_argument("--save-figures", type=Path, help="write what was read (JSON lines) here")


def register(sub: Any) -> None:
    disclosure = sub.add_parser("disclosure", help="disclosure control (domain.md §7)")
    dsub = disclosure.add_subparsers(dest="disclosure_command", required=True)
    audit = dsub.add_parser(
        "audit",
        help="read every published figure of a year and find what can be worked out (rule 4)",
    )
    _add_arguments(audit)
    audit.set_defaults(run=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.disclosure_audit", description=__doc__)
    _add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from tools.disclosure_audit.check import audit
    from tools.disclosure_audit.collect import Readers, collect

    if not args.key:
        print("give --key (a key with scope `indicators`) or VERBINDING_INDICATORS_KEY")
        return 2
    readers = Readers(args.key, args.analyst_key, tuple(args.partner_key), args.metrics_key)
    figures, k = asyncio.run(collect(args.metrics_url, args.year, readers))
    if args.save_figures:
        with args.save_figures.open("w", encoding="utf-8") as out:
            for figure in figures:
                out.write(json.dumps(asdict(figure)) + "\n")
    report = audit(figures, args.year, k, additive_lists=args.additive_lists)
    print(report.describe())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "year": report.year,
                    "k": report.k,
                    "published": report.published,
                    "checked": report.checked,
                    "disclosures": [
                        {**asdict(d), "variable": str(d.variable)} for d in report.disclosures
                    ],
                    "conflicts": report.conflicts,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
