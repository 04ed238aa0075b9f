"""The coalition dashboard in headless Chromium, against a stack filled through the partner APIs.

What a coalition member sees must be what the JSON API says: every S1/S2/S3 headline figure
(the live municipality totals), its baseline, the participation table by neighbourhood, age or
activity (the release's breakdowns, including which cells are suppressed and why), the referral
funnel by role, trained people by role and the monthly trend, for the default period and after
the period picker changed it; from when the breakdowns are ("Uitsplitsingen van ..."), and why
figures are hidden, in plain Dutch. A partner's key shows its own organisation's figures. The
page loads without console errors or failed requests, speaks Dutch by default and English on
request, and shows hostile keys as text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, FilledStack

pytestmark = pytest.mark.integration

RATES = {
    "prevalence_lonely",
    "prevalence_severe",
    "prevalence_emotional",
    "prevalence_social",
    "improved_share",
    "attendance_rate",
    "referral_acceptance_rate",
    "referral_conversion",
    "organisations_with_trained_staff_share",
    "growth_vs_baseline",
}
DECIMALS = {"mean_change", "days_to_first_attendance"}
LISTS = {"people_trained_by_role", "referrals_by_signal"}
HEADINGS = {
    "nl": ("Minder eenzaamheid", "Meedoen", "Signaleren en doorverwijzen"),
    "en": ("Less loneliness", "Taking part", "Signalling and referral"),
}
DOCS_SCREENSHOT = REPO / "docs" / "dashboard.png"
# The S3 funnel's stages, in the dashboard's order (the API's names).
FUNNEL = ("referrals", "accepted", "contacted", "converted", "referrals_retained")

# Everything the page shows, read in one round trip: [data-testid] elements with their data.
READ_PAGE = """() => Array.from(document.querySelectorAll('[data-testid]')).map(e => ({
    id: e.dataset.testid, value: e.dataset.value ?? null, suppressed: e.dataset.suppressed ?? null,
    provisional: e.dataset.provisional ?? null, reason: e.dataset.reason ?? null,
    title: e.getAttribute('title'),
    key: e.closest('[data-key]')?.dataset.key ?? null, text: e.textContent.trim(),
}))"""


# ---------------------------------------------------------------------------------- helpers


class Problems:
    """Console errors, uncaught exceptions, failed requests and HTTP errors seen by the page."""

    def __init__(self, page: Any, allow_status: frozenset[int] = frozenset()) -> None:
        self.items: list[str] = []
        self.allowed: list[str] = []  # HTTP errors the test expects, as "status url"
        self.allow_status = allow_status
        # Chromium logs every HTTP error as a console error too; those are counted once, below.
        self.allow_console = [f"status of {s} " for s in allow_status]
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.items.append(f"page error: {exc}"))
        page.on(
            "requestfailed",
            lambda req: self.items.append(f"request failed: {req.url} {req.failure}"),
        )
        page.on("response", self._response)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "assert") and not any(a in msg.text for a in self.allow_console):
            self.items.append(f"console {msg.type}: {msg.text}")

    def _response(self, response: Any) -> None:
        if response.status in self.allow_status:
            self.allowed.append(f"{response.status} {response.url}")
        elif response.status >= 400:
            self.items.append(f"HTTP {response.status}: {response.url}")


async def wait_ready(page: Any, period: str | None = None) -> str:
    selector = '[data-testid="dashboard"][data-state="ready"]'
    if period:
        selector += f'[data-period="{period}"]'
    await page.wait_for_selector(selector, timeout=20_000)
    return await page.get_attribute('[data-testid="dashboard"]', "data-period")


def figures(doc: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every published figure of a subgoal as (dotted path, figure); nested groups flattened."""
    for name, value in doc.items():
        path = f"{prefix}.{name}"
        if not isinstance(value, dict) or name in LISTS:
            continue
        if "suppressed" in value:
            yield path, value
        else:
            yield from figures(value, path)


def parse_number(text: str, lang: str) -> float:
    cleaned = text.replace("\u2212", "-").replace("%", "").replace("\u00a0", "").strip()
    cleaned = (
        cleaned.replace(".", "").replace(",", ".") if lang == "nl" else cleaned.replace(",", "")
    )
    return float(cleaned)


HIDDEN = {"nl": "verborgen", "en": "hidden"}


