"""Breakdowns come from releases (domain.md §7 rule 6), municipality totals stay live.

A breakdown answered from the live facts would let two snapshots a minute apart isolate one
person's event. So every answer with `by` (and a partner's own figures, and the lists of the
municipality answer) is a stored release: cut at start-up, on the interval and by hand
(`verbinding metrics release`), atomically, and answered with the moment it was cut.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import pytest

from services.metrics.adapters.releases import Release, ReleaseStore, release_lock
from services.metrics.entrypoints.answers import IndicatorsAnswer, OwnIndicatorsAnswer
from tests.conftest import TOPIC_PREFIX
from tests.integration.test_access_key_rotation import cli
from tests.integration.test_metrics_scenario import (
    activity,
    attendance,
    hexid,
    person,
    publish,
    wait_applied,
)

pytestmark = pytest.mark.integration

# A year no other test writes in.
YEAR = 2008


def sessions(org: str, n: int, day: date, tag: str) -> list[Any]:
    events: list[Any] = [activity(org, "rel-act", "meeting", True, updated=f"{YEAR}-01-01T09:00:00+01:00")]  # fmt: skip
    for i in range(n):
        who = person(hexid(f"rel-{tag}-{i}"), "delfgauw", "75+")
        events.append(attendance(org, f"rel-{tag}-{i}", "rel-act", who, f"{day}T10:00:00+01:00", day))  # fmt: skip
    return events


# A cut decides every year the session's tests wrote, with the exact check of everything:
# minutes on a busy machine, more as other tests add years of small cells (CI once passed
# the default 300 s in the test that cuts twice).
@pytest.mark.timeout(900)
async def test_before_the_first_release_a_breakdown_says_so_and_the_totals_answer(
    metrics, metrics_app, make_partner, pool, test_env
):
    analyst = await make_partner(scopes="indicators:organisations,registrations")
    # Something to release: a few sessions the year before.
    events = sessions(analyst.organisation_id, 3, date(YEAR - 1, 6, 3), "before")
    await publish(events, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", events)
    # Holding the release lock keeps the service's schedule, which cuts at once when it finds
    # no release, from cutting one while this test looks at "no release".
    async with pool.acquire() as conn, release_lock(conn, wait=True):
        await conn.execute("DELETE FROM metrics.releases")
        await _no_release_yet(metrics, analyst)
    # By hand, as an operator would: the command prints what it did per year.
    # (Every year the session's tests wrote, with the exact check: minutes on a busy machine.)
    printed = await cli(test_env, "metrics", "release", timeout=600)
    # (HiGHS prints its banner on stdout when the process creates its first solver, before
    # any option can silence it: the report starts after it.)
    report = printed[next(i for i, line in enumerate(printed) if line.startswith("release ")) :]
    assert any(line.strip().startswith(f"{YEAR - 1}: grid") for line in report[1:]), printed
    assert all(
        re.match(r"^\s+\d{4}: grid [0-9.]+ s, engine [0-9.]+ s", line) for line in report[1:]
    )
    r = await metrics.get(
        "/v1/indicators",
        params={"period": f"{YEAR}", "by": "neighbourhood"},
        headers=analyst.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["released_at"] is not None


async def _no_release_yet(metrics: Any, analyst: Any) -> None:
    for path, params in (
        ("/v1/indicators", {"period": f"{YEAR}", "by": "neighbourhood"}),
        ("/v1/indicators", {"period": f"{YEAR}-03", "by": "organisation"}),
        ("/v1/own/indicators", {"period": f"{YEAR}"}),
    ):
        r = await metrics.get(path, params=params, headers=analyst.headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "no_release"
        assert "verbinding metrics release" in r.json()["message"]
        assert r.headers["retry-after"] == "60"
    total = await metrics.get(
        "/v1/indicators", params={"period": f"{YEAR}"}, headers=analyst.headers
    )
    assert total.status_code == 200, total.text
    assert total.json()["released_at"] is None
    assert total.json()["s3"]["people_trained_by_role"] == {}


# A cut decides every year the session's tests wrote, with the exact check of everything:
# minutes on a busy machine, more as other tests add years of small cells (CI once passed
# the default 300 s in the test that cuts twice).
@pytest.mark.timeout(900)
async def test_a_breakdown_is_the_release_while_the_totals_are_live(
    metrics, metrics_app, make_partner, pool
):
    partner = await make_partner(scopes="registrations")
    org = partner.organisation_id
    reader = await make_partner(scopes="indicators:organisations")
    service = metrics_app.state.indicators
    first = sessions(org, 15, date(YEAR, 3, 4), "a")
    await publish(first, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", first)
    report = await service.cut_release()
    # Every year with data, each with its own timing; nothing left unprotected.
    assert YEAR in report.years
    assert all(t["unprotected"] == 0 for t in report.years.values())

    async def read(by: str | None) -> dict[str, Any]:
        params = {"period": f"{YEAR}-03"} | ({"by": by} if by else {})
        r = await metrics.get("/v1/indicators", params=params, headers=reader.headers)
        assert r.status_code == 200, r.text
        # Live totals and a release alike are what the OpenAPI document says (not validated).
        IndicatorsAnswer.model_validate(r.json())
        return dict(r.json())

    def cell(answer: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in answer["breakdown"] if c["key"] == org)

    before = await read("organisation")
    assert before["released_at"] == report.release.released_at.isoformat()
    assert cell(before)["s2"]["participants_unique"]["value"] == 15
    assert before["s2"]["participants_unique"]["value"] == 15  # the release's own totals
    own = await metrics.get(
        "/v1/own/indicators", params={"period": f"{YEAR}-03"}, headers=partner.headers
    )
    assert own.status_code == 200, own.text
    OwnIndicatorsAnswer.model_validate(own.json())
    assert own.json()["s2"] == cell(before)["s2"]

    more = sessions(org, 5, date(YEAR, 3, 11), "b")[1:]
    await publish(more, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", more)

    # The totals are live; the breakdown is still the release's, to the figure.
    assert (await read(None))["s2"]["participants_unique"]["value"] == 20
    assert await read("organisation") == before

    again = await service.cut_release()
    # Only the year with new facts was decided again; every other year's grid is unchanged
    # since the first cut, and its decisions were taken from that release.
    assert again.years[YEAR]["reused"] is False
    assert all(t["reused"] for y, t in again.years.items() if y != YEAR), again.years
    after = await read("organisation")
    assert after["released_at"] == again.release.released_at.isoformat() != before["released_at"]
    assert cell(after)["s2"]["participants_unique"]["value"] == 20
    # Only the newest release and the one before it are kept.
    async with pool.acquire() as conn:
        kept = await conn.fetch("SELECT release_id FROM metrics.releases ORDER BY release_id")
        answers = await conn.fetchval(
            "SELECT count(*) FROM metrics.release_answers WHERE release_id = $1",
            again.release.release_id,
        )
    assert [r["release_id"] for r in kept][-1] == again.release.release_id
    assert len(kept) == 2
    # Every period of every year with data, the municipality answer and each breakdown.
    assert answers == len(again.years) * 17 * 6


async def test_a_cut_that_must_happen_waits_for_one_under_way_beyond_the_statement_timeout(
    pool, test_env
):
    """An operator's `verbinding metrics release` while the schedule cuts one (minutes on a
    large year): it waits for that cut, however much longer than the pool's statement timeout,
    instead of failing with a TimeoutError (as CI once showed)."""
    import asyncio

    import asyncpg

    dsn = test_env["VERBINDING_DATABASE_URL"]
    holder = await asyncpg.connect(dsn)
    waiter = await asyncpg.connect(dsn, command_timeout=0.5)
    try:
        async with release_lock(holder, wait=False) as held:
            assert held
            async with release_lock(waiter, wait=False) as taken:
                assert not taken  # the schedule's way: skip, another cut is under way

            async def cut_by_hand() -> bool:
                async with release_lock(waiter, wait=True) as taken:
                    return taken

            by_hand = asyncio.create_task(cut_by_hand())
            await asyncio.sleep(2.0)  # four statement timeouts of the waiting connection
            assert not by_hand.done()
        assert await asyncio.wait_for(by_hand, 30)
        # Released again: the next cut takes it at once.
        async with release_lock(holder, wait=False) as again:
            assert again
    finally:
        await holder.close()
        await waiter.close()


async def test_a_release_reads_its_grids_beyond_an_answers_query_timeout(pool, test_env):
    """A release cut reads every figure in the background; at a million events in one year on
    a busy machine its grid query took longer than the 30 s an answer's query may take, and
    the cut failed (twice in benchmark runs). Its queries get their own time
    (``VERBINDING_RELEASE_TIMEOUT_SECONDS``): here a grid read waits out a lock held for
    longer than its connection's command timeout, which an answer's read does not."""
    import asyncio

    import asyncpg

    from services.metrics.adapters.year_grid import GridOptions, read_year_grid
    from services.metrics.bootstrap import indicator_service
    from services.metrics.settings import MetricsSettings
    from shared.reference import load_reference
    from shared.scale import DEFAULT_THRESHOLDS

    options = GridOptions(
        load_reference(), {n: (t.emotional, t.social) for n, t in DEFAULT_THRESHOLDS.items()}
    )
    dsn = test_env["VERBINDING_DATABASE_URL"]
    holder = await asyncpg.connect(dsn)
    reader = await asyncpg.connect(dsn, command_timeout=0.5)
    try:
        for query_timeout in (None, 30.0):
            lock = holder.transaction()
            await lock.start()
            # The grid's last read (S1, the measurements) waits for this lock.
            await holder.execute("LOCK TABLE metrics.measurements IN ACCESS EXCLUSIVE MODE")
            read = asyncio.create_task(
                read_year_grid(reader, "metrics", YEAR, options, query_timeout=query_timeout)
            )
            await asyncio.sleep(1.5)  # three command timeouts of the reading connection
            await lock.rollback()
            if query_timeout is None:
                with pytest.raises(TimeoutError):
                    await read
            else:
                grid = await asyncio.wait_for(read, 30)
                assert grid.year == YEAR
    finally:
        await holder.close()
        await reader.close()
    # The setting reaches the service that cuts releases.
    settings = MetricsSettings(database_url=dsn, release_timeout_seconds=7)
    assert indicator_service(settings, pool).release_timeout == 7


async def test_a_live_refresh_reads_its_grids_beyond_an_answers_query_timeout(test_env):
    """A live refresh of the totals runs in the background too (shared by its readers): at
    five million events in one year its totals grid outgrew the 30 s an answer's query may
    take, and the live totals of that year could never be computed. Its queries get the
    release's time: here, with a pool whose command timeout is 0.5 s, the first live totals
    wait out a lock held for three times that."""
    import asyncio

    import asyncpg

    from services.metrics.bootstrap import indicator_service
    from services.metrics.settings import MetricsSettings
    from shared.db import PooledConnection, _init_connection

    dsn = test_env["VERBINDING_DATABASE_URL"]
    short = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=4,
        connection_class=PooledConnection,
        init=_init_connection,
        command_timeout=0.5,
    )
    assert short is not None
    holder = await asyncpg.connect(dsn)
    try:
        settings = MetricsSettings(
            database_url=dsn, release_timeout_seconds=30, indicator_cache_seconds=0
        )
        service = indicator_service(settings, short)
        lock = holder.transaction()
        await lock.start()
        # The totals grid's last read (S1, the measurements) waits for this lock.
        await holder.execute("LOCK TABLE metrics.measurements IN ACCESS EXCLUSIVE MODE")
        answer = asyncio.create_task(service.indicators(str(YEAR)))
        await asyncio.sleep(1.5)  # three command timeouts of the pool
        await lock.rollback()
        result = await asyncio.wait_for(answer, 60)
        assert result["period"] == str(YEAR)
        await service.close()
    finally:
        await holder.close()
        await short.close()


async def _answers(pool: Any, release_id: int) -> dict[tuple[str, str], Any]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT period, breakdown, answer FROM metrics.release_answers WHERE release_id = $1",
            release_id,
        )
    # The moment of the cut is in every answer; the rest must be the same to the figure.
    return {
        (r["period"], r["breakdown"]): {
            k: v for k, v in r["answer"].items() if k not in ("generated_at", "released_at")
        }
        for r in rows
    }


class _Unsaved(ReleaseStore):
    """A cut's store that reads the real releases but publishes nothing (a variant's cut
    below must not replace what the session's other tests read)."""

    async def save(self, conn: Any, **release: Any) -> Release:
        return Release(0, release["released_at"], release["k"], release["control"], None, 0, {})


