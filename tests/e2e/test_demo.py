"""Issue 16's "done when", from a fresh ``make demo``: ``scripts/demo --detach`` starts the whole
system as the demo does (its own Kafka, PostgreSQL and the three services as processes, the 33
simulated partners and their year, a release), on free ports and in a temporary state folder of
this test alone; then, in headless Chromium, a volunteer of one of those partners opens the
page, records a session of 12, uploads the register with one bad row, reads the Dutch problem,
fixes the row, uploads again, and the figures show exactly those attendances, once: the live
municipality totals (API and dashboard), the organisation's own figures from the next release,
and the metrics service's facts. Everything the demo started is stopped at the end, also when
the test fails; the shared broker and database are never touched.

Size: ``VERBINDING_E2E_DEMO_RESIDENTS`` simulated residents over two months (default 120: the
demo is up in well under a minute). ``VERBINDING_E2E_DEMO_KEEP=1`` keeps the state folder (every
process's log) for a post-mortem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import REPO
from tests.e2e.test_dashboard import Problems, wait_ready
from tests.e2e.volunteer import (
    ATTENDED,
    NAMES,
    PEOPLE,
    ROWS,
    Requests,
    record_and_upload,
    s2_figures,
    wait_for_attendances,
)
from tests.live import cached_kafka_lib, free_port

pytestmark = pytest.mark.integration

STACK = REPO / "deploy" / "local" / "stack.py"
DEMO = REPO / "scripts" / "demo"
VERBINDING = REPO / ".venv" / "bin" / "verbinding"
DEMO_TIMEOUT = 600.0
# One of the demo's simulated partners: a volunteer group without a booking system.
ORGANISATION = "repair-cafe-pn"
# November of a year outside the two simulated months whatever today is, inside the dashboard's
# list of years, and not the baseline year (whose participants are the simulated year's growth
# baseline). Its figures are the volunteer's alone, so that under the demo's full disclosure
# control (k = 10) they are exact and shown: 12 people, 23 attendances.
BASELINE_YEAR = json.loads((REPO / "services/metrics/baseline.json").read_text())["baseline_year"]
YEAR = next(y for y in range(date.today().year - 3, 0, -1) if y != BASELINE_YEAR)
SESSIONS = (date(YEAR, 11, 4), date(YEAR, 11, 11))
PERIOD = f"{YEAR}-11"
# The year of the simulated months (they end today).
SIMULATED = str(date.today().year)


@dataclass
class Demo:
    env: dict[str, str]  # the demo's settings plus `stack.py env`: what its CLI commands need
    registrations_url: str
    metrics_url: str
    dsn: str
    coalition_key: str
    partner_keys: dict[str, str]
    seconds: float

    async def cli(self, *args: str) -> str:
        """``verbinding <args>`` against the demo's stack, as an operator would run it."""
        proc = await asyncio.create_subprocess_exec(
            str(VERBINDING),
            *args,
            env=self.env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
        text = out.decode(errors="replace")
        assert proc.returncode == 0, f"verbinding {shlex.join(args)}:\n{text}"
        return text


async def _run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    """``cmd`` in a session of its own, output appended to ``log``; on timeout the whole group
    gets SIGTERM (the demo's trap then stops what it started), then SIGKILL."""
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=fh,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            for sig, grace in ((signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), grace)
                    break
            pytest.fail(f"{shlex.join(cmd)} took over {timeout:.0f} s; its output: {log}")


def _tail(log: Path, lines: int = 80) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
async def demo() -> AsyncIterator[Demo]:
    root = Path(tempfile.mkdtemp(prefix="verbinding-demo-e2e-"))
    root.chmod(0o755)  # stack.py runs PostgreSQL as the postgres user, which must reach it
    residents = os.environ.get("VERBINDING_E2E_DEMO_RESIDENTS") or "120"
    lib = cached_kafka_lib()
    # Nothing of the shared stack's settings (nor of this session's test database) may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERBINDING_", "DEMO_"))}
    env.update(
        VERBINDING_STATE_DIR=str(root / "state"),
        VERBINDING_KAFKA_PORT=str(free_port()),
        VERBINDING_KAFKA_CONTROLLER_PORT=str(free_port()),
        VERBINDING_PG_PORT=str(free_port()),
        VERBINDING_REGISTRATIONS_PORT=str(free_port()),
        VERBINDING_REFERRALS_PORT=str(free_port()),
        VERBINDING_METRICS_PORT=str(free_port()),
        VERBINDING_START_TIMEOUT="90",
        DEMO_RESIDENTS=residents,
        DEMO_MONTHS="2",
    )
    if lib:
        env["VERBINDING_KAFKA_LIB"] = lib  # the jars the shared stack fetched: no Maven run
    log = root / "demo.log"
    started = time.monotonic()
    try:
        code = await _run([str(DEMO), "--detach"], env, log, DEMO_TIMEOUT)
        if code != 0:
            pytest.fail(f"scripts/demo --detach exited with {code}:\n{_tail(log)}")
        seconds = time.monotonic() - started
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(STACK), "env", env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        exported = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in out.decode().splitlines()
            if line.startswith("export ")
        )
        demo_dir = root / "state" / "demo"
        yield Demo(
            env={**env, **exported},
            registrations_url=exported["VERBINDING_REGISTRATIONS_URL"],
            metrics_url=exported["VERBINDING_METRICS_URL"],
            dsn=exported["VERBINDING_DATABASE_URL"],
            coalition_key=(demo_dir / "coalition-key").read_text().strip(),
            partner_keys=json.loads((demo_dir / "keys.json").read_text()),
            seconds=seconds,
        )
    finally:
        # Whatever happened (a failed start, a failed test): stop all of it. Idempotent.
        await _run([sys.executable, str(STACK), "down"], env, log, 180)
        if os.environ.get("VERBINDING_E2E_DEMO_KEEP") == "1":
            print(f"demo state kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _facts(dsn: str, organisation: str) -> tuple[int, int, int]:
    """The metrics service's attendance facts of the organisation: all of them, and those of the
    volunteer's month (rows, attended). Read as the database admin: no disclosure control."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS everything,
                      count(*) FILTER (WHERE session_date BETWEEN $2 AND $3) AS month,
                      count(*) FILTER (WHERE attended AND session_date BETWEEN $2 AND $3) AS came
                 FROM metrics.attendance WHERE organisation_id = $1""",
            organisation, date(YEAR, 11, 1), date(YEAR, 11, 30),
        )  # fmt: skip
    finally:
        await conn.close()
    assert row is not None
    return int(row["everything"]), int(row["month"]), int(row["came"])


