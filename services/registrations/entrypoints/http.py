"""HTTP entrypoint: maps requests to use cases. No SQL and no business rules here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.registrations.adapters.repository import Repository
from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from services.registrations.service_layer.batch import (
    BATCH_ITEM_SCHEMA,
    KIND_SCOPES,
    BatchWriter,
    batch_item_adapter,
)
from services.registrations.service_layer.handlers import RegistrationHandlers, activity_body
from shared.auth import Principal, Scope
from shared.errors import FieldError, NotFoundError
from shared.http import COMMON_RESPONSES, path_id, require_any_scope, require_scope
from shared.writes import BatchItemResult, WriteResult

# batch_item_adapter: the item schema, where the tools and tests have always found it.
__all__ = ["BATCH_ITEM_SCHEMA", "batch_item_adapter", "build_router"]

# A volunteer's key (`attendance`) keeps activities and records attendance: the scopes of each
# kind of write are those of its batch items (service_layer/batch.py), written once.
ActivityWriter = Annotated[Principal, Depends(require_any_scope(*KIND_SCOPES["activity"]))]
AttendanceWriter = Annotated[Principal, Depends(require_any_scope(*KIND_SCOPES["attendance"]))]
RegistrationWriter = Annotated[Principal, Depends(require_scope(Scope.REGISTRATIONS))]
BatchWriterKey = Annotated[
    Principal, Depends(require_any_scope(Scope.REGISTRATIONS, Scope.ATTENDANCE))
]


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


class ActivityList(BaseModel):
    activities: list[dict[str, Any]]


def build_router(
    handlers: RegistrationHandlers, writer: BatchWriter, batch_max_items: int
) -> APIRouter:
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
        return activity_body(row)

    @router.get("/activities", tags=["activities"], summary="Your organisation's activities")
    async def list_activities(request: Request, principal: ActivityWriter) -> ActivityList:
        """Every activity of the key's organisation, active ones first, then by title."""
        async with request.app.state.pool.acquire() as conn:
            rows = await Repository(conn).activities(principal.organisation_id)
        return ActivityList(activities=[activity_body(r) for r in rows])

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
        request: Request, principal: AttendanceWriter, cmd: AttendanceCommand
    ) -> JSONResponse:
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            return _answer(await handlers.record_attendance(conn, principal.organisation_id, cmd))

    @router.post("/batch", tags=["batch"], summary="Up to 1,000 mixed writes, one result per item")
    async def batch(
        request: Request, principal: BatchWriterKey, body: BatchRequest
    ) -> BatchResponse:
        # Each item needs the scope of its kind as well (service_layer/batch.py KIND_SCOPES).
        if len(body.items) > batch_max_items:
            raise FieldError([("items", f"at most {batch_max_items} items per batch")])
        results = await writer.write(request.app.state.pool, principal, body.items)
        accepted = sum(1 for r in results if r.status < 300)
        return BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)

    return router
