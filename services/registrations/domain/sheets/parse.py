"""From a grid of cells to activities and attendance rows, and the problems of every row.

Pure: no HTTP, no database. The rows that pass become batch items of the registrations service
(:mod:`items`); the write path decides the rest (an unknown activity, a conflicting replay).
Values are read the way people type them: dates as 5-11-2025, 05/11/2025 or 2025-11-05, or as
the numbers Excel keeps them as (serials); times as 10:00, 10.00, 10u or 10, or as a fraction of
a day; list values as the code or its Dutch or English name, in any case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from services.registrations.domain.sheets.columns import (
    ACTIVITIES,
    ATTENDANCE,
    STATUS_WORDS,
    YES_NO_WORDS,
    Column,
    Sheet,
)
from services.registrations.domain.sheets.messages import Problem
from services.registrations.domain.sheets.reading import Cell, Table
from shared.reference import ReferenceData
from shared.timerules import AMSTERDAM, EARLIEST, FUTURE_SLACK

__all__ = [
    "ActivitySheetRow",
    "AttendanceSheetRow",
    "Parsed",
    "list_values",
    "parse_activities",
    "parse_attendance",
]

MAX_TEXT = 200  # a title, a participant number (the API's limits)
MAX_CELL = 500  # anything longer is not a value of these sheets
ID_PATTERN = re.compile(r"^[^\s/\x00]{1,128}$")
# A participant number: the partner's own reference, never a name. At least one digit and no
# spaces keeps a name typed in the wrong column from ever being pseudonymised as a number.
NUMBER_PATTERN = re.compile(r"^(?=\S*\d)\S{1,200}$")
CAPACITY_MAX = 100_000  # as ActivityCommand.capacity

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


# ----------------------------------------------------------------------------------- values


class _Bad(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _shown(value: Cell) -> str:
    text = value.isoformat() if isinstance(value, date | time) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _text(value: Cell, limit: int = MAX_TEXT) -> str:
    if isinstance(value, bool | datetime | date | time):
        raise _Bad("not_text", value=_shown(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise _Bad("not_text", value=_shown(value))
        value = int(value)
    text = str(value).strip()
    if len(text) > limit:
        raise _Bad("too_long", max=limit)
    return text


def _excel_epoch(table: Table) -> datetime:
    from openpyxl.utils.datetime import WINDOWS_EPOCH

    return table.epoch or WINDOWS_EPOCH


_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?:[ T]0?0:00(?::00)?)?$")
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]0?0:00(?::00)?)?$")
_SERIAL = re.compile(r"^\d{5}(?:[.,]\d+)?$")
# Excel serials of 2000-01-01 and 2099-12-31: a number outside is no date of a session.
SERIAL_RANGE = (36526, 73415)


def _date(value: Cell, table: Table) -> date:
    from openpyxl.utils.datetime import from_excel

    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool | time):
        raise _Bad("date_invalid", value=_shown(value))
    if isinstance(value, str) and _SERIAL.match(value.strip()):
        value = float(value.strip().replace(",", "."))
    if isinstance(value, int | float):
        if not SERIAL_RANGE[0] <= value <= SERIAL_RANGE[1]:
            raise _Bad("date_invalid", value=_shown(value))
        converted = from_excel(value, epoch=_excel_epoch(table))
        return converted.date() if isinstance(converted, datetime) else converted
    text = str(value).strip()
    try:
        if m := _DMY.match(text):
            day, month, year = int(m[1]), int(m[2]), int(m[3])
            return date(year + 2000 if year < 100 else year, month, day)
        if m := _YMD.match(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        pass  # 31-02-2025: numbers in the right places, but no date
    raise _Bad("date_invalid", value=_shown(value))


EPOCH_DAYS = {date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1), date(1904, 1, 1)}
_HM = re.compile(r"^(\d{1,2})[:.u](\d{2})(?::(\d{2}))?\s*(?:u|uur)?$", re.IGNORECASE)
_HOUR = re.compile(r"^(\d{1,2})\s*(?:u|uur|h)?$", re.IGNORECASE)


def _time(value: Cell) -> time:
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None)
    if isinstance(value, datetime):
        # Excel keeps a time as a fraction of a day: with a date format, it shows on the date
        # system's first day. Any other date in this column is a date, not a time.
        if value.date() not in EPOCH_DAYS:
            raise _Bad("time_invalid", value=_shown(value))
        return value.time().replace(microsecond=0)
    if isinstance(value, bool | date):
        raise _Bad("time_invalid", value=_shown(value))
    if isinstance(value, int | float):
        if 0 <= value < 1:  # a fraction of a day, as Excel keeps a time
            seconds = round(value * 86400)
            return (datetime.min + timedelta(seconds=seconds)).time()
        if isinstance(value, int) or value.is_integer():
            value = str(int(value))  # "10": ten o'clock, read as text below
        else:
            raise _Bad("time_invalid", value=_shown(value))
    text = str(value).strip()
    hour = minute = second = 0
    if m := _HM.match(text):
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    elif m := _HOUR.match(text):
        hour = int(m[1])
    else:
        raise _Bad("time_invalid", value=_shown(value))
    if hour > 23 or minute > 59 or second > 59:
        raise _Bad("time_invalid", value=_shown(value))
    return time(hour, minute, second)


def _local_moment(day: date, at: time) -> datetime:
    moment = datetime.combine(day, at, tzinfo=AMSTERDAM)
    # A wall-clock time that the spring change skips does not survive a round trip via UTC.
    if moment.astimezone(UTC).astimezone(AMSTERDAM).replace(tzinfo=None) != moment.replace(
        tzinfo=None
    ):
        raise _Bad("time_nonexistent")
    return moment


def _word(value: str) -> str:
    text = value.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")
    return re.sub(r"[\s_-]+", "-", text.strip().casefold())


def list_values(reference: ReferenceData, name: str) -> dict[str, str]:
    """Every way of writing a value of a reference list (its code, its Dutch or English name,
    in any case) → the value."""
    found: dict[str, str] = {}
    for value in reference.ordered(name):
        for spelling in (
            value,
            reference.label(name, value, "nl"),
            reference.label(name, value, "en"),
        ):
            found.setdefault(_word(spelling), value)
    return found


def _choice(value: Cell, spellings: Mapping[str, str], code: str, **params: Any) -> str:
    if isinstance(value, bool | datetime | date | time):
        raise _Bad(code, value=_shown(value), **params)
    text = _text(value, MAX_CELL)
    found = spellings.get(_word(text))
    if found is None:
        raise _Bad(code, value=_shown(text), **params)
    return found


_STATUS = {_word(w): status for status, words in STATUS_WORDS.items() for w in words.values()} | {
    "attended": "attended",
    "no-show": "no_show",
}
_YES_NO = {_word(w): flag for flag, words in YES_NO_WORDS.items() for w in words.values()} | {
    "true": True,
    "false": False,
    "waar": True,  # what Dutch Excel writes for TRUE in a CSV file
    "onwaar": False,
    "1": True,
    "0": False,
}


def _yes_no(value: Cell) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = _text(value, MAX_CELL) if not isinstance(value, datetime | date | time) else ""
    found = _YES_NO.get(_word(text))
    if found is None:
        raise _Bad("yesno_invalid", value=_shown(value))
    return found


def _id(value: Cell) -> str:
    text = _text(value, MAX_CELL)
    if not ID_PATTERN.match(text):
        raise _Bad("id_invalid")
    return text


def _number(value: Cell) -> str:
    # Never echoed in the report: whatever is in this column may be a person's reference.
    try:
        text = _text(value, MAX_CELL)
    except _Bad as bad:
        raise _Bad(
            "too_long" if bad.code == "too_long" else "number_invalid",
            **({"max": MAX_CELL} if bad.code == "too_long" else {}),
        ) from None
    if not NUMBER_PATTERN.match(text):
        raise _Bad("number_invalid")
    return text


def _int(value: Cell, low: int, high: int) -> int:
    if isinstance(value, bool | datetime | date | time):
        raise _Bad("int_invalid", value=_shown(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise _Bad("int_invalid", value=_shown(value))
        value = int(value)
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d{1,9}\s*", value):
            raise _Bad("int_invalid", value=_shown(value))
        value = int(value)
    assert isinstance(value, int)
    if not low <= value <= high:
        raise _Bad("int_range", min=low, max=high)
    return value


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
        except _Bad as bad:
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
        day = row.get(sheet.column("date"), lambda v: _date(v, table))
        at = row.get(sheet.column("start_time"), _time)
        activity_id = row.get(sheet.column("activity"), _id)
        participant = row.get(sheet.column("participant_number"), _number)
        neighbourhood = row.get(
            sheet.column("neighbourhood"),
            lambda v: _choice(v, neighbourhoods, "list_invalid", list="neighbourhoods"),
        )
        age_band = row.get(
            sheet.column("age_band"),
            lambda v: _choice(v, age_bands, "list_invalid", list="age_bands"),
        )
        status = row.get(sheet.column("status"), lambda v: _choice(v, _STATUS, "status_invalid"))
        _known_activity(row, activity_id, known_activities, "activity")
        moment: datetime | None = None
        if day is not None and day < EARLIEST.date():
            row.fail("date", "date_too_early")
        elif day is not None and at is not None:
            try:
                moment = _local_moment(day, at)
            except _Bad as bad:
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
        activity_id = row.get(sheet.column("activity_id"), _id)
        title = row.get(sheet.column("title"), _text)
        category = row.get(
            sheet.column("category"),
            lambda v: _choice(v, categories, "list_invalid", list="activity_categories"),
        )
        aimed = row.get(sheet.column("aimed_at_connection"), _yes_no)
        neighbourhood = row.get(
            sheet.column("neighbourhood"),
            lambda v: _choice(v, neighbourhoods, "list_invalid", list="neighbourhoods"),
        )
        capacity = row.get(sheet.column("capacity"), lambda v: _int(v, 0, CAPACITY_MAX))
        active = row.get(sheet.column("active"), _yes_no)
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
