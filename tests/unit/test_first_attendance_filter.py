"""The first-attendance consumer passes over the events it does not need without validating
them (service_layer/first_attendance.py, ``may_matter``). Passing over must change nothing:
a mixed stream handed to the consumer with the filter gives the handler exactly the items and
erasures, and the dead-letter topic exactly the letters, that full decoding of every event
gives."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import pytest

from services.referrals.entrypoints.consumer import ReferralsConsumer
from services.referrals.service_layer.first_attendance import item_of, may_matter
from shared.consumer import DeadLetter
from shared.events import (
    CloudEvent,
    EventDecodeError,
    PersonErased,
    Topic,
    decode_event,
    event_name_of,
    parse_document,
)
from shared.events.envelope import _ENVELOPES, _LEGACY, _NAME_OF
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from tools.bench.events import EventFactory, encoded
from tools.simulator.generate import generate
from tools.simulator.scenario import default_scenario

SERVICES = load_reference().services
CONSUMED = {Topic.REGISTRATIONS.value, Topic.REFERRALS.value, Topic.ERASURES.value}


@dataclass(frozen=True)
class Record:
    """What the consumer reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Letters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.sent.extend(letters)


def simulated() -> list[tuple[str, bytes]]:
    """A year of a small municipality as the services publish it: registrations with and
    without referrals, attendance and no-shows, cancellations, referrals and their changes."""
    writes = generate(11, 300, 8, date(2026, 3, 1), run_id="filter")
    factory = EventFactory(
        Pseudonymiser("filter-test-secret-0000000000000000"),
        [o.id for o in default_scenario().organisations],
    )
    return [(e.topic, e.value) for e in encoded(factory.events(writes), "") if e.topic in CONSUMED]


def envelope(type_: str, data: dict[str, Any], subject: str | None = "b" * 64) -> bytes:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/organisations/welzijn",
        "type": type_,
        "time": "2026-02-01T10:00:00+00:00",
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        doc["subject"] = subject
    return orjson.dumps(doc)


PARTICIPANT = {
    "id": "a" * 64,
    "scope": "organisation",
    "neighbourhood": "delfgauw",
    "age_band": "75+",
}


def by_hand() -> list[tuple[str, bytes]]:
    """Earlier versions still on the topics, an erasure, and what does not decode."""
    registration_v1 = {
        "organisation_id": "welzijn",
        "registration_id": "reg-v1",
        "activity_id": "koffie",
        "participant": PARTICIPANT,
        "registered_at": "2026-01-05T10:00:00+00:00",
    }
    erased = {"subject_id": "b" * 64, "erased_at": "2026-02-01T10:00:00+00:00"}
    regs, erasures = Topic.REGISTRATIONS.value, Topic.ERASURES.value
    return [
        (regs, envelope("nl.verbinding.registration.created.v1", registration_v1)),
        (
            regs,
            envelope(
                "nl.verbinding.registration.created.v1",
                {**registration_v1, "registration_id": "reg-v1b", "referral_id": "ref-1"},
            ),
        ),
        (erasures, envelope("nl.verbinding.person.erased.v1", erased, subject=None)),
        (regs, b"not json"),
        (regs, b"[1, 2]"),
        (regs, envelope("nl.verbinding.attendance.recorded.v9", {"status": "attended"})),
        (regs, envelope("nl.verbinding.no.such.type.v1", {})),
        # A relevant type that does not match its schema: decoded, and dead-lettered.
        (regs, envelope("nl.verbinding.attendance.recorded.v1", {"status": "attended"})),
        (regs, envelope("nl.verbinding.registration.created.v2", {"referral_id": "ref-9"})),
        (Topic.REFERRALS.value, envelope("nl.verbinding.referral.created.v2", {})),
    ]


async def handled(
    stream: list[tuple[str, bytes]], *, filtered: bool
) -> tuple[list[CloudEvent[Any]], list[DeadLetter]]:
    seen: list[CloudEvent[Any]] = []

    async def handler(events: Sequence[CloudEvent[Any]]) -> None:
        seen.extend(events)

    consumer = ReferralsConsumer(
        {"first-attendance": handler},
        {"first-attendance": "filter-test"},
        bootstrap="127.0.0.1:1",  # never connected: handle() is called directly
        needed={"first-attendance": may_matter} if filtered else None,
    )
    letters = Letters()
    consumer._sinks = {"first-attendance": letters}  # type: ignore[dict-item]
    records = [Record(t, 0, n, None, v) for n, (t, v) in enumerate(stream)]
    for start in range(0, len(records), 500):  # batches, as the subscriber hands them
        await consumer.handle("first-attendance", records[start : start + 500])
    return seen, letters.sent


def outcome(events: list[CloudEvent[Any]]) -> tuple[list[Any], list[Any]]:
    """What the first-attendance consumer does with the events: items and erasures."""
    items = [found for e in events if (found := item_of(e, SERVICES)) is not None]
    erasures = [e.data for e in events if isinstance(e.data, PersonErased)]
    return items, erasures


async def test_a_mixed_stream_gives_what_full_decoding_gives() -> None:
    stream = simulated() + by_hand()
    full, full_letters = await handled(stream, filtered=False)
    passed, passed_letters = await handled(stream, filtered=True)

    items, erasures = outcome(full)
    assert outcome(passed) == (items, erasures)
    # Not vacuous: the stream names referrals, attends, erases, and most of it is passed over.
    kinds = {type(i[1]).__name__ for i in items}
    assert kinds == {"RegistrationNamed", "SessionAttended", "ReferralArrived"}
    assert len(erasures) == 1
    assert len(passed) < len(full) * 0.8
    assert [(x.record.offset, x.reason) for x in passed_letters] == [
        (x.record.offset, x.reason) for x in full_letters
    ]
    assert len(full_letters) == 7


def test_what_is_passed_over_never_becomes_an_item() -> None:
    """Event by event: whatever ``may_matter`` passes over decodes to nothing the consumer
    keeps (no item, no erasure) or does not decode at all."""
    passed_over = 0
    for _, value in simulated() + by_hand():
        try:
            doc = parse_document(value)
        except EventDecodeError:
            continue  # the consumer dead-letters it, filter or not
        if may_matter(doc):
            continue
        passed_over += 1
        event = decode_event(value)
        assert item_of(event, SERVICES) is None, event
        assert not isinstance(event.data, PersonErased)
    assert passed_over > 100


@pytest.mark.parametrize("event_type", sorted(_LEGACY))
def test_an_earlier_version_is_upcast_to_its_own_name(event_type: str) -> None:
    """``event_name_of`` names an earlier version as its current one: the filter's decision by
    name holds for every version only if upcasting keeps the name."""
    legacy = _ENVELOPES[event_type].model_fields["data"].annotation
    current = typing.get_type_hints(legacy.upcast)["return"]
    assert current.event_name == legacy.event_name == _NAME_OF[event_type]


def test_event_name_of_reads_only_known_cloudevents() -> None:
    ok = {"specversion": "1.0", "type": "nl.verbinding.attendance.recorded.v1"}
    assert event_name_of(ok) == "attendance.recorded"
    assert event_name_of({**ok, "specversion": "0.3"}) is None
    assert event_name_of({**ok, "type": "nl.verbinding.attendance.recorded.v2"}) is None
    assert event_name_of({**ok, "type": 7}) is None
    assert event_name_of([ok]) is None
