"""The indicators of domain.md §6 for a small, fully specified event history, computed by hand.

The events go as CloudEvents onto real Kafka topics of this test alone (own topic prefix) and are
consumed by the metrics service's own Kafka entrypoint (``MetricsConsumer``: FastStream batch
subscriber in a consumer group → ``BatchConsumer`` → ``FactWriter``) into a PostgreSQL schema of
this test alone, so every figure below is exact: nothing another test writes can move it.
The platform schema (organisations, keys, the partner registry) is shared by the test session:
where another test registered partners that count at the end of a period here, the share of
partners with trained staff takes them into account (they have no trained staff here).

The figures are read without disclosure control (``control="off"``: the query layer's year grid
as it is, every count of at least 1 shown), which the hand computation checks exactly; then with
the disclosure engine at k = 2 (a release of the scenario, audited: nothing can be worked out)
and at the default k = 10 (same data: everything suppressed).

People, in years 2013-2015 (pseudonyms are arbitrary 64-hex strings):

    P1 delfgauw 65-74         P4 pijnacker-noord 16-25   P7 nootdorp-oost 75+
    P2 delfgauw 75+           P5 emerald 65-74           P8 nootdorp-oost 65-74
    P3 pijnacker-noord 26-64  P6 koningshof 26-64        P9 emerald 26-64
    P10 koningshof 26-64      P11 delfgauw 65-74

Organisations: A welfare (runs A1, provides the buddy project), B library (runs A2, A3), C GP
practice (refers), D sports club (runs A4). A, B, C and D are the coalition's registered partners
from 2013; D leaves on 1 June 2015. A test organisation with a write key, revoked, and a reader
are no partners. Activities: A1 meeting; A2 learning (version 1 said "culture, not aimed at
connection" until version 2 corrected it on 1 December 2013; the duplicate of version 1 that
arrives last changes nothing); A3 digital, NOT aimed at connection (never in S2); A4 sport.
On 1 May 2015 A1 is reclassified as learning and A4 as not aimed at connection: sessions from
then on count that way, earlier ones (all of 2013 and 2014) as before. The baseline year is 2013.

2015 holds what the definitions of issue 12 are about: a session reported twice and a session on
day 90 (retention counts sessions on days before first + 90), colliding referral ids, a forged
conversion, a self-acceptance, two status changes with equal `at`, a training that is not a
signal training, and a 6-item survey (subscale cut-off 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import statistics
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.metrics.adapters.facts import FactWriter
from services.metrics.bootstrap import MIGRATIONS
from services.metrics.domain.answers import BREAKDOWNS
from services.metrics.domain.baseline import load_baseline
from services.metrics.domain.disclosure import FIGURES, year_periods
from services.metrics.domain.periods import parse_period
from services.metrics.entrypoints.consumer import CONSUMED_TOPICS, MetricsConsumer
from services.metrics.service_layer.indicators import Control, IndicatorService
from services.metrics.settings import MetricsSettings
from shared.consumer import BatchConsumer, BatchResult, DecodedBatch
from shared.db import migrate_service
from shared.events import (
    KAFKA_HEADERS,
    ActivityUpserted,
    AttendanceRecorded,
    CloudEvent,
    MeasurementRecorded,
    Participant,
    ReferralCreated,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCancelled,
    RegistrationCreated,
    TrainingCompleted,
    encode_event,
    new_event,
    topic_name,
)
from shared.kafka import ensure_topics
from shared.reference import load_reference
from shared.referral_matching import NamingRegistration, counts_from, names, within_window
from shared.timerules import local_date
from tests.conftest import KAFKA, RUN_ID, eventually
from tools.disclosure_audit.check import audit
from tools.disclosure_audit.published import from_indicators, from_trend

pytestmark = pytest.mark.integration

# ------------------------------------------------------------------------------------------------
# Building blocks (also used by the other metrics integration tests)
# ------------------------------------------------------------------------------------------------


def hexid(name: str) -> str:
    """A 64-hex pseudonym for a name of the test."""
    return hashlib.sha256(f"verbinding-metrics-test:{name}".encode()).hexdigest()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def person(pid: str, neighbourhood: str, age_band: str) -> Participant:
    return Participant(id=pid, scope="resident", neighbourhood=neighbourhood, age_band=age_band)


def activity(
    org: str,
    activity_id: str,
    category: str,
    connection: bool,
    *,
    version: int = 1,
    neighbourhood: str = "delfgauw",
    updated: str = "2013-01-01T09:00:00+01:00",
) -> CloudEvent[Any]:
    data = ActivityUpserted(
        organisation_id=org,
        activity_id=activity_id,
        version=version,
        title=f"{activity_id} v{version}",
        category=category,
        aimed_at_connection=connection,
        neighbourhood=neighbourhood,
        updated_at=at(updated),
    )
    return new_event(data, org)


def attendance(
    org: str,
    attendance_id: str,
    activity_id: str,
    who: Participant,
    start: str,
    local: date,
    status: str = "attended",
) -> CloudEvent[Any]:
    """``local`` is written out by hand: the date the partner's session has in Amsterdam."""
    data = AttendanceRecorded(
        organisation_id=org,
        attendance_id=attendance_id,
        activity_id=activity_id,
        participant=who,
        session_start=at(start),
        session_date=local,
        status=status,  # type: ignore[arg-type]
    )
    return new_event(data, org)


def registration(
    org: str,
    registration_id: str,
    activity_id: str,
    who: Participant,
    registered: str,
    referral_id: str | None = None,
    referrer: str | None = None,
) -> CloudEvent[Any]:
    data = RegistrationCreated(
        organisation_id=org,
        registration_id=registration_id,
        activity_id=activity_id,
        participant=who,
        registered_at=at(registered),
        referral_id=referral_id,
        referring_organisation_id=referrer,
    )
    return new_event(data, org)


def cancellation(
    org: str, registration_id: str, activity_id: str, who: Participant, cancelled: str
) -> CloudEvent[Any]:
    data = RegistrationCancelled(
        organisation_id=org,
        registration_id=registration_id,
        activity_id=activity_id,
        participant_id=who.id,
        cancelled_at=at(cancelled),
    )
    return new_event(data, org)


def referral(
    org: str,
    referral_id: str,
    who: Participant,
    role: str,
    signals: Sequence[str],
    created: str,
    *,
    to_org: str | None = None,
    to_activity: str | None = None,
    to_service: str | None = None,
    receiving: str | None = None,
) -> CloudEvent[Any]:
    """``receiving``: the receiving side; default the organisation referred to (a service's
    provider must be named)."""
    data = ReferralCreated(
        organisation_id=org,
        referral_id=referral_id,
        participant=who,
        referrer_role=role,
        signals=tuple(signals),
        referred_to=ReferredTo(organisation_id=to_org, activity_id=to_activity, service=to_service),
        receiving_organisation_id=receiving or to_org,
        created_at=at(created),
    )
    return new_event(data, org)


_ARRIVALS = itertools.count(1)


def status(
    org: str,
    referral_id: str,
    who: Participant,
    by: str,
    previous: str,
    new: str,
    when: str,
    sequence: int | None = None,
) -> CloudEvent[Any]:
    """``sequence``: the referrals service's arrival order; default the order of the calls."""
    data = ReferralStatusChanged(
        organisation_id=org,
        referral_id=referral_id,
        participant_id=who.id,
        changed_by=by,
        previous_status=previous,  # type: ignore[arg-type]
        status=new,  # type: ignore[arg-type]
        at=at(when),
        sequence=next(_ARRIVALS) if sequence is None else sequence,
    )
    return new_event(data, by)


def training(
    org: str,
    training_id: str,
    person_id: str,
    role: str,
    done: str,
    code: str = "signaling-loneliness",
) -> CloudEvent[Any]:
    data = TrainingCompleted(
        organisation_id=org,
        training_id=training_id,
        person_id=person_id,
        role=role,
        training=code,
        completed_at=at(done),
    )
    return new_event(data, org)


def measurement(
    org: str,
    measurement_id: str,
    instrument: str,
    context: str,
    who: Participant | tuple[str, str],
    measured: str,
    scores: tuple[int | None, int | None, int | None, str | None],
) -> CloudEvent[Any]:
    """``who`` is a participant, or (neighbourhood, age band) for an anonymous survey;
    ``scores`` is (total, emotional, social, category) as the referrals service scored it."""
    total, emotional, social, category = scores
    if isinstance(who, Participant):
        pid, neighbourhood, age_band = who.id, who.neighbourhood, who.age_band
    else:
        pid, (neighbourhood, age_band) = None, who
    data = MeasurementRecorded(
        organisation_id=org,
        measurement_id=measurement_id,
        instrument=instrument,  # type: ignore[arg-type]
        context=context,  # type: ignore[arg-type]
        participant_id=pid,
        neighbourhood=neighbourhood,
        age_band=age_band,
        measured_at=at(measured),
        total=total,
        emotional=emotional,
        social=social,
        category=category,  # type: ignore[arg-type]
    )
    return new_event(data, org)


async def publish(events: Sequence[CloudEvent[Any]], prefix: str) -> None:
    """Publish in order (one producer, idempotent: per partition the order is kept)."""
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic_name(e.data.topic, prefix), encode_event(e), key=e.key, headers=KAFKA_HEADERS
            )
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def create_metrics_schema(pool: asyncpg.Pool) -> str:
    name = f"mtest_{uuid.uuid4().hex[:12]}"
    await migrate_service(pool, name, MIGRATIONS)
    return name


