"""End-to-end fixtures: a stack filled through the partner APIs, and headless Chromium.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``VERBINDING_CHROMIUM``),
driven by Playwright's Python package over CDP; Playwright's own browser downloads are never
used. A missing browser FAILS the tests, like a missing broker does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Partner, PartnerFactory, wait_for_applied
from tests.e2e.dataset import ORGANISATIONS, DataSet, build

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("VERBINDING_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ORG_PREFIX = "e2e-"


@dataclass(frozen=True)
class FilledStack:
    data: DataSet
    reader: Partner
    written: int
    seconds: float
    partners: dict[str, Partner]


async def _post_batches(
    client: httpx.AsyncClient, partner: Partner, items: list[dict[str, Any]]
) -> None:
    for start in range(0, len(items), 1000):
        chunk = items[start : start + 1000]
        # A 503 means "retry later" (contract.md): a loaded machine can time a batch out or
        # make it meet concurrent writes of the same records; a partner retries, so does this.
        for _ in range(5):
            r = await client.post("/v1/batch", headers=partner.headers, json={"items": chunk})
            if r.status_code != 503:
                break
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))
        assert r.status_code == 200, r.text
        body = r.json()
        if body["rejected"]:
            bad = [
                (chunk[i], res)
                for i, res in enumerate(body["results"])
                if res.get("status", 500) >= 300
            ]
            pytest.fail(f"{body['rejected']} writes rejected, e.g. {bad[:3]}")


async def _settled(pool: Any, quiet: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until the metrics service has applied nothing new for ``quiet`` seconds, so that
    events of earlier tests still in flight cannot change figures between page and API."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = -1, loop.time()
    while loop.time() < deadline:
        now = await pool.fetchval("SELECT count(*) FROM metrics.processed_events")
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= quiet:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"the metrics service kept applying events for {timeout:.0f} s")


@pytest.fixture(scope="session")
async def filled_stack(
    registrations: httpx.AsyncClient,
    referrals: httpx.AsyncClient,
    metrics_app: Any,
    make_partner: PartnerFactory,
) -> FilledStack:
    """The data set of dataset.py, written through the registrations and referrals APIs, and
    applied by the metrics service (bounded wait)."""
    started = time.monotonic()
    baseline_year = metrics_app.state.indicators.baseline.baseline_year
    data = build(ORG_PREFIX, baseline_year)
    partners = {
        data.org(name): await make_partner(organisation_id=data.org(name)) for name in ORGANISATIONS
    }
    pool = metrics_app.state.pool
    before = await pool.fetchval("SELECT count(*) FROM metrics.processed_events")

    async def write(bucket: dict[str, list[dict[str, Any]]], client: httpx.AsyncClient) -> None:
        await asyncio.gather(
            *(_post_batches(client, partners[org], items) for org, items in bucket.items())
        )

    # In order: activities before their registrations, referrals before their status changes.
    # (Overlapping the buckets does not help: the services share this one process.)
    await write(data.registrations, registrations)
    await write(data.referrals, referrals)
    await write(data.statuses, referrals)
    await write(data.others, referrals)
    written = data.count()
    await wait_for_applied(metrics_app, before + written, timeout=180)
    await _settled(pool)
    # Breakdowns and own figures are published from a release: cut one now.
    await metrics_app.state.indicators.cut_release()
    reader = await make_partner(scopes="indicators")
    return FilledStack(data, reader, written, time.monotonic() - started, partners)


@pytest.fixture(scope="session")
async def playwright_driver() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's `chromium` (scripts/bootstrap)"
        )
    async with async_playwright() as driver:
        yield driver


@pytest.fixture
async def browser(playwright_driver: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh Chromium profile (user-data-dir) per test: no language or key left behind."""
    context = await playwright_driver.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1280, "height": 900},
        locale="nl-NL",
        # Date and time inputs follow the browser's own language (its environment and its
        # Dutch resources, Debian's chromium-l10n), not the page's or the context's locale:
        # without them they showed 11/05/2019 and 10:00 AM on a Dutch page.
        env={**os.environ, "LANG": "nl_NL.UTF-8", "LANGUAGE": "nl"},
        timezone_id="Europe/Amsterdam",
        service_workers="block",
    )
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
