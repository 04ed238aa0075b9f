"""Reporting periods: calendar month ``YYYY-MM``, quarter ``YYYY-Qn`` and year ``YYYY``,
on Europe/Amsterdam dates (domain.md §6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shared.timerules import AMSTERDAM

__all__ = ["Period", "current_periods", "parse_period"]

PeriodKind = Literal["month", "quarter", "year"]
_PATTERN = re.compile(r"^(?P<y>\d{4})(?:-(?:(?P<m>0[1-9]|1[0-2])|Q(?P<q>[1-4])))?$")


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
    if year < 2000 or year > 2100:
        raise ValueError("period year must lie between 2000 and 2100")
    if match["m"]:
        month = int(match["m"])
        return Period(label, "month", date(year, month, 1), _month_end(year, month))
    if match["q"]:
        q = int(match["q"])
        return Period(label, "quarter", date(year, 3 * q - 2, 1), _month_end(year, 3 * q))
    return Period(label, "year", date(year, 1, 1), date(year, 12, 31))


def current_periods(now: datetime) -> dict[PeriodKind, Period]:
    today = now.astimezone(AMSTERDAM).date()
    return {
        "month": parse_period(f"{today.year:04d}-{today.month:02d}"),
        "quarter": parse_period(f"{today.year:04d}-Q{(today.month - 1) // 3 + 1}"),
        "year": parse_period(f"{today.year:04d}"),
    }
