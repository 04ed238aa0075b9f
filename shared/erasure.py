"""Erasure of a person on request (AVG art. 17) in a writing service: what both services do, with
the tables each names (docs/privacy.md "Erasure").

In one transaction of the service's schema:

1. the person's subject ids are deleted (shared/subjects.py) — first, so that a write of the same
   person that is under way finishes before the rest is deleted (it holds the row);
2. the person's records (rows with the person's pseudonym) and the records that hang off them;
3. the remembered answers of those records' writes become tombstones: a retry of an erased write
   answers 410 Gone instead of writing the person again (its digest and answer are dropped);
4. the person's events still in the outbox;
5. a ``person.erased`` event per subject id goes into the outbox (topic ``erasures``), on which
   the metrics service drops the person's facts and every rebuild skips the person;
6. the erasure is recorded without personal data: who asked, when, how many records.

Nothing of the person is kept: not the reference, not the pseudonym, not the subject id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events import PersonErased, new_event
from shared.outbox import outbox_write
from shared.pipeline.decisions import ERASED_STATUS
from shared.pipeline.statements import together
from shared.pseudonym import Pseudonymiser

__all__ = [
    "ERASED_ANSWER",
    "ERASED_STATUS",
    "ErasableTable",
    "ErasureRequest",
    "erase",
    "like_literal",
]

# What a retry of an erased write answers.
ERASED_ANSWER: dict[str, Any] = {
    "error": "erased",
    "message": "this write was about a person who has been erased on request (AVG art. 17); "
    "it is not written again. A new write about the person needs a new id.",
}

_Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\s/]+$"),
]


class ErasureRequest(BaseModel):
    """Erase one person: a participant by your own reference for them (`ref`) or by the
    coalition-wide resident token (`resident_token`, which erases the resident at every
    organisation), or one of your trained professionals or volunteers by the reference you sent
    with their trainings (`person_ref`, referrals service); exactly one of the three."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    erasure_id: _Id = Field(
        description="Your id for this erasure; repeating the request with it answers as the "
        "first time did."
    )
    ref: _Ref | None = Field(
        None, description="Your reference for the person, as you sent it in their writes."
    )
    resident_token: _Ref | None = Field(
        None, description="The resident token you sent in their writes."
    )
    person_ref: _Ref | None = Field(
        None,
        description="Your reference for a trained professional or volunteer, as you sent it "
        "in `POST /v1/trainings` (only the referrals service holds trainings).",
    )

    @model_validator(mode="after")
    def _one_person(self) -> ErasureRequest:
        given = [v for v in (self.ref, self.resident_token, self.person_ref) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `ref`, `resident_token` and `person_ref`")
        return self

    @property
    def scope(self) -> Literal["organisation", "resident", "person"]:
        if self.resident_token is not None:
            return "resident"
        return "person" if self.person_ref is not None else "organisation"

    def pseudonym(self, organisation_id: str, pseudonymiser: Pseudonymiser) -> str:
        if self.resident_token is not None:
            return pseudonymiser.resident(self.resident_token)
        if self.person_ref is not None:
            return pseudonymiser.person(organisation_id, self.person_ref)
        assert self.ref is not None
        return pseudonymiser.participant(organisation_id, self.ref)


# A remembered answer of a deleted record: (organisation or None for any, kind, item id or a
# LIKE pattern).
AnswerKey = tuple[str | None, str, str]


@dataclass(frozen=True)
class ErasableTable:
    """A table of a service that holds a person's records (``person_column`` = pseudonym).

    ``dependents``: tables whose rows hang off a record by (organisation_id, ``id_column``),
    deleted first. ``answers``: the remembered answers of a deleted record's writes."""

    name: str
    id_column: str
    answers: Callable[[str, str], Sequence[AnswerKey]]
    moment_column: str  # when the record happened: its retention counts from there
    person_column: str = "participant_id"
    dependents: tuple[str, ...] = field(default=())


async def erase(
    conn: asyncpg.Connection,
    schema: str,
    tables: Sequence[ErasableTable],
    *,
    organisation_id: str,
    request: ErasureRequest,
    pseudonymiser: Pseudonymiser,
    requested_by: str,
    topic_prefix: str = "",
) -> dict[str, Any]:
    """Erase the person ``request`` names from ``schema``; the answer (also a repeat's)."""
    s = f'"{schema}"'
    pseudonym = request.pseudonym(organisation_id, pseudonymiser)
    async with conn.transaction():
        # One erasure id at a time (two identical requests at once wait for each other).
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            f"{schema}/erasure/{organisation_id}/{request.erasure_id}",
        )
        earlier = await conn.fetchrow(
            f"SELECT requested_at, scope, deleted FROM {s}.erasures "
            "WHERE organisation_id = $1 AND erasure_id = $2",
            organisation_id,
            request.erasure_id,
        )
        if earlier is not None:
            return _answer(request.erasure_id, earlier["requested_at"], earlier["deleted"])
        subjects = [
            r["subject_id"]
            for r in await conn.fetch(
                f"DELETE FROM {s}.subjects WHERE pseudonym = $1 RETURNING subject_id", pseudonym
            )
        ]
        deleted: dict[str, int] = {}
        answers: list[AnswerKey] = []
        for table in tables:
            ids = await conn.fetch(
                f"SELECT organisation_id, {table.id_column} AS id FROM {s}.{table.name} "
                f"WHERE {table.person_column} = $1",
                pseudonym,
            )
            orgs, keys = [r["organisation_id"] for r in ids], [r["id"] for r in ids]
            for dependent in table.dependents:
                status = await conn.execute(
                    f"DELETE FROM {s}.{dependent} d USING unnest($1::text[], $2::text[]) "
                    f"AS k(o, id) WHERE d.organisation_id = k.o AND d.{table.id_column} = k.id",
                    orgs,
                    keys,
                )
                deleted[dependent] = deleted.get(dependent, 0) + _count(status)
            status = await conn.execute(
                f"DELETE FROM {s}.{table.name} WHERE {table.person_column} = $1", pseudonym
            )
            deleted[table.name] = _count(status)
            for org, key in zip(orgs, keys, strict=True):
                answers.extend(table.answers(org, key))
        deleted["answers"] = await _tombstones(conn, s, answers)
        status = await conn.execute(
            f"DELETE FROM {s}.outbox WHERE key = ANY($1::bytea[])",
            [subject.encode() for subject in subjects],
        )
        deleted["outbox"] = _count(status)
        now = datetime.now(UTC)
        events = [
            new_event(PersonErased(subject_id=subject, erased_at=now), None, time=now)
            for subject in subjects
        ]
        if events:
            sql, args = together(outbox_write(schema, events, topic_prefix))
            await conn.execute(sql, *args)
        deleted["subjects"] = len(subjects)
        await conn.execute(
            f"INSERT INTO {s}.erasures (organisation_id, erasure_id, requested_by, requested_at, "
            "scope, deleted) VALUES ($1, $2, $3, $4, $5, $6)",
            organisation_id,
            request.erasure_id,
            requested_by,
            now,
            request.scope,
            deleted,
        )
    return _answer(request.erasure_id, now, deleted)


