"""The volunteer's steps on the page (``/invoer/`` of the registrations service), shared by the
end-to-end tests that run them against different stacks: the in-process services on the shared
broker and database (test_volunteer_page.py) and a fresh ``make demo`` (test_demo.py).

:func:`record_and_upload` is the scenario of issue 16: a volunteer signs in with a key of their
own, adds an activity and twelve people, ticks a session of 12, downloads the register
template, uploads it with one bad row, reads the Dutch problem, fixes the row and uploads again
(and once more by mistake). What the figures must show afterwards is each test's own check.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import httpx
from openpyxl import load_workbook
from playwright.async_api import expect

__all__ = [
    "ATTENDED",
    "NAMES",
    "PEOPLE",
    "ROWS",
    "Requests",
    "Upload",
    "add_people",
    "record_and_upload",
    "s2_figures",
    "sign_in",
    "wait_for_attendances",
]

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
ACTIVITY = "koffie-ochtend"
# What the scenario writes: session 1 ticked on the page (12 present), session 2 from the
# spreadsheet (11 present, the fourth person absent). Attendances: 12 + 11; rows: 24.
ATTENDED = 23
ROWS = 24
ABSENT_IN_SESSION_2 = 3  # index in PEOPLE
BAD_IN_SESSION_2 = 7  # index in PEOPLE: its neighbourhood is written as "Noord"

# A screenshot hook: (element or page, name) -> awaitable; names "session" and "problem".
Shoot = Callable[[Any, str], Any]


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


@dataclass(frozen=True)
class Upload:
    """What the scenario left behind, for the test's own checks."""

    file: Path
    bad_row: int


async def sign_in(page: Any, base_url: str, key: str) -> None:
    await page.goto(f"{base_url}/invoer/")
    await page.wait_for_selector('[data-testid="page"][data-state="need-key"]')
    assert await page.evaluate("document.documentElement.lang") == "nl"
    await page.fill('[data-testid="key-input"]', key)
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="page"][data-state="ready"]')
    # The key lives in this tab only.
    assert await page.evaluate("sessionStorage.getItem('verbinding.invoer.key')") == key
    assert await page.evaluate("localStorage.getItem('verbinding.invoer.key')") is None


async def add_people(page: Any, people: list[tuple[str, str, str, str]]) -> None:
    for name, number, neighbourhood, age in people:
        await page.fill('[data-testid="person-name"]', name)
        await page.fill('[data-testid="person-number"]', number)
        await page.select_option('[data-testid="person-neighbourhood"]', neighbourhood)
        await page.select_option('[data-testid="person-age"]', age)
        await page.click('[data-testid="person-add"]')


async def _upload(page: Any, file: Path, state: str) -> Any:
    await page.set_input_files('[data-testid="upload-file"]', str(file))
    await page.click('[data-testid="upload-submit"]')
    await page.wait_for_selector(f'[data-testid="upload-result"][data-state="{state}"]')
    return page.locator('[data-testid="upload-result"]')


