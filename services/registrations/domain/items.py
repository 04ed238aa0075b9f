"""A batch item of the registrations service: ``{"kind": ..., "body": {...}}`` with the body of
the single endpoint (and the ids that endpoint takes from its path). ``POST /v1/batch``, uploads
and the volunteers' page send these; the simulator and the benchmark build them too."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)

__all__ = [
    "BATCH_ITEM_SCHEMA",
    "KINDS",
    "OWN_FIELDS",
    "ActivityItem",
    "AttendanceItem",
    "BatchItem",
    "CancellationItem",
    "RegistrationItem",
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
KINDS = ("activity", "registration", "cancellation", "attendance")
# The ids that a single endpoint takes from its path sit beside `body` in an item.
OWN_FIELDS: dict[str, tuple[str, ...]] = {
    "activity": ("activity_id",),
    "cancellation": ("registration_id",),
}


def batch_item_adapter() -> TypeAdapter[Any]:
    return _ITEM