async def drop_schema(pool: asyncpg.Pool, name: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


class RecordingBatchConsumer(BatchConsumer):
    """The real BatchConsumer, also remembering what each call returned (which partitions it
    handled, how many redeliveries it recognised)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[BatchResult] = []
        self.partitions: set[tuple[str, int]] = set()

    async def apply_decoded(self, batch: DecodedBatch) -> BatchResult:
        result = await super().apply_decoded(batch)
        self.results.append(result)
        self.partitions.update((r.topic, r.partition) for r in batch.records)
        return result

    @property
    def duplicates(self) -> int:
        return sum(r.duplicates for r in self.results)

    @property
    def records(self) -> int:
        return sum(r.applied + r.duplicates + r.dead_lettered for r in self.results)


@contextlib.asynccontextmanager
async def consumers(
    pool: asyncpg.Pool,
    schema: str,
    prefix: str,
    group: str,
    instances: int = 1,
    shared_lock: int | None = None,
    max_records: int = 2000,
    on_change: Callable[[], None] | None = None,
) -> AsyncIterator[list[RecordingBatchConsumer]]:
    """``instances`` metrics consumers (the service's Kafka entrypoint) in one consumer group,
    applying into ``schema``; yields their batch consumers once every instance owns partitions."""
    recorders: list[RecordingBatchConsumer] = []

    def factory(sink: Any) -> BatchConsumer:
        # As the service builds it (services/metrics/bootstrap.py): asynchronous commits.
        recorder = RecordingBatchConsumer(
            pool,
            schema,
            FactWriter(schema),
            sink,
            shared_lock=shared_lock,
            tracking="offsets",
            synchronous_commit=False,
        )
        recorders.append(recorder)
        return recorder

    running: list[MetricsConsumer] = []
    try:
        for _ in range(instances):
            consumer = MetricsConsumer(
                factory,
                bootstrap=KAFKA,
                group_id=group,
                prefix=prefix,
                max_records=max_records,
                on_change=on_change,
            )
            await consumer.start()
            running.append(consumer)

        async def all_assigned() -> bool:
            owned = [c.broker.subscribers[0].consumer.assignment() for c in running]
            return all(owned) and sum(len(o) for o in owned) == 4 * len(CONSUMED_TOPICS)

        await eventually(all_assigned, timeout=30, what=f"{instances} consumers owning partitions")
        yield recorders
    finally:
        for consumer in running:
            await consumer.stop()


async def wait_applied(pool: asyncpg.Pool, schema: str, events: Sequence[CloudEvent[Any]]) -> None:
    ids = list({e.id for e in events})

    async def done() -> bool:
        n = await pool.fetchval(
            f'SELECT count(*) FROM "{schema}".processed_events WHERE event_id = ANY($1::uuid[])',
            ids,
        )
        return n == len(ids)

    await eventually(done, timeout=30, what=f"{len(ids)} events applied in {schema}")


def published(section: dict[str, Any]) -> dict[str, Any]:
    """The published values of one subgoal (``None`` where suppressed), nested figures too."""
    out: dict[str, Any] = {}
    for name, fig in section.items():
        if "value" in fig:
            out[name] = fig["value"]
        else:
            out[name] = {sub: f["value"] for sub, f in fig.items()}
    return out


def all_figures(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []

    def walk(path: str, node: Any) -> None:
        if isinstance(node, dict):
            if "suppressed" in node:
                found.append((path, node))
            else:
                for key, value in node.items():
                    walk(f"{path}.{key}", value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(f"{path}[{value.get('key', i)}]", value)

    for subgoal in ("s1", "s2", "s3"):
        walk(subgoal, result[subgoal])
    walk("breakdown", result.get("breakdown", []))
    return found


# ------------------------------------------------------------------------------------------------
# The scenario
# ------------------------------------------------------------------------------------------------

A = f"scn{RUN_ID}-welzijn"
B = f"scn{RUN_ID}-bibliotheek"
C = f"scn{RUN_ID}-huisarts"
D = f"scn{RUN_ID}-sportclub"

P1 = person(hexid("P1"), "delfgauw", "65-74")
P2 = person(hexid("P2"), "delfgauw", "75+")
P3 = person(hexid("P3"), "pijnacker-noord", "26-64")
P4 = person(hexid("P4"), "pijnacker-noord", "16-25")
P5 = person(hexid("P5"), "emerald", "65-74")
P6 = person(hexid("P6"), "koningshof", "26-64")
P7 = person(hexid("P7"), "nootdorp-oost", "75+")
P8 = person(hexid("P8"), "nootdorp-oost", "65-74")
P9 = person(hexid("P9"), "emerald", "26-64")
P10 = person(hexid("P10"), "koningshof", "26-64")
P11 = person(hexid("P11"), "delfgauw", "65-74")
T1, T2, T3, T4, T5, T6 = (hexid(f"trainee-{i}") for i in range(1, 7))

R = {n: f"scn-{RUN_ID}-r{n}" for n in range(1, 13)}  # referral ids


def scenario() -> tuple[list[CloudEvent[Any]], list[CloudEvent[Any]]]:
    """(first delivery, second delivery). The second holds a late attendance, a duplicate and a
    stale activity version."""
    d = date
    x09 = attendance(A, "x09", "A1", P1, "2014-01-14T10:00:00+01:00", d(2014, 1, 14))
    # fmt: off
    first = [
        # --- activities -----------------------------------------------------------------------
        activity(A, "A1", "meeting", True),
        activity(B, "A2", "culture", False, version=1),
        activity(B, "A2", "learning", True, version=2, updated="2013-12-01T09:00:00+01:00"),
        activity(B, "A3", "digital", False),
        # Accepted on 1 March 2014, after its first sessions: before its first version an
        # activity counts with that first version.
        activity(D, "A4", "sport", True, neighbourhood="pijnacker-noord", updated="2014-03-01T00:00:00+01:00"),
        # --- attendance (session_date = the Amsterdam date of session_start) ------------------
        attendance(A, "x01", "A1", P9, "2013-01-10T10:00:00+01:00", d(2013, 1, 10)),
        attendance(A, "x02", "A1", P1, "2013-01-10T10:00:00+01:00", d(2013, 1, 10)),
        attendance(A, "x03", "A1", P2, "2013-01-17T10:00:00+01:00", d(2013, 1, 17)),
        attendance(A, "x04", "A1", P1, "2013-10-01T10:00:00+02:00", d(2013, 10, 1)),
        # DST ends 27 Oct 2013 03:00 CEST: 02:30 happens twice, once in summer time, once not.
        attendance(A, "x05", "A1", P1, "2013-10-27T02:30:00+02:00", d(2013, 10, 27)),
        attendance(A, "x06", "A1", P2, "2013-10-27T02:30:00+01:00", d(2013, 10, 27)),
        # 23:30 UTC on 31 October is 00:30 on 1 November in Amsterdam.
        attendance(A, "x07", "A1", P2, "2013-10-31T23:30:00+00:00", d(2013, 11, 1)),
        # 23:30 UTC on New Year's Eve is 00:30 on 1 January 2014 in Amsterdam.
        attendance(A, "x08", "A1", P3, "2013-12-31T23:30:00+00:00", d(2014, 1, 1)),
        x09,
        attendance(A, "x10", "A1", P5, "2014-01-14T10:00:00+01:00", d(2014, 1, 14), "no_show"),
        attendance(A, "x11", "A1", P2, "2014-01-21T10:00:00+01:00", d(2014, 1, 21), "no_show"),
        attendance(A, "x12", "A1", P5, "2014-01-21T10:00:00+01:00", d(2014, 1, 21)),
        attendance(A, "x13", "A1", P5, "2014-02-04T10:00:00+01:00", d(2014, 2, 4)),
        # P5's third session is 91 days after the first (21 Jan): too late for "retained".
        attendance(A, "x14", "A1", P5, "2014-04-22T10:00:00+02:00", d(2014, 4, 22)),
        attendance(B, "y01", "A2", P4, "2014-01-08T19:00:00+01:00", d(2014, 1, 8)),
        attendance(B, "y02", "A2", P3, "2014-01-08T19:00:00+01:00", d(2014, 1, 8)),
        attendance(B, "y03", "A2", P4, "2014-01-15T19:00:00+01:00", d(2014, 1, 15)),
        attendance(B, "y04", "A2", P4, "2014-01-29T19:00:00+01:00", d(2014, 1, 29), "no_show"),
        attendance(B, "y05", "A2", P4, "2014-02-12T19:00:00+01:00", d(2014, 2, 12)),
        # A3 is not aimed at connection: none of these may count in S2.
        attendance(B, "z01", "A3", P6, "2014-01-15T14:00:00+01:00", d(2014, 1, 15)),
        attendance(B, "z02", "A3", P1, "2014-01-15T14:00:00+01:00", d(2014, 1, 15)),
        attendance(B, "z03", "A3", P6, "2014-01-22T14:00:00+01:00", d(2014, 1, 22), "no_show"),
        attendance(D, "w01", "A4", P7, "2014-02-20T09:30:00+01:00", d(2014, 2, 20)),
        attendance(D, "w02", "A4", P7, "2014-03-06T09:30:00+01:00", d(2014, 3, 6)),
        attendance(D, "w03", "A4", P7, "2014-03-20T09:30:00+01:00", d(2014, 3, 20)),
        attendance(D, "w04", "A4", P8, "2014-04-10T09:30:00+02:00", d(2014, 4, 10)),
        # --- registrations and cancellations --------------------------------------------------
        # 22:30 UTC on 30 Sep is 00:30 on 1 Oct in summer time (+02:00): October, Q4.
        registration(A, "g01", "A1", P1, "2013-09-30T22:30:00+00:00"),
        registration(A, "g02", "A1", P2, "2013-10-20T10:00:00+02:00"),
        registration(B, "g03", "A2", P4, "2013-12-31T23:15:00+00:00"),  # 1 Jan 2014
        registration(B, "g04", "A2", P3, "2014-01-06T10:00:00+01:00"),
        registration(A, "g05", "A1", P5, "2014-01-09T16:00:00+01:00", R[5]),
        registration(B, "g06", "A3", P6, "2014-01-10T10:00:00+01:00"),  # not connection
        registration(A, "g07", "A1", P6, "2014-01-05T10:00:00+01:00"),
        registration(D, "g08", "A4", P7, "2014-02-10T10:00:00+01:00", R[1]),
        registration(D, "g09", "A4", P8, "2014-04-01T10:00:00+02:00", R[2]),
        registration(A, "g10", "A1", P2, "2013-11-01T00:10:00+01:00", R[8]),
        registration(A, "g11", "A1", P1, "2014-01-20T10:00:00+01:00"),
        cancellation(A, "g07", "A1", P6, "2014-01-13T09:00:00+01:00"),
        cancellation(B, "g06", "A3", P6, "2014-01-12T09:00:00+01:00"),  # not connection
        cancellation(A, "g11", "A1", P1, "2014-01-31T23:30:00+00:00"),  # 1 Feb in Amsterdam
        cancellation(B, "g04", "A2", P3, "2014-01-07T10:00:00+01:00"),
        # --- referrals --------------------------------------------------------------------------
        # R1: 3 Feb → registered 10 Feb → attended 20 Feb: converted after 17 days.
        referral(C, R[1], P7, "gp", ["emotional", "social"], "2014-02-03T09:00:00+01:00", to_org=D, to_activity="A4"),
        # Its "closed" arrives before its "accepted": the latest by time counts, not by arrival.
        status(C, R[1], P7, D, "accepted", "closed", "2014-03-25T10:00:00+01:00"),
        status(C, R[1], P7, D, "created", "accepted", "2014-02-04T10:00:00+01:00"),
        # R2: 3 Feb → first attended 10 Apr = 66 days: NOT converted. Accepted, then silent.
        referral(C, R[2], P8, "gp", ["social"], "2014-02-03T11:00:00+01:00", to_org=D, to_activity="A4"),
        status(C, R[2], P8, D, "created", "accepted", "2014-02-05T10:00:00+01:00"),
        # R3: to a service A provides itself (A is both sides), declined.
        referral(A, R[3], P4, "welfare-coach", ["emotional", "practical"], "2014-02-14T10:00:00+01:00", to_service="buddy-project", receiving=A),
        status(A, R[3], P4, A, "created", "declined", "2014-02-17T10:00:00+01:00"),
        # R4: 22:30 UTC on 31 March 2014 is 00:30 on 1 April (summer time since 30 March): Q2.
        referral(A, R[4], P2, "volunteer", ["social"], "2014-03-31T22:30:00+00:00", to_org=B, to_activity="A2"),
        # R5: 9 Jan → registered 9 Jan → no-show 14 Jan → attended 21 Jan: converted, 12 days.
        referral(C, R[5], P5, "poh-ggz", ["emotional"], "2014-01-09T15:00:00+01:00", to_org=A, to_activity="A1"),
        status(C, R[5], P5, A, "created", "accepted", "2014-01-10T09:00:00+01:00"),
        status(C, R[5], P5, A, "accepted", "closed", "2014-03-01T10:00:00+01:00"),
        # R6: New Year's Eve 23:30 UTC = 1 Jan 2014. Accepted, contacted, then silent.
        referral(A, R[6], P1, "welfare-coach", ["social"], "2013-12-31T23:30:00+00:00", to_org=B, to_activity="A2"),
        status(A, R[6], P1, B, "accepted", "contacted", "2014-01-05T10:00:00+01:00"),
        status(A, R[6], P1, B, "created", "accepted", "2014-01-02T10:00:00+01:00"),
        # R7: declined.
        referral(C, R[7], P3, "gp", ["health"], "2013-11-20T10:00:00+01:00", to_org=B, to_activity="A2"),
        status(C, R[7], P3, B, "created", "declined", "2013-11-22T10:00:00+01:00"),
        # R8: 22:30 UTC on 31 Oct is 23:30 in winter time: still October. Registered at 00:10,
        # attended at 00:30 on 1 Nov (x07): converted after 1 day; x06 (27 Oct) was before it.
        referral(C, R[8], P2, "district-nurse", ["emotional"], "2013-10-31T22:30:00+00:00", to_org=A, to_activity="A1"),
        status(C, R[8], P2, A, "created", "accepted", "2013-11-01T09:00:00+01:00"),
        status(C, R[8], P2, A, "accepted", "closed", "2013-12-01T10:00:00+01:00"),
        # --- trainings (person pseudonyms are per organisation: T1 at A and T1 at B are two) ----
        training(A, "t01", T1, "welfare-coach", "2013-06-12T14:00:00+02:00"),
        training(A, "t02", T2, "volunteer", "2013-12-31T23:30:00+00:00"),  # 1 Jan 2014
        training(C, "t03", T3, "gp", "2014-01-20T10:00:00+01:00"),
        training(C, "t04", T3, "gp", "2014-02-10T10:00:00+01:00"),  # the same person again
        training(B, "t05", T4, "volunteer", "2014-03-31T22:30:00+00:00"),  # 1 Apr 2014
        training(C, "t06", T5, "poh-ggz", "2014-05-15T10:00:00+02:00"),
        training(B, "t07", T1, "volunteer", "2014-01-25T10:00:00+01:00"),
        # --- survey measurements: (total, emotional, social, category) ---------------------------
        measurement(A, "m01", "djg11", "survey", P1, "2014-01-10T10:00:00+01:00", (5, 3, 2, "moderately_lonely")),
        measurement(A, "m02", "djg11", "survey", P1, "2014-01-25T10:00:00+01:00", (2, 1, 1, "not_lonely")),
        measurement(A, "m03", "djg11", "survey", ("delfgauw", "75+"), "2014-01-12T10:00:00+01:00", (10, 6, 4, "severely_lonely")),
        measurement(B, "m04", "djg11", "survey", P4, "2014-01-31T23:30:00+00:00", (7, 4, 3, "moderately_lonely")),
        measurement(B, "m05", "djg6", "survey", P3, "2014-01-20T10:00:00+01:00", (4, 2, 2, "moderately_lonely")),
        # djg6 with two emotional items unanswered: no total, no emotional score, social 3.
        measurement(C, "m06", "djg6", "survey", ("emerald", "65-74"), "2014-02-15T10:00:00+01:00", (None, None, 3, None)),
        measurement(C, "m07", "djg11", "survey", P8, "2014-03-10T10:00:00+01:00", (11, 6, 5, "very_severely_lonely")),
        measurement(A, "m08", "djg11", "survey", P2, "2013-12-31T23:30:00+00:00", (3, 2, 1, "moderately_lonely")),
        measurement(A, "m09", "djg11", "survey", ("delfgauw", "65-74"), "2014-01-18T10:00:00+01:00", (0, 0, 0, "not_lonely")),
        measurement(B, "m11", "djg11", "survey", P9, "2014-06-01T10:00:00+02:00", (4, 2, 2, "moderately_lonely")),
        measurement(A, "m12", "djg11", "survey", P1, "2014-11-05T10:00:00+01:00", (9, 5, 4, "severely_lonely")),
        # --- intake and follow-up pairs ---------------------------------------------------------
        measurement(C, "i1", "djg11", "intake", P7, "2014-02-03T09:30:00+01:00", (8, 5, 3, "moderately_lonely")),
        measurement(C, "f1", "djg11", "follow_up", P7, "2014-05-06T10:00:00+02:00", (2, 1, 1, "not_lonely")),
        measurement(C, "i2", "djg11", "intake", P8, "2014-02-03T11:30:00+01:00", (9, 5, 4, "severely_lonely")),
        measurement(C, "f2", "djg11", "follow_up", P8, "2014-05-20T10:00:00+02:00", (7, 4, 3, "moderately_lonely")),
        measurement(C, "i3", "djg11", "intake", P5, "2014-01-09T15:30:00+01:00", (5, 3, 2, "moderately_lonely")),
        measurement(C, "f3", "djg11", "follow_up", P5, "2014-03-12T10:00:00+01:00", (6, 4, 2, "moderately_lonely")),
        measurement(A, "i4", "djg6", "intake", P1, "2013-12-20T10:00:00+01:00", (3, 2, 1, "moderately_lonely")),
        measurement(A, "f4", "djg6", "follow_up", P1, "2014-01-31T23:30:00+00:00", (1, 1, 0, "not_lonely")),
        measurement(A, "f5", "djg11", "follow_up", P6, "2014-04-02T10:00:00+02:00", (4, 2, 2, "moderately_lonely")),
        # ==== 2015 ===============================================================================
        # --- reclassified on 1 May 2015 (the moment the change was accepted) -----------------------
        activity(A, "A1", "learning", True, version=2, updated="2015-05-01T00:00:00+02:00"),
        activity(D, "A4", "sport", False, version=2, neighbourhood="pijnacker-noord", updated="2015-05-01T00:00:00+02:00"),
        # --- sessions: P10's first on 6 Jan, reported twice; 3 Feb; 6 April is day 90 --------------
        attendance(A, "x20", "A1", P10, "2015-01-06T10:00:00+01:00", d(2015, 1, 6)),
        attendance(A, "x21", "A1", P10, "2015-01-06T10:00:00+01:00", d(2015, 1, 6)),
        attendance(A, "x22", "A1", P10, "2015-02-03T10:00:00+01:00", d(2015, 2, 3)),
        attendance(A, "x23", "A1", P10, "2015-04-06T10:00:00+02:00", d(2015, 4, 6)),
        attendance(A, "x24", "A1", P1, "2015-04-14T10:00:00+02:00", d(2015, 4, 14)),  # meeting
        attendance(A, "x25", "A1", P1, "2015-05-12T10:00:00+02:00", d(2015, 5, 12)),  # learning
        attendance(A, "x26", "A1", P2, "2015-05-12T10:00:00+02:00", d(2015, 5, 12)),  # learning
        attendance(D, "w05", "A4", P7, "2015-04-16T09:30:00+02:00", d(2015, 4, 16)),  # sport
        attendance(D, "w06", "A4", P7, "2015-05-14T09:30:00+02:00", d(2015, 5, 14)),  # not S2
        attendance(D, "w07", "A4", P8, "2015-05-14T09:30:00+02:00", d(2015, 5, 14), "no_show"),
        registration(D, "g12", "A4", P8, "2015-04-20T10:00:00+02:00"),  # connection then
        registration(D, "g13", "A4", P8, "2015-05-20T10:00:00+02:00"),  # no longer
        cancellation(D, "g12", "A4", P8, "2015-05-25T10:00:00+02:00"),  # no longer either
        # --- colliding ids: C and A both refer to B with id R9 --------------------------------------
        referral(C, R[9], P11, "gp", ["social"], "2015-02-02T09:00:00+01:00", to_org=B, to_activity="A2"),
        referral(A, R[9], P9, "welfare-coach", ["social"], "2015-02-02T10:00:00+01:00", to_org=B, to_activity="A2"),
        # B names C's R9: it converts C's (2 days), never A's.
        registration(B, "g14", "A2", P11, "2015-02-03T10:00:00+01:00", R[9], referrer=C),
        attendance(B, "y10", "A2", P11, "2015-02-04T19:00:00+01:00", d(2015, 2, 4)),
        # B names R9 alone although it holds two: ambiguous, converts neither.
        registration(B, "g15", "A2", P9, "2015-02-03T11:00:00+01:00", R[9]),
        attendance(B, "y11", "A2", P9, "2015-02-04T19:00:00+01:00", d(2015, 2, 4)),
        # --- a forged conversion: C refers P6 to A's buddy project; D registers P6 naming it ------
        referral(C, R[10], P6, "gp", ["social"], "2015-02-09T09:00:00+01:00", to_service="buddy-project", receiving=A),
        registration(D, "g16", "A4", P6, "2015-02-10T10:00:00+01:00", R[10], referrer=C),
        attendance(D, "w08", "A4", P6, "2015-02-12T09:30:00+01:00", d(2015, 2, 12)),
        # --- a self-acceptance (an event from before the rule): C accepts its referral to B -------
        referral(C, R[11], P4, "gp", ["social"], "2015-02-16T09:00:00+01:00", to_org=B, to_activity="A2"),
        status(C, R[11], P4, C, "created", "accepted", "2015-02-17T10:00:00+01:00"),
        # --- equal `at`: B accepts and closes R12 at the same moment; the close arrives first -------
        referral(C, R[12], P3, "gp", ["social"], "2015-02-23T09:00:00+01:00", to_org=B, to_activity="A2"),
        status(C, R[12], P3, B, "accepted", "closed", "2015-02-24T10:00:00+01:00", sequence=902),
        status(C, R[12], P3, B, "created", "accepted", "2015-02-24T10:00:00+01:00", sequence=901),
        # --- a training that is not a signal training (D's only one) ------------------------------
        training(D, "t08", T6, "volunteer", "2015-01-10T10:00:00+01:00", code="first-aid"),
        # --- 6-item survey: emotional 2 of 3 is lonely on the short scale -------------------------
        measurement(A, "m20", "djg6", "survey", ("delfgauw", "65-74"), "2015-03-10T10:00:00+01:00", (3, 2, 1, "moderately_lonely")),
        measurement(A, "m21", "djg11", "survey", P10, "2015-03-12T10:00:00+01:00", (4, 2, 2, "moderately_lonely")),
    ]
    # fmt: on
    second = [
        # Late: an October 2013 session reported after the 2014 ones. P3's first session moves
        # from 1 Jan 2014 to 15 Oct 2013.
        attendance(A, "x15", "A1", P3, "2013-10-15T10:00:00+02:00", d(2013, 10, 15)),
        x09,  # the same event (same id) again
        activity(B, "A2", "culture", False, version=1),  # stale: version 1 after version 2
    ]
    return first, second


def first_attendances(events: Sequence[CloudEvent[Any]]) -> dict[tuple[str, str], tuple[str, date, date | None]]:  # fmt: skip
    """Every referral's (role, day, first attendance) by the rule of shared/referral_matching.py
    — the rule the referrals service records ``referral.first_attendance`` by — computed in
    Python from the scenario's events, to hold the metrics SQL to the same rule."""
    referrals: dict[tuple[str, str], ReferralCreated] = {}
    naming: list[NamingRegistration] = []
    attended: dict[tuple[str, str, str], list[date]] = {}
    for event in events:
        data = event.data
        if isinstance(data, ReferralCreated):
            referrals[(data.organisation_id, data.referral_id)] = data
        elif isinstance(data, RegistrationCreated) and data.referral_id is not None:
            naming.append(
                NamingRegistration(
                    data.organisation_id, data.registration_id, data.activity_id,
                    data.participant.id, local_date(data.registered_at), data.referral_id,
                    data.referring_organisation_id,
                )
            )  # fmt: skip
        elif isinstance(data, AttendanceRecorded) and data.status == "attended":
            key = (data.organisation_id, data.activity_id, data.participant.id)
            attended.setdefault(key, []).append(data.session_date)
    senders: dict[tuple[str | None, str], set[str]] = {}
    for (referrer, referral_id), r in referrals.items():
        senders.setdefault((r.receiving_organisation_id, referral_id), set()).add(referrer)
    out = {}
    for (referrer, referral_id), r in referrals.items():
        made = local_date(r.created_at)
        receiver = r.receiving_organisation_id
        days = [
            day
            for g in naming
            if names(g, referrer, referral_id, receiver, senders[(receiver, referral_id)])
            for day in attended.get(g.attendee, [])
            if day >= counts_from(g, made) and within_window(made, day)
        ]
        out[(referrer, referral_id)] = (r.referrer_role, made, min(days, default=None))
    return out


SHARE = object()  # A, B and C have trained staff: 3 / the partners registered at the period's end


async def partners_at(pool: asyncpg.Pool, end: date) -> int:
    """Partners registered on ``end``: the scenario's and any another test registered."""
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM platform.partners WHERE joined <= $1 "
            "AND (left_on IS NULL OR left_on > $1)",
            end,
        )
    )


