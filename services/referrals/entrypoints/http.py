"""HTTP entrypoint: maps requests to use cases. No SQL and no business rules here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.referrals.domain.commands import (
    MeasurementCommand,
    ReferralCommand,
    StatusCommand,
    TrainingCommand,
)
from services.referrals.service_layer.handlers import ReferralHandlers
from shared.auth import Principal, Scope
from shared.errors import FieldError
from shared.http import COMMON_RESPONSES, ErrorBody, path_id, require_any_scope, require_scope
from shared.identifiers import ORGANISATION_ID_PATTERN
from shared.writes import BatchItemResult, WriteResult, fields_under, parse_batch_item, run_batch

__all__ = ["BATCH_ITEM_SCHEMA", "batch_item_adapter", "build_router"]

ReferralWriter = Annotated[Principal, Depends(require_scope(Scope.REFERRALS))]
TrainingWriter = Annotated[Principal, Depends(require_scope(Scope.TRAININGS))]
MeasurementWriter = Annotated[Principal, Depends(require_scope(Scope.MEASUREMENTS))]
BatchWriter = Annotated[
    Principal,
    Depends(require_any_scope(Scope.REFERRALS, Scope.TRAININGS, Scope.MEASUREMENTS)),
]


REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"description": "Replay of an earlier identical request"}
}
NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such record of your organisation."}
}
NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "No such referral made by or sent to your organisation (another "
        "organisation's referrals are reported the same way).",
    },
    409: {
        "model": ErrorBody,
        "description": "Several organisations sent you a referral with this id: name the one "
        "you mean with `?referring_organisation_id=`.",
    },
}
# Referral ids are unique per referring organisation only: (referrer, id) is the identity.
Referrer = Annotated[
    str | None,
    Query(
        pattern=ORGANISATION_ID_PATTERN,
        description="The organisation that made the referral. Without it the id means your own "
        "referral if you made one with this id, else the one sent to you; when several "
        "organisations sent you one with this id, it is required (409 without it).",
    ),
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
_KINDS = frozenset({"referral", "referral_status", "training", "measurement"})
BATCH_ITEM_SCHEMA = "ReferralsBatchItem"
# The scope each kind of item needs; the batch itself needs any one of them.
_ITEM_SCOPE: dict[type[BaseModel], Scope] = {
    ReferralItem: Scope.REFERRALS,
    ReferralStatusItem: Scope.REFERRALS,
    TrainingItem: Scope.TRAININGS,
    MeasurementItem: Scope.MEASUREMENTS,
}


class BatchRequest(BaseModel):
    """Up to 1,000 items. Each item is `{"kind": ..., "body": {...}}` with the body of the
    single endpoint; kinds are `referral`, `referral_status` (also names `referral_id`, and
    `referring_organisation_id` where the id alone is ambiguous),
    `training` and `measurement`. Each item needs the scope of its single endpoint. Items are
    validated one by one: a bad item does not sink the others."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"items": {"$ref": f"#/components/schemas/{BATCH_ITEM_SCHEMA}"}},
    )


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItemResult]


def _answer(result: WriteResult) -> JSONResponse:
    return JSONResponse(result.body, status_code=result.status_code)


def batch_item_adapter() -> TypeAdapter[Any]:
    return _ITEM


