"""HTTP entrypoint: maps requests to use cases. No SQL and no business rules here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.registrations.adapters.repository import Repository
from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from services.registrations.service_layer.handlers import RegistrationHandlers, _activity_body
from shared.auth import Principal, Scope
from shared.errors import FieldError, NotFoundError
from shared.http import COMMON_RESPONSES, path_id, require_scope
from shared.writes import BatchItemResult, WriteResult, fields_under, parse_batch_item, run_batch

__all__ = ["BATCH_ITEM_SCHEMA", "batch_item_adapter", "build_router"]

ActivityWriter = Annotated[Principal, Depends(require_scope(Scope.ACTIVITIES))]
RegistrationWriter = Annotated[Principal, Depends(require_scope(Scope.REGISTRATIONS))]


class ActivityItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["activity"]
    activity_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")
    body: ActivityCommand


class RegistrationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["registration"]
    body: RegistrationCommand


class CancellationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["cancellation"]
    registration_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")
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
_KINDS = ("activity", "registration", "cancellation", "attendance")


class BatchRequest(BaseModel):
    """Up to 1,000 items. Each item is `{"kind": ..., "body": {...}}` with the body of the
    single endpoint (`activity` also names `activity_id`, `cancellation` names
    `registration_id`). Items are validated one by one: a bad item does not sink the others."""

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


class WriteAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")


def _answer(result: WriteResult) -> JSONResponse:
    return JSONResponse(result.body, status_code=result.status_code)


def batch_item_adapter() -> TypeAdapter[Any]:
    return _ITEM


def build_router(handlers: RegistrationHandlers, batch_max_items: int) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)  # type: ignore[arg-type]

    @router.put(
        "/activities/{activity_id}",
        tags=["activities"],
        status_code=201,
        summary="Create or change an activity",
        responses={200: {"description": "Changed, or unchanged (same state again)"}},
    )
    async def put_activity(
        request: Request,
        principal: ActivityWriter,
        cmd: ActivityCommand,
        activity_id: str = path_id(),
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(
                await handlers.put_activity(conn, principal.organisation_id, activity_id, cmd)
            )

    @router.get("/activities/{activity_id}", tags=["activities"], summary="One of your activities")
    async def get_activity(
        request: Request, principal: ActivityWriter, activity_id: str = path_id()
    ) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as conn:
            row = await Repository(conn).activity(principal.organisation_id, activity_id)
        if row is None:
            raise NotFoundError(f"no activity {activity_id!r} of your organisation")
        return _activity_body(row)

    @router.post(
        "/registrations",
        tags=["registrations"],
        status_code=201,
        summary="Register a participant for an activity",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def register(
        request: Request, principal: RegistrationWriter, cmd: RegistrationCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.register(conn, principal.organisation_id, cmd))

    @router.get(
        "/registrations/{registration_id}",
        tags=["registrations"],
        summary="One of your registrations",
    )
    async def get_registration(
        request: Request, principal: RegistrationWriter, registration_id: str = path_id()
    ) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as conn:
            row = await Repository(conn).registration(principal.organisation_id, registration_id)
        if row is None:
            raise NotFoundError(f"no registration {registration_id!r} of your organisation")
        return {
            "registration_id": row.registration_id,
            "activity_id": row.activity_id,
            "registered_at": row.registered_at.isoformat(),
            "referral_id": row.referral_id,
            "referring_organisation_id": row.referring_organisation_id,
            "cancelled_at": row.cancelled_at.isoformat() if row.cancelled_at else None,
        }

    @router.post(
        "/registrations/{registration_id}/cancellation",
        tags=["registrations"],
        status_code=201,
        summary="Cancel a registration",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def cancel(
        request: Request,
        principal: RegistrationWriter,
        cmd: CancellationCommand,
        registration_id: str = path_id(),
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(
                await handlers.cancel(conn, principal.organisation_id, registration_id, cmd)
            )

    @router.post(
        "/attendance",
        tags=["attendance"],
        status_code=201,
        summary="Record that a participant attended a session (or did not show)",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def attendance(
        request: Request, principal: RegistrationWriter, cmd: AttendanceCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.record_attendance(conn, principal.organisation_id, cmd))

    @router.post("/batch", tags=["batch"], summary="Up to 1,000 mixed writes, one result per item")
    async def batch(
        request: Request, principal: RegistrationWriter, body: BatchRequest
    ) -> BatchResponse:
        # The batch needs the registrations scope; activity items need the activities scope too.
        org = principal.organisation_id
        if len(body.items) > batch_max_items:
            raise FieldError([("items", f"at most {batch_max_items} items per batch")])

        async def dispatch(conn: Any, raw: Any) -> WriteResult:
            item = parse_batch_item(_ITEM, raw, _KINDS)
            if isinstance(item, ActivityItem) and not principal.has(Scope.ACTIVITIES):
                raise FieldError([("kind", "this key lacks the scope `activities`")])
            # The ids that a single endpoint takes from its path sit beside `body` in an item.
            own: dict[type[BaseModel], tuple[str, ...]] = {
                ActivityItem: ("activity_id",),
                CancellationItem: ("registration_id",),
            }
            with fields_under("body", keep=own.get(type(item), ())):
                if isinstance(item, ActivityItem):
                    return await handlers.put_activity(conn, org, item.activity_id, item.body)
                if isinstance(item, RegistrationItem):
                    return await handlers.register(conn, org, item.body)
                if isinstance(item, CancellationItem):
                    return await handlers.cancel(conn, org, item.registration_id, item.body)
                return await handlers.record_attendance(conn, org, item.body)

        results = await run_batch(request.app.state.pool, body.items, dispatch)
        accepted = sum(1 for r in results if r.status < 300)
        return BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)

    return router