def s2row(unique, new, attendances, no_shows, rate, regs, cancels, retained, growth):
    return {
        "participants_unique": unique,
        "participants_new": new,
        "attendances": attendances,
        "no_shows": no_shows,
        "attendance_rate": rate,
        "registrations": regs,
        "cancellations": cancels,
        "retained": retained,
        "growth_vs_baseline": growth,
    }


def s1row(measurements, lonely, severe, emotional, social):
    return {
        "measurements": measurements,
        "prevalence_lonely": lonely,
        "prevalence_severe": severe,
        "prevalence_emotional": emotional,
        "prevalence_social": social,
    }


def s3row(
    referrals, accepted, converted, acceptance, conversion, days, *, contacted=None,
    retained=None, contact_days=None,
):  # fmt: skip
    """The S3 referral figures; the funnel's contacted, referrals_retained and the median days
    to the first contact are keywords (None: nobody)."""
    return {
        "referrals": referrals,
        "accepted": accepted,
        "contacted": contacted,
        "converted": converted,
        "referrals_retained": retained,
        "referral_acceptance_rate": acceptance,
        "referral_conversion": conversion,
        "days_to_first_contact": contact_days,
        "days_to_first_attendance": days,
    }


# The figures without disclosure control (None: nothing, i.e. zero, or a rate or median of no
# cases). Reasoning per figure in the comments.
#
# S2 connection sessions (A1, A2, A4) attended, by Amsterdam date:
#   2013: 01-10 P9, 01-10 P1, 01-17 P2 | 10-01 P1, 10-15 P3 (late), 10-27 P1, 10-27 P2, 11-01 P2
#   2014: 01-01 P3, 01-08 P4, 01-08 P3, 01-14 P1, 01-15 P4, 01-21 P5 | 02-04 P5, 02-12 P4,
#         02-20 P7 | 03-06 P7, 03-20 P7 | 04-10 P8, 04-22 P5
#   no-shows: 01-14 P5, 01-21 P2, 01-29 P4 (z01-z03 at A3 never count)
# First ever session: P9, P1 2013-01-10; P2 2013-01-17; P3 2013-10-15; P4 2014-01-08;
#   P5 2014-01-21; P7 2014-02-20; P8 2014-04-10. Retained (3 sessions within 90 days of the
#   first): P3 (10-15, 01-01 = day 78, 01-08 = day 85), P4 (01-08, 01-15, 02-12), P7; not P5
#   (third session on day 91), not P1, P2, P8, P9.
# Registrations (connection only, Amsterdam date): 2013-10-01 g01, 10-20 g02, 11-01 g10;
#   2014-01-01 g03, 01-05 g07, 01-06 g04, 01-09 g05, 01-20 g11, 02-10 g08, 04-01 g09.
# Cancellations: 2014-01-07 k(g04), 01-13 k(g07), 02-01 k(g11).
# Referrals: 2013-10-31 R8, 11-20 R7; 2014-01-01 R6, 01-09 R5, 02-03 R1, R2, 02-14 R3,
#   04-01 R4. Accepted: R1, R2, R5, R6, R8; declined R3, R7. Converted: R8 (1 day), R5 (12),
#   R1 (17); R2 after 66 days is not.
# Trainings, distinct (organisation, person), by end of period: 2013: A/T1; +2014-01-01 A/T2,
#   01-20 C/T3, 01-25 B/T1; (02-10 C/T3 again); +04-01 B/T4; +05-15 C/T5.
# Survey measurements, the latest per known participant, by Amsterdam date (total e s):
#   2014-01: m02 P1 (2 1 1, not m01), m03 anon (10 6 4), m05 P3 djg6 (4 2 2), m08 P2 (3 2 1,
#   1 Jan), m09 anon (0 0 0). February adds m04 P4 (7 4 3, 1 Feb) and m06 anon djg6 (social 3
#   only); March m07 P8 (11 6 5); later m11 P9 (4 2 2) and m12 P1 (9 5 4, replacing m02).
#   Lonely: djg11 ≥ 3, djg6 ≥ 2; severe: djg11 ≥ 9, djg6 ≥ 5; emotional/social subscale ≥ 3
#   for both versions (domain.md §5).
# Intake → follow-up (total): P1 djg6 3 → 1 on 1 Feb (better category), P5 5 → 6 on 12 Mar
#   (same category), P7 8 → 2 on 6 May (better), P8 9 → 7 on 20 May (better); P6's follow-up
#   has no intake.
def roles(**known: int) -> dict[str, int | None]:
    """Trained people per role: every referrer role of the reference list (underscores for
    dashes in the names), None where nobody."""
    found = {name.replace("_", "-"): n for name, n in known.items()}
    return {role: found.get(role) for role in sorted(load_reference().referrer_roles)}


