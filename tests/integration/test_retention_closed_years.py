"""Retention closes a year before its facts go (issue 17, docs/privacy.md "Retention"): the
answers the latest release published for the year are kept, every channel answers the year from
them, and a year no release holds keeps its facts until one does."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from services.metrics.adapters.retention import prune_facts
from services.metrics.domain.baseline import load_baseline
from services.metrics.domain.periods import parse_period
from services.metrics.service_layer.indicators import IndicatorService
from shared.events import CloudEvent
from shared.reference import load_reference
from tests.integration.test_metrics_change_marker import apply
from tests.integration.test_metrics_scenario import (
    activity,
    attendance,
    create_metrics_schema,
    drop_schema,
    hexid,
    person,
)

pytestmark = pytest.mark.integration

ORG = "closed-org"
BASELINE = 2009
# 2007 is old and released; 2008 is old but comes in after the release; 2012 stays.
YEARS = (2007, 2008, BASELINE, 2012)


def year_of_sessions(year: int, people: int) -> list[CloudEvent[Any]]:
    """``people`` residents each at one session in March of ``year``, and a few in June."""
    out: list[CloudEvent[Any]] = []
    for i in range(people):
        who = person(hexid(f"closed-{year}-{i}"), "delfgauw" if i % 2 else "nootdorp", "75+")
        day = date(year, 3, 2) + timedelta(days=i % 3)
        out.append(attendance(ORG, f"c-{year}-{i}", "koffie", who, f"{day}T10:00:00+01:00", day))
        if i < 3:  # June: three people, below k
            day = date(year, 6, 8)
            out.append(
                attendance(ORG, f"c-{year}-{i}-j", "koffie", who, f"{day}T10:00:00+01:00", day)
            )
    return out


def service(pool: asyncpg.Pool, schema: str) -> IndicatorService:
    return IndicatorService(
        pool,
        dataclasses.replace(load_baseline(), baseline_year=BASELINE),
        load_reference(),
        k=10,
        schema=schema,
        cache_seconds=0,
    )


def figures(answer: dict[str, Any]) -> dict[str, Any]:
    """What an answer publishes, without the moments it was computed."""
    return {k: v for k, v in answer.items() if k not in ("generated_at", "freshness")}


async def rows(pool: asyncpg.Pool, schema: str, year: int) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".attendance '
            "WHERE extract(year FROM session_date) = $1",
            year,
        )
    return count


async def test_a_closed_year_keeps_its_published_figures_on_every_channel(
    pool: asyncpg.Pool,
) -> None:
    schema = await create_metrics_schema(pool)
    try:
        # The activity's version in force from 2006 on.
        start = [activity(ORG, "koffie", "meeting", True, updated="2006-01-01T09:00:00+01:00")]
        await apply(pool, schema, start + year_of_sessions(2007, 14))
        for year in (BASELINE, 2012):
            await apply(pool, schema, year_of_sessions(year, 12))
        metrics = service(pool, schema)
        await metrics.cut_release()
        # 2008's facts arrive after that release: nothing was published for the year yet.
        await apply(pool, schema, year_of_sessions(2008, 11))

        published: dict[tuple[str, str], dict[str, Any]] = {}
        for label in ("2007", "2007-Q1", "2007-03", "2007-06"):
            period = parse_period(label)
            published[(label, "")] = figures(await metrics.live(period))
            for by in ("neighbourhood", "organisation"):
                published[(label, by)] = figures(await metrics.released(period, by))
        trend = await metrics.trend([parse_period("2007-03"), parse_period("2007-06")])
        # The totals publish 14 people in 2007's first quarter and hide June's three.
        assert published[("2007-Q1", "")]["s2"]["participants_unique"]["value"] == 14
        assert published[("2007-06", "")]["s2"]["participants_unique"]["suppressed"] is True

        report = await _prune(pool, schema)

        assert report["years_closed"] == [2007]
        assert report["years_waiting_for_release"] == [2008]
        assert await rows(pool, schema, 2007) == 0  # closed: its facts went
        # (rows: one per person, and three in June)
        assert await rows(pool, schema, 2008) == 11 + 3  # no release holds it: kept
        assert await rows(pool, schema, BASELINE) == 12 + 3  # the baseline year stays
        assert await rows(pool, schema, 2012) == 12 + 3

        # A service that never saw the facts answers 2007 as it was published, whatever the
        # channel: totals, breakdowns, the trend.
        for reader in (metrics, service(pool, schema)):
            for (label, by), before in published.items():
                period = parse_period(label)
                now = await (reader.live(period) if by == "" else reader.released(period, by))
                after = figures(now)
                if by == "":
                    # The live answer carried no release moment of its own figures; the kept
                    # one says when the figures it keeps were released.
                    assert after.pop("released_at") is not None
                    before = {k: v for k, v in before.items() if k != "released_at"}
                    # The municipality answer kept is the release's (its lists included).
                    assert after["s2"] == before["s2"], label
                    assert after["s1"] == before["s1"], label
                else:
                    assert after == before, (label, by)
            assert await reader.trend([parse_period("2007-03"), parse_period("2007-06")]) == trend

        # A later release does not decide the closed year again, even where a rebuild
        # replayed its events into facts; the kept answers stay.
        await apply(pool, schema, year_of_sessions(2007, 14)[:2])  # as a rebuild replays them
        again = await metrics.cut_release()
        assert again is not None
        assert 2007 not in again.years
        assert 2008 in again.years
        assert (
            figures(await metrics.released(parse_period("2007"), "neighbourhood"))
            == published[("2007", "neighbourhood")]
        )

        # Now a release holds 2008: the next run closes it and its facts go.
        report = await _prune(pool, schema)
        assert report["years_closed"] == [2008]
        assert report["years_waiting_for_release"] == []
        assert await rows(pool, schema, 2008) == 0
        assert await rows(pool, schema, 2007) == 0  # the replayed rows went again
        answer = await service(pool, schema).live(parse_period("2008-Q1"))
        assert answer["s2"]["participants_unique"]["value"] == 11
    finally:
        await drop_schema(pool, schema)


async def _prune(pool: asyncpg.Pool, schema: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await prune_facts(conn, schema, date(2011, 1, 1), BASELINE)
