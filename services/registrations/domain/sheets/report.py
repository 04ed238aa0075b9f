"""Problems as a person reads them: row, column (as headed in their file), what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.registrations.domain.sheets.columns import STATUS_WORDS, Lang, Sheet
from services.registrations.domain.sheets.messages import Problem, text
from shared.reference import ReferenceData

__all__ = ["RowProblem", "column_for_field", "describe"]


@dataclass(frozen=True)
class RowProblem:
    row: int | None
    column: str | None  # the header as written in the file (or the template's, if missing)
    column_letter: str | None
    field: str | None  # the API field the column fills
    code: str
    message: str


def column_for_field(sheet: Sheet, field: str) -> str | None:
    """The column that fills an API field the write path names (``body.participant.ref``)."""
    name = field.removeprefix("body.")
    return next((c.key for c in sheet.columns if c.field == name), None)


def _params(problem: Problem, reference: ReferenceData, lang: Lang) -> Mapping[str, str | int]:
    params: dict[str, Any] = dict(problem.params)
    if "list" in params:  # name the allowed values in the reader's language
        name = str(params.pop("list"))
        params["allowed"] = ", ".join(
            reference.label(name, v, lang) for v in reference.ordered(name)
        )
    if "recorded" in params:
        params["recorded"] = STATUS_WORDS.get(str(params["recorded"]), {}).get(
            lang, str(params["recorded"])
        )
    return params


def describe(
    problems: list[Problem],
    sheet: Sheet,
    reference: ReferenceData,
    lang: Lang,
    *,
    positions: Mapping[str, int] | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[RowProblem]:
    """Every problem in the reader's language, in the order of the file (row, then column)."""
    from openpyxl.utils import get_column_letter

    positions = positions or {}
    headers = headers or {}
    order = {c.key: i for i, c in enumerate(sheet.columns)}

    def key(p: Problem) -> tuple[int, int]:
        return (p.row or 0, positions.get(p.column or "", order.get(p.column or "", -1) + 100))

    out = []
    for problem in sorted(problems, key=key):
        column = sheet.column(problem.column) if problem.column else None
        out.append(
            RowProblem(
                row=problem.row,
                column=(headers.get(column.key) or column.header(lang)) if column else None,
                column_letter=(
                    get_column_letter(positions[column.key])
                    if column and column.key in positions
                    else None
                ),
                field=column.field if column else None,
                code=problem.code,
                message=text(problem.code, lang, _params(problem, reference, lang)),
            )
        )
    return out
