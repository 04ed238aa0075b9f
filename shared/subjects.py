"""Subject ids: the id under which a writing service publishes a person (issue 17).

A keyed pseudonym is deterministic: whoever holds a partner's reference and the platform's
secret computes it again, so events that carry it on a topic kept forever could never be
erased. So the events carry a random id instead (32 random bytes, hex: the shape of a pseudonym),
and the service keeps which pseudonym each subject id stands for in its table ``subjects``.
Erasing a person deletes that row (shared/erasure.py): the person's events on Kafka then carry
an id that nothing links to a reference any more — crypto-shredding, with the row as the key —,
and a later write about the same reference gets a new subject id.

The mapping is applied where events become outbox rows (shared/pipeline/postgres.py), so the
decisions stay pure and the services' own tables keep the pseudonym (which erasure deletes
with them). Each writing service has its own subject ids: the same resident's attendance
(registrations) and scores (referrals) cannot be linked on Kafka.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from shared.events import (
    CloudEvent,
    Participant,
    TrainingCompleted,
    encode_event,
    event_document,
)
from shared.pipeline.statements import Write

__all__ = [
    "SUBJECTS_FOUND",
    "encoded_with_subject_ids",
    "new_subject_id",
    "person_of",
    "person_pseudonyms",
    "subject_ids",
    "subject_writes",
    "with_subject_ids",
]

# The relation, within one statement of :func:`subject_writes`, of every pseudonym's subject id:
# ``(pseudonym, subject_id)``.
SUBJECTS_FOUND = "subjects_found"


def new_subject_id() -> str:
    return secrets.token_hex(32)


def _person_of(data: Any) -> str | None:
    participant = getattr(data, "participant", None)
    if isinstance(participant, Participant):
        return participant.id
    found = getattr(data, _person_field(data), None)
    return found if isinstance(found, str) else None


def _person_field(data: Any) -> str:
    # A training names the trained professional or volunteer (`person_id`): a person too, who
    # can ask to be erased like a participant (docs/privacy.md "Erasure").
    return "person_id" if isinstance(data, TrainingCompleted) else "participant_id"


def person_of(event: CloudEvent[Any]) -> str | None:
    """The pseudonym of the person ``event`` is about (a participant, a trained person), if any."""
    return _person_of(event.data)


def person_pseudonyms(events: Iterable[CloudEvent[Any]]) -> set[str]:
    """The people's pseudonyms the events name (participants, trained people)."""
    return {p for e in events if (p := _person_of(e.data)) is not None}


def with_subject_ids(
    events: Sequence[CloudEvent[Any]], subjects: Mapping[str, str]
) -> list[CloudEvent[Any]]:
    """The events with every person's pseudonym replaced by its subject id (the data, the
    CloudEvents ``subject`` and so the Kafka key of a participant's event; a training stays
    keyed by its organisation); the same event id."""
    out = []
    for event in events:
        pseudonym = _person_of(event.data)
        if pseudonym is None:
            out.append(event)
            continue
        subject = subjects[pseudonym]
        data = event.data
        if isinstance(getattr(data, "participant", None), Participant):
            data = data.model_copy(
                update={"participant": data.participant.model_copy(update={"id": subject})}
            )
        else:
            data = data.model_copy(update={_person_field(data): subject})
        out.append(event.model_copy(update={"data": data, "subject": data.subject()}))
    return out


def encoded_with_subject_ids(
    events: Sequence[CloudEvent[Any]], subjects: Mapping[str, str]
) -> list[tuple[bytes, bytes]]:
    """Each event's Kafka key and value as :func:`with_subject_ids` and ``encode_event`` give
    them, without copying the models (three copies an event were 8% of a writing service's CPU
    under batch ingestion): the pseudonym is replaced in the encoded document. An event about a
    person has that person as its subject and partition key (shared/events/models.py); one for
    which that does not hold is copied the models' way."""
    out = []
    for event in events:
        pseudonym = _person_of(event.data)
        if pseudonym is None:
            out.append((event.key, encode_event(event)))
            continue
        if event.subject != pseudonym or event.key != pseudonym.encode():
            (copied,) = with_subject_ids([event], subjects)
            out.append((copied.key, encode_event(copied)))
            continue
        subject = subjects[pseudonym]
        doc = event_document(event)
        if isinstance(getattr(event.data, "participant", None), Participant):
            doc["data"]["participant"]["id"] = subject
        else:
            doc["data"]["participant_id"] = subject
        doc["subject"] = subject
        out.append((subject.encode(), orjson.dumps(doc)))
    return out


