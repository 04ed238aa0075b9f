"""Apply decoded events to the fact tables: one set-based statement per event type per batch.

Every statement is idempotent (natural primary keys, ON CONFLICT DO NOTHING — after a plain
insert met a key seen before, see FactWriter.__call__ — or "greatest wins" upserts): the facts
are right even if the same event were applied twice, and whatever the order of arrival (every
version of an activity is kept with the moment it came into force). That is the deduplication
of an event a relay published twice (shared.consumer's ``"offsets"`` tracking recognises a batch
Kafka redelivers): each statement answers how many rows it inserted, and their natural keys
only when some were not new (:func:`_inserted`), and the writer answers with the events that
changed the facts.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, ClassVar

import asyncpg

from services.metrics.adapters import rollups
from services.metrics.adapters.totals import referred_alongside, registered_for_activities
from services.metrics.adapters.year_grid import ANONYMOUS, CANCELLATION
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

__all__ = ["CHANGE_SLOTS", "FactWriter"]

# Slots of the change marker (migration 006): each writer bumps its own, so that two instances'
# transactions do not queue on one row's lock until they commit.
CHANGE_SLOTS = 16


def _changed(
    events: Sequence[CloudEvent[Any]],
    key: Callable[[CloudEvent[Any]], tuple[Any, ...]],
    inserted: Sequence[tuple[Any, ...]] | None,
) -> list[CloudEvent[Any]]:
    """The events whose natural keys a statement inserted (``None``: every event's, see
    :func:`_inserted`; of two events with one key in a batch, the first one's row is the one
    inserted)."""
    if inserted is None or len(inserted) == len(events):  # no key twice, none seen before
        return list(events)
    first: dict[tuple[Any, ...], CloudEvent[Any]] = {}
    for event in events:
        first.setdefault(key(event), event)
    return [first[tuple(row)] for row in inserted]


def _count_and_keys(keys: Sequence[str], rows: str) -> str:
    """SQL select list over ``n``, an INSERT's ``RETURNING`` rows: how many there are, then each
    of ``keys`` as an array of the rows' values, only when there are fewer than ``rows`` (a
    parameter): one row answers a statement, not a row per event, which cost asyncpg a record's
    decoding and PostgreSQL a row's sending each (docs/benchmarks.md "One row back")."""
    arrays = (f"CASE WHEN count(*) < {rows} THEN array_agg(n.{k}) END" for k in keys)
    return ", ".join(["count(*)", *arrays])


def _keys_inserted(found: asyncpg.Record, keys: int, rows: int) -> list[tuple[Any, ...]] | None:
    """Of an answer that starts with :func:`_count_and_keys`'s ``keys`` columns: the inserted
    rows' keys, or ``None`` when all ``rows`` were inserted (the usual case: no key twice, none
    seen before)."""
    if found[0] == rows:
        return None
    return list(zip(*[found[i] or [] for i in range(1, keys + 1)], strict=True))


async def _inserted(
    conn: asyncpg.Connection, insert: str, keys: Sequence[str], rows: int, *args: Any
) -> list[tuple[Any, ...]] | None:
    """Run ``insert``, a statement meant to insert ``rows`` rows, and answer the ``keys``
    columns of the rows it did insert, or ``None`` when it inserted all of them."""
    found = await conn.fetchrow(
        f"WITH n AS ({insert} RETURNING {', '.join(keys)}) "
        f"SELECT {_count_and_keys(keys, f'${len(args) + 1}')} FROM n",
        *args,
        rows,
    )
    assert found is not None
    return _keys_inserted(found, len(keys), rows)


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


# An attendance row's unique key (migration 020) as the statement returns it: the natural key,
# then the person and session start that the natural key determines (the session's date is the
# start's), so that rows with one natural key but another person would each be their own:
# its columns, and the same of an event.
_ATTENDANCE_KEYS = ("organisation_id", "attendance_id", "participant_id", "session_start")
_ATTENDANCE_KEY = attrgetter(
    "data.organisation_id", "data.attendance_id", "data.participant.id", "data.session_start"
)