def signals(**known: int) -> dict[str, int | None]:
    return {signal: known.get(signal) for signal in sorted(load_reference().signals)}


EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "2014-01": {
        "s1": {
            # m02, m03, m05, m08, m09 = 5; lonely m03, m05, m08 = 3/5; severe m03 = 1/5;
            # emotional: m03 (djg11 ≥ 3) and m05 (djg6 ≥ 2) = 2/5; social likewise 2/5.
            **s1row(5, 0.6, 0.2, 0.4, 0.4),
            # no follow-up dated in January (f4 is 1 Feb in Amsterdam)
            "referral_outcome": {"pairs": None, "mean_change": None, "improved_share": None},
        },
        # unique P3, P4, P1, P5 = 4; new P4, P5 = 2 (P3 began in 2013); 6 attended, 3 no-shows:
        # 6/9; registrations g03, g07, g04, g05, g11 = 5; cancellations 2; retained P4 = 1;
        # growth 4 / 3 (2013-01: P9, P1, P2) - 1.
        "s2": s2row(4, 2, 6, 3, 0.6667, 5, 2, 1, 0.3333),
        "s3": {
            # R6, R5 = 2, both accepted: 2/2; converted R5 = 1: 1/2, after 12 days. The funnel:
            # contacted R6 (recorded on 5 Jan: 4 days) and R5 (no recorded contact; its first
            # attendance on day 12 is the first contact): median 8; retained: R5's third session
            # is on day 91, so none.
            **s3row(2, 2, 1, 1.0, 0.5, 12.0, contacted=2, contact_days=8.0),
            "people_trained": 4,  # A/T1, A/T2, C/T3, B/T1
            "organisations_with_trained_staff": 3,  # A, B, C
            "organisations_with_trained_staff_share": SHARE,  # A B C of the partners A B C D
            # every role and signal of the reference lists is a row, also the empty ones
            "people_trained_by_role": roles(gp=1, volunteer=2, welfare_coach=1),
            "referrals_by_signal": signals(emotional=1, social=1),  # R5; R6
            # open and silent: R2 (accepted), R4 (created), R6 (contacted); of 2015: R9 of C and
            # of A, R10, R11 (its self-acceptance does not count). Not R12: closed, at the same
            # `at` as its acceptance but later in arrival order.
            "referrals_overdue": 7,
        },
    },
    "2014-Q1": {
        "s1": {
            # + m04, m07: 7 with a total; lonely m03 m04 m05 m07 m08 = 5/7; severe m03 m07 = 2/7;
            # emotional m03 m04 m07 + m05 (djg6) = 4/7; social m03 m04 m07 + m06 m05 (djg6) = 5
            # of 8 with a social score.
            **s1row(7, 0.7143, 0.2857, 0.5714, 0.625),
            # P1 (3 → 1, better), P5 (5 → 6, same): mean (-2 + 1) / 2, improved 1/2
            "referral_outcome": {"pairs": 2, "mean_change": -0.5, "improved_share": 0.5},
        },
        # unique P3 P4 P1 P5 P7 = 5; new P4 P5 P7 = 3; 11 attended / 14; registrations + g08 = 6;
        # cancellations 3; retained P4, P7 = 2; growth 5 / 3 (2013-Q1: P9 P1 P2) - 1.
        "s2": s2row(5, 3, 11, 3, 0.7857, 6, 3, 2, 0.6667),
        "s3": {
            # R6 R5 R1 R2 R3 = 5; accepted 4 of 5 decided; converted R5 R1 = 2/5; median(12, 17)
            # contacted R6 (4 days) R5 (12) R1 (17, at its first attendance): median 12; R2 was
            # accepted but never contacted (its attendance came after 66 days); retained R1
            # (P7: 20 Feb, 6 Mar, 20 Mar).
            **s3row(5, 4, 2, 0.8, 0.4, 14.5, contacted=3, retained=1, contact_days=12.0),
            "people_trained": 4,  # C/T3's second training adds no person; B/T4 is April
            "organisations_with_trained_staff": 3,
            "organisations_with_trained_staff_share": SHARE,  # A B C of the partners A B C D
            "people_trained_by_role": roles(gp=1, volunteer=2, welfare_coach=1),
            # emotional R5 R1 R3; social R6 R1 R2; practical R3
            "referrals_by_signal": signals(emotional=3, practical=1, social=3),
            "referrals_overdue": 7,
        },
    },
    "2014": {
        "s1": {
            # m12 (P1's latest) m03 m04 m05 m07 m08 m09 m11 = 8; lonely all but m09 = 7/8;
            # severe m12 m03 m07 = 3/8; emotional m12 m03 m04 m07 + m05 (djg6) = 5/8;
            # social m12 m03 m04 m07 + m06 m05 (djg6) = 6 of 9.
            **s1row(8, 0.875, 0.375, 0.625, 0.6667),
            # changes -2 (P1), +1 (P5), -6 (P7), -2 (P8): mean -9/4; improved P1 P7 P8 = 3/4
            "referral_outcome": {"pairs": 4, "mean_change": -2.25, "improved_share": 0.75},
        },
        # unique + P8 = 6; new P4 P5 P7 P8 = 4; 13 attended / 16; registrations + g09 = 7;
        # cancellations 3; retained P4 P7 = 2; growth 6 / 4 (2013: P9 P1 P2 P3) - 1.
        "s2": s2row(6, 4, 13, 3, 0.8125, 7, 3, 2, 0.5),
        "s3": {
            # + R4 = 6; accepted 4 of 5 decided; converted 2/6; median(12, 17); funnel as Q1
            **s3row(6, 4, 2, 0.8, 0.3333, 14.5, contacted=3, retained=1, contact_days=12.0),
            "people_trained": 6,  # + B/T4, C/T5
            "organisations_with_trained_staff": 3,
            "organisations_with_trained_staff_share": SHARE,  # A B C of the partners A B C D
            # gp C/T3; poh-ggz C/T5; volunteer A/T2, B/T1, B/T4; welfare-coach A/T1
            "people_trained_by_role": roles(gp=1, poh_ggz=1, volunteer=3, welfare_coach=1),
            # emotional R5 R1 R3; social R6 R1 R2 R4; practical R3
            "referrals_by_signal": signals(emotional=3, practical=1, social=4),
            "referrals_overdue": 7,
        },
    },
}
GROWTH_BASELINE = {"2014-01": 3, "2014-Q1": 3, "2014": 4}
PREVALENCE_BASELINES = {  # the programme's figures (baseline.json), beside each prevalence
    "prevalence_lonely": 0.44,
    "prevalence_severe": 0.09,
    "prevalence_emotional": 0.26,
    "prevalence_social": 0.23,
}