async def record_and_upload(
    page: Any,
    base_url: str,
    key: str,
    sessions: tuple[date, date],
    workdir: Path,
    shoot: Shoot | None = None,
) -> Upload:
    """The whole scenario, with the page's own answers checked on the way (in Dutch)."""
    await sign_in(page, base_url, key)

    # An activity aimed at meeting people (what S2 counts).
    await page.fill('[data-testid="activity-title"]', "Koffie-ochtend")
    assert await page.input_value('[data-testid="activity-code"]') == ACTIVITY
    await page.select_option('[data-testid="activity-category"]', "meeting")
    await page.select_option('[data-testid="activity-neighbourhood"]', "delfgauw")
    await page.click('[data-testid="activity-save"]')
    await page.wait_for_selector(f'[data-testid="activity-row"][data-code="{ACTIVITY}"]')

    # Twelve people, kept on this device only.
    await add_people(page, PEOPLE)
    assert await page.locator('[data-testid="person"]').count() == 12
    stored = json.loads(await page.evaluate("localStorage.getItem('verbinding.invoer.people')"))
    assert sorted(p["name"] for p in stored) == sorted(NAMES)

    # A session of 12: everybody ticked present, by keyboard for the last one.
    first, second = sessions
    await page.select_option('[data-testid="session-activity"]', ACTIVITY)
    await page.fill('[data-testid="session-date"]', first.isoformat())
    await page.fill('[data-testid="session-time"]', "10:00")
    for _, number, _, _ in PEOPLE[:-1]:
        await page.check(f"#status-{number}-attended")
    await page.focus(f"#status-{PEOPLE[-1][1]}-attended")
    await page.keyboard.press("Space")
    if shoot:
        await shoot(page.locator('[data-testid="session"]'), "session")
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
    book = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))
    sheet = book.worksheets[0]
    labels = {c.value for c in book["Lijsten"]["E"]}
    for day in sessions:
        for i, (_, number, neighbourhood, age) in enumerate(PEOPLE):
            status = "afwezig" if day == second and i == ABSENT_IN_SESSION_2 else "aanwezig"
            wijk = "Noord" if day == second and i == BAD_IN_SESSION_2 else neighbourhood
            sheet.append([day, time(10, 0), ACTIVITY, number, wijk, age, status])
    assert "Noord" not in labels
    bad_row = 1 + len(PEOPLE) + BAD_IN_SESSION_2 + 1  # the header, session 1, then session 2
    upload = workdir / "aanwezigheid.xlsx"
    book.save(upload)

    report = await _upload(page, upload, "refused")
    assert "Er is niets opgeslagen" in (await report.text_content() or "")
    [problem] = await page.locator('[data-testid="report-problem"]').all()
    assert await problem.get_attribute("data-row") == str(bad_row)
    cells = await problem.locator("td").all_text_contents()
    assert cells[0] == str(bad_row)
    assert cells[1] == "wijk"
    assert cells[2].startswith("'Noord' staat niet in de lijst. Kies een van: Pijnacker-Centrum, Pijnacker-Noord")  # fmt: skip
    if shoot:
        await shoot(page.locator('[data-testid="upload"]'), "problem")

    # The volunteer fixes the row and uploads the file again: only the new session is new.
    book = load_workbook(upload)
    book.worksheets[0].cell(row=bad_row, column=5, value="Pijnacker-Centrum")
    book.save(upload)
    report = await _upload(page, upload, "saved")
    assert (await report.text_content() or "").startswith(
        "24 regels gelezen: 12 nieuw opgeslagen, 12 waren al opgeslagen."
    )
    # ... and once more, by mistake: nothing changes.
    report = await _upload(page, upload, "saved")
    # (expect() polls from outside the page: the page's CSP forbids evaluating strings in it)
    await expect(report).to_contain_text("0 nieuw opgeslagen, 24 waren al opgeslagen")
    return Upload(upload, bad_row)


async def s2_figures(
    metrics: httpx.AsyncClient, key: str, period: str, path: str = "/v1/indicators"
) -> dict[str, Any]:
    """S2 of the municipality totals (``/v1/indicators``) or of the key's organisation
    (``/v1/own/indicators``) for ``period``."""
    r = await metrics.get(
        path, params={"period": period}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["s2"])


async def wait_for_attendances(
    metrics: httpx.AsyncClient, key: str, period: str, expected: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Bounded wait for the metrics consumer (it lags the writes by design), then a second read
    after a pause: a figure that kept growing would show a count twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    s2 = await s2_figures(metrics, key, period)
    while s2["attendances"]["value"] != expected and loop.time() < deadline:
        await asyncio.sleep(0.5)
        s2 = await s2_figures(metrics, key, period)
    assert s2["attendances"]["value"] == expected, s2["attendances"]
    await asyncio.sleep(3)
    again = await s2_figures(metrics, key, period)
    assert again["attendances"]["value"] == expected, again["attendances"]
    return again