_REGISTRATION_ROW = attrgetter(
    "organisation_id",
    "registration_id",
    "activity_id",
    "participant.id",
    "participant.neighbourhood",
    "participant.age_band",
    "registered_at",
    "referral_id",
    "referring_organisation_id",
)
_CANCELLATION_ROW = attrgetter("organisation_id", "registration_id", "activity_id", "cancelled_at")
_TRAINING_ROW = attrgetter(
    "organisation_id", "training_id", "person_id", "role", "training", "completed_at"
)
_MEASUREMENT_ROW = attrgetter(
    "organisation_id",
    "measurement_id",
    "instrument",
    "context",
    "participant_id",
    "neighbourhood",
    "age_band",
    "measured_at",
    "total",
    "emotional",
    "social",
    "category",
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


# What a fact statement does with a row whose natural key is there already: the second try of
# a batch in which a plain insert met one (FactWriter.__call__).
_SKIP_SEEN = "ON CONFLICT DO NOTHING"

# The attendance, registration and measurement statements insert their rows in the order of
# their primary key (``ORDER BY`` its columns — for attendance the person, the session's date,
# organisation and id; for the others organisation and id — then the row's place in the batch,
# so that of two rows with one key the batch's first is still the one kept): consecutive inserts
# then go to neighbouring leaf pages of the primary key's B-tree, already in the CPU's cache,
# instead of pages all over it. PostgreSQL's CPU per event 16.0 / 16.5 against 17.3 / 17.2 µs
# in an alternated A/B (docs/benchmarks.md "Rows inserted in key order").

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moments: Iterable[datetime]) -> str:
    """Aware moments as one parameter: their microseconds since 1970 (exact integers, from
    subtracting aware date-times, which is UTC arithmetic), joined by spaces. A
    ``timestamptz[]`` parameter costs asyncpg about 1.1 µs of client CPU per element (a
    conversion to UTC, a subtraction and the collection ABC checks), ``isoformat`` as much;
    this 0.35 µs (docs/benchmarks.md)."""
    return " ".join([str((m - _EPOCH) // _MICROSECOND) for m in moments])


def _moment(column: str) -> str:
    """SQL: the timestamptz of ``column``, a bigint of microseconds since 1970 (:func:`_micros`).
    Whole seconds and the microseconds apart, each multiplying an interval: PostgreSQL
    multiplies an interval in double precision, exact for the seconds of years 1–9999 (a whole
    number of seconds times 10^6 needs fewer than 53 bits below 5.7·10^11 s); an interval of
    seconds and microseconds only (no days) adds to a timestamptz without time-zone rules."""
    return (
        f"(timestamptz 'epoch' + ({column} / 1000000) * interval '1 second' "
        f"+ ({column} % 1000000) * interval '1 microsecond')"
    )


def _bigints(param: str) -> str:
    """SQL: the bigint array of a parameter of integers joined by single spaces."""
    return f"string_to_array({param}::text, ' ')::bigint[]"


def _nullable(param: str, cast: str = "") -> str:
    """SQL: like :func:`_split`, with ``-`` standing for a null; only for values whose pattern
    excludes ``-`` (pseudonyms, non-negative integers, literals without it)."""
    return f"string_to_array({param}::text, ' ', '-'){cast}"


def _or_dash(values: Iterable[object]) -> str:
    return " ".join(["-" if v is None else str(v) for v in values])


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
        # Whose totals' shares this batch can change besides the people of its events
        # (services/metrics/adapters/totals.py).
        also: set[str] = set()
        if erasures or await self._any_erased(conn, subjects):
            # Rare: erase, leave out the erased people's events, and group what is left.
            events, also = await self._without_erased(conn, events, erasures)
            by_type, last_seen, _ = _grouped(events)
        # Plain INSERTs first, in a savepoint: ON CONFLICT looks every key up in the primary
        # key before inserting it (a second descent of the index per row, about 3 µs of
        # PostgreSQL's CPU per attendance row of its 19, docs/benchmarks.md), while a plain
        # insert checks uniqueness in its one descent. A key seen before (a relay's duplicate;
        # two events with one key in a batch) is rare: a statement then fails, the batch's
        # facts are rolled back to the savepoint and written again with ON CONFLICT DO
        # NOTHING. Either way the rows and the answer are those of ON CONFLICT DO NOTHING.
        try:
            async with conn.transaction():
                changed, new_by_type, people = await self._facts(conn, by_type, "")
        except asyncpg.UniqueViolationError:
            changed, new_by_type, people = await self._facts(conn, by_type, _SKIP_SEEN)
        if last_seen:
            # In this writer's slot (migration 012): two instances upserting the same rows
            # would wait for each other's commit in every batch. Sorted all the same, so two
            # writers that share a slot lock its rows in one order and cannot deadlock.
            last_seen = dict(sorted(last_seen.items()))
            await conn.execute(
                f"INSERT INTO {self.s}.organisation_activity (organisation_id, slot, "
                "last_event_at) SELECT o, $3, t FROM unnest($1::text[], $2::timestamptz[]) "
                "AS x (o, t) ON CONFLICT (organisation_id, slot) DO UPDATE SET last_event_at = "
                f"GREATEST({self.s}.organisation_activity.last_event_at, EXCLUDED.last_event_at)",
                list(last_seen),
                list(last_seen.values()),
                self.slot,
            )
        if self.rollups:
            also.update(await self._roll_up(conn, erasures, new_by_type, people))
            also.update(e.data.subject_id for e in erasures)
        applied = [*erasures, *changed]
        if applied:
            await self._bump(conn, len(applied))
            if self.rollups:
                await self._tell_totals(conn, subjects | also, new_by_type)
        return applied

    async def _tell_totals(
        self,
        conn: asyncpg.Connection,
        people: set[str],
        new_by_type: Mapping[type, Sequence[CloudEvent[Any]]],
    ) -> None:
        """Who changed, for the totals' next refresh (services/metrics/adapters/totals.py):
        the people of the batch's events (all of them: a few more than changed cost the
        refresh a little, a look at which did would cost every batch), the records of their
        own (a cancellation, an anonymous answer), and ``people``'s extras. One row per
        transaction, the keys space-separated (no key holds a space; a text array would cost
        asyncpg a type check per element)."""
        keys = {p for p in people if p and " " not in p}
        for e in new_by_type.get(RegistrationCancelled, ()):
            keys.add(f"{CANCELLATION}/{e.data.organisation_id}/{e.data.registration_id}")
        for e in new_by_type.get(MeasurementRecorded, ()):
            if e.data.participant_id is None:
                keys.add(f"{ANONYMOUS}/{e.data.organisation_id}/{e.data.measurement_id}")
        await conn.execute(
            f"INSERT INTO {self.s}.totals_changes (people) VALUES (string_to_array($1, ' '))",
            " ".join(keys),
        )

    async def _facts(
        self, conn: asyncpg.Connection, by_type: Mapping[type, list[Any]], conflict: str
    ) -> tuple[list[CloudEvent[Any]], dict[type, list[CloudEvent[Any]]], set[str]]:
        """Insert the facts of every type (``conflict``: ``""`` or :data:`_SKIP_SEEN`): the
        events whose fact was new, those by type (the rollups' upkeep looks at some types
        only), and the people whose first attendance the new rows can change (the attendance
        statement says which, as it inserts them)."""
        changed: list[CloudEvent[Any]] = []
        new_by_type: dict[type, list[CloudEvent[Any]]] = {}
        people: set[str] = set()
        for cls, group in by_type.items():
            if cls is AttendanceRecorded:  # the rollup's upkeep rides on its statement
                new, touched = await self._attendance(conn, group, conflict)
                people.update(touched)
            else:
                handler = self._handlers.get(cls)
                if handler is None:
                    raise ValueError(f"the metrics service does not apply {cls.__name__} events")
                new = await handler(self, conn, group, conflict)
            new_by_type[cls] = new
            changed.extend(new)
        return changed, new_by_type, people

    async def _roll_up(
        self,
        conn: asyncpg.Connection,
        erasures: Sequence[CloudEvent[Any]],
        new_by_type: Mapping[type, Sequence[CloudEvent[Any]]],
        people: set[str],
    ) -> set[str]:
        """The rollup rows of the people this batch touched, recomputed from the facts:
        ``people`` (of the new attendance), the erased, the attendees of a new activity
        version; the open referrals of new referrals and status changes. (The new events by
        type: an ``isinstance`` per new event was a measurable cost.) Returns who attended or
        registered for the new activity versions' activities (their sessions and registrations
        may count otherwise now: services/metrics/adapters/totals.py)."""
        # The erased and the attendees of a new version may lose their row; ``people`` (new
        # attendance only) cannot.
        versions = {
            (e.data.organisation_id, e.data.activity_id, e.data.version)
            for e in new_by_type.get(ActivityUpserted, ())
        }
        attendees = set(await rollups.touched_by_activities(conn, self.s, sorted(versions)))
        removable = {e.data.subject_id for e in erasures} | attendees
        activities = sorted({(o, i) for o, i, _ in versions})
        registered = await registered_for_activities(conn, self.s, activities)
        await rollups.refresh_first_attendance(conn, self.s, removable, grown=people)
        referrals = [
            (e.data.organisation_id, e.data.referral_id)
            for cls in (ReferralCreated, ReferralStatusChanged)
            for e in new_by_type.get(cls, ())
        ]
        await rollups.refresh_open_referrals(conn, self.s, referrals)
        return attendees | registered

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
        # The subjects as one space-joined string (a text array costs asyncpg a type check
        # per element). An envelope's subject has no pattern, so one may hold a space: its
        # pieces are then looked for too, which can only answer yes where the answer is no
        # (and the exact path follows); an erased id (64 hex digits) is never split.
        return bool(subjects) and bool(
            await conn.fetchval(
                f"SELECT EXISTS (SELECT FROM {self.s}.erased_subjects "
                f"WHERE subject_id = ANY({_split('$1')}))",
                " ".join(subjects),
            )
        )

    async def _without_erased(
        self,
        conn: asyncpg.Connection,
        events: Sequence[CloudEvent[Any]],
        erasures: list[CloudEvent[Any]],
    ) -> tuple[Sequence[CloudEvent[Any]], set[str]]:
        """Erasures first (the person's facts go), then the batch without the events of any
        erased person: a late event, or the replay of a rebuild, never brings a person back.
        Also the people whose referrals the erased people's facts touched (:meth:`_erase`)."""
        touched: set[str] = set()
        if erasures:
            touched = await self._erase(conn, erasures)
        subjects = {p for e in events if (p := _person(e)) is not None}
        if not subjects:
            return [e for e in events if not isinstance(e.data, PersonErased)], touched
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
        ], touched

    async def _erase(self, conn: asyncpg.Connection, events: list[CloudEvent[Any]]) -> set[str]:
        """Drop every fact of the erased people: the figures change by exactly them. A
        cancellation or a status change hangs off the person's registration or referral.
        Returns the other people whose referrals the erased people's registrations converted
        or whose referral ids theirs shared: their totals' shares change too, and once the
        facts are gone that can no longer be found (services/metrics/adapters/totals.py)."""
        subjects = sorted({e.data.subject_id for e in events})
        s = self.s
        touched = await referred_alongside(conn, s, subjects)
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
        return touched

    async def _activities(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        # Every version, in force from the moment it was accepted: a session counts with the
        # version in force when it took place, so a later change never rewrites earlier periods.
        rows: list[ActivityUpserted] = [e.data for e in events]
        rows.sort(key=lambda d: (d.organisation_id, d.activity_id, d.version))  # one lock order
        inserted = await _inserted(
            conn,
            f"INSERT INTO {self.s}.activity_versions (organisation_id, activity_id, version, "
            "valid_from, category, aimed_at_connection, neighbourhood, active) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], "
            f"$5::text[], $6::bool[], $7::text[], $8::bool[]) {conflict}",
            ("organisation_id", "activity_id", "version"),
            len(rows),
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
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        # Columns as space-joined strings (see _attendance); the two that may be null (and
        # whose pattern allows any non-space character) stay arrays. The day is derived as
        # attendance's is.
        orgs, ids, activities, pids, neighbourhoods, age_bands, moments, referrals, referrers = zip(
            *[_REGISTRATION_ROW(e.data) for e in events], strict=True
        )
        inserted = await _inserted(
            conn,
            f"""
            INSERT INTO {self.s}.registrations (organisation_id, registration_id, activity_id,
                participant_id, neighbourhood, age_band, registered_at, registered_date,
                referral_id, referring_organisation_id)
            SELECT o, r, a, p, nb, ab, at, {rollups.LOCAL_DATE.format("at")}, ref, rorg
            FROM (
                SELECT o, r, a, p, nb, ab, {_moment("us")} AS at, ref, rorg, seq
                FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_split("$4")},
                            {_split("$5")}, {_split("$6")}, {_bigints("$7")}, $8::text[],
                            $9::text[])
                    WITH ORDINALITY AS u(o, r, a, p, nb, ab, us, ref, rorg, seq)
            ) u
            ORDER BY o, r, seq
            {conflict}
            """,
            ("organisation_id", "registration_id"),
            len(events),
            " ".join(orgs),
            " ".join(ids),
            " ".join(activities),
            " ".join(pids),
            " ".join(neighbourhoods),
            " ".join(age_bands),
            _micros(moments),
            list(referrals),
            list(referrers),
        )
        return _changed(
            events, lambda e: (e.data.organisation_id, e.data.registration_id), inserted
        )

    async def _cancellations(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        orgs, ids, activities, moments = zip(
            *[_CANCELLATION_ROW(e.data) for e in events], strict=True
        )
        inserted = await _inserted(
            conn,
            f"""
            INSERT INTO {self.s}.cancellations (organisation_id, registration_id, activity_id,
                cancelled_at, cancelled_date)
            SELECT o, r, a, at, {rollups.LOCAL_DATE.format("at")}
            FROM (
                SELECT o, r, a, {_moment("us")} AS at
                FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_bigints("$4")})
                    AS u(o, r, a, us)
            ) u
            {conflict}
            """,
            ("organisation_id", "registration_id"),
            len(events),
            " ".join(orgs),
            " ".join(ids),
            " ".join(activities),
            _micros(moments),
        )
        return _changed(
            events, lambda e: (e.data.organisation_id, e.data.registration_id), inserted
        )

    async def _attendance(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> tuple[list[CloudEvent[Any]], list[str]]:
        """The new attendance rows, and the people among them whose first attendance they can
        change (rollups.TOUCHES), in one statement that answers one row: the count inserted,
        the rows' unique keys (:data:`_ATTENDANCE_KEY`) only when some were not new, and the
        people.

        The columns travel as one string each, joined by a space (:func:`_split`, the session's
        start as microseconds, :func:`_micros`): most events are attendance, and asyncpg's
        encoding of 2,000-element arrays (a type check per element, a time zone conversion per
        date-time) was the largest part of the writer's own CPU (docs/benchmarks.md)."""
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
        # Each new row's rollup row by its key (at most one): LIMIT keeps the subquery from
        # being pulled up into a join, which a custom plan made a hash join over a sequential
        # scan of all of first_attendance (auto_explain: 32 of the 188 slowest attendance
        # statements in 200,000 events), a cost that grows with the people ever seen.
        rollup_row = (
            f"LEFT JOIN LATERAL (SELECT * FROM {self.s}.first_attendance f "
            "WHERE f.participant_id = n.participant_id LIMIT 1) f ON true"
            if self.rollups
            else ""
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
                FROM (
                    SELECT o, i, a, p, nb, ab, {_moment("us")} AS ss, st, seq
                    FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_split("$4")},
                                {_split("$5")}, {_split("$6")}, {_bigints("$7")}, {_split("$8")})
                        WITH ORDINALITY AS u(o, i, a, p, nb, ab, us, st, seq)
                ) u
                ORDER BY p, {rollups.LOCAL_DATE.format("ss")}, o, i, seq
                {conflict}
                RETURNING organisation_id, attendance_id, activity_id, participant_id,
                          session_start, session_date, attended
            )
            SELECT {_count_and_keys(_ATTENDANCE_KEYS, "$9")}, {touched} AS touched
            FROM n {rollup_row}
            """,
            " ".join(orgs),
            " ".join(ids),
            " ".join(activities),
            " ".join(pids),
            " ".join(neighbourhoods),
            " ".join(age_bands),
            _micros(starts),
            " ".join(statuses),  # `attended` or `no_show`
            len(events),
        )
        assert found is not None
        people: list[str] = found["touched"] or []
        inserted = _keys_inserted(found, len(_ATTENDANCE_KEYS), len(events))
        return _changed(events, _ATTENDANCE_KEY, inserted), people

    async def _referrals(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        rows: list[ReferralCreated] = [e.data for e in events]
        # Arrays of arrays cannot go through unnest; signals travel as a delimited string.
        inserted = await _inserted(
            conn,
            f"INSERT INTO {self.s}.referrals (organisation_id, referral_id, participant_id, "
            "referrer_role, signals, referred_to_organisation_id, receiving_organisation_id, "
            f"created_at, created_date) "
            f"SELECT o, r, p, role, string_to_array(sig, ','), rto, rcv, c, "
            f"{rollups.LOCAL_DATE.format('c')} FROM (SELECT o, r, p, role, sig, rto, rcv, "
            f"{_moment('us')} AS c FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
            f"{_bigints('$8')}) AS t(o, r, p, role, sig, rto, rcv, us)) t {conflict}",
            ("organisation_id", "referral_id"),
            len(rows),
            [d.organisation_id for d in rows],
            [d.referral_id for d in rows],
            [d.participant.id for d in rows],
            [d.referrer_role for d in rows],
            [",".join(d.signals) for d in rows],
            [d.referred_to.organisation_id for d in rows],
            [self._receiver(d) for d in rows],
            _micros(d.created_at for d in rows),
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.referral_id), inserted)

    def _receiver(self, d: ReferralCreated) -> str | None:
        if d.receiving_organisation_id is not None:
            return d.receiving_organisation_id
        return self.services.get(d.referred_to.service or "")  # a v1 referral to a service

    async def _referral_status(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        rows: list[ReferralStatusChanged] = [e.data for e in events]
        inserted = await _inserted(
            conn,
            f"INSERT INTO {self.s}.referral_status (event_id, organisation_id, referral_id, "
            f"status, at, changed_by, sequence) SELECT e, o, r, st, {_moment('us')}, cb, sq "
            "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], "
            f"{_bigints('$5')}, $6::text[], $7::bigint[]) AS u(e, o, r, st, us, cb, sq) "
            f"{conflict}",
            ("event_id",),
            len(rows),
            [e.id for e in events],
            [d.organisation_id for d in rows],
            [d.referral_id for d in rows],
            [d.status for d in rows],
            _micros(d.at for d in rows),
            [d.changed_by for d in rows],
            [d.sequence for d in rows],
        )
        return _changed(events, lambda e: (e.id,), inserted)

    async def _trainings(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        orgs, ids, people, roles, trainings, moments = zip(
            *[_TRAINING_ROW(e.data) for e in events], strict=True
        )
        inserted = await _inserted(
            conn,
            f"""
            INSERT INTO {self.s}.trainings (organisation_id, training_id, person_id, role,
                training, completed_date)
            SELECT o, t, p, r, tr, {rollups.LOCAL_DATE.format(_moment("us"))}
            FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_split("$4")},
                        {_split("$5")}, {_bigints("$6")}) AS u(o, t, p, r, tr, us)
            {conflict}
            """,
            ("organisation_id", "training_id"),
            len(events),
            " ".join(orgs),
            " ".join(ids),
            " ".join(people),
            " ".join(roles),
            " ".join(trainings),
            _micros(moments),
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.training_id), inserted)

    async def _measurements(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
    ) -> list[CloudEvent[Any]]:
        # Columns as space-joined strings (see _attendance); a null as `-`, which none of the
        # nullable columns' values can be (a pseudonym, small non-negative integers, literals).
        (
            orgs, ids, instruments, contexts, pids, neighbourhoods, age_bands, moments, totals,
            emotionals, socials, categories,
        ) = zip(*[_MEASUREMENT_ROW(e.data) for e in events], strict=True)  # fmt: skip
        inserted = await _inserted(
            conn,
            f"""
            INSERT INTO {self.s}.measurements (organisation_id, measurement_id, instrument,
                context, participant_id, neighbourhood, age_band, measured_at, measured_date,
                total, emotional, social, category)
            SELECT o, m, i, c, p, nb, ab, at, {rollups.LOCAL_DATE.format("at")}, t, e, so, ca
            FROM (
                SELECT o, m, i, c, p, nb, ab, {_moment("us")} AS at, t, e, so, ca, seq
                FROM unnest({_split("$1")}, {_split("$2")}, {_split("$3")}, {_split("$4")},
                            {_nullable("$5")}, {_split("$6")}, {_split("$7")}, {_bigints("$8")},
                            {_nullable("$9", "::int[]")}, {_nullable("$10", "::int[]")},
                            {_nullable("$11", "::int[]")}, {_nullable("$12")})
                    WITH ORDINALITY AS u(o, m, i, c, p, nb, ab, us, t, e, so, ca, seq)
            ) u
            ORDER BY o, m, seq
            {conflict}
            """,
            ("organisation_id", "measurement_id"),
            len(events),
            " ".join(orgs),
            " ".join(ids),
            " ".join(instruments),
            " ".join(contexts),
            _or_dash(pids),
            " ".join(neighbourhoods),
            " ".join(age_bands),
            _micros(moments),
            _or_dash(totals),
            _or_dash(emotionals),
            _or_dash(socials),
            _or_dash(categories),
        )
        return _changed(events, lambda e: (e.data.organisation_id, e.data.measurement_id), inserted)

    async def _ignore(
        self, conn: asyncpg.Connection, events: list[CloudEvent[Any]], conflict: str
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
