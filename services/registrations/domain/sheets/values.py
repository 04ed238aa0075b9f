"""Cell values as people type them into a spreadsheet, read into what the API takes.

Dates as 5-11-2025, 05/11/2025 or 2025-11-05, or as the numbers Excel keeps them as (serials, in
the workbook's date system); times as 10:00, 10.00, 10u or 10, or as a fraction of a day; list
values as the code or its Dutch or English name, in any case. A value that cannot be read raises
:class:`Bad` with the code of the problem (messages.py words it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.registrations.domain.sheets.columns import STATUS_WORDS, YES_NO_WORDS
from services.registrations.domain.sheets.reading import Cell, Table
from shared.reference import ReferenceData
from shared.timerules import AMSTERDAM

__all__ = [
    "CAPACITY_MAX",
    "MAX_CELL",
    "STATUS",
    "Bad",
    "list_values",
    "local_moment",
    "read_choice",
    "read_date",
    "read_id",
    "read_int",
    "read_number",
    "read_text",
    "read_time",
    "read_yes_no",
]

MAX_TEXT = 200  # a title, a participant number (the API's limits)
MAX_CELL = 500  # anything longer is not a value of these sheets
ID_PATTERN = re.compile(r"^[^\s/\x00]{1,128}$")
# A participant number: the partner's own reference, never a name. At least one digit and no
# spaces keeps a name typed in the wrong column from ever being pseudonymised as a number.
NUMBER_PATTERN = re.compile(r"^(?=\S*\d)\S{1,200}$")
CAPACITY_MAX = 100_000  # as ActivityCommand.capacity


class Bad(Exception):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def shown(value: Cell) -> str:
    text = value.isoformat() if isinstance(value, date | time) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def read_text(value: Cell, limit: int = MAX_TEXT) -> str:
    if isinstance(value, bool | datetime | date | time):
        raise Bad("not_text", value=shown(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise Bad("not_text", value=shown(value))
        value = int(value)
    text = str(value).strip()
    if len(text) > limit:
        raise Bad("too_long", max=limit)
    return text


def excel_epoch(table: Table) -> datetime:
    from openpyxl.utils.datetime import WINDOWS_EPOCH

    return table.epoch or WINDOWS_EPOCH


_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})(?:[ T]0?0:00(?::00)?)?$")
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]0?0:00(?::00)?)?$")
_SERIAL = re.compile(r"^\d{5}(?:[.,]\d+)?$")
# Excel serials of 2000-01-01 and 2099-12-31: a number outside is no date of a session.
SERIAL_RANGE = (36526, 73415)


def read_date(value: Cell, table: Table) -> date:
    from openpyxl.utils.datetime import from_excel

    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool | time):
        raise Bad("date_invalid", value=shown(value))
    if isinstance(value, str) and _SERIAL.match(value.strip()):
        value = float(value.strip().replace(",", "."))
    if isinstance(value, int | float):
        if not SERIAL_RANGE[0] <= value <= SERIAL_RANGE[1]:
            raise Bad("date_invalid", value=shown(value))
        converted = from_excel(value, epoch=excel_epoch(table))
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
    raise Bad("date_invalid", value=shown(value))


EPOCH_DAYS = {date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1), date(1904, 1, 1)}
_HM = re.compile(r"^(\d{1,2})[:.u](\d{2})(?::(\d{2}))?\s*(?:u|uur)?$", re.IGNORECASE)
_HOUR = re.compile(r"^(\d{1,2})\s*(?:u|uur|h)?$", re.IGNORECASE)


def read_time(value: Cell) -> time:
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None)
    if isinstance(value, datetime):
        # Excel keeps a time as a fraction of a day: with a date format, it shows on the date
        # system's first day. Any other date in this column is a date, not a time.
        if value.date() not in EPOCH_DAYS:
            raise Bad("time_invalid", value=shown(value))
        return value.time().replace(microsecond=0)
    if isinstance(value, bool | date):
        raise Bad("time_invalid", value=shown(value))
    if isinstance(value, int | float):
        if 0 <= value < 1:  # a fraction of a day, as Excel keeps a time
            seconds = round(value * 86400)
            return (datetime.min + timedelta(seconds=seconds)).time()
        if isinstance(value, int) or value.is_integer():
            value = str(int(value))  # "10": ten o'clock, read as text below
        else:
            raise Bad("time_invalid", value=shown(value))
    text = str(value).strip()
    hour = minute = second = 0
    if m := _HM.match(text):
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
    elif m := _HOUR.match(text):
        hour = int(m[1])
    else:
        raise Bad("time_invalid", value=shown(value))
    if hour > 23 or minute > 59 or second > 59:
        raise Bad("time_invalid", value=shown(value))
    return time(hour, minute, second)


def local_moment(day: date, at: time) -> datetime:
    moment = datetime.combine(day, at, tzinfo=AMSTERDAM)
    # A wall-clock time that the spring change skips does not survive a round trip via UTC.
    if moment.astimezone(UTC).astimezone(AMSTERDAM).replace(tzinfo=None) != moment.replace(
        tzinfo=None
    ):
        raise Bad("time_nonexistent")
    return moment


def spelling(value: str) -> str:
    text = value.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")
    return re.sub(r"[\s_-]+", "-", text.strip().casefold())


def list_values(reference: ReferenceData, name: str) -> dict[str, str]:
    """Every way of writing a value of a reference list (its code, its Dutch or English name,
    in any case) → the value."""
    found: dict[str, str] = {}
    for value in reference.ordered(name):
        for written in (
            value,
            reference.label(name, value, "nl"),
            reference.label(name, value, "en"),
        ):
            found.setdefault(spelling(written), value)
    return found


def read_choice(value: Cell, spellings: Mapping[str, str], code: str, **params: Any) -> str:
    if isinstance(value, bool | datetime | date | time):
        raise Bad(code, value=shown(value), **params)
    text = read_text(value, MAX_CELL)
    found = spellings.get(spelling(text))
    if found is None:
        raise Bad(code, value=shown(text), **params)
    return found


STATUS = {spelling(w): status for status, words in STATUS_WORDS.items() for w in words.values()} | {
    "attended": "attended",
    "no-show": "no_show",
}
YES_NO = {spelling(w): flag for flag, words in YES_NO_WORDS.items() for w in words.values()} | {
    "true": True,
    "false": False,
    "waar": True,  # what Dutch Excel writes for TRUE in a CSV file
    "onwaar": False,
    "1": True,
    "0": False,
}


def read_yes_no(value: Cell) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = read_text(value, MAX_CELL) if not isinstance(value, datetime | date | time) else ""
    found = YES_NO.get(spelling(text))
    if found is None:
        raise Bad("yesno_invalid", value=shown(value))
    return found


def read_id(value: Cell) -> str:
    text = read_text(value, MAX_CELL)
    if not ID_PATTERN.match(text):
        raise Bad("id_invalid")
    return text


def read_number(value: Cell) -> str:
    # Never echoed in the report: whatever is in this column may be a person's reference.
    try:
        text = read_text(value, MAX_CELL)
    except Bad as bad:
        raise Bad(
            "too_long" if bad.code == "too_long" else "number_invalid",
            **({"max": MAX_CELL} if bad.code == "too_long" else {}),
        ) from None
    if not NUMBER_PATTERN.match(text):
        raise Bad("number_invalid")
    return text


def read_int(value: Cell, low: int, high: int) -> int:
    if isinstance(value, bool | datetime | date | time):
        raise Bad("int_invalid", value=shown(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise Bad("int_invalid", value=shown(value))
        value = int(value)
    if isinstance(value, str):
        if not re.fullmatch(r"\s*\d{1,9}\s*", value):
            raise Bad("int_invalid", value=shown(value))
        value = int(value)
    assert isinstance(value, int)
    if not low <= value <= high:
        raise Bad("int_range", min=low, max=high)
    return value