def build_router(handlers: ReferralHandlers, batch_max_items: int) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)  # type: ignore[arg-type]

    @router.post(
        "/referrals",
        tags=["referrals"],
        status_code=201,
        summary="Refer a resident (with consent) to an activity or a service",
        responses=REPLAY,
    )
    async def create_referral(
        request: Request, principal: ReferralWriter, cmd: ReferralCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.create_referral(conn, principal.organisation_id, cmd))

    @router.get(
        "/referrals/{referral_id}",
        tags=["referrals"],
        summary="A referral you made or that was sent to you, with its status history",
        responses=NOT_VISIBLE,
    )
    async def get_referral(
        request: Request,
        principal: ReferralWriter,
        referring_organisation_id: Referrer = None,
        referral_id: str = path_id(),
    ) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as conn:
            return await handlers.referral(
                conn, principal.organisation_id, referral_id, referring_organisation_id
            )

    @router.post(
        "/referrals/{referral_id}/status",
        tags=["referrals"],
        status_code=201,
        summary="Move a referral in its lifecycle: the receiving side accepts, declines, marks "
        "contacted and closes; the referrer withdraws",
        description="The receiving side is the organisation the referral was sent to, or the "
        "provider of its service (the coalition's service list); an organisation that referred "
        "to its own activity is both sides. The other side gets 403, naming who may.",
        responses={
            **REPLAY,
            **NOT_VISIBLE,
            403: {
                "model": ErrorBody,
                "description": "The key lacks the scope, or this change is the other side's "
                "(the message names who may).",
            },
            409: {
                "model": ErrorBody,
                "description": "Not allowed from the current status (`allowed` lists what is), "
                "the same status was posted before with a different body, or several "
                "organisations sent you a referral with this id (name one with "
                "`?referring_organisation_id=`).",
            },
        },
    )
    async def change_status(
        request: Request,
        principal: ReferralWriter,
        cmd: StatusCommand,
        referring_organisation_id: Referrer = None,
        referral_id: str = path_id(),
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(
                await handlers.change_status(
                    conn, principal.organisation_id, referral_id, cmd, referring_organisation_id
                )
            )

    @router.post(
        "/trainings",
        tags=["trainings"],
        status_code=201,
        summary="Record that a professional or volunteer completed a training",
        responses=REPLAY,
    )
    async def record_training(
        request: Request, principal: TrainingWriter, cmd: TrainingCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.record_training(conn, principal.organisation_id, cmd))

    @router.get(
        "/trainings/{training_id}",
        tags=["trainings"],
        summary="One of your trainings (without the person)",
        responses=NOT_YOURS,
    )
    async def get_training(
        request: Request, principal: TrainingWriter, training_id: str = path_id()
    ) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as conn:
            return await handlers.training(conn, principal.organisation_id, training_id)

    @router.post(
        "/measurements",
        tags=["measurements"],
        status_code=201,
        summary="Score a De Jong Gierveld questionnaire; the answer holds the scores",
        responses=REPLAY,
    )
    async def record_measurement(
        request: Request, principal: MeasurementWriter, cmd: MeasurementCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.record_measurement(conn, principal.organisation_id, cmd))

    @router.get(
        "/measurements/{measurement_id}",
        tags=["measurements"],
        summary="One of your measurements (scores only)",
        responses=NOT_YOURS,
    )
    async def get_measurement(
        request: Request, principal: MeasurementWriter, measurement_id: str = path_id()
    ) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as conn:
            return await handlers.measurement(conn, principal.organisation_id, measurement_id)

    @router.post("/batch", tags=["batch"], summary="Up to 1,000 mixed writes, one result per item")
    async def batch(request: Request, principal: BatchWriter, body: BatchRequest) -> BatchResponse:
        org = principal.organisation_id
        if len(body.items) > batch_max_items:
            raise FieldError([("items", f"at most {batch_max_items} items per batch")])

        async def dispatch(conn: Any, raw: Any) -> WriteResult:
            item = parse_batch_item(_ITEM, raw, _KINDS)
            needed = _ITEM_SCOPE[type(item)]
            if not principal.has(needed):
                raise FieldError([("kind", f"this key lacks the scope `{needed.value}`")])
            with fields_under("body"):
                if isinstance(item, ReferralItem):
                    return await handlers.create_referral(conn, org, item.body)
                if isinstance(item, ReferralStatusItem):
                    return await handlers.change_status(
                        conn, org, item.referral_id, item.body, item.referring_organisation_id
                    )
                if isinstance(item, TrainingItem):
                    return await handlers.record_training(conn, org, item.body)
                return await handlers.record_measurement(conn, org, item.body)

        results = await run_batch(request.app.state.pool, body.items, dispatch)
        accepted = sum(1 for r in results if r.status < 300)
        return BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)

    return router
