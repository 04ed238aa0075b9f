"""The live totals are computed again when, and only when, the facts changed (issue 14): the
change marker (migration 006) moves with every transaction that changes the facts (new events,
an erasure, retention's prune) and stays put for a redelivery; an unchanged database answers
from the decisions already made, every period of a year from one grid."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from services.metrics.adapters import queries, rollups
from services.metrics.adapters.facts import FactWriter
from services.metrics.adapters.grids import SqlGridSource
from services.metrics.adapters.retention import prune_facts
from services.metrics.adapters.year_grid import GridOptions
from services.metrics.domain.baseline import load_baseline
from services.metrics.domain.disclosure import YearGrid
from services.metrics.domain.periods import parse_period
from services.metrics.service_layer.indicators import IndicatorService
from shared.events import CloudEvent, Participant, PersonErased, new_event
from shared.reference import load_reference
from shared.scale import DEFAULT_THRESHOLDS
from tests.integration.test_metrics_scenario import (
    P1,
    A,
    activity,
    attendance,
    create_metrics_schema,
    drop_schema,
    hexid,
    person,
    scenario,
)

PERIODS = ("2014", "2014-Q1", "2014-01", "2014-02")


class CountingSource(SqlGridSource):
    """The SQL grids, counting which years were read."""

    def __init__(self, schema: str) -> None:
        reference = load_reference()
        thresholds = {n: (t.emotional, t.social) for n, t in DEFAULT_THRESHOLDS.items()}
        super().__init__(schema, GridOptions(reference, thresholds))
        self.read: list[int] = []

    async def grid(
        self,
        conn: asyncpg.Connection,
        year: int,
        *,
        totals_only: bool = False,
        query_timeout: float | None = None,
    ) -> YearGrid:
        self.read.append(year)
        return await super().grid(conn, year, totals_only=totals_only, query_timeout=query_timeout)


async def apply(pool: asyncpg.Pool, schema: str, events: list[CloudEvent[Any]]) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return len(await FactWriter(schema)(conn, events))


async def totals(service: IndicatorService) -> dict[str, Any]:
    out = {}
    for label in PERIODS:
        answer = await service.live(parse_period(label), lists=False)
        out[label] = (answer["s2"], answer["freshness"]["events_applied"])
    return out


async def test_live_totals_are_computed_again_only_when_the_facts_changed(
    pool: asyncpg.Pool,
) -> None:
    schema = await create_metrics_schema(pool)
    try:
        first, second = scenario()
        await apply(pool, schema, first)
        source = CountingSource(schema)
        baseline = dataclasses.replace(load_baseline(), baseline_year=2013)
        service = IndicatorService(
            pool,
            baseline,
            load_reference(),
            k=1,
            schema=schema,
            cache_seconds=0,
            control="off",
            source=source,
        )

        async def fresh() -> dict[str, Any]:
            """What a service that never saw the facts before answers."""
            other = IndicatorService(
                pool, baseline, load_reference(), k=1, schema=schema, control="off"
            )
            return await totals(other)

        # Every period of 2014 from one grid of 2014 and one of the baseline year.
        before = await totals(service)
        assert sorted(source.read) == [2013, 2014]
        assert before == await fresh()
        # Nothing changed: no grid read, the same answers.
        assert await totals(service) == before
        assert sorted(source.read) == [2013, 2014]
        async with pool.acquire() as conn:
            marker = await queries.change_marker(conn, schema)

        # A redelivery changes no fact, and neither the marker.
        assert await apply(pool, schema, first) == 0
        async with pool.acquire() as conn:
            assert await queries.change_marker(conn, schema) == marker
        assert await totals(service) == before
        assert len(source.read) == 2

        # Late events change the facts: computed again, once, as a fresh service would.
        assert await apply(pool, schema, second) > 0
        after_late = await totals(service)
        assert len(source.read) == 4
        assert after_late != before
        assert after_late == await fresh()

        # An erasure changes the facts.
        erasure = new_event(
            PersonErased(subject_id=P1.id, erased_at=datetime(2016, 1, 1, tzinfo=UTC)), None
        )
        assert await apply(pool, schema, [erasure]) == 1
        after_erasure = await totals(service)
        assert len(source.read) == 6
        assert after_erasure != after_late
        assert after_erasure == await fresh()

        # Retention's prune changes the facts (2014's go; 2013, the baseline year, stays) and
        # closes 2014: from then on it answers from the release it closed with, so its
        # published figures stay and no grid is read for it.
        releaser = IndicatorService(
            pool, baseline, load_reference(), k=1, schema=schema, control="off"
        )
        await releaser.cut_release()
        async with pool.acquire() as conn:
            deleted = await prune_facts(conn, schema, date(2015, 1, 1), 2013)
        assert deleted["years_closed"] == [2014]
        assert deleted["attendance"] > 0
        after_prune = await totals(service)
        assert len(source.read) == 6
        assert after_prune == after_erasure
        assert after_prune == await fresh()
        async with pool.acquire() as conn:
            assert await queries.change_marker(conn, schema) != marker
    finally:
        await drop_schema(pool, schema)


async def test_events_applied_counts_what_the_writer_applied(pool: asyncpg.Pool) -> None:
    """The freshness figure counts, from the marker's rows, the events the writer returned
    (the ones the consumer logs in processed_events)."""
    schema = await create_metrics_schema(pool)
    try:
        first, _ = scenario()
        applied = await apply(pool, schema, first)
        async with pool.acquire() as conn:
            figures = await queries.fact_figures(conn, schema)
        assert figures["events_applied"] == applied == len(first)
    finally:
        await drop_schema(pool, schema)


async def rollup_rows(pool: asyncpg.Pool, schema: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(f'SELECT * FROM "{schema}".first_attendance ORDER BY participant_id')
    return [tuple(r) for r in rows]


async def open_rows(pool: asyncpg.Pool, schema: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(f'SELECT * FROM "{schema}".open_referrals ORDER BY 1, 2')
    return [tuple(r) for r in rows]


async def refill(pool: asyncpg.Pool, schema: str) -> None:
    async with pool.acquire() as conn:
        await rollups.fill_first_attendance(conn, f'"{schema}"')
        await rollups.fill_open_referrals(conn, f'"{schema}"')


async def test_the_rollups_equal_their_fill_from_the_facts_in_any_order(
    pool: asyncpg.Pool,
) -> None:
    """Kept batch by batch (one event at a time in order, and in reverse: activity versions
    after the sessions they classify, late events first; shuffled, in batches of random
    sizes), erasure included, the rollups (first attendance, open referrals) are what a fill
    from the facts gives; so are they in arrival order in one batch."""
    first, second = scenario()
    erasure = new_event(
        PersonErased(subject_id=P1.id, erased_at=datetime(2016, 1, 1, tzinfo=UTC)), None
    )
    shuffled = [*first, *second]
    random.Random(14).shuffle(shuffled)
    results = []
    orders = ("one batch", "one by one", "one by one, reversed", "shuffled", "shuffled, batches")
    for order in orders:
        schema = await create_metrics_schema(pool)
        try:
            if order == "one batch":
                await apply(pool, schema, [*first, *second])
            elif order == "one by one":  # later sessions of known people: no recomputation
                for event in [*first, *second]:
                    await apply(pool, schema, [event])
            elif order == "one by one, reversed":
                for event in reversed([*first, *second]):
                    await apply(pool, schema, [event])
            elif order == "shuffled":
                for event in shuffled:
                    await apply(pool, schema, [event])
            else:
                sizes = random.Random(15)
                at = 0
                while at < len(shuffled):
                    size = sizes.randint(1, 12)
                    await apply(pool, schema, shuffled[at : at + size])
                    at += size
            kept = (await rollup_rows(pool, schema), await open_rows(pool, schema))
            assert kept[0], "the scenario has first attendances"
            assert kept[1], "the scenario has open referrals"
            await refill(pool, schema)
            assert (await rollup_rows(pool, schema), await open_rows(pool, schema)) == kept
            await apply(pool, schema, [erasure])
            erased = (await rollup_rows(pool, schema), await open_rows(pool, schema))
            assert len(erased[0]) == len(kept[0]) - 1
            assert P1.id not in {row[0] for row in erased[0]}
            await refill(pool, schema)
            assert (await rollup_rows(pool, schema), await open_rows(pool, schema)) == erased
            results.append((kept, erased))
        finally:
            await drop_schema(pool, schema)
    assert all(result == results[0] for result in results)


async def test_the_rollup_follows_an_earlier_session_and_a_first_sessions_late_row(
    pool: asyncpg.Pool,
) -> None:
    """The upkeep recomputes only the people whose row can change (rollups.TOUCHES):
    a person retained already whose earlier session arrives late gets that session as their
    first; a late no-show row of the first session still sets its neighbourhood (the least of
    its rows); a later session of someone retained changes nothing. Each step equals the fill."""
    who = person(hexid("rollup-late"), "koningshof", "65-74")
    moved = person(who.id, "delfgauw", "65-74")
    weeks = [date(2014, 5, 6) + timedelta(days=7 * n) for n in range(4)]

    def session(n: int, day: date, status: str = "attended", p: Participant = who) -> Any:
        start = f"{day.isoformat()}T10:00:00+02:00"
        return attendance(A, f"late-{n}", "A1", p, start, day, status)

    steps = [
        [activity(A, "A1", "meeting", True)],
        [session(n, day) for n, day in enumerate(weeks)],  # retained from 6 May
        [session(10, date(2014, 3, 4))],  # an earlier session, reported late: the first now
        [session(11, date(2014, 3, 4), "no_show", moved)],  # a second row of that session
        [session(12, date(2014, 9, 2))],  # a later session: changes nothing
    ]
    schema = await create_metrics_schema(pool)
    try:
        seen = []
        for step in steps:
            await apply(pool, schema, step)
            kept = await rollup_rows(pool, schema)
            await refill(pool, schema)
            assert await rollup_rows(pool, schema) == kept
            seen.append(kept)
        assert [row[1:3] for row in seen[1]] == [(weeks[0], A)]
        assert seen[2][0][1] == date(2014, 3, 4)
        assert seen[2][0][5] == "koningshof"
        assert seen[3][0][5] == "delfgauw"
        assert seen[4] == seen[3]
    finally:
        await drop_schema(pool, schema)


async def test_the_rollup_recomputes_many_people_in_slices_and_misses_none(
    pool: asyncpg.Pool,
) -> None:
    """More people than one statement recomputes (rollups.REFRESH_SLICE), in one batch and in
    one call: every row is there, as the fill from the facts has it."""
    many = 2 * rollups.REFRESH_SLICE + 7
    day = date(2014, 6, 3)
    events: list[Any] = [activity(A, "SL", "meeting", True)]
    for n in range(many):
        who = person(hexid(f"slice-{n}"), "delfgauw", "75+")
        events.append(attendance(A, f"slice-{n}", "SL", who, f"{day}T10:00:00+02:00", day))
    schema = await create_metrics_schema(pool)
    try:
        await apply(pool, schema, events)
        kept = await rollup_rows(pool, schema)
        assert len(kept) == many
        await refill(pool, schema)
        assert await rollup_rows(pool, schema) == kept
        async with pool.acquire() as conn:
            await conn.execute(f'DELETE FROM "{schema}".first_attendance')
            await rollups.refresh_first_attendance(conn, f'"{schema}"', [r[0] for r in kept])
        assert await rollup_rows(pool, schema) == kept
    finally:
        await drop_schema(pool, schema)
