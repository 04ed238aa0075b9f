"""Apply decoded events to the fact tables: one set-based statement per event type per batch.

Every statement is idempotent on its own (natural primary keys, ON CONFLICT DO NOTHING, or
"greatest wins" upserts): the facts are right even if the same event were applied twice, and
whatever the order of arrival (every version of an activity is kept with the moment it came into
force). That is the deduplication of an event a relay published twice (shared.consumer's
``"offsets"`` tracking recognises a batch Kafka redelivers): each statement returns the natural
keys it inserted (the attendance statement, most of the events, only their count unless some
were not new), and the writer answers with the events that changed the facts.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, ClassVar

import asyncpg

from services.metrics.adapters import rollups
from shared.events import (
    ActivityUpserted,
    AttendanceRecorded,
    CloudEvent,
    DeadLettered,
    MeasurementRecorded,
    PersonErased,
    ReferralCreated,
    ReferralFirstAttended,
    ReferralStatusChanged,
    RegistrationCancelled,
    RegistrationCreated,
    TrainingCompleted,
)
from shared.reference import load_reference
from shared.timerules import local_date

__all__ = ["CHANGE_SLOTS", "FactWriter"]

# Slots of the change marker (migration 006): each writer bumps its own, so that two instances'
# transactions do not queue on one row's lock until they commit.
CHANGE_SLOTS = 16


def _changed(
    events: Sequence[CloudEvent[Any]],
    key: Callable[[CloudEvent[Any]], tuple[Any, ...]],
    inserted: Sequence[asyncpg.Record | tuple[Any, ...]],
) -> list[CloudEvent[Any]]:
    """The events whose natural keys a statement inserted (of two events with one key in a
    batch, the first one's row is the one inserted)."""
    if len(inserted) == len(events):  # the usual case: no key twice, none seen before
        return list(events)
    first: dict[tuple[Any, ...], CloudEvent[Any]] = {}
    for event in events:
        first.setdefault(key(event), event)
    return [first[tuple(row)] for row in inserted]


_ATTENDANCE_ROW = attrgetter(
    "organisation_id",
    "attendance_id",
    "activity_id",
    "participant.id",
    "participant.neighbourhood",
    "participant.age_band",
    "session_start",
    "status",
)


def _split(param: str) -> str:
    """SQL: the text array that a parameter of values joined by single spaces stands for.
    Only for values whose patterns exclude whitespace under both of pydantic's regex engines
    (the ids' `[^\\s/]`, codes, organisation ids, pseudonyms, literals): none holds a space and
    none is empty, so splitting gives back exactly the values, one per row. Cheaper than a text
    array: asyncpg checks every element of an array against the collection ABCs
    (tests/integration/test_metrics_writer_columns.py applies ids with quotes, commas, braces,
    backslashes, `NULL` and non-ASCII letters)."""
    return f"string_to_array({param}::text, ' ')"


class FactWriter:
    """Role: turn a batch of events into facts in ``schema`` (``metrics``, or a rebuild's)."""

    def __init__(
        self,
        schema: str = "metrics",
        services: Mapping[str, str] | None = None,
        *,
        rollups: bool = True,
    ) -> None:
        self.s = schema
        # The rollups (adapters/rollups.py) kept batch by batch; a rebuild's bulk load fills
        # them once after the load instead.
        self.rollups = rollups
        # The service list resolves the receiving side of a v1 referral to a service (v1 did
        # not carry it); default: the built-in reference data.
        self.services = load_reference().services if services is None else services
        self.slot = os.getpid() % CHANGE_SLOTS

    async def __call__(
        self, conn: asyncpg.Connection, events: Sequence[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        """Apply ``events``; the ones whose fact was new (in the order of their types). An
        erasure changes the facts; an erased person's event does not."""
        by_type, last_seen, subjects = _grouped(events)
        erasures: list[CloudEvent[Any]] = by_type.pop(PersonErased, [])
        if erasures or await self._any_erased(conn, subjects):
            # Rare: erase, leave out the erased people's events, and group what is left.
            events = await self._without_erased(conn, events, erasures)
            by_type, last_seen, _ = _grouped(events)
        changed: list[CloudEvent[Any]] = []
        # The people whose first attendance the new rows can change (the attendance statement
        # says which, as it inserts them).
        people: set[str] = set()
        for cls, group in by_type.items():
            if cls is AttendanceRecorded:  # the rollup's upkeep rides on its statement
                new, touched = await self._attendance(conn, group)
                changed.extend(new)
                people.update(touched)
                continue
            handler = self._handlers.get(cls)
            if handler is None:
                raise ValueError(f"the metrics service does not apply {cls.__name__} events")
            changed.extend(await handler(self, conn, group))
        if last_seen:
            # Sorted, so two instances touching the same organisations lock them in one order
            # and cannot deadlock each other.
            last_seen = dict(sorted(last_seen.items()))
            await conn.execute(
                f"INSERT INTO {self.s}.organisation_activity (organisation_id, last_event_at) "
                "SELECT * FROM unnest($1::text[], $2::timestamptz[]) "
                "ON CONFLICT (organisation_id) DO UPDATE SET last_event_at = "
                f"GREATEST({self.s}.organisation_activity.last_event_at, EXCLUDED.last_event_at)",
                list(last_seen),
                list(last_seen.values()),
            )
        if self.rollups:
            await self._roll_up(conn, erasures, changed, people)
        applied = [*erasures, *changed]
        if applied:
            await self._bump(conn, len(applied))
        return applied

    async def _roll_up(
        self,
        conn: asyncpg.Connection,
        erasures: Sequence[CloudEvent[Any]],
        changed: Sequence[CloudEvent[Any]],
        people: set[str],
    ) -> None:
        """The rollup rows of the people this batch touched, recomputed from the facts:
        ``people`` (of the new attendance), the erased, the attendees of a new activity
        version; the open referrals of new referrals and status changes."""
        people.update(e.data.subject_id for e in erasures)
        versions = {
            (e.data.organisation_id, e.data.activity_id)
            for e in changed
            if isinstance(e.data, ActivityUpserted)
        }
        people.update(await rollups.touched_by_activities(conn, self.s, sorted(versions)))
        await rollups.refresh_first_attendance(conn, self.s, people)
        referrals = [
            (e.data.organisation_id, e.data.referral_id)
            for e in changed
            if isinstance(e.data, ReferralCreated | ReferralStatusChanged)
        ]
        await rollups.refresh_open_referrals(conn, self.s, referrals)

    async def _bump(self, conn: asyncpg.Connection, events: int) -> None:
        """The change marker, in the transaction that changes the facts: readers recompute the
        live totals when (and only when) it moved; ``events`` are the ones the consumer logs
        in processed_events (what the writer returns)."""
        await conn.execute(
            f"INSERT INTO {self.s}.fact_changes (slot, changes, events) VALUES ($1, 1, $2) "
            "ON CONFLICT (slot) DO UPDATE SET changes = "
            f"{self.s}.fact_changes.changes + 1, events = {self.s}.fact_changes.events + $2",
            self.slot,
            events,
        )

    async def _any_erased(self, conn: asyncpg.Connection, subjects: set[str]) -> bool:
        """Whether any of ``subjects`` was erased (one boolean back, not the ids)."""
        return bool(subjects) and bool(
            await conn.fetchval(
                f"SELECT EXISTS (SELECT FROM {self.s}.erased_subjects "
                "WHERE subject_id = ANY($1::text[]))",
                list(subjects),
            )
        )

    async def _without_erased(
        self,
        conn: asyncpg.Connection,
        events: Sequence[CloudEvent[Any]],
        erasures: list[CloudEvent[Any]],
    ) -> Sequence[CloudEvent[Any]]:
        """Erasures first (the person's facts go), then the batch without the events of any
        erased person: a late event, or the replay of a rebuild, never brings a person back."""
        if erasures:
            await self._erase(conn, erasures)
        subjects = {p for e in events if (p := _person(e)) is not None}
        if not subjects:
            return [e for e in events if not isinstance(e.data, PersonErased)]
        erased = {
            r["subject_id"]
            for r in await conn.fetch(
                f"SELECT subject_id FROM {self.s}.erased_subjects "
                "WHERE subject_id = ANY($1::text[])",
                list(subjects),
            )
        }
        return [
            e for e in events if not isinstance(e.data, PersonErased) and _person(e) not in erased
        ]

    async def _erase(self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]) -> None:
        """Drop every fact of the erased people: the figures change by exactly them. A
        cancellation or a status change hangs off the person's registration or referral."""
        subjects = sorted({e.data.subject_id for e in events})
        s = self.s
        await conn.execute(
            f"INSERT INTO {s}.erased_subjects (subject_id, erased_at) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[]) ON CONFLICT DO NOTHING",
            subjects,
            [min(e.data.erased_at for e in events if e.data.subject_id == x) for x in subjects],
        )
        for statement in (
            f"DELETE FROM {s}.cancellations c USING {s}.registrations r "
            "WHERE r.participant_id = ANY($1::text[]) AND c.organisation_id = r.organisation_id "
            "AND c.registration_id = r.registration_id",
            f"DELETE FROM {s}.registrations WHERE participant_id = ANY($1::text[])",
            f"DELETE FROM {s}.attendance WHERE participant_id = ANY($1::text[])",
            f"DELETE FROM {s}.referral_status x USING {s}.referrals r "
            "WHERE r.participant_id = ANY($1::text[]) AND x.organisation_id = r.organisation_id "
            "AND x.referral_id = r.referral_id",
            f"DELETE FROM {s}.open_referrals x USING {s}.referrals r "
            "WHERE r.participant_id = ANY($1::text[]) AND x.organisation_id = r.organisation_id "
            "AND x.referral_id = r.referral_id",
            f"DELETE FROM {s}.referrals WHERE participant_id = ANY($1::text[])",
            f"DELETE FROM {s}.measurements WHERE participant_id = ANY($1::text[])",
            f"DELETE FROM {s}.trainings WHERE person_id = ANY($1::text[])",
        ):
            await conn.execute(statement, subjects)

    async def _activities(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        # Every version, in force from the moment it was accepted: a session counts with the
        # version in force when it took place, so a later change never rewrites earlier periods.
        rows: list[ActivityUpserted] = [e.data for e in events]
        rows.sort(key=lambda d: (d.organisation_id, d.activity_id, d.version))  # one lock order
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.activity_versions (organisation_id, activity_id, version, "
            "valid_from, category, aimed_at_connection, neighbourhood, active) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], "
            "$5::text[], $6::bool[], $7::text[], $8::bool[]) ON CONFLICT DO NOTHING "
            "RETURNING organisation_id, activity_id, version",
            [d.organisation_id for d in rows],
            [d.activity_id for d in rows],
            [d.version for d in rows],
            [d.updated_at for d in rows],
            [d.category for d in rows],
            [d.aimed_at_connection for d in rows],
            [d.neighbourhood for d in rows],
            [d.active for d in rows],
        )
        return _changed(
            events, lambda e: (e.data.organisation_id, e.data.activity_id, e.data.version), inserted
        )

    async def _registrations(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[RegistrationCreated] = [e.data for e in events]
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.registrations (organisation_id, registration_id, activity_id, "
            "participant_id, neighbourhood, age_band, registered_at, registered_date, "
            "referral_id, referring_organisation_id) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[], $7::timestamptz[], $8::date[], $9::text[], $10::text[]) "
            "ON CONFLICT DO NOTHING RETURNING organisation_id, registration_id",
            [d.organisation_id for d in rows],
            [d.registration_id for d in rows],
            [d.activity_id for d in rows],
            [d.participant.id for d in rows],
            [d.participant.neighbourhood for d in rows],
            [d.participant.age_band for d in rows],
            [d.registered_at for d in rows],
            [local_date(d.registered_at) for d in rows],
            [d.referral_id for d in rows],
            [d.referring_organisation_id for d in rows],
        )
        return _changed(
            events, lambda e: (e.data.organisation_id, e.data.registration_id), inserted
        )

    async def _cancellations(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[RegistrationCancelled] = [e.data for e in events]
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.cancellations (organisation_id, registration_id, activity_id, "
            "cancelled_at, cancelled_date) SELECT * FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::timestamptz[], $5::date[]) ON CONFLICT DO NOTHING "
            "RETURNING organisation_id, registration_id",
            [d.organisation_id for d in rows],
            [d.registration_id for d in rows],
            [d.activity_id for d in rows],
            [d.cancelled_at for d in rows],
            [local_date(d.cancelled_at) for d in rows],
        )
        return _changed(
            events, lambda e: (e.data.organisation_id, e.data.registration_id), inserted
        )

    async def _attendance(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> tuple[list[CloudEvent[Any]], list[str]]:
        """The new attendance rows, and the people among them whose first attendance they can
        change (rollups.TOUCHES), in one statement that answers one row: the count inserted,
        the natural keys only when some were not new, and the people.

        The text columns travel as one string each, joined by a space (:func:`_split`): most
        events are attendance, and asyncpg's encoding of six 2,000-element text arrays (a type
        check per element) was the largest part of the writer's own CPU (docs/benchmarks.md)."""
        # One visit per event, the columns transposed in C: under load every pass over a
        # batch's scattered objects costs (cache misses), more than in a quiet loop.
        orgs, ids, activities, pids, neighbourhoods, age_bands, starts, statuses = zip(
            *[_ATTENDANCE_ROW(e.data) for e in events], strict=True
        )
        touched = (
            f"array_agg(DISTINCT n.participant_id) FILTER (WHERE {rollups.TOUCHES})"
            if self.rollups
            else "NULL::text[]"
        )
        # The session's date is its start's date in Amsterdam (what the event's session_date
        # says by the contract), derived here so that the schema's check (migration 008) holds
        # for every row this writer makes.
        found = await conn.fetchrow(
            f"""
            WITH n AS (
                INSERT INTO {self.s}.attendance (organisation_id, attendance_id, activity_id,
                    participant_id, neighbourhood, age_band, session_start, session_date,
                    attended)
                SELECT o, i, a, p, nb, ab, ss, {rollups.LOCAL_DATE.format("ss")},
                       st = 'attended'
                FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_split("$4")},
                            {_split("$5")}, {_split("$6")}, $7::timestamptz[], {_split("$8")})
                    AS u(o, i, a, p, nb, ab, ss, st)
                ON CONFLICT DO NOTHING
                RETURNING organisation_id, attendance_id, activity_id, participant_id,
                          session_start, session_date, attended
            )
            SELECT count(*) AS inserted,
                   CASE WHEN count(*) < $9 THEN array_agg(n.organisation_id) END AS orgs,
                   CASE WHEN count(*) < $9 THEN array_agg(n.attendance_id) END AS ids,
                   {touched} AS touched
            FROM n LEFT JOIN {self.s}.first_attendance f ON f.participant_id = n.participant_id
            """,
            " ".join(orgs),
            " ".join(ids),
            " ".join(activities),
            " ".join(pids),
            " ".join(neighbourhoods),
            " ".join(age_bands),
            list(starts),
            " ".join(statuses),  # `attended` or `no_show`
            len(events),
        )
        assert found is not None
        people: list[str] = found["touched"] or []
        if found["inserted"] == len(events):
            return list(events), people
        inserted = list(zip(found["orgs"] or [], found["ids"] or [], strict=True))
        return (
            _changed(events, lambda e: (e.data.organisation_id, e.data.attendance_id), inserted),
            people,
        )

    async def _referrals(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[ReferralCreated] = [e.data for e in events]
        # Arrays of arrays cannot go through unnest; signals travel as a delimited string.
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.referrals (organisation_id, referral_id, participant_id, "
            "referrer_role, signals, referred_to_organisation_id, receiving_organisation_id, "
            "created_at, created_date) "
            "SELECT o, r, p, role, string_to_array(sig, ','), rto, rcv, c, cd FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
            "$8::timestamptz[], $9::date[]) AS t(o, r, p, role, sig, rto, rcv, c, cd) "
            "ON CONFLICT DO NOTHING RETURNING organisation_id, referral_id",
            [d.organisation_id for d in rows],
            [d.referral_id for d in rows],
            [d.participant.id for d in rows],
            [d.referrer_role for d in rows],
            [",".join(d.signals) for d in rows],
            [d.referred_to.organisation_id for d in rows],
            [self._receiver(d) for d in rows],
            [d.created_at for d in rows],
            [local_date(d.created_at) for d in rows],
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.referral_id), inserted)

    def _receiver(self, d: ReferralCreated) -> str | None:
        if d.receiving_organisation_id is not None:
            return d.receiving_organisation_id
        return self.services.get(d.referred_to.service or "")  # a v1 referral to a service

    async def _referral_status(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[ReferralStatusChanged] = [e.data for e in events]
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.referral_status (event_id, organisation_id, referral_id, "
            "status, at, changed_by, sequence) SELECT * FROM unnest($1::uuid[], $2::text[], "
            "$3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bigint[]) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            [e.id for e in events],
            [d.organisation_id for d in rows],
            [d.referral_id for d in rows],
            [d.status for d in rows],
            [d.at for d in rows],
            [d.changed_by for d in rows],
            [d.sequence for d in rows],
        )
        return _changed(events, lambda e: (e.id,), inserted)

    async def _trainings(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[TrainingCompleted] = [e.data for e in events]
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.trainings (organisation_id, training_id, person_id, role, "
            "training, completed_date) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::text[], $5::text[], $6::date[]) ON CONFLICT DO NOTHING "
            "RETURNING organisation_id, training_id",
            [d.organisation_id for d in rows],
            [d.training_id for d in rows],
            [d.person_id for d in rows],
            [d.role for d in rows],
            [d.training for d in rows],
            [local_date(d.completed_at) for d in rows],
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.training_id), inserted)

    async def _measurements(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        rows: list[MeasurementRecorded] = [e.data for e in events]
        inserted = await conn.fetch(
            f"INSERT INTO {self.s}.measurements (organisation_id, measurement_id, instrument, "
            "context, participant_id, neighbourhood, age_band, measured_at, measured_date, total, "
            "emotional, social, category) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::date[], "
            "$10::int[], $11::int[], $12::int[], $13::text[]) ON CONFLICT DO NOTHING "
            "RETURNING organisation_id, measurement_id",
            [d.organisation_id for d in rows],
            [d.measurement_id for d in rows],
            [d.instrument for d in rows],
            [d.context for d in rows],
            [d.participant_id for d in rows],
            [d.neighbourhood for d in rows],
            [d.age_band for d in rows],
            [d.measured_at for d in rows],
            [local_date(d.measured_at) for d in rows],
            [d.total for d in rows],
            [d.emotional for d in rows],
            [d.social for d in rows],
            [d.category for d in rows],
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.measurement_id), inserted)

    async def _ignore(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]
    ) -> list[CloudEvent[Any]]:
        """Dead letters are for people, not for the figures."""
        return list(events)

    _handlers: ClassVar[dict[type, Any]] = {
        ActivityUpserted: _activities,
        RegistrationCreated: _registrations,
        RegistrationCancelled: _cancellations,
        # Called by __call__ itself: it answers the people for the rollup's upkeep too.
        AttendanceRecorded: _attendance,
        ReferralCreated: _referrals,
        ReferralStatusChanged: _referral_status,
        TrainingCompleted: _trainings,
        MeasurementRecorded: _measurements,
        DeadLettered: _ignore,
        # Derived by the referrals service from the registrations topic, which the metrics
        # service reads itself: conversion is counted from the registrations and attendance.
        ReferralFirstAttended: _ignore,
        PersonErased: _ignore,  # applied before the others, in _without_erased
    }


def _grouped(
    events: Sequence[CloudEvent[Any]],
) -> tuple[dict[type, list[Any]], dict[str, Any], set[str]]:
    """In one pass over the batch (under load each pass over a few thousand events costs
    measurably): the events by type, each organisation's latest event time, and the people
    the events are about (:func:`_person`, inlined: a call per event costs; an erasure's
    subject too, which only makes the erased-subjects check look at one more)."""
    by_type: dict[type, list[Any]] = defaultdict(list)
    last_seen: dict[str, Any] = {}
    subjects: set[Any] = set()
    for event in events:
        data = event.data
        cls = type(data)
        by_type[cls].append(event)
        subjects.add(data.person_id if cls is TrainingCompleted else event.subject)
        org = getattr(data, "organisation_id", None)
        if org:
            seen = last_seen.get(org)
            if seen is None or event.time > seen:
                last_seen[org] = event.time
    subjects.discard(None)
    return by_type, last_seen, subjects


def _person(event: CloudEvent[Any]) -> str | None:
    """The subject id of the person an event is about: a participant's is the CloudEvents
    subject; a training is keyed by its organisation and names the trained person in its data."""
    if isinstance(event.data, PersonErased):
        return None
    if isinstance(event.data, TrainingCompleted):
        return event.data.person_id
    return event.subject
