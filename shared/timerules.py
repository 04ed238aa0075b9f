"""Shared rules for the moments partners report (registered, attended, referred, measured).

Stated rule (README "Guarantees"): a reported moment must carry a UTC offset, lie on or after
2000-01-01 and no more than 24 hours in the future. Anything else is a 422, never clamped:
a silently moved date would land in the wrong period of the indicators.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["AMSTERDAM", "check_moment", "local_date"]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=24)


def check_moment(field: str, value: datetime, now: datetime | None = None) -> list[tuple[str, str]]:
    now = now or datetime.now(UTC)
    if value.tzinfo is None:
        return [(field, "needs a UTC offset, e.g. 2025-03-01T10:00:00+01:00")]
    if value < EARLIEST:
        return [(field, "lies before 2000-01-01")]
    if value > now + FUTURE_SLACK:
        return [(field, "lies more than 24 hours in the future")]
    return []


def local_date(value: datetime) -> date:
    """The Europe/Amsterdam calendar date of a moment: periods are counted on it."""
    return value.astimezone(AMSTERDAM).date()
