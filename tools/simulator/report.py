"""``verbinding demo-report``: wait until the metrics service has caught up, then print the
indicators per subgoal beside the baseline, and where to look next.

Reads only the public API (``GET /v1/indicators``), like the dashboard does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "Addresses",
    "caught_up",
    "fetch_report",
    "last_complete_month",
    "render_addresses",
    "render_report",
    "wait_until_caught_up",
]

Doc = Mapping[str, Any]
FRESHNESS_PERIOD = "2000-01"
Fmt = Callable[[Any], str]


def _count(v: Any) -> str:
    return f"{int(v):,}"


def _share(v: Any) -> str:
    return f"{float(v) * 100:.1f}%"


def _signed(v: Any) -> str:
    return f"{float(v):+.2f}"


def _days(v: Any) -> str:
    return f"{float(v):g} days"


# (subgoal, path in the answer, label, format)
ROWS: tuple[tuple[str, tuple[str, ...], str, Fmt], ...] = (
    ("s1", ("measurements",), "survey measurements", _count),
    ("s1", ("prevalence_lonely",), "lonely (moderately or more)", _share),
    ("s1", ("prevalence_severe",), "severely or very severely lonely", _share),
    ("s1", ("prevalence_emotional",), "emotionally lonely", _share),
    ("s1", ("prevalence_social",), "socially lonely", _share),
    ("s1", ("referral_outcome", "pairs"), "referred: intake + follow-up pairs", _count),
    ("s1", ("referral_outcome", "mean_change"), "referred: mean score change", _signed),
    ("s1", ("referral_outcome", "improved_share"), "referred: to a lower category", _share),
    ("s2", ("participants_unique",), "unique participants", _count),
    ("s2", ("participants_new",), "new participants", _count),
    ("s2", ("attendances",), "attendances", _count),
    ("s2", ("no_shows",), "no-shows", _count),
    ("s2", ("attendance_rate",), "attendance rate", _share),
    ("s2", ("registrations",), "registrations", _count),
    ("s2", ("cancellations",), "cancellations", _count),
    ("s2", ("retained",), "retained (3+ sessions in 90 days)", _count),
    ("s2", ("growth_vs_baseline",), "unique participants vs baseline year", _share),
    # The referral funnel in its order: created, accepted, contacted, attended, retained.
    ("s3", ("referrals",), "referrals", _count),
    ("s3", ("accepted",), "  accepted", _count),
    ("s3", ("contacted",), "  contacted", _count),
    ("s3", ("converted",), "  first attendance within 60 days", _count),
    ("s3", ("referrals_retained",), "  retained (3+ sessions)", _count),
    ("s3", ("referral_acceptance_rate",), "referral acceptance", _share),
    ("s3", ("referral_conversion",), "referral to participation (60 days)", _share),
    ("s3", ("days_to_first_contact",), "median time to first contact", _days),
    ("s3", ("days_to_first_attendance",), "median time to first attendance", _days),
    ("s3", ("people_trained",), "people trained in signals (cumulative)", _count),
    ("s3", ("organisations_with_trained_staff",), "organisations with trained staff", _count),
    ("s3", ("organisations_with_trained_staff_share",), "share of partner organisations", _share),
    ("s3", ("referrals_overdue",), "open referrals overdue (> 14 days, now)", _count),
)
TITLES = {
    "s1": "S1  fewer residents feel lonely",
    "s2": "S2  residents find their way to activities",
    "s3": "S3  professionals and volunteers signal and refer",
}


@dataclass(frozen=True)
class Addresses:
    metrics: str
    registrations: str
    referrals: str
    key: str | None
    asyncapi: Path


def last_complete_month(today: date) -> str:
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def _figure(doc: Doc | None, subgoal: str, path: tuple[str, ...]) -> Any:
    node: Any = (doc or {}).get(subgoal)
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _cell(figure: Any, fmt: Fmt, k: int) -> str:
    if not isinstance(figure, Mapping):
        return ""
    if figure.get("suppressed"):
        return f"<{k}" if fmt is _count else "suppressed"
    value = figure.get("value")
    return "–" if value is None else fmt(value)


def _baseline(figure: Any, fmt: Fmt, baseline_year: Any) -> str:
    if not isinstance(figure, Mapping) or figure.get("baseline") is None:
        return ""
    value = figure["baseline"]
    if fmt is _share and isinstance(value, float) and value <= 1:
        return f"{value * 100:.0f}%"
    return f"{baseline_year}: {int(value):,} participants"


def _breakdown_rows(
    year_by: Doc | None, month_by: Doc | None, k: int
) -> list[tuple[str, str, str, str]]:
    """Lonely share per cell where the baseline names one (neighbourhoods and age bands)."""
    rows = []
    month_cells = {c["key"]: c for c in (month_by or {}).get("breakdown", [])}
    for cell in (year_by or {}).get("breakdown", []):
        year_fig = _figure(cell, "s1", ("prevalence_lonely",))
        if not isinstance(year_fig, Mapping) or year_fig.get("baseline") is None:
            continue
        month_fig = _figure(month_cells.get(cell["key"]), "s1", ("prevalence_lonely",))
        rows.append(
            (
                f"  lonely in {cell['key']}",
                _cell(year_fig, _share, k),
                _cell(month_fig, _share, k),
                _baseline(year_fig, _share, None),
            )
        )
    return rows


def render_report(
    year: Doc,
    month: Doc,
    addresses: Addresses,
    *,
    breakdowns: Mapping[str, tuple[Doc | None, Doc | None]] | None = None,
) -> str:
    """The table and the addresses as text (pure: the answers in, the text out)."""
    k = int(year.get("k", 10))
    head = ("", str(year.get("period", "")), str(month.get("period", "")), "baseline")
    table: list[tuple[str, str, str, str] | str] = []
    for subgoal in ("s1", "s2", "s3"):
        table.append(TITLES[subgoal])
        for sg, path, label, fmt in ROWS:
            if sg != subgoal:
                continue
            y = _figure(year, sg, path)
            m = _figure(month, sg, path)
            if y is None and m is None:
                continue
            table.append(
                (
                    f"  {label}",
                    _cell(y, fmt, k),
                    _cell(m, fmt, k),
                    _baseline(y if isinstance(y, Mapping) else m, fmt, year.get("baseline_year")),
                )
            )
        if subgoal == "s1":
            for year_by, month_by in (breakdowns or {}).values():
                table.extend(_breakdown_rows(year_by, month_by, k))
    rows = [r for r in table if isinstance(r, tuple)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def line(r: tuple[str, str, str, str]) -> str:
        return f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()

    out = [line(head)]
    for r in table:
        out.append(r if isinstance(r, str) else line(r))
    fresh = year.get("freshness") or {}
    out.append("")
    out.append(
        f"Counts below {k} and rates over fewer than {k} cases are suppressed (small-cell rule). "
        f"Events applied: {fresh.get('events_applied', '?'):,}; newest event "
        f"{fresh.get('newest_event_at') or '–'}."
    )
    out.append("")
    out.append(render_addresses(addresses, str(month.get("period", ""))))
    return "\n".join(out)


def render_addresses(a: Addresses, period: str) -> str:
    key = a.key or "<coalition key>"
    asyncapi = f"{a.asyncapi}" + ("" if a.asyncapi.exists() else " (not generated yet)")
    lines = [
        "Where to look",
        f"  dashboard         {a.metrics}/#key={key}",
        f"  JSON API          curl -s -H 'Authorization: Bearer {key}' "
        f"'{a.metrics}/v1/indicators?period={period}&by=neighbourhood'",
        f"  Prometheus        {a.metrics}/metrics (a key with scope `metrics`)",
        f"  volunteers' page  {a.registrations}/invoer/  (a key: verbinding partner volunteer-key <org>)",
        f"  OpenAPI docs      {a.registrations}/docs  {a.referrals}/docs  {a.metrics}/docs",
        f"  AsyncAPI          {asyncapi}",
    ]
    return "\n".join(lines)


async def _get(client: httpx.AsyncClient, key: str, period: str, by: str | None = None) -> Any:
    params = {"period": period} | ({"by": by} if by else {})
    response = await client.get(
        "/v1/indicators", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    if response.status_code in (401, 403):
        raise SystemExit(
            f"the metrics service refused the key ({response.status_code}): it needs a key with "
            "scope `indicators` (verbinding partner create coalition --name ... --scopes indicators)"
        )
    response.raise_for_status()
    return response.json()


def caught_up(history: list[tuple[float, int]], min_events: int | None, settle: float) -> bool:
    """Caught up: ``min_events`` applied, or no growth for ``settle`` seconds (longer than the
    API's answer cache). The second rule ends the wait when the expected count cannot come,
    e.g. a partner's events that were dead-lettered."""
    if not history:
        return False
    now, applied = history[-1]
    if min_events is not None and applied >= min_events:
        return True
    since = now
    for t, n in reversed(history):
        if n != applied:
            break
        since = t
    return len(history) >= 2 and now - since >= settle and (applied > 0 or min_events is not None)


async def wait_until_caught_up(
    client: httpx.AsyncClient,
    key: str,
    *,
    min_events: int | None,
    at_most: float,
    settle: float = 15.0,
    interval: float = 1.0,
    say: Callable[[str], None] = print,
) -> tuple[bool, int]:
    """Poll ``freshness.events_applied`` (bounded); (caught up?, events applied)."""
    started = time.monotonic()
    history: list[tuple[float, int]] = []
    while True:
        try:
            # Every answer carries the freshness; a month before any data is the cheapest.
            doc = await _get(client, key, FRESHNESS_PERIOD)
            applied = int(doc["freshness"]["events_applied"])
            history.append((time.monotonic(), applied))
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            say(f"metrics service not answering yet ({type(exc).__name__}); retrying")
        if caught_up(history, min_events, settle):
            return True, history[-1][1]
        if time.monotonic() - started > at_most:
            return False, history[-1][1] if history else 0
        await asyncio.sleep(interval)


async def fetch_report(
    client: httpx.AsyncClient, key: str, today: date
) -> tuple[Doc, Doc, dict[str, tuple[Doc | None, Doc | None]]]:
    year, month = f"{today.year:04d}", last_complete_month(today)
    docs = await asyncio.gather(
        _get(client, key, year),
        _get(client, key, month),
        _get(client, key, year, "neighbourhood"),
        _get(client, key, month, "neighbourhood"),
        _get(client, key, year, "age_band"),
        _get(client, key, month, "age_band"),
    )
    return (
        docs[0],
        docs[1],
        {"neighbourhood": (docs[2], docs[3]), "age_band": (docs[4], docs[5])},
    )
