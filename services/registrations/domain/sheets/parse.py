"""From a grid of cells to activities and attendance rows, and the problems of every row.

Pure: no HTTP, no database. The rows that pass become batch items of the registrations service
(:mod:`items`); the write path decides the rest (an unknown activity, a conflicting replay).
Each cell is read the way people type it (:mod:`values`); every bad cell is a problem of its
row and column, and a row with any problem is not written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from services.registrations.domain.sheets.columns import (
    ACTIVITIES,
    ATTENDANCE,
    Column,
    Sheet,
)
from services.registrations.domain.sheets.messages import Problem
from services.registrations.domain.sheets.reading import Cell, Table
from services.registrations.domain.sheets.values import (
    CAPACITY_MAX,
    MAX_CELL,
    STATUS,
    Bad,
    list_values,
    local_moment,
    read_choice,
    read_date,
    read_id,
    read_int,
    read_number,
    read_text,
    read_time,
    read_yes_no,
)
from shared.reference import ReferenceData
from shared.timerules import EARLIEST, FUTURE_SLACK

__all__ = [
    "ActivitySheetRow",
    "AttendanceSheetRow",
    "Parsed",
    "list_values",
    "parse_activities",
    "parse_attendance",
]


T = TypeVar("T")


@dataclass(frozen=True)
class AttendanceSheetRow:
    row: int
    activity_id: str
    session_start: datetime  # aware, Europe/Amsterdam
    participant_number: str
    neighbourhood: str
    age_band: str
    status: str  # `attended` or `no_show`

    def identity(self) -> tuple[str, str, str]:
        """One person at one session: (activity, session start in UTC, participant number)."""
        return (
            self.activity_id,
            self.session_start.astimezone(UTC).isoformat(),
            self.participant_number,
        )


@dataclass(frozen=True)
class ActivitySheetRow:
    row: int
    activity_id: str
    title: str
    category: str
    aimed_at_connection: bool
    neighbourhood: str
    capacity: int | None
    active: bool


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """What a file holds: the good rows (a row repeated word for word counts once), the
    problems, how many data rows were read, and where each column stands in the file."""

    sheet: Sheet
    rows: list[T]
    problems: list[Problem]
    read: int
    positions: Mapping[str, int] = field(default_factory=dict)  # column key → 1-based
    headers: Mapping[str, str] = field(default_factory=dict)  # column key → header as written


# ---------------------------------------------------------------------------------- headers


def _norm(value: str) -> str:
    return " ".join(value.replace("\ufeff", "").split()).casefold()


def _header_map(
    sheet: Sheet, header: list[Cell], row: int
) -> tuple[dict[str, int], dict[str, str], list[Problem]]:
    by_name: dict[str, Column] = {}
    for column in sheet.columns:
        for name in (column.nl, column.en, column.key, column.key.replace("_", " ")):
            by_name[_norm(name)] = column
    positions: dict[str, int] = {}
    headers: dict[str, str] = {}
    problems: list[Problem] = []
    for index, cell in enumerate(header, start=1):
        if cell is None:
            continue
        text = str(cell).strip()
        found = by_name.get(_norm(text))
        if found is None:
            problems.append(Problem(row, None, "unknown_column", {"header": text[:60]}))
        elif found.key in positions:
            problems.append(Problem(row, None, "duplicate_column", {"header": text[:60]}))
        else:
            positions[found.key] = index
            headers[found.key] = text
    if not positions:
        expected = ", ".join(c.nl for c in sheet.columns)
        return {}, {}, [Problem(row, None, "no_header", {"expected": expected})]
    for column in sheet.columns:
        if column.required and column.key not in positions:
            problems.append(Problem(row, None, "missing_column", {"column": column.nl}))
    return positions, headers, problems


def _refused_cells(
    table: Table, positions: Mapping[str, int]
) -> tuple[list[Problem], dict[int, set[str]]]:
    """The problems of cells refused while reading, named on their column; and per row the
    columns refused."""
    by_position = {index: key for key, index in positions.items()}
    problems: list[Problem] = []
    refused: dict[int, set[str]] = {}
    for problem in table.problems:
        key = by_position.get(int(problem.params.get("position", 0)))
        problems.append(Problem(problem.row, key, problem.code, problem.params))
        if problem.row is not None:
            refused.setdefault(problem.row, set()).add(key or "")
    return problems, refused


def _body(
    sheet: Sheet, table: Table
) -> tuple[dict[str, int], dict[str, str], list[Problem], list[tuple[int, dict[str, Cell]]]]:
    """The header's columns, the structural problems, and each data row as column key → cell."""
    if not table.rows:
        return {}, {}, [Problem(None, None, "no_rows")], []
    header_row, header = table.rows[0]
    positions, headers, problems = _header_map(sheet, header, header_row)
    if problems:
        return positions, headers, problems, []
    known = set(positions.values())
    rows: list[tuple[int, dict[str, Cell]]] = []
    unnamed: set[int] = set()
    for number, cells in table.rows[1:]:
        for index, cell in enumerate(cells, start=1):
            if cell is not None and index not in known:
                unnamed.add(index)
        rows.append(
            (
                number,
                {key: cells[i - 1] if i <= len(cells) else None for key, i in positions.items()},
            )
        )
    if unnamed:
        from openpyxl.utils import get_column_letter

        problems += [
            Problem(header_row, None, "unnamed_column", {"letter": get_column_letter(i)})
            for i in sorted(unnamed)
        ]
        return positions, headers, problems, []
    if not rows:
        problems.append(Problem(None, None, "no_rows"))
    return positions, headers, problems, rows


