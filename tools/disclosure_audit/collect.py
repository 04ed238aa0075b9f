"""Read everything a reader can read about a year, over HTTP only (like a reader would).

Every period of the year (the year, its quarters, its months) × every breakdown × every
endpoint: ``/v1/indicators`` with the coalition's key (and by organisation with an analyst's
key), ``/v1/own/indicators`` with each partner key given, ``/v1/trend`` for the twelve months,
and ``/metrics`` with a scrape key (the current month, quarter and year, if they fall in the
audited year).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from services.metrics.domain.periods import current_periods
from tools.disclosure_audit.model import year_periods
from tools.disclosure_audit.published import (
    Published,
    from_indicators,
    from_metrics,
    from_own,
    from_trend,
    unique,
)

__all__ = ["COALITION_BREAKDOWNS", "Readers", "collect"]

COALITION_BREAKDOWNS = ("neighbourhood", "age_band", "category", "referrer_role")


@dataclass(frozen=True)
class Readers:
    """The keys of the audiences (domain.md §7); any of them may be missing."""

    coalition: str  # scope `indicators`
    analyst: str | None = None  # scope `indicators:organisations`
    partners: Sequence[str] = field(default_factory=tuple)  # any key of a partner
    metrics: str | None = None  # scope `metrics`


async def _get(client: httpx.AsyncClient, path: str, key: str, **params: Any) -> httpx.Response:
    response = await client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
    if response.status_code in (401, 403):
        raise SystemExit(f"{path}: the key was refused ({response.status_code}): {response.text}")
    response.raise_for_status()
    return response


async def collect(
    metrics_url: str, year: int, readers: Readers, *, concurrency: int = 4
) -> tuple[list[Published], int]:
    """Every published figure of ``year`` and the suppression threshold k the service uses."""
    periods = year_periods(year)
    limit = asyncio.Semaphore(concurrency)
    found: list[Published] = []
    ks: set[int] = set()
    async with httpx.AsyncClient(base_url=metrics_url, timeout=120) as client:

        async def indicators(period: str, by: str | None, key: str) -> None:
            params = {"period": period} | ({"by": by} if by else {})
            async with limit:
                answer = (await _get(client, "/v1/indicators", key, **params)).json()
            ks.add(int(answer["k"]))
            query = "&".join(f"{k}={v}" for k, v in params.items())
            found.extend(from_indicators(answer, f"GET /v1/indicators?{query}"))

        async def own(period: str, key: str) -> None:
            async with limit:
                answer = (await _get(client, "/v1/own/indicators", key, period=period)).json()
            found.extend(
                from_own(
                    answer,
                    f"GET /v1/own/indicators?period={period} ({answer['organisation_id']})",
                )
            )

        jobs = []
        for period in periods:
            jobs.append(indicators(period, None, readers.coalition))
            jobs += [indicators(period, by, readers.coalition) for by in COALITION_BREAKDOWNS]
            if readers.analyst:
                jobs.append(indicators(period, "organisation", readers.analyst))
            jobs += [own(period, key) for key in readers.partners]
        await asyncio.gather(*jobs)
        trend = (
            await _get(client, "/v1/trend", readers.coalition, months=12, until=f"{year}-12")
        ).json()
        found.extend(from_trend(trend, f"GET /v1/trend?months=12&until={year}-12"))
        if readers.metrics:
            text = (await _get(client, "/metrics", readers.metrics)).text
            now = current_periods(datetime.now(UTC))
            kinds: dict[str, str] = {
                kind: p.label for kind, p in now.items() if p.label.startswith(str(year))
            }
            found.extend(from_metrics(text, kinds, "GET /metrics"))
    if len(ks) > 1:
        raise SystemExit(f"the answers disagree about k: {sorted(ks)}")
    return unique(found), ks.pop() if ks else 10