NONE_S1 = s1row(None, None, None, None, None)
NONE_S2 = s2row(*[None] * 9)
NONE_S3 = s3row(*[None] * 6)

# Breakdowns of 2014. Keys not listed have nothing: every figure None.
BY_NEIGHBOURHOOD_2014 = {
    # S1: m12 m03 m08 m09 → lonely 3/4, severe m12 m03 2/4, emotional 2/4, social 2/4.
    # S2: P1 attended once (x09); no-show x11 (P2): 1/2; registration g11 and its cancellation
    #     (1 Feb); growth 1 / 2 (2013: P1, P2) - 1.
    "delfgauw": {
        "s1": s1row(4, 0.75, 0.5, 0.5, 0.5),
        "s2": s2row(1, None, 1, 1, 0.5, 1, 1, None, -0.5),
    },
    # S1: m04 (7 4 3), m05 (djg6 4 2 2): both lonely, neither severe, both emotionally and
    #     socially lonely (djg6 cut-off 2).
    # S2: P3 (x08, y02) and P4 (y01, y03, y05) = 5 attended, no-show y04: 5/6; new P4; g03, g04;
    #     cancelled g04; retained P4; growth 2 / 1 (2013: P3) - 1.
    "pijnacker-noord": {
        "s1": s1row(2, 1.0, 0.0, 1.0, 1.0),
        "s2": s2row(2, 1, 5, 1, 0.8333, 2, 1, 1, 1.0),
    },
    # S1: m11 (4 2 2) the one total: lonely, not severe, not emotionally lonely; social scores
    #     m11 (2) and m06 (3): 1/2.
    # S2: P5 x12 x13 x14, no-show x10: 3/4; new P5 (not retained: day 91); registration g05;
    #     growth 1 / 1 (2013: P9) - 1.
    "emerald": {
        "s1": s1row(1, 1.0, 0.0, 0.0, 0.5),
        "s2": s2row(1, 1, 3, 1, 0.75, 1, None, None, 0.0),
    },
    # S1: m07 (11 6 5). S2: P7 ×3, P8 ×1 = 4/4; both new; g08, g09; retained P7; nobody there
    #     in 2013: no growth.
    "nootdorp-oost": {
        "s1": s1row(1, 1.0, 1.0, 1.0, 1.0),
        "s2": s2row(2, 2, 4, None, 1.0, 2, None, 1, None),
    },
    # S2: P6 only at A3 (not connection); registered at A1 (g07) and cancelled.
    "koningshof": {"s1": NONE_S1, "s2": s2row(None, None, None, None, None, 1, 1, None, None)},
}
BY_AGE_BAND_2014 = {
    # S1: m12 (9 5 4) m07 (11 6 5) m09 (0 0 0) + m06 (social 3): lonely 2/3, severe 2/3,
    #     emotional 2/3, social 3/4. S2: P1 x09, P5 ×3, P8 w04 = 5 attended, no-show x10: 5/6;
    #     new P5, P8; registrations g11 g05 g09; cancelled g11; growth 3 / 1 (2013: P1) - 1.
    "65-74": {
        "s1": s1row(3, 0.6667, 0.6667, 0.6667, 0.75),
        "s2": s2row(3, 2, 5, 1, 0.8333, 3, 1, None, 2.0),
    },
    # S1: m03 (10 6 4), m08 (3 2 1). S2: P7 ×3 (new, retained), no-show x11 (P2): 3/4; g08;
    #     growth 1 / 1 (2013: P2) - 1.
    "75+": {
        "s1": s1row(2, 1.0, 0.5, 0.5, 0.5),
        "s2": s2row(1, 1, 3, 1, 0.75, 1, None, 1, 0.0),
    },
    # S1: m05 (djg6 4 2 2), m11 (djg11 4 2 2): lonely both; emotionally and socially lonely
    #     m05 only (2 is the 6-item cut-off, not the 11-item one).
    # S2: P3 x08 y02 = 2/2; registrations g04 (P3), g07 (P6): 2, both cancelled; growth 1 / 2
    #     (2013: P9, P3) - 1.
    "26-64": {
        "s1": s1row(2, 1.0, 0.0, 0.5, 0.5),
        "s2": s2row(1, None, 2, None, 1.0, 2, 2, None, -0.5),
    },
    # S1: m04 (7 4 3). S2: P4 y01 y03 y05, no-show y04: 3/4; new and retained P4; g03.
    "16-25": {
        "s1": s1row(1, 1.0, 0.0, 1.0, 1.0),
        "s2": s2row(1, 1, 3, 1, 0.75, 1, None, 1, None),
    },
}
BY_CATEGORY_2014 = {
    # A1: P3 P1 P5; x08 x09 x12 x13 x14 = 5, no-shows x10 x11: 5/7; new P5; g05 g07 g11;
    # cancelled g07 g11; growth 3 / 4 (2013 at A1: P9 P1 P2 P3) - 1.
    "meeting": s2row(3, 1, 5, 2, 0.7143, 3, 2, None, -0.25),
    # A2 (version 2): P4 P3; y01 y02 y03 y05 = 4, no-show y04: 4/5; new and retained P4; g03
    # g04; cancelled g04; no learning in 2013.
    "learning": s2row(2, 1, 4, 1, 0.8, 2, 1, 1, None),
    # A4: P7 P8; 4/4; both new; g08 g09; retained P7.
    "sport": s2row(2, 2, 4, None, 1.0, 2, None, 1, None),
    # A3 is digital but not aimed at connection; A2's stale version 1 said culture.
    "digital": NONE_S2,
    "culture": NONE_S2,
}
BY_REFERRER_ROLE_2014 = {
    # R1 (converted after 17 days, retained), R2 (66 days, never contacted)
    "gp": s3row(2, 2, 1, 1.0, 0.5, 17.0, contacted=1, retained=1, contact_days=17.0),
    # R3 declined, R6 accepted and contacted after 4 days
    "welfare-coach": s3row(2, 1, None, 0.5, 0.0, None, contacted=1, contact_days=4.0),
    "volunteer": s3row(1, None, None, None, 0.0, None),  # R4, open
    # R5, converted (its first contact) after 12 days
    "poh-ggz": s3row(1, 1, 1, 1.0, 1.0, 12.0, contacted=1, contact_days=12.0),
    "district-nurse": NONE_S3,  # R8 is 2013
}