class _Row:
    """Reads the cells of one row, collecting a problem per bad cell. A cell refused while the
    file was read (a formula) already has its problem: it is not checked again."""

    def __init__(self, number: int, cells: Mapping[str, Cell], refused: Collection[str]) -> None:
        self.number = number
        self.cells = cells
        self.refused = refused
        self.problems: list[Problem] = []

    def get(self, column: Column, read: Callable[[Cell], T]) -> T | None:
        if column.key in self.refused:
            return None
        value = self.cells.get(column.key)
        if isinstance(value, str) and len(value) > MAX_CELL:
            self.problems.append(Problem(self.number, column.key, "too_long", {"max": MAX_CELL}))
            return None
        if value is None:
            if column.required:
                self.problems.append(Problem(self.number, column.key, "required"))
            return None
        try:
            return read(value)
        except Bad as bad:
            self.problems.append(Problem(self.number, column.key, bad.code, bad.params))
            return None

    def fail(self, column: str, code: str, **params: Any) -> None:
        self.problems.append(Problem(self.number, column, code, params))


def _known_activity(
    row: _Row, activity_id: str | None, known: Collection[str] | None, column: str
) -> None:
    if activity_id is None or known is None or activity_id in known:
        return
    if not known:
        row.fail(column, "unknown_activity_none", value=activity_id)
        return
    names = sorted(known)
    listed = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    row.fail(column, "unknown_activity", value=activity_id, known=listed)


# ---------------------------------------------------------------------------------- sheets


