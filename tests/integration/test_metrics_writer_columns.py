"""The fact writer's cheaper statements keep every value exactly (issue 14, the apply's CPU).

The attendance statement sends its text columns as one space-joined string each, split again in
PostgreSQL; the erased-subjects check is done from the events' subjects without a call per
event. These tests apply, through the real FactWriter on a fresh schema, values that validate
but that a careless encoding would mangle, and an erased person's events that only a correct
check leaves out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from services.metrics.adapters.facts import FactWriter
from shared.events import (
    AttendanceRecorded,
    CloudEvent,
    Participant,
    PersonErased,
    decode_event,
    encode_event,
    new_event,
)
from tests.integration.test_metrics_scenario import (
    attendance,
    create_metrics_schema,
    drop_schema,
    hexid,
    person,
    training,
)

pytestmark = pytest.mark.integration

# Ids the id pattern (`^[^\s/]+$`) accepts: quotes, commas, braces, backslashes, what an array
# literal or COPY would treat specially, SQL's NULL spelled out, non-ASCII letters.
ODD_IDS = (
    'a"b',
    "a,b",
    "{a}",
    "a\\b",
    "\\N",
    "NULL",
    "null",
    "'",
    "ü-é-ß",
    "日本",
    "a;b|c",
    "x" * 128,
    "🙂",
)


@pytest.fixture
async def schema(pool: asyncpg.Pool) -> AsyncIterator[str]:
    name = await create_metrics_schema(pool)
    yield name
    await drop_schema(pool, name)


def wire(event: CloudEvent[Any]) -> CloudEvent[Any]:
    """As the consumer has it: encoded and decoded (what validation accepts)."""
    return decode_event(encode_event(event))


def odd_attendance() -> list[CloudEvent[Any]]:
    events = []
    for n, odd in enumerate(ODD_IDS):
        who = Participant(
            id=hexid(f"odd{n}"),
            scope="organisation" if n % 2 else "resident",
            neighbourhood="a+b.c_d-e" if n % 3 else "z",
            age_band="75+" if n % 2 else "0",
        )
        # Offsets of their own (minutes and seconds), microseconds, a date far from today.
        start = datetime(2025, 3, 30, 1, 59, 59, 999_999, tzinfo=UTC) + timedelta(hours=n)
        start = start.astimezone(timezone(timedelta(hours=5, minutes=45)))
        events.append(
            wire(
                new_event(
                    AttendanceRecorded(
                        organisation_id=f"org-{n}.A_z",
                        attendance_id=odd,
                        activity_id=f"act{odd}"[:128],
                        participant=who,
                        session_start=start,
                        session_date=start.astimezone(UTC).date(),
                        status="no_show" if n % 4 == 3 else "attended",
                    ),
                    f"org-{n}.A_z",
                )
            )
        )
    return events


def expected(events: list[CloudEvent[Any]]) -> set[tuple[Any, ...]]:
    return {
        (
            d.organisation_id,
            d.attendance_id,
            d.activity_id,
            d.participant.id,
            d.participant.neighbourhood,
            d.participant.age_band,
            d.session_start,
            d.status == "attended",
        )
        for d in (e.data for e in events)
    }


async def stored(pool: asyncpg.Pool, schema: str) -> set[tuple[Any, ...]]:
    rows = await pool.fetch(
        f"SELECT organisation_id, attendance_id, activity_id, participant_id, neighbourhood, "
        f'age_band, session_start, attended FROM "{schema}".attendance'
    )
    return {tuple(r) for r in rows}


async def apply(pool: asyncpg.Pool, schema: str, events: list[CloudEvent[Any]]) -> list[Any]:
    async with pool.acquire() as conn, conn.transaction():
        return await FactWriter(schema)(conn, events)


async def test_attendance_values_are_stored_exactly_in_one_batch(
    pool: asyncpg.Pool, schema: str
) -> None:
    events = odd_attendance()
    assert await apply(pool, schema, events) == events
    assert await stored(pool, schema) == expected(events)
    # Applied again (a relay's resend): nothing new, nothing changed.
    assert await apply(pool, schema, events) == []
    assert await stored(pool, schema) == expected(events)


async def test_attendance_values_are_stored_exactly_one_by_one(
    pool: asyncpg.Pool, schema: str
) -> None:
    events = odd_attendance()
    for event in events:  # a batch of one row: the split must give one value, not none
        assert await apply(pool, schema, [event]) == [event]
    assert await stored(pool, schema) == expected(events)


async def test_a_batch_with_some_rows_seen_before_answers_the_new_ones(
    pool: asyncpg.Pool, schema: str
) -> None:
    events = odd_attendance()
    await apply(pool, schema, events[::2])
    new = await apply(pool, schema, events)
    assert sorted(e.id for e in new) == sorted(e.id for e in events[1::2])
    assert await stored(pool, schema) == expected(events)


async def test_an_erased_persons_events_are_left_out_whatever_their_subject(
    pool: asyncpg.Pool, schema: str
) -> None:
    """A training names its person in its data, not as its subject: the check must look there,
    also when a training carries some other subject."""
    erased, other = hexid("erased-trainer"), hexid("someone-else")
    org = "writer-columns"
    erasure = wire(new_event(PersonErased(subject_id=erased, erased_at=datetime.now(UTC)), None))
    assert await apply(pool, schema, [erasure]) == [erasure]
    plain = wire(training(org, "tr-1", erased, "volunteer", "2025-05-01T16:00:00+02:00"))
    odd_subject = wire(
        training(org, "tr-2", erased, "volunteer", "2025-05-01T16:00:00+02:00").model_copy(
            update={"subject": other}
        )
    )
    kept = wire(
        attendance(
            org, "at-1", "act-1", person(other, "delfgauw", "26-64"),
            "2025-05-02T10:00:00+02:00", date(2025, 5, 2),
        )
    )  # fmt: skip
    assert await apply(pool, schema, [odd_subject, kept]) == [kept]
    assert await apply(pool, schema, [plain]) == []
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".trainings') == 0
    # In the erasure's own batch too.
    erased2 = hexid("erased-later")
    erasure2 = wire(new_event(PersonErased(subject_id=erased2, erased_at=datetime.now(UTC)), None))
    late = wire(training(org, "tr-3", erased2, "volunteer", "2025-05-01T16:00:00+02:00"))
    assert await apply(pool, schema, [late, erasure2]) == [erasure2]
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".trainings') == 0
