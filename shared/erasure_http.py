"""``POST /v1/erasures`` of both writing services (shared/erasure.py; docs/privacy.md "Erasure")."""

# No `from __future__ import annotations`: the route's dependency is built from this call's
# scopes, which FastAPI must see as an object, not as a name to look up later.

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.auth import Scope
from shared.erasure import Eraser, ErasureRequest
from shared.errors import FieldError
from shared.http import COMMON_RESPONSES, ApiError, Caller, caller

__all__ = ["build_erasure_router"]


def build_erasure_router(
    eraser: Eraser, *scopes: Scope, person_scopes: Sequence[Scope] = ()
) -> APIRouter:
    """``scopes``: any one of them lets a key erase the participants its organisation wrote
    about; ``person_scopes``: the trained people (`person_ref`), where the service holds
    trainings. A key erases only the kind of person its scopes let it write about."""
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)  # type: ignore[arg-type]
    Erasing = Annotated[Caller[Any], Depends(caller(*scopes, *person_scopes), scope="function")]

    @router.post(
        "/erasures",
        tags=["erasure"],
        status_code=202,
        summary="Erase a person on request (AVG art. 17)",
        responses={
            202: {
                "description": "Erased from this service; the figures and every other reader "
                "follow through the `erasures` topic. A repeat with the same `erasure_id` "
                "answers the same."
            }
        },
    )
    async def erase(c: Erasing, request: ErasureRequest) -> JSONResponse:
        """Deletes everything this service holds about the person your organisation names by
        its reference (or about the resident, by the resident token): their records, the
        answers to their writes (a retry of one answers 410 Gone), their events not yet
        published. Their events already published carry a subject id that nothing links to them
        any more; the metrics service drops their facts. The erasure itself is recorded without
        personal data (who asked, when, how many records)."""
        if request.person_ref is not None and not person_scopes:
            raise FieldError(
                [
                    (
                        "person_ref",
                        "this service holds no trainings: erase trained people at the referrals service",
                    )
                ]
            )
        needed = person_scopes if request.person_ref is not None else scopes
        if not any(c.principal.has(scope) for scope in needed):
            names = ", ".join(f"`{s.value}`" for s in needed)
            raise ApiError(403, "forbidden", f"erasing this person needs one of the scopes {names}")
        org = c.principal.organisation_id
        answer = await eraser(c.uow, org, request, f"organisation:{org}")
        return JSONResponse(answer, status_code=202)

    return router
