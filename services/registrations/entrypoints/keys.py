"""HTTP: an organisation's keys for its volunteers (scope `attendance` only), issued, listed and
revoked with a key that carries the scope `keys` (service_layer/keys.py). The keys live in
``platform``; this service writes them only through the two functions its database role may
call (shared/auth.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.registrations.service_layer import keys
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.auth import VOLUNTEER_LABEL_MAX, KeyInfo, Scope
from shared.http import COMMON_RESPONSES, Caller, caller, path_id
from shared.text import StorableText

__all__ = ["build_keys_router"]

KeyManager = Annotated[
    Caller[RegistrationsUnitOfWork], Depends(caller(Scope.KEYS), scope="function")
]


class NewVolunteerKey(StorableText):
    model_config = ConfigDict(extra="forbid")
    label: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=VOLUNTEER_LABEL_MAX),
        ]
        | None
    ) = Field(
        None,
        description="Something to recognise the key by, e.g. `tablet buurthuis` or "
        "`vrijwilliger 3`. No full names needed.",
    )


class VolunteerKey(BaseModel):
    key_id: str = Field(description="The public part of the key (`vb_<key id>_...`).")
    scopes: list[str]
    label: str | None
    created_at: datetime
    created_by: str | None = Field(description="The key id that issued it; null: the CLI.")
    revoked_at: datetime | None


class IssuedVolunteerKey(VolunteerKey):
    key: str = Field(description="The key itself. Shown once: only its SHA-256 is stored.")


class VolunteerKeys(BaseModel):
    keys: list[VolunteerKey]


def _out(info: KeyInfo) -> VolunteerKey:
    return VolunteerKey(
        key_id=info.key_id,
        scopes=list(info.scopes),
        label=info.label,
        created_at=info.created_at,
        created_by=info.created_by,
        revoked_at=info.revoked_at,
    )


def build_keys_router() -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES, tags=["keys"])  # type: ignore[arg-type]

    @router.post(
        "/keys",
        status_code=201,
        summary="Issue a key for a volunteer (scope `attendance`: activities and attendance)",
        response_model=IssuedVolunteerKey,
    )
    async def issue(c: KeyManager, body: NewVolunteerKey) -> JSONResponse:
        key, info = await keys.issue(
            c.uow, c.principal.organisation_id, body.label, c.principal.key_id
        )
        issued = IssuedVolunteerKey(**_out(info).model_dump(), key=key.secret)
        # Never cached anywhere on the way: the key is in this answer only.
        return JSONResponse(
            issued.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
        )

    @router.get("/keys", summary="Your organisation's volunteer keys (never the keys themselves)")
    async def list_keys(c: KeyManager) -> VolunteerKeys:
        listed = await keys.listed(c.uow, c.principal.organisation_id)
        return VolunteerKeys(keys=[_out(k) for k in listed])

    @router.delete(
        "/keys/{key_id}",
        status_code=204,
        summary="Revoke a volunteer key; it is refused from the next request on",
        responses={204: {"description": "Revoked"}},
    )
    async def revoke(c: KeyManager, key_id: str = path_id()) -> Response:
        await keys.revoke(c.uow, c.principal.organisation_id, key_id)
        return Response(status_code=204)

    return router
