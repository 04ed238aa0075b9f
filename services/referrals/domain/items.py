"""A batch item of the referrals service: ``{"kind": ..., "body": {...}}`` with the body of the
single endpoint; a status change also names the referral (and, where its id alone is ambiguous,
its referrer), as the single endpoint's path and query do. The simulator and the benchmark build
these too."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.referrals.domain.commands import (
    MeasurementCommand,
    ReferralCommand,
    StatusCommand,
    TrainingCommand,
)
from shared.identifiers import ORGANISATION_ID_PATTERN

__all__ = [
    "BATCH_ITEM_SCHEMA",
    "KINDS",
    "BatchItem",
    "MeasurementItem",
    "ReferralItem",
    "ReferralStatusItem",
    "TrainingItem",
    "batch_item_adapter",
]


class ReferralItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["referral"]
    body: ReferralCommand


class ReferralStatusItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["referral_status"]
    referral_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")
    referring_organisation_id: str | None = Field(
        None,
        pattern=ORGANISATION_ID_PATTERN,
        description="As `?referring_organisation_id=` of the single endpoint.",
    )
    body: StatusCommand


class TrainingItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["training"]
    body: TrainingCommand


class MeasurementItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["measurement"]
    body: MeasurementCommand


BatchItem = Annotated[
    ReferralItem | ReferralStatusItem | TrainingItem | MeasurementItem,
    Field(discriminator="kind"),
]
_ITEM: TypeAdapter[Any] = TypeAdapter(BatchItem)
BATCH_ITEM_SCHEMA = "ReferralsBatchItem"
KINDS = ("referral", "referral_status", "training", "measurement")


def batch_item_adapter() -> TypeAdapter[Any]:
    return _ITEM
