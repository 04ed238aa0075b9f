"""HTTP: an organisation's keys for its volunteers (scope `attendance` only), issued, listed and
revoked with a key that carries the scope `keys`. The keys live in ``platform``; this service
writes them only through the two functions its database role may call (shared/auth.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.auth import (
    VOLUNTEER_LABEL_MAX,
    KeyInfo,
    Principal,
    Scope,
    issue_volunteer_key,
    revoke_volunteer_key,
    volunteer_keys,
)
from shared.errors import NotFoundError
from shared.http import COMMON_RESPONSES, path_id, require_scope
from shared.text import StorableText

__all__ = ["build_keys_router"]

KeyManager = Annotated[Principal, Depends(require_scope(Scope.KEYS))]


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
    async def issue(request: Request, principal: KeyManager, body: NewVolunteerKey) -> JSONResponse:
        org = principal.organisation_id
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            key = await issue_volunteer_key(conn, org, body.label, principal.key_id)
            info = next(k for k in await volunteer_keys(conn, org) if k.key_id == key.key_id)
        issued = IssuedVolunteerKey(**_out(info).model_dump(), key=key.secret)
        # Never cached anywhere on the way: the key is in this answer only.
        return JSONResponse(
            issued.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
        )

    @router.get("/keys", summary="Your organisation's volunteer keys (never the keys themselves)")
    async def list_keys(request: Request, principal: KeyManager) -> VolunteerKeys:
        async with request.app.state.pool.acquire() as conn:
            keys = await volunteer_keys(conn, principal.organisation_id)
        return VolunteerKeys(keys=[_out(k) for k in keys])

    @router.delete(
        "/keys/{key_id}",
        status_code=204,
        summary="Revoke a volunteer key; it is refused from the next request on",
        responses={204: {"description": "Revoked"}},
    )
    async def revoke(request: Request, principal: KeyManager, key_id: str = path_id()) -> Response:
        async with request.app.state.pool.acquire() as conn:
            revoked = await revoke_volunteer_key(conn, principal.organisation_id, key_id)
        if not revoked:
            # Another organisation's key, a partner key and an unknown id answer alike.
            raise NotFoundError(f"no active volunteer key {key_id!r} of your organisation")
        return Response(status_code=204)

    return router
