"""The fact writer's cheaper statements keep every value exactly (issue 14, the apply's CPU).

The statements send their text columns as one space-joined string each, split again in
PostgreSQL, moments as microseconds since 1970 and nullable values with `-` for null; the
erased-subjects check is done from the events' subjects without a call per event. These tests apply, through the real FactWriter on a fresh schema, values that validate
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
from shared.timerules import local_date
from tests.integration.test_metrics_scenario import (
    attendance,
    cancellation,
    create_metrics_schema,
    drop_schema,
    hexid,
    measurement,
    person,
    referral,
    registration,
    status,
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


# Moments pydantic accepts that an integer encoding could get wrong: the epoch, just before it
# (a negative count with microseconds), offsets of minutes, the ends of the years it allows, the
# last microsecond before a change to summer time and just after the change back.
ODD_MOMENTS = (
    "1970-01-01T00:00:00+00:00",
    "1969-12-31T23:59:59.999999+00:00",
    "0001-01-01T12:00:00-05:00",
    "9999-12-31T12:00:00.000001+14:00",
    "2025-03-30T01:59:59.999999+00:00",
    "2025-10-26T01:00:00.000001+00:00",
    "2025-06-30T23:59:59.5+05:45",
    "2024-02-29T00:00:00-09:30",
)


def odd_events_of_every_type() -> list[CloudEvent[Any]]:
    """Every type the writer stores a moment, a day or a nullable value of, with odd ids."""
    events = []
    for n, (moment, odd) in enumerate(zip(ODD_MOMENTS, ODD_IDS, strict=False)):
        org = f"org-{n}.A_z"
        who = person(hexid(f"every{n}"), "a+b.c_d-e", "75+")
        events += [
            registration(org, odd, f"act{odd}", who, moment, *(("-", org) if n % 2 else ())),
            cancellation(org, odd, f"act{odd}", who, moment),
            referral(org, odd, who, "huisarts", ("a", "b-c") if n % 2 else ("d",), moment,
                     to_org=f"to-{n}"),
            status(org, odd, who, org, "created", "accepted", moment, sequence=n),
            training(org, odd, who.id, "volunteer", moment),
            measurement(org, odd, "djg11", "intake", who if n % 2 else ("z", "0"), moment,
                        (n, n % 7, None, "not_lonely") if n % 2 else (None, None, None, None)),
        ]  # fmt: skip
    return [wire(e) for e in events]


async def stored_every_type(pool: asyncpg.Pool, schema: str) -> dict[str, set[tuple[Any, ...]]]:
    s = f'"{schema}"'
    queries = {
        "registrations": "organisation_id, registration_id, activity_id, participant_id, "
        "neighbourhood, age_band, registered_at, registered_date, referral_id, "
        "referring_organisation_id",
        "cancellations": "organisation_id, registration_id, activity_id, cancelled_at, "
        "cancelled_date",
        "referrals": "organisation_id, referral_id, participant_id, signals, created_at, "
        "created_date",
        "referral_status": "event_id, organisation_id, referral_id, status, at, changed_by, "
        "sequence",
        "trainings": "organisation_id, training_id, person_id, role, training, completed_date",
        "measurements": "organisation_id, measurement_id, participant_id, neighbourhood, "
        "age_band, measured_at, measured_date, total, emotional, social, category",
    }
    return {
        table: {
            tuple(tuple(v) if isinstance(v, list) else v for v in r)
            for r in await pool.fetch(f"SELECT {columns} FROM {s}.{table}")
        }
        for table, columns in queries.items()
    }


def expected_every_type(events: list[CloudEvent[Any]]) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {t: set() for t in (
        "registrations", "cancellations", "referrals", "referral_status", "trainings",
        "measurements")}  # fmt: skip
    for e in events:
        d = e.data
        match d.event_name:
            case "registration.created":
                out["registrations"].add((d.organisation_id, d.registration_id, d.activity_id,
                    d.participant.id, d.participant.neighbourhood, d.participant.age_band,
                    d.registered_at, local_date(d.registered_at), d.referral_id,
                    d.referring_organisation_id))  # fmt: skip
            case "registration.cancelled":
                out["cancellations"].add((d.organisation_id, d.registration_id, d.activity_id,
                    d.cancelled_at, local_date(d.cancelled_at)))  # fmt: skip
            case "referral.created":
                out["referrals"].add((d.organisation_id, d.referral_id, d.participant.id,
                    tuple(d.signals), d.created_at, local_date(d.created_at)))  # fmt: skip
            case "referral.status_changed":
                out["referral_status"].add((e.id, d.organisation_id, d.referral_id, d.status,
                    d.at, d.changed_by, d.sequence))  # fmt: skip
            case "training.completed":
                out["trainings"].add((d.organisation_id, d.training_id, d.person_id, d.role,
                    d.training, local_date(d.completed_at)))  # fmt: skip
            case "measurement.recorded":
                out["measurements"].add((d.organisation_id, d.measurement_id, d.participant_id,
                    d.neighbourhood, d.age_band, d.measured_at, local_date(d.measured_at),
                    d.total, d.emotional, d.social, d.category))  # fmt: skip
    return out


async def test_moments_days_and_nulls_of_every_type_are_stored_exactly(
    pool: asyncpg.Pool, schema: str
) -> None:
    events = odd_events_of_every_type()
    want = expected_every_type(events)
    assert all(len(rows) == len(ODD_MOMENTS) for rows in want.values())
    applied = await apply(pool, schema, events)  # in the order of their types
    assert sorted(e.id for e in applied) == sorted(e.id for e in events)
    assert await stored_every_type(pool, schema) == want
    assert await apply(pool, schema, events) == []  # a resend: nothing new


async def test_moments_days_and_nulls_of_every_type_one_by_one(
    pool: asyncpg.Pool, schema: str
) -> None:
    """A batch of one row: a null or a moment splits into one value, not none."""
    events = odd_events_of_every_type()
    for event in events:
        assert await apply(pool, schema, [event]) == [event]
    assert await stored_every_type(pool, schema) == expected_every_type(events)


async def test_a_batch_of_every_type_with_some_rows_seen_before_answers_the_new_ones(
    pool: asyncpg.Pool, schema: str
) -> None:
    """Each statement answers the keys it inserted only when it did not insert them all."""
    events = odd_events_of_every_type()
    await apply(pool, schema, events[::2])
    new = await apply(pool, schema, events)
    assert sorted(e.id for e in new) == sorted(e.id for e in events[1::2])
    assert await stored_every_type(pool, schema) == expected_every_type(events)