def assert_shown(shown: dict[str, Any], fig: dict[str, Any], k: int, lang: str, what: str) -> None:
    """The element shows this figure: its raw value, its suppression (and why) and its text.

    ``what`` starts with the figure's (dotted) name, which says how the page formats it."""
    name = what.split(" ")[0].rsplit(".", 1)[-1]
    if fig["suppressed"]:
        assert shown["suppressed"] == "true", f"{what}: should be suppressed, page shows {shown}"
        assert shown["value"] == "", what
        assert shown["text"] == HIDDEN[lang], what
        assert shown["reason"] == fig.get("reason", ""), what
        return
    assert shown["suppressed"] == "false", f"{what}: page suppresses {fig}"
    # Retention and conversion of a period whose window is open are marked provisional.
    assert shown["provisional"] == ("true" if fig.get("provisional") else "false"), what
    if fig["value"] is None:
        assert shown["value"] == "", what
        assert shown["text"] == "\u2013", what
        return
    assert float(shown["value"]) == pytest.approx(fig["value"]), f"{what}: {shown} vs {fig}"
    scale, resolution = (100, 1) if name in RATES else (1, 0.1) if name in DECIMALS else (1, 0)
    displayed = parse_number(shown["text"], lang)
    expected = Decimal(str(fig["value"])) * scale
    # The page rounds for reading (whole percentages, one decimal); never by more than that.
    assert abs(Decimal(str(displayed)) - expected) <= Decimal(str(max(resolution, 1) / 2)) + (
        Decimal("0.0001")
    ), f"{what}: page shows {shown['text']!r} for {fig['value']}"
    if resolution == 0:
        assert displayed == fig["value"], f"{what}: page shows {shown['text']!r}"


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items}


