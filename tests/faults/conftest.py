"""Fixtures of the fault suite (``make test-faults``): a private stack for the whole session, a
fresh deployment per scenario, and the fault report.

The suite is opt-in: it runs when its folder is named on the command line (``pytest
tests/faults``, which ``make test-faults`` does) or with ``VERBINDING_FAULTS=1``; a plain
``pytest`` of the whole tree deselects it, because it takes minutes and starts its own Kafka and
PostgreSQL. It never touches the shared broker or database: everything it starts listens on
free ports and lives in a temporary directory, and is stopped at the end whatever happened.

Size of the load: ``VERBINDING_FAULT_RESIDENTS`` simulated residents per scenario (about 5.8
writes each; default 1200, i.e. ~7,000 writes per scenario and ~55,000 sent in all, which keeps
the suite near six minutes on two cores). ``VERBINDING_FAULT_KEEP=1`` keeps the state folder
(logs of every process) for a post-mortem.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import ScenarioResult, Stack
from tests.live import REPO

FAULTS_DIR = Path(__file__).resolve().parent
REPORT_MD = REPO / "docs" / "fault-report.md"
REPORT_JSON = REPO / "docs" / "fault-report.json"
RESULTS: list[ScenarioResult] = []
SCENARIOS_IN_SUITE = 8


def _asked_for(config: pytest.Config) -> bool:
    if os.environ.get("VERBINDING_FAULTS") == "1":
        return True
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == FAULTS_DIR or FAULTS_DIR in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _asked_for(config):
        return
    mine = [i for i in items if FAULTS_DIR in Path(str(i.fspath)).parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [i for i in items if i not in mine]


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    """Kafka and PostgreSQL of the suite alone; torn down (and their files removed) at the end."""
    root = Path(tempfile.mkdtemp(prefix="verbinding-faults-"))
    # stack.py runs PostgreSQL as the postgres system user, which must reach <root>/pg.
    root.chmod(0o755)
    private = Stack(root)
    try:
        import asyncio

        await asyncio.gather(private.kafka_start(), private.pg_start())
        yield private
    finally:
        await private.down()
        (root / "stack.log").write_text("\n".join(private.log))
        if os.environ.get("VERBINDING_FAULT_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def residents() -> int:
    return int(os.environ.get("VERBINDING_FAULT_RESIDENTS") or 1200)


@pytest.fixture(scope="session")
def record() -> Any:
    def add(result: ScenarioResult) -> None:
        RESULTS.append(result)

    return add


# ------------------------------------------------------------------------------------ report


COLUMNS = (
    ("scenario", "scenario"),
    ("events sent", "events_sent"),
    ("accepted", "accepted"),
    ("counted", "counted"),
    ("lost", "lost"),
    ("double-counted", "double_counted"),
    ("recovery (s)", "recovery_s"),
    ("converged after load (s)", "converged_s"),
    ("load (s)", "load_s"),
    ("retries", "retries"),
    ("HTTP answers", "http"),
    ("Kafka duplicates absorbed", "kafka_duplicates_absorbed"),
    ("figures compared", "indicators_compared"),
    ("exact", "passed"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items()))
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(results: list[ScenarioResult]) -> str:
    rows = [[name for name, _ in COLUMNS]]
    rows += [[_cell(getattr(r, attr)) for _, attr in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
    }


def write_report(
    results: list[ScenarioResult], elapsed: float, info: dict[str, Any] | None = None
) -> None:
    info = info or machine()
    total_sent = sum(r.events_sent for r in results)
    doc = {
        "machine": info,
        "suite_seconds": round(elapsed, 1),
        "events_sent_total": total_sent,
        "scenarios": [asdict(r) for r in results],
    }
    REPORT_JSON.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Fault report",
        "",
        "Written by `make test-faults` (tests/faults/). Each scenario runs the whole stack on "
        "this machine (a private Kafka, PostgreSQL and the three services), drives a seeded "
        "simulator load through the public HTTP API, injects the fault, lets the system "
        "recover and compares `/v1/indicators` for several periods with the figures computed "
        "independently from what the simulator got a 2xx for (`tools/simulator`, "
        "`expected_figures`), exactly, per indicator; and every accepted write with the "
        "metrics service's facts, one by one.",
        "",
        f"Run of {info['date']} on {info['nproc']} CPUs, {info['memory_gib']} GiB memory "
        f"({info['platform']}, Python {info['python']}, commit {info['commit'] or '?'}; load "
        f"average at the end {info['load_average']}; the machine is shared with other work). "
        f"{total_sent:,} writes sent in {elapsed:.0f} s. The indicators are read with k = 1, "
        "so that no figure is hidden by suppression and every one is compared.",
        "",
        "| " + " | ".join(name for name, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in results:
        lines.append("| " + " | ".join(_cell(getattr(r, attr)) for _, attr in COLUMNS) + " |")
    lines += [
        "",
        "What the columns mean:",
        "",
        "- **events sent**: writes the simulated partners sent (a write sent twice counts twice).",
        "- **accepted**: distinct writes answered with a 2xx, by the simulator's ledger; each "
        "accepted write is exactly one event.",
        "- **counted**: distinct events the metrics service applied.",
        "- **lost**: accepted writes missing from the metrics service's facts (must be 0).",
        "- **double-counted**: events applied beyond one per accepted write, plus facts of "
        "writes that were never accepted (must be 0).",
        "- **recovery**: from the removal of the fault (the component is back) until the "
        "system is whole again: every event of a write accepted by then counted and, if the "
        "partners were still writing, writes accepted again (scenario 4 has no fault to "
        "recover from).",
        "- **converged after load**: from the last answer of the load until the figures "
        "equalled the expected ones.",
        "- **HTTP answers**: every HTTP status the partners saw, retries included (a batch "
        "answers 200 with a status per item).",
        "- **Kafka duplicates absorbed**: records on the topics beyond one per event (a relay "
        "that published and died before deleting its rows, a publish whose acknowledgement was "
        "lost, replays), which the consumer recognised by event id and skipped.",
        "- **figures compared**: indicator values (counts, rates, the median) compared "
        f"exactly, over the periods {', '.join(results[0].periods) if results else ''}.",
        "",
        "Scenario notes:",
        "",
    ]
    for r in results:
        lines.append(f"- **{r.scenario}**: {r.fault}" + ("" if not r.notes else " " + " ".join(r.notes)))  # fmt: skip
    REPORT_MD.write_text("\n".join(lines) + "\n")


_STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "fault report")
    terminalreporter.write_line(table(RESULTS))
    for r in RESULTS:
        terminalreporter.write_line(f"{r.scenario}: {' '.join(r.notes)}")
        for line in r.mismatches[:10]:
            terminalreporter.write_line(f"    {line}")
    failed = [r for r in terminalreporter.stats.get("failed", []) if "tests/faults/" in r.nodeid]
    complete = len(RESULTS) == SCENARIOS_IN_SUITE and all(r.passed for r in RESULTS) and not failed
    if complete or os.environ.get("VERBINDING_FAULT_REPORT") == "1":
        write_report(RESULTS, time.monotonic() - _STARTED)
        terminalreporter.write_line(f"written: {REPORT_MD.relative_to(REPO)}, {REPORT_JSON.relative_to(REPO)}")  # fmt: skip
    else:
        terminalreporter.write_line(
            "docs/fault-report.md not rewritten: only a complete, green run writes it "
            "(VERBINDING_FAULT_REPORT=1 forces it)"
        )