async def k2_totals_hold(raw: IndicatorService, k2: IndicatorService) -> None:
    """The live municipality totals of 2014 at k = 2, read as a reader reads them (every period
    and the trend): every figure shown is the true one and rests on at least k people, the
    answer of the full grid decides every total as the totals alone do (one decision per cell,
    whichever grid), and the audit finds nothing hidden that the rest gives away. (A release's
    exact check of every breakdown costs seconds per year of data: the audit test of the
    whole pipeline does that, tests/integration/test_disclosure_audit_ci.py.)"""
    read: list[Any] = []
    shown = 0
    for label in year_periods(2014):
        period = parse_period(label)
        live = await k2.live(period)
        read += from_indicators(live, f"live {label}")
        truth = dict(all_figures(await raw.compute(period)))
        for path, fig in all_figures(live):
            if not fig["suppressed"]:
                assert fig["value"] == truth[path]["value"], (label, path)
                shown += 1
        full = await k2.compute(period)
        assert {sg: published(full[sg]) for sg in ("s1", "s2")} == {
            sg: published(live[sg]) for sg in ("s1", "s2")
        }, label
    months = [parse_period(m) for m in year_periods(2014)[5:]]
    read += from_trend({"months": await k2.trend(months)}, "trend 2014")
    counts = {name for name, spec in FIGURES.items() if spec.published}
    small = [p for p in read if p.figure in counts and p.value is not None and p.value < 2]
    assert small == [], small
    assert shown >= 20, "figures worth auditing are shown"
    checked = audit(read, 2014, 2)
    assert checked.ok, checked.describe()


@pytest.fixture
async def scenario_schema(pool: asyncpg.Pool, make_partner: Any) -> AsyncIterator[str]:
    from shared.auth import revoke_key
    from shared.partners import leave, register

    async with pool.acquire() as conn:
        for org in (A, B, C, D):
            await make_partner(scopes="activities", organisation_id=org)
            await register(conn, org, f"Partner {org}", date(2013, 1, 1))
        await leave(conn, D, date(2015, 6, 1))
        # Not partners: a test organisation with a write key (revoked again), and a reader. Both
        # used to count in the share of partners with trained staff.
        tester = await make_partner(organisation_id=f"scn{RUN_ID}-test-org")
        await revoke_key(conn, tester.key_id)
        await make_partner(scopes="indicators", organisation_id=f"scn{RUN_ID}-coalitie")
    schema = await create_metrics_schema(pool)
    yield schema
    await drop_schema(pool, schema)


def service(
    pool: asyncpg.Pool,
    schema: str,
    k: int,
    baseline_year: int = 2013,
    *,
    control: Control = "full",
) -> IndicatorService:
    """The indicator service on ``schema``; ``control="off"``: without disclosure control."""
    baseline = dataclasses.replace(load_baseline(), baseline_year=baseline_year)
    return IndicatorService(
        pool, baseline, load_reference(), k=k, schema=schema, cache_seconds=0, control=control
    )