async def subject_ids(
    conn: asyncpg.Connection, schema: str, pseudonyms: Iterable[str]
) -> dict[str, str]:
    """The subject id of each pseudonym, created for those that have none (in the caller's
    transaction: a rollback forgets them).

    One statement for people known and new alike (a single write about a new person took two
    round trips, a read and an insert): the known ones are read (``FOR SHARE``) and only the
    rest are inserted (an insert that meets an existing key costs PostgreSQL about as much as
    the read, and a batch of attendance names hundreds of people, nearly all known)."""
    wanted = sorted(set(pseudonyms))
    if not wanted:
        return {}
    table = f'"{schema}".subjects'
    # FOR SHARE: an erasure of one of these people waits until this write has committed, and
    # then deletes what it wrote too (shared/erasure.py deletes the subject first). A row that
    # erasure deleted meanwhile is not returned: the person gets a new subject id. New ones are
    # inserted in key order, so that two batches meet new pseudonyms in the same order; a
    # pseudonym another transaction inserts meanwhile is waited for and then left alone.
    rows = await conn.fetch(
        f"WITH known AS (SELECT pseudonym, subject_id FROM {table} "
        "WHERE pseudonym = ANY($1::text[]) ORDER BY pseudonym FOR SHARE), "
        f"added AS (INSERT INTO {table} (pseudonym, subject_id) "
        "SELECT n.pseudonym, n.subject_id FROM unnest($1::text[], $2::text[]) "
        "AS n(pseudonym, subject_id) WHERE n.pseudonym NOT IN (SELECT pseudonym FROM known) "
        "ORDER BY n.pseudonym ON CONFLICT (pseudonym) DO NOTHING "
        "RETURNING pseudonym, subject_id) "
        "SELECT pseudonym, subject_id FROM known UNION ALL SELECT pseudonym, subject_id FROM added",
        wanted,
        [new_subject_id() for _ in wanted],
    )
    found = {r["pseudonym"]: r["subject_id"] for r in rows}
    # Inserted by a transaction that committed after this statement's snapshot was taken.
    others = [p for p in wanted if p not in found]
    if others:
        found |= await _shared(conn, table, others)
    return found


def subject_writes(schema: str, pseudonyms: Iterable[str]) -> list[Write]:
    """:func:`subject_ids` as the first parts of a write's statement (``together``), so that a
    single write needs no round trip of its own for its person: a later part of the same
    statement reads ``(pseudonym, subject_id)`` of every pseudonym from :data:`SUBJECTS_FOUND`
    (the outbox substitutes them, shared/outbox.py). Known ones are read ``FOR SHARE`` and the
    rest inserted in key order, as :func:`subject_ids` does. A pseudonym another transaction
    inserted after the statement's snapshot cannot be read afterwards here: the insert then
    takes that row (``ON CONFLICT ... DO UPDATE`` waits for its transaction and locks the row, in
    READ COMMITTED even when the snapshot does not see it) and returns its subject id, unchanged.
    """
    wanted = sorted(set(pseudonyms))
    table = f'"{schema}".subjects'
    known = f"{SUBJECTS_FOUND}_known"
    added = f"{SUBJECTS_FOUND}_added"
    return [
        Write(
            f"SELECT pseudonym, subject_id FROM {table} WHERE pseudonym = ANY($1::text[]) "
            "ORDER BY pseudonym FOR SHARE",
            (wanted,),
            known,
        ),
        Write(
            f"INSERT INTO {table} (pseudonym, subject_id) "
            "SELECT n.pseudonym, n.subject_id FROM unnest($1::text[], $2::text[]) "
            f"AS n(pseudonym, subject_id) WHERE n.pseudonym NOT IN (SELECT pseudonym FROM {known}) "
            "ORDER BY n.pseudonym ON CONFLICT (pseudonym) DO UPDATE SET pseudonym = "
            "EXCLUDED.pseudonym RETURNING pseudonym, subject_id",
            (wanted, [new_subject_id() for _ in wanted]),
            added,
        ),
        Write(
            f"SELECT pseudonym, subject_id FROM {known} "
            f"UNION ALL SELECT pseudonym, subject_id FROM {added}",
            (),
            SUBJECTS_FOUND,
        ),
    ]


async def _shared(conn: asyncpg.Connection, table: str, pseudonyms: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        f"SELECT pseudonym, subject_id FROM {table} WHERE pseudonym = ANY($1::text[]) "
        "ORDER BY pseudonym FOR SHARE",
        pseudonyms,
    )
    return {r["pseudonym"]: r["subject_id"] for r in rows}
