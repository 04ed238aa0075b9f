"""Spreadsheets and ticked lists from partners without a booking system.

Reads the file (pure: domain/sheets), turns the good rows into batch items and hands them to the
one write path of the service (the write pipeline, as ``POST /v1/batch``), then reports per row
in the uploader's language. A file with any problem writes nothing unless the uploader asks for the good rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.registrations.domain import sheets
from services.registrations.domain.decide import State
from services.registrations.domain.items import BatchItem
from services.registrations.domain.sheets import Lang, Parsed, Problem, Table
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.auth import Principal
from shared.pipeline.items import BatchItemResult
from shared.pipeline.pipeline import Pipeline
from shared.pseudonym import Pseudonymiser
from shared.reference import ReferenceData

__all__ = [
    "RowProblemOut",
    "SessionList",
    "SessionParticipant",
    "UploadOutcome",
    "UploadReport",
    "Uploads",
]


class RowProblemOut(BaseModel):
    row: int | None = Field(
        description="The row as the spreadsheet numbers it (1 is the header row); for a ticked "
        "list, the position in `participants`. Null: the file as a whole."
    )
    column: str | None = Field(description="The column's header, as written in the file.")
    column_letter: str | None = Field(None, description="The column's letter in the file.")
    field: str | None = Field(None, description="The API field the column fills.")
    code: str = Field(description="Stable code of the problem, e.g. `list_invalid`, `conflict`.")
    message: str = Field(description="What is wrong and what to do, in the report's language.")


class UploadReport(BaseModel):
    kind: Literal["activities", "attendance"]
    format: Literal["xlsx", "csv", "list"] | None
    lang: Literal["nl", "en"]
    rows: int = Field(description="Data rows read (empty rows not counted).")
    saved: bool = Field(
        description="Whether the good rows were written. False when the file had problems and "
        "`write_valid_rows` was not set: then nothing at all was written."
    )
    created: int = Field(description="Rows written for the first time.")
    unchanged: int = Field(description="Rows that were written before (the same again: no-op).")
    rejected: int = Field(description="Rows with a problem, not written.")
    problems: list[RowProblemOut]
    message: str = Field(description="One sentence for the uploader.")


class SessionParticipant(BaseModel):
    """One person on a session's list: the number only, never a name."""

    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=200, description="The partner's own number.")
    neighbourhood: str
    age_band: str
    status: Literal["attended", "no_show"]


class SessionList(BaseModel):
    """One session's attendance, as a volunteer ticks it on the web page."""

    model_config = ConfigDict(extra="forbid")
    activity_id: str = Field(min_length=1, max_length=128)
    date: date
    start_time: time = Field(description="Local time in Europe/Amsterdam, e.g. `10:00`.")
    participants: list[SessionParticipant] = Field(min_length=1, max_length=500)


# Problems of the file's structure (its header): no row is read, every row counts as rejected.
WHOLE_FILE = frozenset(
    {"no_header", "missing_column", "unknown_column", "duplicate_column", "unnamed_column"}
)


@dataclass(frozen=True)
class UploadOutcome:
    status_code: int  # 200: read (and written, or nothing to write); 413; 422: nothing written
    report: UploadReport


