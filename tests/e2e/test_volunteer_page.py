"""The volunteers' page in headless Chromium, against the real services (PostgreSQL, Kafka, the
metrics consumer): a volunteer with a key of their own opens the page, adds an activity and
twelve people, ticks a session of 12, downloads the register template, uploads it with one bad
row, reads the Dutch problem, fixes the row, uploads again, and the indicators show exactly those
attendances, once. No request the page makes carries a name.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import date, time
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from playwright.async_api import expect

from tests.conftest import PartnerFactory
from tests.e2e.conftest import REPO
from tests.e2e.test_dashboard import Problems

pytestmark = pytest.mark.integration

# A month no other test writes in, so that the municipality's figures are this test's alone.
SESSION_1 = date(2019, 11, 5)
SESSION_2 = date(2019, 11, 12)
PERIOD = "2019-11"
PEOPLE = [
    ("Anna de Vries", "1001", "delfgauw", "75+"),
    ("Bram Jansen", "1002", "pijnacker-noord", "65-74"),
    ("Carla Bakker", "1003", "pijnacker-noord", "75+"),
    ("Daan Visser", "1004", "nootdorp-centrum", "65-74"),
    ("Eva Smit", "1005", "delfgauw", "26-64"),
    ("Fatima El Amrani", "1006", "keijzershof-eilanden", "65-74"),
    ("Gerrit Meijer", "1007", "koningshof", "75+"),
    ("Hanneke de Boer", "1008", "pijnacker-centrum", "65-74"),
    ("Ibrahim Yilmaz", "1009", "delfgauw", "26-64"),
    ("Joke Mulder", "1010", "oude-leede", "75+"),
    ("Kees de Groot", "1011", "nootdorp-oost", "65-74"),
    ("Lotte Bos", "1012", "unknown", "unknown"),
]
NAMES = [p[0] for p in PEOPLE]
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


class Requests:
    """Everything the page sends: address, headers and body of every request."""

    def __init__(self, page: Any) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        body = request.post_data_buffer or b""
        self.sent.append((request.url, json.dumps(request.headers), body))

    def containing(self, text: str) -> list[str]:
        needle = text.encode()
        return [
            url
            for url, headers, body in self.sent
            if needle in body or text in url or text in headers
        ]


async def figures(metrics: httpx.AsyncClient, key: str) -> dict[str, Any]:
    r = await metrics.get(
        "/v1/indicators", params={"period": PERIOD}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["s2"])


async def wait_for_attendances(
    metrics: httpx.AsyncClient, key: str, expected: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Bounded wait for the metrics consumer (it lags the writes by design), then a second read
    after a pause: a figure that kept growing would show a count twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    s2 = await figures(metrics, key)
    while s2["attendances"]["value"] != expected and loop.time() < deadline:
        await asyncio.sleep(0.5)
        s2 = await figures(metrics, key)
    assert s2["attendances"]["value"] == expected, s2["attendances"]
    await asyncio.sleep(3)
    again = await figures(metrics, key)
    assert again["attendances"]["value"] == expected, again["attendances"]
    return again


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
    await page.goto(f"{registrations_url}/invoer/")
    await page.wait_for_selector('[data-testid="page"][data-state="need-key"]')
    assert await page.evaluate("document.documentElement.lang") == "nl"
    await page.fill('[data-testid="key-input"]', volunteer_key)
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="page"][data-state="ready"]')
    assert await page.evaluate("sessionStorage.getItem('verbinding.invoer.key')") == volunteer_key
    assert await page.evaluate("localStorage.getItem('verbinding.invoer.key')") is None

    # An activity aimed at meeting people (what S2 counts).
    await page.fill('[data-testid="activity-title"]', "Koffie-ochtend")
    assert await page.input_value('[data-testid="activity-code"]') == "koffie-ochtend"
    await page.select_option('[data-testid="activity-category"]', "meeting")
    await page.select_option('[data-testid="activity-neighbourhood"]', "delfgauw")
    await page.click('[data-testid="activity-save"]')
    await page.wait_for_selector('[data-testid="activity-row"][data-code="koffie-ochtend"]')

    # Twelve people, kept on this device only.
    for name, number, neighbourhood, age in PEOPLE:
        await page.fill('[data-testid="person-name"]', name)
        await page.fill('[data-testid="person-number"]', number)
        await page.select_option('[data-testid="person-neighbourhood"]', neighbourhood)
        await page.select_option('[data-testid="person-age"]', age)
        await page.click('[data-testid="person-add"]')
    assert await page.locator('[data-testid="person"]').count() == 12
    stored = json.loads(await page.evaluate("localStorage.getItem('verbinding.invoer.people')"))
    assert sorted(p["name"] for p in stored) == sorted(NAMES)

    # A session of 12: everybody ticked present, by keyboard for the last one.
    await page.select_option('[data-testid="session-activity"]', "koffie-ochtend")
    await page.fill('[data-testid="session-date"]', SESSION_1.isoformat())
    await page.fill('[data-testid="session-time"]', "10:00")
    for _, number, _, _ in PEOPLE[:-1]:
        await page.check(f"#status-{number}-attended")
    await page.focus(f"#status-{PEOPLE[-1][1]}-attended")
    await page.keyboard.press("Space")
    shot = artifacts / "invoer-bijeenkomst.png"
    await page.locator('[data-testid="session"]').screenshot(path=str(shot))
    keep(shot, "session")
    await page.click('[data-testid="session-save"]')
    message = page.locator('[data-testid="session-result"] [data-testid="report-message"]')
    await message.wait_for()
    assert (await message.text_content() or "").startswith("12 regels gelezen: 12 nieuw opgeslagen")

    # The register template, downloaded by the page, filled in: the session again (the same
    # rows: nothing new) and a second session of 12 with one person absent and one bad row.
    async with page.expect_download() as info:
        await page.click('[data-testid="template-attendance-xlsx"]')
    download = await info.value
    assert download.suggested_filename == "aanwezigheid.xlsx"
    template = Path(await download.path()).read_bytes()
    book = load_workbook(io.BytesIO(template))
    sheet = book.worksheets[0]
    labels = {c.value for c in book["Lijsten"]["E"]}
    for day in (SESSION_1, SESSION_2):
        for i, (_, number, neighbourhood, age) in enumerate(PEOPLE):
            status = "afwezig" if day == SESSION_2 and i == 3 else "aanwezig"
            wijk = "Noord" if day == SESSION_2 and i == 7 else neighbourhood
            sheet.append([day, time(10, 0), "koffie-ochtend", number, wijk, age, status])
    assert "Noord" not in labels
    bad_row = 1 + 12 + 8  # the header, session 1, then the eighth of session 2
    upload_path = artifacts / "aanwezigheid.xlsx"
    book.save(upload_path)

    await page.set_input_files('[data-testid="upload-file"]', str(upload_path))
    await page.click('[data-testid="upload-submit"]')
    await page.wait_for_selector('[data-testid="upload-result"][data-state="refused"]')
    report = page.locator('[data-testid="upload-result"]')
    text = await report.text_content() or ""
    assert "Er is niets opgeslagen" in text
    [problem] = await page.locator('[data-testid="report-problem"]').all()
    assert await problem.get_attribute("data-row") == str(bad_row)
    cells = await problem.locator("td").all_text_contents()
    assert cells[0] == str(bad_row)
    assert cells[1] == "wijk"
    assert cells[2].startswith("'Noord' staat niet in de lijst. Kies een van: Pijnacker-Centrum, Pijnacker-Noord")  # fmt: skip
    shot = artifacts / "invoer-upload-probleem.png"
    await page.locator('[data-testid="upload"]').screenshot(path=str(shot))
    keep(shot, "problem")

    # The volunteer fixes the row and uploads the file again: only the new session is new.
    book = load_workbook(upload_path)
    book.worksheets[0].cell(row=bad_row, column=5, value="Pijnacker-Centrum")
    book.save(upload_path)
    await page.set_input_files('[data-testid="upload-file"]', str(upload_path))
    await page.click('[data-testid="upload-submit"]')
    await page.wait_for_selector('[data-testid="upload-result"][data-state="saved"]')
    assert (await report.text_content() or "").startswith(
        "24 regels gelezen: 12 nieuw opgeslagen, 12 waren al opgeslagen."
    )
    # ... and once more, by mistake: nothing changes.
    await page.set_input_files('[data-testid="upload-file"]', str(upload_path))
    await page.click('[data-testid="upload-submit"]')
    await page.wait_for_selector('[data-testid="upload-result"][data-state="saved"]')
    # (expect() polls from outside the page: the page's CSP forbids evaluating strings in it)
    await expect(report).to_contain_text("0 nieuw opgeslagen, 24 waren al opgeslagen")

    # The figures: 12 + 11 attendances, 12 people, each counted once (the absent one is a
    # no-show, a count below k and so not shown).
    s2 = await wait_for_attendances(metrics, reader.key, 23)
    assert s2["participants_unique"]["value"] == 12
    assert s2["participants_new"]["value"] == 12
    assert s2["no_shows"] == {**s2["no_shows"], "value": None, "suppressed": True}
    rows = await metrics_app.state.pool.fetchval(
        "SELECT count(*) FROM metrics.attendance WHERE organisation_id = $1",
        coordinator.organisation_id,
    )
    assert rows == 24

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
    await page.goto(f"{registrations_url}/invoer/")
    await page.fill('[data-testid="key-input"]', volunteer.key)
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="page"][data-state="ready"]')
    for name, number, neighbourhood, age in PEOPLE[:3]:
        await page.fill('[data-testid="person-name"]', name)
        await page.fill('[data-testid="person-number"]', number)
        await page.select_option('[data-testid="person-neighbourhood"]', neighbourhood)
        await page.select_option('[data-testid="person-age"]', age)
        await page.click('[data-testid="person-add"]')
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