async def _tombstones(conn: asyncpg.Connection, s: str, answers: Sequence[AnswerKey]) -> int:
    """The remembered answers of erased records become 410 Gone, without digest or answer."""
    if not answers:
        return 0
    status = await conn.execute(
        f"UPDATE {s}.idempotency i SET request_digest = '', status_code = $4, response = $5 "
        "FROM unnest($1::text[], $2::text[], $3::text[]) AS k(o, kind, id) "
        "WHERE (k.o IS NULL OR i.organisation_id = k.o) AND i.kind = k.kind "
        "AND i.item_id LIKE k.id",
        [a[0] for a in answers],
        [a[1] for a in answers],
        [a[2] for a in answers],
        ERASED_STATUS,
        ERASED_ANSWER,  # jsonb: the pool's codec encodes it (shared/db.py)
    )
    return _count(status)


def like_literal(value: str) -> str:
    """``value`` as a LIKE pattern that matches exactly it."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


def _answer(erasure_id: str, at: datetime, deleted: Any) -> dict[str, Any]:
    counts = orjson.loads(deleted) if isinstance(deleted, str | bytes) else dict(deleted)
    return {
        "erasure_id": erasure_id,
        "status": "erased",
        "requested_at": at.isoformat(),
        "deleted": counts,
    }


class Eraser:
    """A writing service's erasure: its schema and the tables that hold people's records."""

    def __init__(
        self,
        schema: str,
        tables: Sequence[ErasableTable],
        pseudonymiser: Pseudonymiser,
        topic_prefix: str = "",
    ) -> None:
        self.schema = schema
        self.tables = tables
        self.pseudonymiser = pseudonymiser
        self.topic_prefix = topic_prefix

    async def __call__(
        self,
        uow: Any,
        organisation_id: str,
        request: ErasureRequest,
        requested_by: str,
    ) -> dict[str, Any]:
        """On the unit of work's connection (a request's, or the operator's); the relay is woken
        for the erasure events as after any write."""
        answer = await erase(
            uow.conn,
            self.schema,
            self.tables,
            organisation_id=organisation_id,
            request=request,
            pseudonymiser=self.pseudonymiser,
            requested_by=requested_by,
            topic_prefix=self.topic_prefix,
        )
        if getattr(uow, "after_commit", None) is not None:
            await uow.after_commit(uow.conn)
        return answer
