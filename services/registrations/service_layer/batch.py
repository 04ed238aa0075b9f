"""The registrations service's write path for many items at once.

``POST /v1/batch``, spreadsheet uploads and a volunteer's ticked list all call
:meth:`BatchWriter.write` with a list of batch items (``{"kind": ..., "body": {...}}``, the body
of the single endpoint) and get one result per item: one validation, one set of scope rules, one
set of handlers, the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from services.registrations.service_layer.handlers import RegistrationHandlers
from shared.auth import Principal, Scope
from shared.errors import FieldError
from shared.writes import BatchItemResult, WriteResult, fields_under, parse_batch_item, run_batch

__all__ = [
    "BATCH_ITEM_SCHEMA",
    "KIND_SCOPES",
    "BatchWriter",
    "batch_item_adapter",
]

ItemId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")]


class ActivityItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["activity"]
    activity_id: ItemId
    body: ActivityCommand


class RegistrationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["registration"]
    body: RegistrationCommand


class CancellationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["cancellation"]
    registration_id: ItemId
    body: CancellationCommand


class AttendanceItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["attendance"]
    body: AttendanceCommand


BatchItem = Annotated[
    ActivityItem | RegistrationItem | CancellationItem | AttendanceItem, Field(discriminator="kind")
]
_ITEM: TypeAdapter[Any] = TypeAdapter(BatchItem)
BATCH_ITEM_SCHEMA = "RegistrationsBatchItem"

# Which scopes let a key write an item of each kind (any one of them; admin opens all). A
# volunteer's key (`attendance`) keeps activities and records attendance, nothing else.
KIND_SCOPES: dict[str, tuple[Scope, ...]] = {
    "activity": (Scope.ACTIVITIES, Scope.ATTENDANCE),
    "registration": (Scope.REGISTRATIONS,),
    "cancellation": (Scope.REGISTRATIONS,),
    "attendance": (Scope.REGISTRATIONS, Scope.ATTENDANCE),
}
# The ids that a single endpoint takes from its path sit beside `body` in an item.
_OWN_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    ActivityItem: ("activity_id",),
    CancellationItem: ("registration_id",),
}


def batch_item_adapter() -> TypeAdapter[Any]:
    return _ITEM


def _scope_problem(principal: Principal, kind: str) -> str | None:
    scopes = KIND_SCOPES[kind]
    if any(principal.has(scope) for scope in scopes):
        return None
    names = " or ".join(f"`{s.value}`" for s in scopes)
    return f"this key lacks the scope {names}"


class BatchWriter:
    """Validates, authorises and applies a list of batch items, one result per item."""

    def __init__(self, handlers: RegistrationHandlers) -> None:
        self.handlers = handlers

    async def write(
        self,
        pool: asyncpg.Pool,
        principal: Principal,
        items: Sequence[Any],
        *,
        all_or_nothing: bool = False,
    ) -> list[BatchItemResult]:
        """Apply ``items`` (raw, as a partner sends them) for the key's organisation.

        With ``all_or_nothing`` one rejected item means that none is written (the results say
        what each would have done)."""
        org = principal.organisation_id
        handlers = self.handlers

        async def dispatch(conn: asyncpg.Connection, raw: Any) -> WriteResult:
            item = parse_batch_item(_ITEM, raw, KIND_SCOPES)
            lacking = _scope_problem(principal, item.kind)
            if lacking:
                raise FieldError([("kind", lacking)])
            with fields_under("body", keep=_OWN_FIELDS.get(type(item), ())):
                if isinstance(item, ActivityItem):
                    return await handlers.put_activity(conn, org, item.activity_id, item.body)
                if isinstance(item, RegistrationItem):
                    return await handlers.register(conn, org, item.body)
                if isinstance(item, CancellationItem):
                    return await handlers.cancel(conn, org, item.registration_id, item.body)
                return await handlers.record_attendance(conn, org, item.body)

        return await run_batch(pool, items, dispatch, all_or_nothing=all_or_nothing)