async def api(base: str, key: str, path: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


async def assert_page_matches_api(
    page: Any, base: str, api_key: str, period: str, by: str = "neighbourhood"
) -> dict[str, Any]:
    """Compare everything the dashboard shows for ``period`` with the JSON API's answer."""
    lang = await page.evaluate("document.documentElement.lang")
    total = await api(base, api_key, "/v1/indicators", period=period)
    nb = await api(base, api_key, "/v1/indicators", period=period, by=by)
    roles = await api(base, api_key, "/v1/indicators", period=period, by="referrer_role")
    items = await page.evaluate(READ_PAGE)
    shown = by_id(items)
    k = total["k"]

    # Headline figures of S1, S2, S3 and their baselines: every one the API publishes.
    compared = 0
    for subgoal in ("s1", "s2", "s3"):
        for path, fig in figures(total[subgoal], subgoal):
            assert f"fig-{path}" in shown, f"the page does not show {path}"
            assert_shown(shown[f"fig-{path}"], fig, k, lang, path)
            if "baseline" in fig:
                baseline = shown.get(f"baseline-{path}")
                assert baseline is not None, f"the page does not show the baseline of {path}"
                if fig["baseline"] is None:
                    assert baseline["value"] == "", path
                else:
                    assert float(baseline["value"]) == pytest.approx(fig["baseline"]), path
            compared += 1
    assert compared >= 25, compared

    # Why figures are hidden: the engine's texts, in the page's language.
    reasons = {i["key"]: i["text"] for i in items if i["id"] == "reason-text"}
    assert reasons == total["reasons"][lang], reasons
    for item in items:
        if item["suppressed"] == "true":
            assert item["title"] == total["reasons"][lang][item["reason"]], item
    # From when the breakdowns are: the release's moment.
    assert shown["released"]["value"] == nb["released_at"]
    assert shown["released"]["text"].startswith(
        {"nl": "Uitsplitsingen van ", "en": "Breakdowns as of "}[lang]
    ), shown["released"]

    # The participation table: same keys, same order, same figures, same suppressed cells.
    rows = [i for i in items if i["id"] == "nb-row"]
    assert [r["key"] for r in rows] == [c["key"] for c in nb["breakdown"]]
    cells = {c["key"]: c for c in nb["breakdown"]}
    for item in items:
        if item["id"].startswith("nb-") and item["id"] not in ("nb-row", "nb-key", "nb-missing"):
            cell = cells[item["key"]]
            name = item["id"].removeprefix("nb-")
            if name == "prevalence_lonely-baseline":
                assert float(item["value"]) == cell["s1"]["prevalence_lonely"]["baseline"]
                continue
            subgoal = "s1" if name.startswith("prevalence") else "s2"
            assert_shown(item, cell[subgoal][name], k, lang, f"{name} of {item['key']}")

    # The referral funnel (its five stages), municipality-wide and by referrer role.
    for name in FUNNEL:
        assert_shown(shown[f"funnel-{name}"], total["s3"][name], k, lang, f"{name} in the funnel")
    role_cells = {c["key"]: c for c in roles["breakdown"]}
    assert sorted(i["key"] for i in items if i["id"] == "role-row") == sorted(role_cells)
    for item in items:
        if item["id"] in {f"role-{name}" for name in FUNNEL}:
            name = item["id"].removeprefix("role-")
            fig = role_cells[item["key"]]["s3"][name]
            assert_shown(item, fig, k, lang, f"{name} by {item['key']}")

    # Trained people by role, referrals by signal.
    for testid, figs in (
        ("trained", total["s3"]["people_trained_by_role"]),
        ("signal", total["s3"]["referrals_by_signal"]),
    ):
        values = {i["key"]: i for i in items if i["id"] == f"{testid}-value"}
        assert set(values) == set(figs), testid
        for name, fig in figs.items():
            assert_shown(values[name], fig, k, lang, f"count of {testid} {name}")

    # The monthly trend: the twelve months up to the end of the period (or now).
    rows = [i for i in items if i["id"] == "trend-row"]
    until = rows[-1]["key"]
    trend = await api(base, api_key, "/v1/trend", months=12, until=until)
    assert [r["key"] for r in rows] == [m["period"] for m in trend["months"]]
    for series in ("unique", "new"):
        values = [i for i in items if i["id"] == f"trend-{series}"]
        for item, month in zip(values, trend["months"], strict=True):
            assert_shown(
                item,
                month[f"participants_{series}"],
                k,
                lang,
                f"participants_{series} in {month['period']}",
            )

    assert shown["freshness"]["value"] == (total["freshness"]["newest_event_at"] or "")
    return {"total": total, "nb": nb, "roles": roles, "shown": shown, "items": items}


# ---------------------------------------------------------------------------------- tests


async def test_dashboard_shows_the_api_figures(
    filled_stack: FilledStack, metrics_url: str, browser: Any, artifacts: Path
) -> None:
    key = filled_stack.reader.key
    page = await browser.new_page()
    problems = Problems(page)
    await page.goto(f"{metrics_url}/#key={key}")
    period = await wait_ready(page)

    # The key left the address bar at once and lives in this tab's session storage only.
    assert key not in page.url
    assert await page.evaluate("sessionStorage.getItem('verbinding.key')") == key
    assert await page.evaluate("document.documentElement.lang") == "nl"
    # Nothing is recorded in the current month: the default is the latest month with figures.
    assert period == filled_stack.data.latest_month
    month = await assert_page_matches_api(page, metrics_url, key, period)

    # The data set is what makes the comparison worth something: shown and suppressed cells.
    unique = [c["s2"]["participants_unique"] for c in month["nb"]["breakdown"]]
    assert sum(not f["suppressed"] for f in unique) >= 3, unique
    assert sum(f["suppressed"] for f in unique) >= 3, unique
    assert not month["total"]["s2"]["participants_unique"]["suppressed"]
    assert not month["total"]["s1"]["prevalence_lonely"]["suppressed"]
    assert not month["total"]["s3"]["referrals"]["suppressed"]
    assert "Bijgewerkt tot" in month["shown"]["freshness"]["text"]
    assert (
        " ".join(month["shown"]["legend"]["text"].split())
        == "verborgen niet getoond ter bescherming van privacy"
    )
    # Every reason the page explains is one a hidden figure of this month has.
    assert {i["reason"] for i in month["items"] if i["suppressed"] == "true"} >= {"primary"}
    assert [
        (await page.text_content(f'[data-testid="heading-{s}"]')) for s in ("s1", "s2", "s3")
    ] == list(HEADINGS["nl"])

    screenshot = artifacts / "dashboard.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("VERBINDING_UPDATE_SCREENSHOT") or not DOCS_SCREENSHOT.exists():
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)

    # The same page on a phone (an artifact to look at, not compared).
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=str(artifacts / "dashboard-phone.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})

    # The period picker: month → quarter keeps the moment, and the figures follow the API.
    year, mon = (int(x) for x in period.split("-"))
    quarter = f"{year}-Q{(mon + 2) // 3}"
    await page.select_option('[data-testid="period-kind"]', "quarter")
    assert await wait_ready(page, quarter) == quarter
    await assert_page_matches_api(page, metrics_url, key, quarter)

    # ... and an earlier, complete quarter picked from the list: other figures, the API's.
    earlier = f"{year - 1}-Q4" if mon <= 3 else f"{year}-Q{(mon + 2) // 3 - 1}"
    await page.select_option('[data-testid="period-value"]', earlier)
    await wait_ready(page, earlier)
    q = await assert_page_matches_api(page, metrics_url, key, earlier)
    before, after = month["total"]["s2"], q["total"]["s2"]
    assert after["participants_unique"]["value"] > before["participants_unique"]["value"]
    assert after["attendances"]["value"] > before["attendances"]["value"]
    assert q["shown"]["fig-s2.attendances"]["text"] != month["shown"]["fig-s2.attendances"]["text"]
    assert q["shown"]["period-range"]["text"] != month["shown"]["period-range"]["text"]

    # The same table by age and by kind of activity (every breakdown of the coalition).
    for by in ("age_band", "category"):
        await page.select_option('[data-testid="breakdown-by"]', by)
        await page.wait_for_selector(
            f'[data-testid="dashboard"][data-state="ready"][data-by="{by}"]'
        )
        await assert_page_matches_api(page, metrics_url, key, earlier, by)
    await page.select_option('[data-testid="breakdown-by"]', "neighbourhood")
    await page.wait_for_selector(
        '[data-testid="dashboard"][data-state="ready"][data-by="neighbourhood"]'
    )

    # English on request: the headings change, the figures stay the API's, the choice is kept.
    await page.click('[data-testid="lang-toggle"]')
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert [
        (await page.text_content(f'[data-testid="heading-{s}"]')) for s in ("s1", "s2", "s3")
    ] == list(HEADINGS["en"])
    await assert_page_matches_api(page, metrics_url, key, earlier)
    await page.screenshot(path=str(artifacts / "dashboard-en.png"), full_page=True)
    await page.reload()
    await wait_ready(page)
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.is_hidden('[data-testid="key-panel"]')
    assert await page.text_content('[data-testid="heading-s2"]') == HEADINGS["en"][1]

    assert problems.items == []


async def assert_own_view_matches_api(page: Any, base: str, key: str) -> None:
    period = await wait_ready(page)
    assert await page.get_attribute('[data-testid="dashboard"]', "data-view") == "own"
    own = await api(base, key, "/v1/own/indicators", period=period)
    items = await page.evaluate(READ_PAGE)
    shown = by_id(items)
    compared = 0
    for subgoal in ("s2", "s3"):
        for path, fig in figures(own[subgoal], subgoal):
            assert_shown(shown[f"fig-{path}"], fig, own["k"], "nl", path)
            compared += 1
    assert compared >= 10, compared
    # Worth comparing: the welfare organisation has figures of its own to show.
    assert any(not fig["suppressed"] for _, fig in figures(own["s2"], "s2"))
    assert own["organisation_id"] in shown["own-lead"]["text"]
    assert shown["released"]["value"] == own["released_at"]
    # Nothing of the coalition's: no neighbourhoods, no trend.
    assert await page.is_hidden('[data-testid="neighbourhoods"]')
    assert await page.is_hidden('[data-testid="trend"]')


async def test_a_partner_sees_its_own_figures(
    filled_stack: FilledStack, metrics_url: str, browser: Any, make_partner: Any
) -> None:
    """A partner's own view: its cell of the release's breakdown by organisation, what
    `/v1/own/indicators` says. A key that also reads the coalition's figures switches between
    the two; a key that does not opens the own view and cannot switch."""
    org = filled_stack.data.org("welzijn")
    both = filled_stack.partners[org]  # its write key also carries `indicators`
    page = await browser.new_page()
    problems = Problems(page)
    await page.goto(f"{metrics_url}/#key={both.key}")
    await wait_ready(page)
    assert await page.get_attribute('[data-testid="dashboard"]', "data-view") == "coalition"
    await page.click('[data-testid="view-toggle"]')
    await page.wait_for_selector('[data-testid="dashboard"][data-state="ready"][data-view="own"]')
    await assert_own_view_matches_api(page, metrics_url, both.key)
    assert problems.items == []

    only_own = await make_partner(scopes="registrations", organisation_id=org)
    page = await browser.new_page()
    # The coalition's figures answer 403 to such a key: that is how the page finds out.
    problems = Problems(page, allow_status=frozenset({403}))
    await page.goto(f"{metrics_url}/#key={only_own.key}")
    await assert_own_view_matches_api(page, metrics_url, only_own.key)
    assert await page.is_hidden('[data-testid="view-toggle"]')
    assert problems.items == []
    assert problems.allowed
    assert all(a.startswith("403 ") for a in problems.allowed)


async def test_key_form_when_there_is_no_key(
    filled_stack: FilledStack, metrics_url: str, browser: Any
) -> None:
    page = await browser.new_page()
    problems = Problems(page, allow_status=frozenset({401}))
    await page.goto(metrics_url)
    await page.wait_for_selector('[data-testid="dashboard"][data-state="need-key"]')
    assert await page.is_visible('[data-testid="key-panel"]')

    await page.fill('[data-testid="key-input"]', "not-a-key")
    await page.click('[data-testid="key-submit"]')
    await page.wait_for_selector('[data-testid="dashboard"][data-state="key-rejected"]')
    assert "niet herkend" in (await page.text_content('[data-testid="key-error"]') or "")
    assert await page.evaluate("sessionStorage.getItem('verbinding.key')") is None

    await page.fill('[data-testid="key-input"]', filled_stack.reader.key)
    await page.click('[data-testid="key-submit"]')
    assert await wait_ready(page) == filled_stack.data.latest_month
    assert problems.allowed == [f"401 {metrics_url}/v1/trend?months=12&until={_now()}"]
    assert problems.items == []


def _now() -> str:
    from datetime import datetime

    from shared.timerules import AMSTERDAM

    today = datetime.now(AMSTERDAM)
    return f"{today.year:04d}-{today.month:02d}"


HOSTILE = '<img src=x onerror="window.__pwned=1">'


async def test_hostile_keys_are_shown_as_text(
    filled_stack: FilledStack, metrics_url: str, browser: Any
) -> None:
    """Keys come from partners' data: whatever they hold is text, never markup."""
    page = await browser.new_page()
    problems = Problems(page)

    async def inject(route: Any) -> None:
        response = await route.fetch()
        doc = await response.json()
        for cell in doc.get("breakdown", []):
            cell["key"] = HOSTILE + cell["key"]
        if doc["by"] is None:  # the lists come with the municipality answer
            doc["s3"]["people_trained_by_role"][HOSTILE] = {"value": 12, "suppressed": False}
        await route.fulfill(response=response, body=json.dumps(doc))

    await page.route(re.compile(r".*/v1/indicators\?.*"), inject)
    await page.goto(f"{metrics_url}/#key={filled_stack.reader.key}")
    await wait_ready(page)
    rows = await page.locator('[data-testid="nb-key"]').all_text_contents()
    assert rows
    assert all(r.startswith(HOSTILE) for r in rows)
    assert HOSTILE in await page.locator('[data-testid="roles"]').text_content()
    assert HOSTILE in await page.locator('[data-testid="trained"]').text_content()
    assert await page.locator("main img").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert problems.items == []


async def test_figures_served_during_a_refresh_say_so_and_from_when_they_are(
    filled_stack: FilledStack, metrics_url: str, browser: Any
) -> None:
    """While a refresh runs, the live totals are the previous figures, marked ``stale`` with
    the moment they were computed (``figures_as_of``): the page says so in plain Dutch,
    and says nothing of the kind about figures that are not stale."""
    page = await browser.new_page()
    problems = Problems(page)
    as_of = "2026-03-04T09:15:00+00:00"  # 10:15 in Amsterdam

    async def stale(route: Any) -> None:
        response = await route.fetch()
        doc = await response.json()
        if doc["by"] is None:
            doc["freshness"].update(stale=True, figures_as_of=as_of, stale_seconds=4.2)
        await route.fulfill(response=response, body=json.dumps(doc))

    await page.goto(f"{metrics_url}/#key={filled_stack.reader.key}")
    await wait_ready(page)
    fresh = page.locator('[data-testid="freshness"]')
    assert await fresh.get_attribute("data-stale") == "false"
    assert "nieuwe gegevens" not in (await fresh.text_content() or "")

    await page.route(re.compile(r".*/v1/indicators\?.*"), stale)
    await page.reload()
    await wait_ready(page)
    assert await fresh.get_attribute("data-stale") == "true"
    text = " ".join((await fresh.text_content() or "").split())
    assert text.startswith("Bijgewerkt tot"), text
    assert "Er zijn nieuwe gegevens binnen. We rekenen ze nu mee." in text, text
    # The moment in Amsterdam's time, as the page writes dates (Intl, nl).
    shown = text.split("Deze cijfers zijn van ", 1)[1]
    assert "4 maart 2026" in shown, text
    assert "10:15" in shown, text
    assert problems.items == []


def test_no_markup_is_built_from_strings() -> None:
    """The dashboard's script never parses strings as HTML (the cheap half of the above)."""
    source = (REPO / "services/metrics/entrypoints/static/app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
