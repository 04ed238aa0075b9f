"""HTTP entrypoint: translates requests into the service's writes and views, and their answers
back. No SQL, no connections and no business rules here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from services.registrations.domain.decide import State
from services.registrations.domain.items import (
    BATCH_ITEM_SCHEMA,
    ActivityItem,
    AttendanceItem,
    BatchItem,
    CancellationItem,
    RegistrationItem,
)
from services.registrations.entrypoints.answers import (
    ActivityList,
    ActivityRecord,
    RegistrationRecord,
)
from services.registrations.service_layer import views
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from services.registrations.service_layer.writes import KIND_SCOPES
from shared.auth import Scope
from shared.http import (
    COMMON_RESPONSES,
    BatchResponse,
    Caller,
    answer,
    caller,
    documented,
    path_id,
    write_batch,
)
from shared.pipeline.pipeline import Pipeline

__all__ = ["build_router"]

Writes = Pipeline[BatchItem, State, RegistrationsUnitOfWork]
Uow = Caller[RegistrationsUnitOfWork]

# A volunteer's key (`attendance`) keeps activities and records attendance: the scopes of each
# kind of write are those of its batch items (service_layer/writes.py), written once.
ActivityWriter = Annotated[Uow, Depends(caller(*KIND_SCOPES["activity"]), scope="function")]
AttendanceWriter = Annotated[Uow, Depends(caller(*KIND_SCOPES["attendance"]), scope="function")]
RegistrationWriter = Annotated[Uow, Depends(caller(Scope.REGISTRATIONS), scope="function")]
BatchWriter = Annotated[
    Uow, Depends(caller(Scope.REGISTRATIONS, Scope.ATTENDANCE), scope="function")
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


def build_router(writes: Writes, batch_max_items: int) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)  # type: ignore[arg-type]

    @router.put(
        "/activities/{activity_id}",
        tags=["activities"],
        status_code=201,
        summary="Create or change an activity",
        responses={
            **documented(ActivityRecord, 201, "Created"),
            200: {
                "model": ActivityRecord,
                "description": "Changed, or unchanged (same state again)",
            },
        },
    )
    async def put_activity(
        c: ActivityWriter, cmd: ActivityCommand, activity_id: str = path_id()
    ) -> JSONResponse:
        item = ActivityItem(kind="activity", activity_id=activity_id, body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.get(
        "/activities/{activity_id}",
        tags=["activities"],
        summary="One of your activities",
        responses=documented(ActivityRecord),
    )
    async def get_activity(c: ActivityWriter, activity_id: str = path_id()) -> Any:
        return await views.activity(c.uow, c.principal.organisation_id, activity_id)

    @router.get(
        "/activities",
        tags=["activities"],
        summary="Your organisation's activities",
        responses=documented(ActivityList),
    )
    async def list_activities(c: ActivityWriter) -> Any:
        """Every activity of the key's organisation, active ones first, then by title."""
        return {"activities": await views.activities(c.uow, c.principal.organisation_id)}

    @router.post(
        "/registrations",
        tags=["registrations"],
        status_code=201,
        summary="Register a participant for an activity",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def register(c: RegistrationWriter, cmd: RegistrationCommand) -> JSONResponse:
        item = RegistrationItem(kind="registration", body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.get(
        "/registrations/{registration_id}",
        tags=["registrations"],
        summary="One of your registrations",
        responses=documented(RegistrationRecord),
    )
    async def get_registration(c: RegistrationWriter, registration_id: str = path_id()) -> Any:
        return await views.registration(c.uow, c.principal.organisation_id, registration_id)

    @router.post(
        "/registrations/{registration_id}/cancellation",
        tags=["registrations"],
        status_code=201,
        summary="Cancel a registration",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def cancel(
        c: RegistrationWriter, cmd: CancellationCommand, registration_id: str = path_id()
    ) -> JSONResponse:
        item = CancellationItem(kind="cancellation", registration_id=registration_id, body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.post(
        "/attendance",
        tags=["attendance"],
        status_code=201,
        summary="Record that a participant attended a session (or did not show)",
        responses={200: {"description": "Replay of an earlier identical request"}},
    )
    async def attendance(c: AttendanceWriter, cmd: AttendanceCommand) -> JSONResponse:
        item = AttendanceItem(kind="attendance", body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.post("/batch", tags=["batch"], summary="Up to 1,000 mixed writes, one result per item")
    async def batch(c: BatchWriter, body: BatchRequest) -> BatchResponse:
        return await write_batch(writes, c, body.items, batch_max_items)

    return router
