"""The volunteers' page in headless Chromium, against the real services (PostgreSQL, Kafka, the
metrics consumer): a volunteer with a key of their own opens the page, adds an activity and
twelve people, ticks a session of 12, downloads the register template, uploads it with one bad
row, reads the Dutch problem, fixes the row, uploads again, and the indicators show exactly those
attendances, once. No request the page makes carries a name.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.conftest import PartnerFactory
from tests.e2e.conftest import REPO
from tests.e2e.test_dashboard import Problems
from tests.e2e.volunteer import (
    ATTENDED,
    NAMES,
    PEOPLE,
    ROWS,
    Requests,
    add_people,
    record_and_upload,
    sign_in,
    wait_for_attendances,
)

pytestmark = pytest.mark.integration

# A month no other test writes in, so that the municipality's figures are this test's alone.
SESSION_1 = date(2019, 11, 5)
SESSION_2 = date(2019, 11, 12)
PERIOD = "2019-11"
SCREENSHOTS = {
    "session": REPO / "docs" / "invoer-bijeenkomst.png",
    "problem": REPO / "docs" / "invoer-upload-probleem.png",
    "phone": REPO / "docs" / "invoer-telefoon.png",
}


@pytest.fixture(scope="module")
async def registrations_url(registrations: httpx.AsyncClient) -> AsyncIterator[str]:
    """The session's registrations app (its lifespan already runs) over real HTTP."""
    import uvicorn

    app = registrations._transport.app  # type: ignore[attr-defined]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done() or loop.time() > deadline:
            pytest.fail("the registrations app did not start serving HTTP")
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


def keep(screenshot: Path, name: str) -> None:
    target = SCREENSHOTS[name]
    if os.environ.get("VERBINDING_UPDATE_SCREENSHOT") or not target.exists():
        shutil.copyfile(screenshot, target)


async def test_a_volunteer_records_a_session_and_uploads_a_register(
    registrations_url: str,
    registrations: httpx.AsyncClient,
    metrics: httpx.AsyncClient,
    metrics_app: Any,
    make_partner: PartnerFactory,
    browser: Any,
    artifacts: Path,
) -> None:
    coordinator = await make_partner(scopes="activities,registrations,keys")
    reader = await make_partner(scopes="indicators")
    issued = await registrations.post(
        "/v1/keys", json={"label": "vrijwilliger koffie"}, headers=coordinator.headers
    )
    assert issued.status_code == 201, issued.text
    volunteer_key = issued.json()["key"]

    page = await browser.new_page()
    problems = Problems(page, allow_status=frozenset({422}))
    requests = Requests(page)

    async def shoot(element: Any, name: str) -> None:
        shot = artifacts / SCREENSHOTS[name].name
        await element.screenshot(path=str(shot))
        keep(shot, name)

    await record_and_upload(
        page, registrations_url, volunteer_key, (SESSION_1, SESSION_2), artifacts, shoot
    )

    # The figures: 12 + 11 attendances, 12 people, each counted once (the absent one is a
    # no-show, a count below k and so not shown).
    s2 = await wait_for_attendances(metrics, reader.key, PERIOD, ATTENDED)
    assert s2["participants_unique"]["value"] == 12
    assert s2["participants_new"]["value"] == 12
    assert s2["no_shows"] == {**s2["no_shows"], "value": None, "suppressed": True}
    rows = await metrics_app.state.pool.fetchval(
        "SELECT count(*) FROM metrics.attendance WHERE organisation_id = $1",
        coordinator.organisation_id,
    )
    assert rows == ROWS

    # Names never left the device; numbers did.
    assert [url for name in NAMES for url in requests.containing(name)] == []
    assert requests.containing('"number":"1001"')
    assert volunteer_key not in " ".join(url for url, _, _ in requests.sent)

    # The same page on a phone, in English.
    await page.click('[data-testid="lang-toggle"]')
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.text_content('[data-testid="title"]') == "Record attendance"
    await page.set_viewport_size({"width": 390, "height": 844})
    shot = artifacts / "invoer-telefoon.png"
    await page.screenshot(path=str(shot))
    keep(shot, "phone")
    wide = await page.evaluate(
        """() => Array.from(document.querySelectorAll('body *')).filter(
            e => e.getBoundingClientRect().right > 391 && !e.closest('.visually-hidden')).map(e => e.tagName + '#' + e.id + '.' + e.className)"""
    )
    assert wide == [], wide  # nothing needs sideways scrolling on a phone
    assert problems.items == [], problems.items


async def test_the_name_list_moves_to_another_device_as_a_file(
    registrations_url: str, registrations: httpx.AsyncClient, make_partner: PartnerFactory,
    browser: Any, tmp_path: Path,
) -> None:  # fmt: skip
    volunteer = await make_partner(scopes="attendance")
    page = await browser.new_page()
    await sign_in(page, registrations_url, volunteer.key)
    await add_people(page, PEOPLE[:3])
    async with page.expect_download() as info:
        await page.click('[data-testid="people-export"]')
    exported = tmp_path / "deelnemers.json"
    await (await info.value).save_as(str(exported))
    doc = json.loads(exported.read_text())
    assert sorted(p["name"] for p in doc["people"]) == sorted(NAMES[:3])

    # "Another device": a fresh storage, the file imported.
    await page.evaluate("localStorage.clear()")
    await page.reload()
    await page.wait_for_selector('[data-testid="page"][data-state="ready"]')
    assert await page.locator('[data-testid="person"]').count() == 0
    await page.set_input_files('[data-testid="people-import"]', str(exported))
    await page.wait_for_selector('[data-testid="person"] >> nth=2')
    assert await page.locator('[data-testid="session-person"]').count() == 3


async def test_a_refused_key_and_field_errors_are_told_and_linked(
    registrations_url: str, registrations: httpx.AsyncClient, make_partner: PartnerFactory,
    browser: Any,
) -> None:  # fmt: skip
    page = await browser.new_page()
    problems = Problems(page, allow_status=frozenset({401, 403}))
    await page.goto(f"{registrations_url}/invoer/")
    await page.fill('[data-testid="key-input"]', f"vb_{uuid.uuid4().hex[:12]}_nope")
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="page"][data-state="key-rejected"]')
    assert "niet herkend" in (await page.text_content('[data-testid="key-error"]') or "")
    assert await page.get_attribute('[data-testid="key-input"]', "aria-invalid") == "true"
    assert await page.get_attribute('[data-testid="key-input"]', "aria-describedby") == "key-error"

    indicators_only = await make_partner(scopes="indicators")
    await page.fill('[data-testid="key-input"]', indicators_only.key)
    await page.click('[data-testid="key-submit"]')
    await expect(page.locator('[data-testid="key-error"]')).to_contain_text("vrijwilligers")

    volunteer = await make_partner(scopes="attendance")
    await page.fill('[data-testid="key-input"]', volunteer.key)
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="page"][data-state="ready"]')
    await page.click('[data-testid="session-save"]')
    error = page.locator("#session-activity-error")
    assert await error.text_content() == "Kies de activiteit."
    assert await page.get_attribute('[data-testid="session-activity"]', "aria-invalid") == "true"
    assert await page.evaluate("document.activeElement.id") == "session-activity"
    # Every form control has a label.
    unlabelled = await page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select')).filter(
            e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
        ).map(e => e.id)"""
    )
    assert unlabelled == []
    assert problems.items == [], problems.items


def test_no_markup_is_built_from_strings() -> None:
    source = (REPO / "services/registrations/entrypoints/static/app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