async def _others(dsn: str, organisation: str) -> tuple[int, int]:
    """Attendance and activity facts of every other organisation."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM metrics.attendance WHERE organisation_id <> $1", organisation
        )
        activities = await conn.fetchval(
            "SELECT count(*) FROM metrics.activity_versions WHERE organisation_id <> $1",
            organisation,
        )
    finally:
        await conn.close()
    return int(rows), int(activities)


async def test_a_volunteer_on_a_fresh_demo(demo: Demo, browser: Any, tmp_path: Path) -> None:
    print(f"demo up and simulated in {demo.seconds:.0f} s")
    assert ORGANISATION in demo.partner_keys  # one of the 33 the demo registered
    # The organisation's coordinator (here: the operator) gives the volunteer a key of their own.
    issued = await demo.cli("partner", "volunteer-key", ORGANISATION, "--label", "koffie")
    volunteer_key = issued.strip().splitlines()[-1]

    async with httpx.AsyncClient(base_url=demo.metrics_url, timeout=30) as metrics:
        # Before: the organisation's simulated months are in the facts, nothing in this month;
        # the month's figures hide nothing but an empty cell (no people: rule 1, "primary").
        everything, month, _ = await _facts(demo.dsn, ORGANISATION)
        assert month == 0, month
        before = await s2_figures(metrics, demo.coalition_key, PERIOD)
        assert before["attendances"] == {"value": None, "suppressed": True, "reason": "primary"}
        # The simulated year, which the volunteer's writes must leave as it is: its figures
        # (hidden or not: a demo this small has fewer than k people in it) and its facts.
        simulated = await s2_figures(metrics, demo.coalition_key, SIMULATED)
        others = await _others(demo.dsn, ORGANISATION)

        page = await browser.new_page()
        problems = Problems(page, allow_status=frozenset({422}))
        requests = Requests(page)
        await record_and_upload(page, demo.registrations_url, volunteer_key, SESSIONS, tmp_path)

        # After: exactly those attendances, once. The live municipality totals (read twice, a
        # pause apart: a count that kept growing would be a count twice) ...
        s2 = await wait_for_attendances(metrics, demo.coalition_key, PERIOD, ATTENDED)
        assert s2["participants_unique"]["value"] == len(PEOPLE)
        assert s2["participants_new"]["value"] == len(PEOPLE)
        # ... the facts: the month's 24 rows (one absent), the simulated ones untouched ...
        assert await _facts(demo.dsn, ORGANISATION) == (everything + ROWS, ROWS, ATTENDED)
        assert await s2_figures(metrics, demo.coalition_key, SIMULATED) == simulated
        assert await _others(demo.dsn, ORGANISATION) == others
        # ... and the organisation's own figures, from the release an operator cuts next.
        await demo.cli("metrics", "release")
        own = await s2_figures(metrics, volunteer_key, PERIOD, "/v1/own/indicators")
        assert own["attendances"]["value"] == ATTENDED, own["attendances"]
        assert own["participants_unique"]["value"] == len(PEOPLE), own["participants_unique"]

    # The coalition's dashboard says the same for that year (its figures: this month alone).
    dashboard = await browser.new_page()
    seen = Problems(dashboard)
    await dashboard.goto(f"{demo.metrics_url}/#key={demo.coalition_key}")
    current = await wait_ready(dashboard)
    await dashboard.select_option('[data-testid="period-kind"]', "year")
    await wait_ready(dashboard, current[:4])
    await dashboard.select_option('[data-testid="period-value"]', str(YEAR))
    await wait_ready(dashboard, str(YEAR))
    figure = dashboard.locator('[data-testid="fig-s2.attendances"]')
    assert await figure.get_attribute("data-suppressed") == "false"
    assert float(await figure.get_attribute("data-value") or "nan") == ATTENDED
    assert (await figure.text_content() or "").strip() == str(ATTENDED)

    # Names never left the device; numbers did. Nothing failed on either page.
    assert [url for name in NAMES for url in requests.containing(name)] == []
    assert requests.containing('"number":"1001"')
    assert problems.items == [], problems.items
    assert seen.items == [], seen.items
