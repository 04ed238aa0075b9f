"""The shape of every accepted write: idempotency check, state change, outbox, remembered answer,
all in the caller's transaction; and batches of such writes with one result per item."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared import idempotency, outbox
from shared.db import DatabaseUnavailable
from shared.errors import ConflictError, FieldError, ForbiddenError, NotFoundError
from shared.events import CloudEvent
from shared.pseudonym import Pseudonymiser

__all__ = [
    "BatchItemResult",
    "Outcome",
    "WriteContext",
    "WriteResult",
    "fields_under",
    "idempotent_write",
    "parse_batch_item",
    "run_batch",
    "validation_details",
]


@dataclass(frozen=True)
class WriteContext:
    """What a service's write handlers need besides the connection."""

    schema: str
    pseudonymiser: Pseudonymiser
    topic_prefix: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a first-time write produced: the answer and the events to publish."""

    status_code: int
    body: dict[str, Any]
    events: Sequence[CloudEvent[Any]] = field(default_factory=tuple)


@dataclass(frozen=True)
class WriteResult:
    status_code: int
    body: dict[str, Any]


async def idempotent_write(
    conn: asyncpg.Connection,
    ctx: WriteContext,
    organisation_id: str,
    kind: str,
    item_id: str,
    request: dict[str, Any],
    perform: Callable[[], Awaitable[Outcome]],
) -> WriteResult:
    """Run ``perform`` once per (organisation, kind, id); replay its answer for the same body."""
    digest = idempotency.request_digest(ctx.pseudonymiser, kind, item_id, request)
    replay = await idempotency.check(conn, ctx.schema, organisation_id, kind, item_id, digest)
    if replay is not None:
        return WriteResult(replay.status_code, replay.body)
    outcome = await perform()
    await outbox.enqueue(conn, ctx.schema, outcome.events, ctx.topic_prefix)
    await idempotency.remember(
        conn, ctx.schema, organisation_id, kind, item_id, digest, outcome.status_code, outcome.body
    )
    return WriteResult(outcome.status_code, outcome.body)


class BatchItemResult(BaseModel):
    """One result per batch item, in the order of the request."""

    index: int
    status: int = Field(description="The HTTP status the item would have had on its own.")
    body: dict[str, Any] | None = None
    error: str | None = None
    details: list[dict[str, str]] = Field(default_factory=list)
    message: str | None = None


def validation_details(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field_name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "body")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = err["msg"]
        out.append((field_name, message))
    return out


ItemT = TypeVar("ItemT")


def parse_batch_item(adapter: TypeAdapter[ItemT], raw: Any, kinds: Collection[str]) -> ItemT:
    """Validate one batch item against a union of item models discriminated by ``kind``.

    Raises :class:`FieldError` with field names relative to the item (``body.participant.ref``).
    Pydantic puts the union's tag first in an error's location; it names a kind, not a field,
    so a partner would look for a field that is not there: it is dropped.
    """
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            if loc and loc[0] in kinds:
                loc = loc[1:]
            message = {
                "extra_forbidden": "unknown field",
                "missing": "required field is missing",
            }.get(err["type"], err["msg"])
            details.append((".".join(loc) or "kind", message))
        raise FieldError(details) from None


class _RollBack(Exception):
    """Leaves the batch's transaction without committing (an all-or-nothing batch that failed)."""


async def run_batch(
    pool: asyncpg.Pool,
    items: Sequence[Any],
    dispatch: Callable[[asyncpg.Connection, Any], Awaitable[WriteResult]],
    *,
    all_or_nothing: bool = False,
) -> list[BatchItemResult]:
    """Apply every item in one transaction, each inside its own savepoint.

    One commit for the whole batch keeps ingestion fast (a commit costs an fsync); the savepoint
    keeps a bad item from sinking the others. A database outage fails the whole batch (503),
    so the partner retries it; idempotency makes that retry safe.

    With ``all_or_nothing``, one failed item rolls the whole batch back: nothing is written,
    and the results still say what each item did or would have done (a spreadsheet with one
    bad row writes nothing unless its uploader asks for the good rows).
    """
    results: list[BatchItemResult] = []
    try:
        async with pool.acquire() as conn, conn.transaction():
            for index, item in enumerate(items):
                try:
                    async with conn.transaction():
                        written = await dispatch(conn, item)
                    results.append(
                        BatchItemResult(index=index, status=written.status_code, body=written.body)
                    )
                except DatabaseUnavailable:
                    raise
                except ValidationError as exc:
                    results.append(_failed(index, FieldError(validation_details(exc))))
                except (FieldError, ConflictError, ForbiddenError, NotFoundError) as exc:
                    results.append(_failed(index, exc))
            if all_or_nothing and any(r.status >= 300 for r in results):
                raise _RollBack
    except _RollBack:
        pass
    return results


def _failed(index: int, exc: Exception) -> BatchItemResult:
    if isinstance(exc, FieldError):
        return BatchItemResult(
            index=index,
            status=422,
            error="validation_failed",
            details=[{"field": f, "message": m} for f, m in exc.details],
        )
    if isinstance(exc, ConflictError):
        return BatchItemResult(index=index, status=409, error="conflict", message=exc.message)
    if isinstance(exc, ForbiddenError):
        return BatchItemResult(index=index, status=403, error="forbidden", message=exc.message)
    return BatchItemResult(index=index, status=404, error="not_found", message=str(exc))


@contextlib.contextmanager
def fields_under(prefix: str, keep: Collection[str] = ()) -> Iterator[None]:
    """Handlers name fields of a request body; inside a batch item those fields sit under
    ``body`` (as the fields that failed parsing do: ``body.participant.ref``). The fields in
    ``keep`` are the item's own (an id that is a path parameter of the single endpoint, e.g. a
    cancellation's ``registration_id``): they stay as they are."""
    try:
        yield
    except FieldError as exc:
        raise FieldError(
            [(f if f in keep else f"{prefix}.{f}", m) for f, m in exc.details]
        ) from None
