"""Reporting periods: calendar month ``YYYY-MM``, quarter ``YYYY-Qn`` and year ``YYYY``,
on Europe/Amsterdam dates (domain.md §6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shared.timerules import AMSTERDAM

__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "MONTH_PATTERN",
    "PERIOD_PATTERN",
    "Period",
    "current_periods",
    "month_range",
    "parse_period",
]

PeriodKind = Literal["month", "quarter", "year"]
# The shapes of a label, also published in OpenAPI (so that a client, and the fuzzer, see them).
PERIOD_PATTERN = r"^[0-9]{4}(-(0[1-9]|1[0-2]|Q[1-4]))?$"
MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_PATTERN = re.compile(r"^(?P<y>[0-9]{4})(?:-(?:(?P<m>0[1-9]|1[0-2])|Q(?P<q>[1-4])))?$")
# Moments before 2000 are refused when written (shared/timerules.py), so no period lies earlier.
FIRST_YEAR, LAST_YEAR = 2000, 2100


@dataclass(frozen=True)
class Period:
    label: str
    kind: PeriodKind
    start: date
    end: date  # inclusive

    def shifted_to_year(self, year: int) -> Period:
        """The same month/quarter/year in another year (for the baseline comparison)."""
        return parse_period(str(year) + self.label[4:])

    def months(self) -> list[Period]:
        out, cursor = [], self.start
        while cursor <= self.end:
            out.append(parse_period(f"{cursor.year:04d}-{cursor.month:02d}"))
            cursor = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1)
        return out


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def parse_period(label: str) -> Period:
    match = _PATTERN.fullmatch(label)
    if not match:
        raise ValueError("period must be YYYY, YYYY-MM or YYYY-Qn (e.g. 2025, 2025-03, 2025-Q1)")
    year = int(match["y"])
    if year < FIRST_YEAR or year > LAST_YEAR:
        raise ValueError(f"period year must lie between {FIRST_YEAR} and {LAST_YEAR}")
    if match["m"]:
        month = int(match["m"])
        return Period(label, "month", date(year, month, 1), _month_end(year, month))
    if match["q"]:
        q = int(match["q"])
        return Period(label, "quarter", date(year, 3 * q - 2, 1), _month_end(year, 3 * q))
    return Period(label, "year", date(year, 1, 1), date(year, 12, 31))


def month_range(last: Period, months: int) -> list[Period]:
    """The ``months`` calendar months ending with the month ``last``; ValueError when they would
    begin before the first year a period can have."""
    if last.kind != "month":
        raise ValueError("must be a month, YYYY-MM")
    index = last.start.year * 12 + last.start.month - 1
    first = index - months + 1
    if first < FIRST_YEAR * 12:
        raise ValueError(
            f"{months} months up to {last.label} would begin before {FIRST_YEAR}-01; "
            f"at most {index - FIRST_YEAR * 12 + 1} months end there"
        )
    return [parse_period(f"{i // 12:04d}-{i % 12 + 1:02d}") for i in range(first, index + 1)]


def current_periods(now: datetime) -> dict[PeriodKind, Period]:
    today = now.astimezone(AMSTERDAM).date()
    return {
        "month": parse_period(f"{today.year:04d}-{today.month:02d}"),
        "quarter": parse_period(f"{today.year:04d}-Q{(today.month - 1) // 3 + 1}"),
        "year": parse_period(f"{today.year:04d}"),
    }
