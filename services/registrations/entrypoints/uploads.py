"""HTTP for partners without a booking system: spreadsheet uploads, a session's ticked list,
templates and the reference lists the volunteers' page shows. Only translation here: the
reading is in domain/sheets, the writing in service_layer/uploads (through the batch path)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from services.registrations.domain.sheets import Lang, SheetKind, language
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from services.registrations.service_layer.uploads import (
    SessionList,
    UploadOutcome,
    UploadReport,
    Uploads,
)
from services.registrations.service_layer.writes import KIND_SCOPES
from shared.auth import Principal, Scope
from shared.errors import FieldError
from shared.http import COMMON_RESPONSES, Caller, ErrorBody, caller, require_any_scope
from shared.reference import ReferenceData

__all__ = ["build_uploads_router"]

Uow = Caller[RegistrationsUnitOfWork]
ActivityUploader = Annotated[Uow, Depends(caller(*KIND_SCOPES["activity"]), scope="function")]
AttendanceUploader = Annotated[Uow, Depends(caller(*KIND_SCOPES["attendance"]), scope="function")]
# What a partner's or a volunteer's key needs to read the templates and lists.
FILLING = (Scope.ACTIVITIES, Scope.REGISTRATIONS, Scope.ATTENDANCE)
Filler = Annotated[Uow, Depends(caller(*FILLING), scope="function")]
Reader = Annotated[Principal, Depends(require_any_scope(*FILLING))]

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv"
TEMPLATE_NAMES = {
    ("attendance", "nl"): "aanwezigheid",
    ("attendance", "en"): "attendance",
    ("activities", "nl"): "activiteiten",
    ("activities", "en"): "activities",
}

WriteValidRows = Annotated[
    bool,
    Query(
        description="Write the good rows even when other rows have problems. Default: a file "
        "with any problem writes nothing."
    ),
]
LangParam = Annotated[
    str | None,
    Query(description="`nl` (default) or `en`; else the `Accept-Language` header decides."),
]
FilenameParam = Annotated[
    str | None,
    Query(
        max_length=255,
        description="The file's name, when the body is the file itself (its extension is "
        "checked: .xlsm and other macro workbooks are refused).",
    ),
]

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file: as the body itself (XLSX or CSV), or as the one file of a "
        "`multipart/form-data` form.",
        "content": {
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
            CSV_TYPE: {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


class UploadError(ErrorBody):
    report: UploadReport


UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **COMMON_RESPONSES,
    413: {"model": UploadError, "description": "The file is larger than the upload limit."},
    422: {
        "model": UploadError,
        "description": "The file was refused, or rows have problems and nothing was written "
        "(`report.problems` names row, column and what is wrong).",
    },
}


class ReferenceValue(BaseModel):
    value: str
    nl: str
    en: str


class ReferenceLists(BaseModel):
    neighbourhoods: list[ReferenceValue]
    age_bands: list[ReferenceValue]
    activity_categories: list[ReferenceValue]
    # The codes a cancellation's `reason` and a status change's `outcome` take (no free text).
    cancellation_reasons: list[ReferenceValue]
    referral_outcomes: list[ReferenceValue]


def _lang(request: Request, lang: str | None) -> Lang:
    return language(lang or request.headers.get("accept-language"))


async def _file(request: Request, filename: str | None) -> tuple[bytes, str | None]:
    """The uploaded bytes and the file's name, from a raw body or a multipart form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return await request.body(), filename
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception:  # python-multipart refuses a malformed form in several ways
        raise FieldError([("file", "a malformed multipart/form-data body")]) from None
    files = [v for v in form.values() if isinstance(v, UploadFile)]
    if len(files) != 1:
        raise FieldError([("file", "send exactly one file in the form")])
    upload = files[0]
    try:
        return await upload.read(), upload.filename or filename
    finally:
        await upload.close()


def _answer(outcome: UploadOutcome) -> JSONResponse:
    report = outcome.report.model_dump(mode="json")
    if outcome.status_code == 200:
        return JSONResponse(report)
    details = [
        {
            "field": ", ".join(str(x) for x in (p.row and f"row {p.row}", p.column) if x) or "file",
            "message": p.message,
        }
        for p in outcome.report.problems
    ]
    error = {413: "payload_too_large", 422: "validation_failed"}[outcome.status_code]
    return JSONResponse(
        {"error": error, "message": outcome.report.message, "details": details, "report": report},
        status_code=outcome.status_code,
    )