def cells(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {cell["key"]: cell for cell in result["breakdown"]}


async def test_every_indicator_of_the_scenario_by_hand(
    pool: asyncpg.Pool, kafka: str, topic_prefix: str, scenario_schema: str
) -> None:
    schema = scenario_schema
    await ensure_topics(KAFKA, topic_prefix, partitions=4)
    first, second = scenario()
    # Without disclosure control: the query layer's figures, checked by hand below.
    k1 = service(pool, schema, 1, control="off")
    k2 = service(pool, schema, 2)
    k10 = service(pool, schema, MetricsSettings().suppression_k)
    assert k10.k == 10

    async def k1_total(label: str, subgoal: str, name: str) -> Any:
        return (await k1.compute(parse_period(label)))[subgoal][name]["value"]

    async with consumers(pool, schema, topic_prefix, f"scn-{uuid.uuid4().hex[:8]}") as (batch,):
        await publish(first, topic_prefix)
        await wait_applied(pool, schema, first)

        # Before the late event: October 2013 has x04, x05, x06 (P1, P1, P2); P3 is new in
        # January 2014 (with P4 and P5) and not yet new in Q4 2013.
        assert await k1_total("2013-10", "s2", "attendances") == 3
        assert await k1_total("2013-10", "s2", "participants_unique") == 2
        assert await k1_total("2014-01", "s2", "participants_new") == 3
        assert await k1_total("2013-Q4", "s2", "participants_new") is None  # 0
        assert await k1_total("2013-Q4", "s2", "retained") is None  # 0

        await publish(second, topic_prefix)
        # The stale version changes no fact, so it is not in the log of applied events: it is
        # seen as one of the two recognised below.
        await wait_applied(pool, schema, second[:2])

        async def duplicates_seen() -> bool:
            return batch.duplicates >= 2

        await eventually(duplicates_seen, what="the redelivered and the stale event recognised")

    # The duplicate was recognised, and so was the stale version (an id of its own, but a
    # version the facts hold already: it changes nothing); one event of the second delivery was
    # new. The log of applied events holds each event that changed the facts, once.
    assert batch.duplicates == 2
    distinct = len({e.id for e in first + second})
    assert distinct == len(first) + 2
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".processed_events') == (
        distinct - 1
    )
    # Every version of A2 is kept, each in force from its moment; the late duplicate of version
    # 1 changed nothing.
    rows = await pool.fetch(
        f'SELECT version, category, aimed_at_connection, valid_from, valid_to FROM "{schema}".activity_validity '
        "WHERE organisation_id = $1 AND activity_id = 'A2' ORDER BY version",
        B,
    )
    assert [(r["version"], r["category"], r["aimed_at_connection"]) for r in rows] == [
        (1, "culture", False),
        (2, "learning", True),
    ]
    assert rows[0]["valid_to"] == rows[1]["valid_from"] == at("2013-12-01T09:00:00+01:00")

    # ---- totals for a month, a quarter and a year ------------------------------------------------
    for label, expected in EXPECTED.items():
        result = await k1.compute(parse_period(label))
        assert (result["period"], result["k"]) == (label, 1)
        assert (
            result["freshness"]["events_applied"] == distinct - 1
        )  # the stale version changed nothing
        share = round(3 / await partners_at(pool, parse_period(label).end), 4)
        for subgoal in ("s1", "s2", "s3"):
            want = {n: share if v is SHARE else v for n, v in expected[subgoal].items()}
            assert published(result[subgoal]) == want, (label, subgoal)
        assert result["s2"]["growth_vs_baseline"]["baseline"] == GROWTH_BASELINE[label]
        for name, baseline in PREVALENCE_BASELINES.items():
            assert result["s1"][name]["baseline"] == baseline
        for path, fig in all_figures(result):
            assert fig["suppressed"] is (fig["value"] is None), path

    # ---- the late event, the period boundaries and DST -------------------------------------------
    boundary = {
        # October 2013: x04, x05 and x06 (both 02:30s of the DST night), x15 (late) = 4,
        # of P1, P2, P3; September has no registration: g01 (30 Sep 22:30 UTC) is 1 Oct.
        ("2013-09", "s2", "registrations"): None,
        ("2013-10", "s2", "registrations"): 2,
        ("2013-10", "s2", "attendances"): 4,
        ("2013-10", "s2", "participants_unique"): 3,
        ("2013-10", "s2", "participants_new"): 1,  # P3, thanks to the late event
        ("2013-10", "s2", "retained"): 1,  # P3: 15 Oct, 1 Jan, 8 Jan
        ("2013-10", "s3", "referrals"): 1,  # R8 at 23:30 on 31 Oct (winter time)
        ("2013-10", "s3", "converted"): 1,
        ("2013-10", "s3", "days_to_first_attendance"): 1.0,
        ("2013-10", "s3", "contacted"): 1,  # R8: its first attendance
        ("2013-10", "s3", "referrals_retained"): None,  # P2's next session is a 2014 no-show
        # 2015: the funnel counts a referral in every stage up to the furthest it reached. C's
        # R9 was converted (P11, 2 days) without a recorded acceptance or contact: accepted
        # and contacted too. With R12 (accepted by B) 2 accepted; R11's self-acceptance and
        # R10's forged conversion count nowhere; A's R9 (ambiguous registration) neither.
        ("2015-02", "s3", "referrals"): 5,
        ("2015-02", "s3", "accepted"): 2,
        ("2015-02", "s3", "contacted"): 1,
        ("2015-02", "s3", "converted"): 1,
        ("2015-02", "s3", "days_to_first_contact"): 2.0,
        ("2015-02", "s3", "referrals_retained"): None,
        ("2013-11", "s2", "attendances"): 1,  # x07: 31 Oct 23:30 UTC
        ("2013-11", "s3", "referrals"): 1,  # R7
        ("2013-12", "s2", "attendances"): None,  # x08 (31 Dec 23:30 UTC) is 1 January
        ("2013-12", "s3", "people_trained"): 1,  # t02 (31 Dec 23:30 UTC) is 1 January
        ("2013-12", "s1", "measurements"): None,  # m08 likewise
        ("2014-01", "s1", "measurements"): 5,
        ("2014-01", "s2", "cancellations"): 2,
        ("2014-02", "s2", "cancellations"): 1,  # g11 cancelled 31 Jan 23:30 UTC = 1 Feb
        ("2014-02", "s1", "measurements"): 1,  # m04 (31 Jan 23:30 UTC); m06 has no total
        ("2014-02", "s1", "prevalence_social"): 1.0,  # m04 and m06: social 3 and 3
        ("2014-01", "s1", "referral_outcome"): None,
        ("2014-03", "s3", "referrals"): None,  # R4 (31 Mar 22:30 UTC) is 1 April in summer time
        ("2014-04", "s3", "referrals"): 1,
        ("2014-03", "s3", "people_trained"): 4,
        ("2014-04", "s3", "people_trained"): 5,  # t05 (31 Mar 22:30 UTC) likewise
        ("2013-Q4", "s2", "participants_new"): 1,
        ("2013-Q4", "s2", "attendances"): 5,  # x04 x15 x05 x06 x07; not x08
        ("2013", "s2", "participants_unique"): 4,  # P9 P1 P2 P3
        ("2013", "s2", "attendances"): 8,
        ("2013", "s2", "retained"): 1,  # P3
        ("2013", "s2", "growth_vs_baseline"): 0.0,  # the baseline year against itself
        ("2013", "s3", "referrals"): 2,  # R8, R7
        ("2013", "s3", "referral_acceptance_rate"): 0.5,  # R8 accepted, R7 declined
        ("2013", "s3", "people_trained"): 1,  # A/T1
    }
    for (label, subgoal, name), value in boundary.items():
        got = (await k1.compute(parse_period(label)))[subgoal][name]
        if name == "referral_outcome":
            got = got["pairs"]
        assert got["value"] == value, (label, subgoal, name)
    # ---- conversion: the metrics SQL and shared/referral_matching.py agree ------------------------
    # The rule is written twice (docs/disclosure.md, "The S3 referral funnel"): in Python for the
    # referrals service's `referral.first_attendance`, in SQL for the figures. Per year, in total
    # and by referrer role, the converted referrals and their median days agree.
    firsts = first_attendances(first + second)
    assert sum(f is not None for _, _, f in firsts.values()) == 4  # R8, R5, R1, C's R9
    for year in ("2013", "2014", "2015"):
        total = await k1.compute(parse_period(year))
        roles_of_year = cells(await k1.compute(parse_period(year), "referrer_role"))
        for role, s3 in [(None, total["s3"])] + [(k, c["s3"]) for k, c in roles_of_year.items()]:
            days = sorted(
                (f - made).days
                for r, made, f in firsts.values()
                if f is not None and str(made.year) == year and role in (None, r)
            )
            assert s3["converted"]["value"] == (len(days) or None), (year, role)
            median = statistics.median(days) if days else None
            assert s3["days_to_first_attendance"]["value"] == median, (year, role)

    outcome = (await k1.compute(parse_period("2014-02")))["s1"]["referral_outcome"]
    assert published(outcome) == {"pairs": 1, "mean_change": -2.0, "improved_share": 1.0}

    # The dashboard's monthly trend: unique P1 P3 P2 / P2 / - / P3 P4 P1 P5; new P3 / - / - / P4
    # P5.
    months = [parse_period(m) for m in ("2013-10", "2013-11", "2013-12", "2014-01")]
    assert [
        (m["period"], m["participants_unique"]["value"], m["participants_new"]["value"])
        for m in await k1.trend(months)
    ] == [("2013-10", 3, 1), ("2013-11", 1, None), ("2013-12", None, None), ("2014-01", 4, 2)]

    # ---- breakdowns of the year 2014 -------------------------------------------------------------
    result = await k1.compute(parse_period("2014"), "neighbourhood")
    by = cells(result)
    assert list(by) == list(load_reference().neighbourhood_order)  # every known cell, in order
    for key, cell in by.items():
        want = BY_NEIGHBOURHOOD_2014.get(key, {"s1": NONE_S1, "s2": NONE_S2})
        assert published(cell["s1"]) == want["s1"], key
        assert published(cell["s2"]) == want["s2"], key
        assert set(cell) == {"key", "s1", "s2"}
    assert by["pijnacker-noord"]["s1"]["prevalence_lonely"]["baseline"] == 0.5
    assert "baseline" not in by["delfgauw"]["s1"]["prevalence_lonely"]
    assert by["delfgauw"]["s2"]["growth_vs_baseline"]["baseline"] == 2  # P1, P2 in 2013

    result = await k1.compute(parse_period("2014"), "age_band")
    by = cells(result)
    assert list(by) == ["0-15", "16-25", "26-64", "65-74", "75+", "unknown"]
    for key, cell in by.items():
        want = BY_AGE_BAND_2014.get(key, {"s1": NONE_S1, "s2": NONE_S2})
        assert published(cell["s1"]) == want["s1"], key
        assert published(cell["s2"]) == want["s2"], key
    assert by["16-25"]["s1"]["prevalence_lonely"]["baseline"] == 0.65
    assert by["26-64"]["s2"]["growth_vs_baseline"]["baseline"] == 2  # P9, P3 in 2013

    result = await k1.compute(parse_period("2014"), "category")
    by = cells(result)
    assert sorted(by) == sorted(load_reference().activity_categories)
    for key, cell in by.items():
        assert published(cell["s2"]) == BY_CATEGORY_2014.get(key, NONE_S2), key
        assert set(cell) == {"key", "s2"}
    assert by["meeting"]["s2"]["growth_vs_baseline"]["baseline"] == 4

    result = await k1.compute(parse_period("2014"), "referrer_role")
    by = cells(result)
    assert sorted(by) == sorted(load_reference().referrer_roles)
    for key, cell in by.items():
        assert published(cell["s3"]) == BY_REFERRER_ROLE_2014.get(key, NONE_S3), key
        assert set(cell) == {"key", "s3"}

    # By organisation (no fixed list: the organisations in the data, in key order).
    result = await k1.compute(parse_period("2014"), "organisation")
    by = cells(result)
    assert list(by) == sorted([A, B, C, D])
    # A runs A1 (P3 P1 P5; see meeting), B A2 (see learning), D A4 (see sport); C runs nothing.
    assert published(by[A]["s2"]) == BY_CATEGORY_2014["meeting"]
    assert published(by[B]["s2"]) == BY_CATEGORY_2014["learning"]
    assert published(by[D]["s2"]) == BY_CATEGORY_2014["sport"]
    assert published(by[C]["s2"]) == NONE_S2
    # S3 by referring organisation; people trained by their own organisation (cumulative).
    # C: R1, R2, R5, all accepted, converted R1 (17 days) and R5 (12), each contacted at its
    # first attendance, R1 retained; A: R3 declined, R4 open, R6 accepted and contacted (4 days).
    assert published(by[C]["s3"]) == {
        **s3row(3, 3, 2, 1.0, 0.6667, 14.5, contacted=2, retained=1, contact_days=14.5),
        "people_trained": 2,
    }  # C/T3, C/T5
    assert published(by[A]["s3"]) == {
        **s3row(3, 1, None, 0.5, 0.0, None, contacted=1, contact_days=4.0),
        "people_trained": 2,
    }  # A/T1, A/T2
    assert published(by[B]["s3"]) == {**NONE_S3, "people_trained": 2}  # B/T1, B/T4
    assert published(by[D]["s3"]) == {**NONE_S3, "people_trained": None}

    # ---- the same data under disclosure control ------------------------------------------------
    # k = 10: nothing reaches ten people (the most, 8 survey answers in 2014).
    for label in ("2014-01", "2014-Q1", "2014"):
        result = await k10.compute(parse_period(label))
        shown = {path for path, fig in all_figures(result) if not fig["suppressed"]}
        assert shown == set(), (label, shown)
    for by_name in BREAKDOWNS:
        result = await k10.compute(parse_period("2014"), by_name)
        shown = [p for p, fig in all_figures(result) if p.startswith("b") and not fig["suppressed"]]
        assert shown == [], by_name
    # k = 2: every total shown is the true one, and nothing hidden can be worked out from what
    # a reader of the totals of 2014 can read (the audit of tools/).
    await k2_totals_hold(k1, k2)

    # ---- 2015: the definitions of issue 12 (k = 1) -------------------------------------------
    # S2. Sessions: A1 as meeting until 1 May (P10 6 Jan — reported twice, one session —, 3 Feb,
    # 6 Apr; P1 14 Apr), as learning after (P1, P2 12 May); A2 learning (P11, P9 4 Feb); A4 as
    # sport until 1 May (P6 12 Feb, P7 16 Apr), not aimed at connection after (P7 14 May, P8's
    # no-show). New: P10, P11, P6. Retained: nobody — P10 has two sessions on days before
    # 6 Jan + 90 (6 Apr is day 90; the duplicate is the same session). Registrations g14 g15 g16
    # g12 (not g13: A4 no longer counted on 20 May, nor g12's cancellation on 25 May). Growth
    # 7 / 4 (2013: P9 P1 P2 P3) - 1.
    result = await k1.compute(parse_period("2015"))
    assert published(result["s2"]) == s2row(7, 3, 10, None, 1.0, 4, None, None, 0.75)
    assert (await k1_total("2015-01", "s2", "attendances")) == 1
    # S3. Referrals R9 of C and of A, R10, R11, R12 = 5; converted C's R9 alone (2 days): B named
    # C as the referrer, its registration naming R9 alone is ambiguous at B, and D's
    # registration naming R10 is not at the receiving side (A). Accepted R12 and C's R9 (the
    # funnel: converted, so accepted and contacted, its first contact its first attendance);
    # R11's acceptance was its referrer's own. People trained: the six of 2014 (D's first-aid training is no
    # signal training). Partners at the end of 2015: A B C (D left on 1 June), all with trained
    # staff.
    assert published(result["s3"]) == {
        **s3row(5, 2, 1, 1.0, 0.2, 2.0, contacted=1, contact_days=2.0),
        "people_trained": 6,
        "organisations_with_trained_staff": 3,
        "organisations_with_trained_staff_share": round(
            3 / await partners_at(pool, date(2015, 12, 31)), 4
        ),
        "people_trained_by_role": roles(gp=1, poh_ggz=1, volunteer=3, welfare_coach=1),
        "referrals_by_signal": signals(social=5),
        "referrals_overdue": 7,
    }
    q1 = await k1.compute(parse_period("2015-Q1"))
    # D still counts at the end of Q1; it left on 1 June.
    assert await partners_at(pool, date(2015, 3, 31)) == await partners_at(pool, date(2015, 12, 31)) + 1  # fmt: skip
    assert q1["s3"]["organisations_with_trained_staff_share"]["value"] == round(3 / await partners_at(pool, date(2015, 3, 31)), 4)  # fmt: skip
    # S1: m20 (djg6: 3, emotional 2, social 1) and m21 (djg11: 4, 2, 2): both lonely; emotionally
    # lonely m20 alone (cut-off 2 of the short scale; 2 is below the 11-item cut-off 3).
    assert published(result["s1"]) == {
        **s1row(2, 1.0, 0.0, 0.5, 0.0),
        "referral_outcome": {"pairs": None, "mean_change": None, "improved_share": None},
    }
    # The reclassification moves 2015 sessions from May on, and nothing before.
    by = cells(await k1.compute(parse_period("2015"), "category"))
    picked = {
        key: tuple(
            by[key]["s2"][n]["value"]
            for n in ("participants_unique", "attendances", "registrations")
        )
        for key in ("meeting", "learning", "sport")
    }
    assert picked == {"meeting": (2, 4, None), "learning": (4, 4, 2), "sport": (2, 2, 2)}
    may = cells(await k1.compute(parse_period("2015-05"), "category"))
    assert (may["learning"]["s2"]["attendances"]["value"], may["sport"]["s2"]["attendances"]["value"]) == (2, None)  # fmt: skip

    # ---- provisional: a window that reaches past today ---------------------------------------
    january = parse_period("2015-01")
    # The funnel's retained stage: a first attendance up to 1 April, then 90 days of sessions:
    # open until 31 Jan + 150 days (29 June the last day a session counts).
    for today, retention_open, conversion_open, referral_retention_open in (
        (date(2015, 2, 15), True, True, True),
        (date(2015, 4, 1), True, True, True),  # 31 Jan + 60 days: the last day a conversion counts
        (date(2015, 4, 2), True, False, True),
        (date(2015, 4, 30), True, False, True),  # 31 Jan + 89 days: the last day retention counts
        (date(2015, 5, 1), False, False, True),
        (date(2015, 6, 29), False, False, True),
        (date(2015, 6, 30), False, False, False),
    ):
        for by_name in (None, "organisation", "referrer_role"):
            answer = await k1.compute(january, by_name, today=today)
            for section in [answer, *answer.get("breakdown", [])]:
                if "s2" in section:
                    assert section["s2"]["retained"]["provisional"] is retention_open, today
                    assert "provisional" not in section["s2"]["attendances"]
                for name in ("converted", "referral_conversion", "days_to_first_attendance"):
                    assert section["s3"][name]["provisional"] is conversion_open, (today, name)
                assert section["s3"]["referrals_retained"]["provisional"] is referral_retention_open, today  # fmt: skip
                for name in ("accepted", "contacted", "days_to_first_contact"):
                    assert "provisional" not in section["s3"][name], name
    assert result["s2"]["retained"]["provisional"] is False  # 2015 is long over


