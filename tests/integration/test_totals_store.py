"""The live totals kept as sums of people's shares (services/metrics/adapters/totals.py) equal
the whole-year grid computed from the facts, after every batch: events in any order and
batches of any size (the hand-computed scenario's, and a simulated year's with activity
versions, cancellations, conversions, trainings, surveys and outcome pairs), late events,
redelivered events, erasures (also of a person whose registration converted someone else's
referral), and a change of the settings the figures depend on."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from services.metrics.adapters import totals
from services.metrics.adapters.reading import totals_snapshot
from services.metrics.adapters.totals import refresh_totals
from services.metrics.adapters.year_grid import GridOptions, read_year_grid
from shared.events import CloudEvent, PersonErased, RegistrationCreated, new_event
from shared.reference import load_reference
from shared.scale import DEFAULT_THRESHOLDS
from tests.integration.test_metrics_change_marker import apply
from tests.integration.test_metrics_scale import history
from tests.integration.test_metrics_scenario import create_metrics_schema, drop_schema, scenario
from tests.integration.test_metrics_totals_grid import municipality

THRESHOLDS = {n: (t.emotional, t.social) for n, t in DEFAULT_THRESHOLDS.items()}


def options(thresholds: dict[str, tuple[int, int]] = THRESHOLDS) -> GridOptions:
    return GridOptions(load_reference(), thresholds)


async def kept_equals_full(
    pool: asyncpg.Pool, schema: str, years: list[int], opts: GridOptions | None = None
) -> int:
    """Refresh the kept totals of ``years`` and compare each with the whole-year grid in the
    same snapshot; the number of figures compared."""
    opts = opts or options()
    figures = 0
    async with totals_snapshot(pool, schema) as conn:
        for year in years:
            kept = await refresh_totals(conn, f'"{schema}"', year, opts)
            full = await read_year_grid(conn, f'"{schema}"', year, opts)
            for mine, theirs in zip(municipality(kept), municipality(full), strict=True):
                differing = {
                    k: (mine.get(k), theirs.get(k))
                    for k in {*mine, *theirs}
                    if mine.get(k) != theirs.get(k)
                }
                assert not differing, (year, differing)
            figures += len(kept.counts)
    return figures


async def pending(pool: asyncpg.Pool, schema: str) -> int:
    return int(await pool.fetchval(f'SELECT count(*) FROM "{schema}".totals_changes'))


def batches(events: list[CloudEvent[Any]], rnd: random.Random) -> list[list[CloudEvent[Any]]]:
    out, at = [], 0
    while at < len(events):
        size = rnd.choice((1, 2, 5, 17, 60))
        out.append(events[at : at + size])
        at += size
    return out


# A refresh computes the changed people's shares a few thousand at a time; 3 at a time puts
# a person's named cancellations, the people that person's facts widen to and the records of
# their own in parts of their own (services/metrics/adapters/totals.py ``_parts``).
AT_ONCE = pytest.mark.parametrize("at_once", [totals.CHANGES_AT_ONCE, 3])


@AT_ONCE
async def test_the_scenario_in_any_order_batch_by_batch(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    monkeypatch.setattr(totals, "CHANGES_AT_ONCE", at_once)
    first, second = scenario()
    for seed in (1, 2):
        schema = await create_metrics_schema(pool)
        try:
            rnd = random.Random(seed)
            events = [*first, *second]
            rnd.shuffle(events)
            parts = batches(events, rnd)
            await apply(pool, schema, parts[0])
            await kept_equals_full(pool, schema, [2013, 2014, 2015])  # built whole
            compared = 0
            for part in parts[1:]:
                # A batch that changed facts tells who (one row); one that did not, nothing.
                changed = await apply(pool, schema, part)
                assert await pending(pool, schema) == (1 if changed else 0)
                compared += await kept_equals_full(pool, schema, [2013, 2014, 2015])
                assert await pending(pool, schema) == 0
            assert compared > 100
        finally:
            await drop_schema(pool, schema)


@AT_ONCE
async def test_a_simulated_year_with_redeliveries_and_erasures(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    monkeypatch.setattr(totals, "CHANGES_AT_ONCE", at_once)
    events = history()  # ~900 events of 70 people, activity versions, 40 redelivered
    schema = await create_metrics_schema(pool)
    try:
        rnd = random.Random(7)
        rnd.shuffle(events)
        parts = batches(events, rnd)
        await apply(pool, schema, parts[0])
        await kept_equals_full(pool, schema, [2015])
        for part in parts[1:]:
            await apply(pool, schema, part)
            await kept_equals_full(pool, schema, [2015])
        # A redelivered batch changes no fact: nothing to tell.
        assert await apply(pool, schema, parts[3]) == 0
        assert await pending(pool, schema) == 0
        # Erasures: the busiest people, and someone whose registration converted (or named)
        # another person's referral: their facts go, and so does the conversion.
        by_person: dict[str, int] = {}
        for e in events:
            if e.subject:
                by_person[e.subject] = by_person.get(e.subject, 0) + 1
        converting = sorted(
            {
                e.subject
                for e in events
                if isinstance(e.data, RegistrationCreated) and e.data.referral_id and e.subject
            }
        )
        assert converting, "the simulated year has registrations that name a referral"
        busiest = sorted(by_person, key=lambda p: (-by_person[p], p))[:2]
        for n, subject in enumerate([converting[0], *busiest], 1):
            erased = new_event(
                PersonErased(
                    subject_id=subject,
                    erased_at=datetime.fromisoformat(f"2016-01-0{n}T12:00:00+01:00"),
                ),
                None,
            )
            assert await apply(pool, schema, [erased]) == 1
            await kept_equals_full(pool, schema, [2015])
        # Late events of an erased person never bring them back.
        await apply(pool, schema, [e for e in events if e.subject == busiest[0]][:5])
        await kept_equals_full(pool, schema, [2015])
        # Other cut-offs: the year is computed again under them.
        await kept_equals_full(
            pool, schema, [2015], options({**THRESHOLDS, "djg11": (1, 1), "djg6": (1, 1)})
        )
        await kept_equals_full(pool, schema, [2015])
    finally:
        await drop_schema(pool, schema)


@pytest.mark.parametrize("behind_limit", [totals.BEHIND_LIMIT, 6])
async def test_computed_years_asked_one_at_a_time(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, behind_limit: int
) -> None:
    """A refresh brings only the year asked up to date; another computed year applies the
    logged changes when it is asked, or, left more than ``BEHIND_LIMIT`` keys behind, is
    forgotten and computed whole again. An erasure takes the person out of every year's
    shares and out of the log at the refresh that sees it, whichever year is asked."""
    monkeypatch.setattr(totals, "BEHIND_LIMIT", behind_limit)
    years = [2013, 2014, 2015]
    first, second = scenario()
    schema = await create_metrics_schema(pool)
    s = f'"{schema}"'
    try:
        rnd = random.Random(11)
        events = [*first, *second]
        # The busiest person's last event held back, to change them after every year is up
        # to date.
        counts: dict[str, int] = {}
        for e in events:
            if e.subject:
                counts[e.subject] = counts.get(e.subject, 0) + 1
        subject = max(sorted(counts), key=lambda p: counts[p])
        held = [e for e in events if e.subject == subject][-1]
        events = [e for e in events if e is not held]
        rnd.shuffle(events)
        parts = batches(events, rnd)
        await apply(pool, schema, parts[0])
        await kept_equals_full(pool, schema, years)
        logged, computed = 0, []
        for part in parts[1:]:
            await apply(pool, schema, part)
            await kept_equals_full(pool, schema, [rnd.choice(years)])
            logged = max(logged, int(await pool.fetchval(f"SELECT count(*) FROM {s}.totals_log")))
            computed.append(int(await pool.fetchval(f"SELECT count(*) FROM {s}.totals_years")))
        assert logged > 0, "some year had changes left to apply"
        if behind_limit > 1_000:  # the real limit: nothing here comes near it
            assert set(computed) == {3}, computed
        else:
            assert min(computed) < 3, "a year left behind was forgotten"
        await kept_equals_full(pool, schema, years)
        assert not await pool.fetchval(f"SELECT count(*) FROM {s}.totals_log")
        # The held event, then only 2013 asked: the other years have the person to apply.
        assert await apply(pool, schema, [held]) == 1
        await kept_equals_full(pool, schema, [2013])
        assert await pool.fetchval(
            f"SELECT count(*) FROM {s}.totals_log WHERE $1 = ANY(people)", subject
        )
        assert await pool.fetchval(
            f"SELECT count(*) FROM {s}.totals_shares WHERE person = $1 AND year <> 2013", subject
        )
        # Erased, then again only 2013 asked: nothing of them in any year or in the log.
        erased = new_event(
            PersonErased(
                subject_id=subject, erased_at=datetime.fromisoformat("2016-02-01T12:00:00+01:00")
            ),
            None,
        )
        assert await apply(pool, schema, [erased]) == 1
        await kept_equals_full(pool, schema, [2013])
        assert not await pool.fetchval(
            f"SELECT count(*) FROM {s}.totals_shares WHERE person = $1", subject
        )
        assert not await pool.fetchval(
            f"SELECT count(*) FROM {s}.totals_log WHERE $1 = ANY(people) OR $1 = ANY(pseudo)",
            subject,
        )
        await kept_equals_full(pool, schema, years)
    finally:
        await drop_schema(pool, schema)


async def test_one_persons_facts_that_move_anothers_share(pool: asyncpg.Pool) -> None:
    """A referral's person (resident pseudonym) and who registers and attends at the receiving
    side (the receiver's own pseudonym for them) differ: the registration, the attendance, a
    second referral with the same id, and the registrant's erasure each move the referral's
    share, each arriving after the totals were kept. And a cancellation that arrives before
    its registration is a person of its own until the registration comes."""
    from tests.integration.test_metrics_scenario import (
        A,
        B,
        C,
        activity,
        attendance,
        cancellation,
        hexid,
        person,
        referral,
        registration,
    )

    referred = person(hexid("cross-Y"), "delfgauw", "65-74")
    registrant = person(hexid("cross-X"), "delfgauw", "65-74")
    other = person(hexid("cross-Z"), "emerald", "26-64")
    steps: list[list[CloudEvent[Any]]] = [
        [activity(B, "koffie", "meeting", True), activity(A, "eten", "meeting", True)],
        [
            referral(
                A, "cross-r1", referred, "gp", ["isolation"], "2015-03-02T10:00:00+01:00", to_org=B
            )
        ],
        [
            registration(
                B,
                "cross-g1",
                "koffie",
                registrant,
                "2015-03-03T10:00:00+01:00",
                referral_id="cross-r1",
            )
        ],
        [
            attendance(
                B,
                "cross-t1",
                "koffie",
                registrant,
                "2015-03-05T10:00:00+01:00",
                datetime(2015, 3, 5).date(),
            )
        ],
        [
            attendance(
                B,
                f"cross-t{n}",
                "koffie",
                registrant,
                f"2015-03-{5 + n:02d}T10:00:00+01:00",
                datetime(2015, 3, 5 + n).date(),
            )
            for n in range(2, 6)
        ],
        # Another referrer's referral with the same id at the same receiver: the registration
        # (which names no referrer) converts neither any more.
        [
            referral(
                C, "cross-r1", other, "gp", ["isolation"], "2015-03-04T10:00:00+01:00", to_org=B
            )
        ],
        # A cancellation of a registration not known yet, then the registration.
        [cancellation(A, "cross-g2", "eten", other, "2015-04-02T10:00:00+02:00")],
        [registration(A, "cross-g2", "eten", other, "2015-04-01T10:00:00+02:00")],
        # The registrant erased: the conversion is gone with their facts.
        [
            new_event(
                PersonErased(
                    subject_id=registrant.id,
                    erased_at=datetime.fromisoformat("2016-01-01T12:00:00+01:00"),
                ),
                None,
            )
        ],
    ]
    # And the registrant erased while the conversion stands: it goes with their facts.
    erased_early = [*steps[:5], steps[-1]]
    for sequence in (steps, erased_early):
        seen = await _kept_step_by_step(pool, sequence)
        converted = [c for c, _ in seen]
        assert converted[3] is not None, seen
        assert converted[3].value == 1, seen
        assert converted[-1] is None, seen
        if sequence is steps:
            # No longer converted once a second referral shares the id; the cancellation
            # counts before and after its registration arrives.
            assert converted[5] is None, seen
            assert seen[6][1] is not None, seen
            assert seen[7][1] is not None, seen


async def _kept_step_by_step(
    pool: asyncpg.Pool, steps: list[list[CloudEvent[Any]]]
) -> list[tuple[Any, Any]]:
    """Each step applied, the kept totals compared with the whole year; the converted
    referrals and the cancellations of 2015 after each."""
    schema = await create_metrics_schema(pool)
    try:
        seen = []
        for step in steps:
            assert await apply(pool, schema, step) == len(step)
            await kept_equals_full(pool, schema, [2015])
            async with pool.acquire() as conn:
                kept = await refresh_totals(conn, f'"{schema}"', 2015, options())
            seen.append(
                (
                    kept.counts.get(("converted", "", "", "2015")),
                    kept.counts.get(("cancellations", "", "", "2015")),
                )
            )
        return seen
    finally:
        await drop_schema(pool, schema)