def build_uploads_router(uploads: Uploads, reference: ReferenceData) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=UPLOAD_RESPONSES)  # type: ignore[arg-type]

    @router.post(
        "/uploads/attendance",
        tags=["uploads"],
        summary="Upload an attendance register (XLSX or CSV)",
        openapi_extra=UPLOAD_BODY,
        response_model=UploadReport,
    )
    async def upload_attendance(
        request: Request,
        c: AttendanceUploader,
        write_valid_rows: WriteValidRows = False,
        lang: LangParam = None,
        filename: FilenameParam = None,
    ) -> JSONResponse:
        """Every row is one participant at one session. A row's id comes from its content
        (activity, session start, participant number): uploading the same file again writes
        nothing new, a corrected file adds only the corrections, and a row whose status differs
        from what was recorded is a conflict on that row. The rows go through the same write
        path as `POST /v1/batch` and become the same events."""
        data, name = await _file(request, filename)
        outcome = await uploads.attendance_file(
            c.uow,
            c.principal,
            data,
            name,
            write_valid_rows=write_valid_rows,
            lang=_lang(request, lang),
        )
        return _answer(outcome)

    @router.post(
        "/uploads/activities",
        tags=["uploads"],
        summary="Upload the organisation's activities (XLSX or CSV)",
        openapi_extra=UPLOAD_BODY,
        response_model=UploadReport,
    )
    async def upload_activities(
        request: Request,
        c: ActivityUploader,
        write_valid_rows: WriteValidRows = False,
        lang: LangParam = None,
        filename: FilenameParam = None,
    ) -> JSONResponse:
        """Every row is the whole state of one activity, named by its code (as a
        `PUT /v1/activities/{activity_id}`)."""
        data, name = await _file(request, filename)
        outcome = await uploads.activities_file(
            c.uow,
            c.principal,
            data,
            name,
            write_valid_rows=write_valid_rows,
            lang=_lang(request, lang),
        )
        return _answer(outcome)

    @router.post(
        "/attendance-lists",
        tags=["uploads"],
        summary="Record one session's attendance as a list (the volunteers' page)",
        response_model=UploadReport,
    )
    async def attendance_list(
        request: Request,
        c: AttendanceUploader,
        session: SessionList,
        write_valid_rows: WriteValidRows = False,
        lang: LangParam = None,
    ) -> JSONResponse:
        """The participants' numbers (never names) with their status. Checked, identified and
        written exactly like the rows of an uploaded register of that session; problems name
        the position in `participants` as their row."""
        outcome = await uploads.attendance_list(
            c.uow,
            c.principal,
            session,
            write_valid_rows=write_valid_rows,
            lang=_lang(request, lang),
        )
        return _answer(outcome)

    @router.get(
        "/templates/{name}",
        tags=["uploads"],
        summary="A template to fill in: activities or an attendance register, XLSX or CSV",
        response_class=Response,
        responses={
            200: {
                "content": {XLSX_TYPE: {}, CSV_TYPE: {}},
                "description": "The template. The XLSX has drop-down lists (neighbourhood, age "
                "band, category, attendance and your organisation's activity codes).",
            }
        },
    )
    async def template(
        request: Request,
        c: Filler,
        name: Literal["attendance.xlsx", "attendance.csv", "activities.xlsx", "activities.csv"],
        lang: LangParam = None,
    ) -> Response:
        kind_name, _, file_format = name.partition(".")
        kind: SheetKind = "attendance" if kind_name == "attendance" else "activities"
        chosen = _lang(request, lang)
        body = await uploads.template(
            c.uow,
            c.principal.organisation_id,
            kind,
            "csv" if file_format == "csv" else "xlsx",
            chosen,
        )
        download = f"{TEMPLATE_NAMES[(kind, chosen)]}.{file_format}"
        return Response(
            body,
            media_type=CSV_TYPE + "; charset=utf-8" if file_format == "csv" else XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{download}"'},
        )

    @router.get(
        "/reference",
        tags=["uploads"],
        summary="The municipality's lists: neighbourhoods, age bands, activity categories, "
        "cancellation reasons, referral outcomes",
    )
    async def reference_lists(_: Reader) -> ReferenceLists:
        def values(name: str) -> list[ReferenceValue]:
            return [
                ReferenceValue(
                    value=v,
                    nl=reference.label(name, v, "nl"),
                    en=reference.label(name, v, "en"),
                )
                for v in reference.ordered(name)
            ]

        return ReferenceLists(
            neighbourhoods=values("neighbourhoods"),
            age_bands=values("age_bands"),
            activity_categories=values("activity_categories"),
            cancellation_reasons=values("cancellation_reasons"),
            referral_outcomes=values("referral_outcomes"),
        )

    return router