async def test_activity_versions_tile_time_even_when_a_clock_went_back(pool: asyncpg.Pool) -> None:
    """Version 3 stamped before version 2 (a clock that went back): every session still has
    exactly one version in force, so none counts twice."""
    schema = await create_metrics_schema(pool)
    try:
        org = f"clk{RUN_ID}"
        who = person(hexid("clock"), "delfgauw", "75+")
        events = [
            activity(org, "koor", "culture", True, version=1, updated="2016-01-01T09:00:00+01:00"),
            activity(org, "koor", "learning", True, version=2, updated="2016-05-01T09:00:00+02:00"),
            activity(org, "koor", "meeting", True, version=3, updated="2016-03-01T09:00:00+01:00"),
            attendance(org, "k1", "koor", who, "2016-04-05T10:00:00+02:00", date(2016, 4, 5)),
            attendance(org, "k2", "koor", who, "2016-06-07T10:00:00+02:00", date(2016, 6, 7)),
        ]
        async with pool.acquire() as conn, conn.transaction():
            await FactWriter(schema)(conn, events)

        result = await service(pool, schema, k=1, control="off").compute(
            parse_period("2016"), "category"
        )

        by = {c["key"]: c["s2"]["attendances"]["value"] for c in result["breakdown"]}
        assert result["s2"]["attendances"]["value"] == 2
        # April: version 1 (version 2 came on 1 May); June: version 3, which replaced version 2
        # from 1 May (its own stamp, 1 March, lies before version 2's).
        assert (by["culture"], by["meeting"], by["learning"]) == (1, 1, None)
    finally:
        await drop_schema(pool, schema)
