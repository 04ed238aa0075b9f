"""What disclosure control costs, on a synthetic year of the demo's size (no stack):

    python -m tools.disclosure_audit.timing [--residents 1500] [--seed 1] [--exact] [--audit]

Prints the time of the engine (the heuristic pattern and the totals' exact check; with
``--exact`` also the exact check of every breakdown) and, with ``--audit``, of the audit over
what would be published. A script, not a test: timings belong in benchmarks (part B wires this
into ``make bench``), never in assertions.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from services.metrics.domain.disclosure import suppress
from tools.disclosure_audit.check import audit
from tools.disclosure_audit.synthetic import generate, grid_of, published_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.disclosure_audit.timing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--residents", type=int, default=1500)
    parser.add_argument("--organisations", type=int, default=33)
    parser.add_argument("--activity", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exact", action="store_true", help="also the exact check of everything")
    parser.add_argument("--audit", action="store_true", help="also audit the published figures")
    args = parser.parse_args(argv)
    records = generate(
        args.seed,
        residents=args.residents,
        organisations=args.organisations,
        activity=args.activity,
    )
    grid = grid_of(records)
    print(f"grid: {len(grid.counts)} non-empty counts of {args.residents} residents")
    for exact in (False, True) if args.exact else (False,):
        started, cpu = time.perf_counter(), time.process_time()
        decisions = suppress(grid, args.k, exact=exact)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        reasons = Counter(d.reason or "shown" for d in decisions.values())
        print(
            f"engine{' (exact check of everything)' if exact else ''}: {took:.2f} s "
            f"({cpu:.2f} s CPU); "
            f"{len(decisions)} figures: {dict(sorted(reasons.items()))}; "
            f"unprotected {len(decisions.unprotected)}"
        )
    if args.audit:
        started = time.perf_counter()
        report = audit(published_from(decisions), records.year, args.k)
        print(f"audit: {time.perf_counter() - started:.2f} s; {report.describe().splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