class _Only:
    """A grid source that reports one year with data (a variant's cut below reads that year
    and the baseline year only)."""

    def __init__(self, source: Any, year: int) -> None:
        self.source, self.year = source, year

    async def years(self, conn: Any) -> list[int]:
        return [self.year]

    async def grid(self, conn: Any, year: int, **options: Any) -> Any:
        return await self.source.grid(conn, year, **options)


@pytest.mark.timeout(900)
async def test_a_cut_reuses_the_decisions_of_every_year_whose_engine_input_is_unchanged(
    metrics_app, make_partner, pool, monkeypatch
):
    """The engine is deterministic: a year whose grid (with the baselines it carries), k,
    control and engine are those of a kept release's year gets that release's decisions
    instead of the exact check (minutes for a year of small cells); anything else is decided
    afresh."""
    from services.metrics.domain.disclosure import fingerprint as fingerprint_module
    from services.metrics.domain.disclosure import unsuppressed

    org = (await make_partner(scopes="registrations")).organisation_id
    year = YEAR - 2
    first = sessions(org, 12, date(year, 5, 6), "reuse-a")
    await publish(first, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", first)
    service = metrics_app.state.indicators
    one = await service.cut_release()
    assert one.years[year]["reused"] is False  # new to this cut
    # Nothing new: every year reused, every answer the same.
    two = await service.cut_release()
    assert all(t["reused"] for t in two.years.values()), two.years
    assert two.years.keys() == one.years.keys()
    assert await _answers(pool, two.release.release_id) == await _answers(
        pool, one.release.release_id
    )
    # A new fact in one year: that year alone is decided again.
    more = sessions(org, 3, date(year, 5, 13), "reuse-b")[1:]
    await publish(more, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", more)
    three = await service.cut_release()
    assert three.years[year]["reused"] is False
    assert all(t["reused"] for y, t in three.years.items() if y != year), three.years

    # Another k, control or engine: the year is decided afresh. (Cuts of this one year, with
    # a cheap stand-in engine that records what it was asked; nothing of them is published.)
    def variant(**changes: Any) -> tuple[Any, list[int]]:
        other = copy.copy(service)
        other.__dict__.update(changes)
        other.releases = _Unsaved(service.schema)
        other.source = _Only(service.source, year)
        decided: list[int] = []

        def engine(grid: Any, exact: bool) -> Any:
            decided.append(grid.year)
            return unsuppressed(grid)

        other._engine = engine
        return other, decided

    version = fingerprint_module.ENGINE_VERSION
    for changes, engine_version, reused in (
        ({}, version, True),  # nothing changed: the stand-in is not asked
        ({"k": service.k + 1}, version, False),
        ({"control": "primary"}, version, False),
        ({}, version + 1, False),
    ):
        monkeypatch.setattr(fingerprint_module, "ENGINE_VERSION", engine_version)
        other, decided = variant(**changes)
        report = await other.cut_release()
        assert list(report.years) == [year]
        assert report.years[year]["reused"] is reused, (changes, engine_version)
        assert (year in decided) is not reused, (changes, engine_version)