class Uploads:
    def __init__(
        self,
        writer: Pipeline[BatchItem, State, RegistrationsUnitOfWork],
        reference: ReferenceData,
        pseudonymiser: Pseudonymiser,
        limits: sheets.Limits,
    ) -> None:
        self.writer = writer
        self.reference = reference
        self.pseudonymiser = pseudonymiser
        self.limits = limits

    # ------------------------------------------------------------------------ entry points

    async def attendance_file(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        data: bytes,
        filename: str | None,
        *,
        write_valid_rows: bool,
        lang: Lang,
    ) -> UploadOutcome:
        try:
            table = sheets.read_table(data, filename, self.limits)
        except sheets.SheetError as exc:
            return self._refused("attendance", exc.problems, lang)
        return await self._attendance(uow, principal, table, write_valid_rows, lang)

    async def attendance_list(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        session: SessionList,
        *,
        write_valid_rows: bool,
        lang: Lang,
    ) -> UploadOutcome:
        """A ticked list becomes the rows of a register (row n = participant n), so that it is
        checked, identified and written exactly as an uploaded file."""
        header: list[sheets.reading.Cell] = [c.key for c in sheets.ATTENDANCE.columns]
        rows: list[tuple[int, list[sheets.reading.Cell]]] = [(0, header)]
        for number, person in enumerate(session.participants, start=1):
            rows.append(
                (
                    number,
                    [
                        session.date,
                        session.start_time,
                        session.activity_id,
                        person.number,
                        person.neighbourhood,
                        person.age_band,
                        person.status,
                    ],
                )
            )
        table = Table("csv", rows)
        return await self._attendance(
            uow, principal, table, write_valid_rows, lang, list_format=True
        )

    async def activities_file(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        data: bytes,
        filename: str | None,
        *,
        write_valid_rows: bool,
        lang: Lang,
    ) -> UploadOutcome:
        try:
            table = sheets.read_table(data, filename, self.limits)
        except sheets.SheetError as exc:
            return self._refused("activities", exc.problems, lang)
        parsed = sheets.parse_activities(table, self.reference)
        items = sheets.activity_items(parsed.rows)
        return await self._write(
            uow, principal, parsed, items, table.format, write_valid_rows, lang
        )

    async def template(
        self,
        uow: RegistrationsUnitOfWork,
        organisation_id: str,
        kind: sheets.SheetKind,
        file_format: Literal["xlsx", "csv"],
        lang: Lang,
    ) -> bytes:
        """A template to fill in; the XLSX offers the organisation's active activity codes."""
        sheet = sheets.SHEETS[kind]
        if file_format == "csv":
            return sheets.csv_template(sheet, lang)
        activities = await uow.activities.of_organisation(organisation_id)
        return sheets.xlsx_template(
            sheet,
            self.reference,
            lang,
            rows=self.limits.max_rows,
            activity_ids=[a.activity_id for a in activities if a.active],
        )

    # ---------------------------------------------------------------------------- the rest

    async def _attendance(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        table: Table,
        write_valid_rows: bool,
        lang: Lang,
        *,
        list_format: bool = False,
    ) -> UploadOutcome:
        org = principal.organisation_id
        known = [a.activity_id for a in await uow.activities.of_organisation(org)]
        parsed = sheets.parse_attendance(table, self.reference, known_activities=known)

        def identity(activity_id: str, session_start: str, number: str) -> str:
            return self.pseudonymiser.attendance(org, activity_id, session_start, number)

        items = sheets.attendance_items(parsed.rows, identity)
        return await self._write(
            uow,
            principal,
            parsed,
            items,
            "list" if list_format else table.format,
            write_valid_rows,
            lang,
        )

    async def _write(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        parsed: Parsed[Any],
        items: list[dict[str, Any]],
        file_format: Literal["xlsx", "csv", "list"],
        write_valid_rows: bool,
        lang: Lang,
    ) -> UploadOutcome:
        problems = list(parsed.problems)
        created = unchanged = 0
        saved = False
        if items and (write_valid_rows or not problems):
            results = await self.writer.batch(
                uow, principal, items, all_or_nothing=not write_valid_rows
            )
            problems += await self._rejections(uow, principal, parsed, items, results)
            failed = any(r.status >= 300 for r in results)
            saved = write_valid_rows or not failed
            if saved:
                created = sum(1 for r in results if r.status == 201)
                unchanged = sum(1 for r in results if r.status == 200)
        if any(p.code in WHOLE_FILE for p in problems):
            rejected = parsed.read  # no row of the file was looked at
        else:
            rejected = len({p.row for p in problems if p.row is not None})
        if not problems:
            code, status = "summary_saved", 200
        elif saved:
            code, status = "summary_partly_saved", 200
        else:
            code = "summary_nothing_saved_one" if len(problems) == 1 else "summary_nothing_saved"
            status = 422
        counts = {
            "rows": parsed.read,
            "created": created,
            "unchanged": unchanged,
            "rejected": rejected,
            "count": len(problems),
        }
        report = UploadReport(
            kind=parsed.sheet.kind,
            format=file_format,
            lang=lang,
            rows=parsed.read,
            saved=saved,
            created=created,
            unchanged=unchanged,
            rejected=rejected,
            problems=self._describe(problems, parsed, lang, list_format=file_format == "list"),
            message=sheets.text(code, lang, counts),
        )
        return UploadOutcome(status, report)

    async def _rejections(
        self,
        uow: RegistrationsUnitOfWork,
        principal: Principal,
        parsed: Parsed[Any],
        items: list[dict[str, Any]],
        results: list[BatchItemResult],
    ) -> list[Problem]:
        """What the write path refused, as problems of the rows the items came from."""
        sheet = parsed.sheet
        failed = [(parsed.rows[r.index], items[r.index], r) for r in results if r.status >= 300]
        if not failed:
            return []
        conflicts = [
            item["body"]["attendance_id"]
            for _, item, r in failed
            if r.status == 409 and item["kind"] == "attendance"
        ]
        recorded: dict[str, str] = {}
        if conflicts:
            recorded = await uow.attendance.statuses(principal.organisation_id, conflicts)
        problems: list[Problem] = []
        for row, item, result in failed:
            if result.status == 409 and item["kind"] == "attendance":
                before = recorded.get(item["body"]["attendance_id"])
                if before is not None and before != item["body"]["status"]:
                    problems.append(
                        Problem(row.row, "status", "conflict_status", {"recorded": before})
                    )
                else:
                    problems.append(Problem(row.row, None, "conflict_other"))
                continue
            details = result.details or [{"field": "", "message": result.message or ""}]
            for detail in details:
                column = sheets.column_for_field(sheet, detail["field"])
                problems.append(
                    Problem(row.row, column, "rejected", {"detail": detail["message"][:300]})
                )
        return problems

    def _describe(
        self, problems: list[Problem], parsed: Parsed[Any], lang: Lang, *, list_format: bool
    ) -> list[RowProblemOut]:
        described = sheets.describe(
            problems,
            parsed.sheet,
            self.reference,
            lang,
            positions=None if list_format else parsed.positions,
            headers=None if list_format else parsed.headers,
        )
        return [RowProblemOut(**vars(p)) for p in described]

    def _refused(
        self, kind: sheets.SheetKind, problems: list[Problem], lang: Lang
    ) -> UploadOutcome:
        too_large = any(p.code == "file_too_large" for p in problems)
        described = sheets.describe(problems, sheets.SHEETS[kind], self.reference, lang)
        report = UploadReport(
            kind=kind,
            format=None,
            lang=lang,
            rows=0,
            saved=False,
            created=0,
            unchanged=0,
            rejected=0,
            problems=[RowProblemOut(**vars(p)) for p in described],
            message=sheets.text("summary_unreadable", lang),
        )
        return UploadOutcome(413 if too_large else 422, report)