def parse_attendance(
    table: Table,
    reference: ReferenceData,
    *,
    known_activities: Collection[str] | None = None,
    now: datetime | None = None,
) -> Parsed[AttendanceSheetRow]:
    """The attendance register of a file. ``known_activities``: the organisation's activity
    codes, to name an unknown one on its row (the write path would refuse it anyway)."""
    sheet = ATTENDANCE
    now = now or datetime.now(UTC)
    positions, headers, problems, body = _body(sheet, table)
    read_problems, refused = _refused_cells(table, positions)
    problems = [*read_problems, *problems]
    neighbourhoods = list_values(reference, "neighbourhoods")
    age_bands = list_values(reference, "age_bands")
    good: list[AttendanceSheetRow] = []
    seen: dict[tuple[str, str, str], AttendanceSheetRow] = {}
    for number, cells in body:
        row = _Row(number, cells, refused.get(number, set()))
        day = row.get(sheet.column("date"), lambda v: read_date(v, table))
        at = row.get(sheet.column("start_time"), read_time)
        activity_id = row.get(sheet.column("activity"), read_id)
        participant = row.get(sheet.column("participant_number"), read_number)
        neighbourhood = row.get(
            sheet.column("neighbourhood"),
            lambda v: read_choice(v, neighbourhoods, "list_invalid", list="neighbourhoods"),
        )
        age_band = row.get(
            sheet.column("age_band"),
            lambda v: read_choice(v, age_bands, "list_invalid", list="age_bands"),
        )
        status = row.get(sheet.column("status"), lambda v: read_choice(v, STATUS, "status_invalid"))
        _known_activity(row, activity_id, known_activities, "activity")
        moment: datetime | None = None
        if day is not None and day < EARLIEST.date():
            row.fail("date", "date_too_early")
        elif day is not None and at is not None:
            try:
                moment = local_moment(day, at)
            except Bad as bad:
                row.fail("start_time", bad.code)
            else:
                if moment > now + FUTURE_SLACK:
                    row.fail("date", "date_future")
        problems += row.problems
        if row.problems or number in refused:
            continue
        if not (activity_id and participant and neighbourhood and age_band and status and moment):
            continue  # unreachable: a missing value is a problem of the row
        parsed = AttendanceSheetRow(
            number, activity_id, moment, participant, neighbourhood, age_band, status
        )
        first = seen.get(parsed.identity())
        if first is None:
            seen[parsed.identity()] = parsed
            good.append(parsed)
        elif _content(first) != _content(parsed):
            problems.append(Problem(number, None, "duplicate_row", {"other": first.row}))
    return Parsed(sheet, good, problems, len(body), positions, headers)


def parse_activities(table: Table, reference: ReferenceData) -> Parsed[ActivitySheetRow]:
    sheet = ACTIVITIES
    positions, headers, problems, body = _body(sheet, table)
    read_problems, refused = _refused_cells(table, positions)
    problems = [*read_problems, *problems]
    neighbourhoods = list_values(reference, "neighbourhoods")
    categories = list_values(reference, "activity_categories")
    good: list[ActivitySheetRow] = []
    seen: dict[str, ActivitySheetRow] = {}
    for number, cells in body:
        row = _Row(number, cells, refused.get(number, set()))
        activity_id = row.get(sheet.column("activity_id"), read_id)
        title = row.get(sheet.column("title"), read_text)
        category = row.get(
            sheet.column("category"),
            lambda v: read_choice(v, categories, "list_invalid", list="activity_categories"),
        )
        aimed = row.get(sheet.column("aimed_at_connection"), read_yes_no)
        neighbourhood = row.get(
            sheet.column("neighbourhood"),
            lambda v: read_choice(v, neighbourhoods, "list_invalid", list="neighbourhoods"),
        )
        capacity = row.get(sheet.column("capacity"), lambda v: read_int(v, 0, CAPACITY_MAX))
        active = row.get(sheet.column("active"), read_yes_no)
        if title is not None and not title:
            row.fail("title", "required")
        problems += row.problems
        if row.problems or number in refused:
            continue
        if not (activity_id and title and category and neighbourhood) or aimed is None:
            continue  # unreachable: a missing value is a problem of the row
        parsed = ActivitySheetRow(
            number,
            activity_id,
            title,
            category,
            aimed,
            neighbourhood,
            capacity,
            True if active is None else active,
        )
        first = seen.get(activity_id)
        if first is None:
            seen[activity_id] = parsed
            good.append(parsed)
        elif _content(first) != _content(parsed):
            problems.append(Problem(number, None, "duplicate_activity", {"other": first.row}))
    return Parsed(sheet, good, problems, len(body), positions, headers)


def _content(row: Any) -> tuple[Any, ...]:
    """A row without its row number: two rows that say the same thing are one."""
    values = vars(row).copy()
    values.pop("row")
    return tuple(sorted(values.items()))
