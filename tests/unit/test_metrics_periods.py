"""Reporting periods (domain.md §6): month ``YYYY-MM``, quarter ``YYYY-Qn``, year ``YYYY``, on the
Europe/Amsterdam date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.metrics.domain.periods import current_periods, parse_period


@pytest.mark.parametrize(
    ("label", "kind", "start", "end"),
    [
        ("2025-03", "month", date(2025, 3, 1), date(2025, 3, 31)),
        ("2025-04", "month", date(2025, 4, 1), date(2025, 4, 30)),
        ("2024-02", "month", date(2024, 2, 1), date(2024, 2, 29)),  # leap year
        ("2025-02", "month", date(2025, 2, 1), date(2025, 2, 28)),
        ("2100-02", "month", date(2100, 2, 1), date(2100, 2, 28)),  # not a leap year
        ("2025-12", "month", date(2025, 12, 1), date(2025, 12, 31)),
        ("2025-Q1", "quarter", date(2025, 1, 1), date(2025, 3, 31)),
        ("2025-Q2", "quarter", date(2025, 4, 1), date(2025, 6, 30)),
        ("2025-Q3", "quarter", date(2025, 7, 1), date(2025, 9, 30)),
        ("2025-Q4", "quarter", date(2025, 10, 1), date(2025, 12, 31)),
        ("2025", "year", date(2025, 1, 1), date(2025, 12, 31)),
        ("2000", "year", date(2000, 1, 1), date(2000, 12, 31)),
    ],
)
def test_period_labels_cover_exactly_their_calendar_days(label, kind, start, end):
    period = parse_period(label)
    assert (period.label, period.kind, period.start, period.end) == (label, kind, start, end)


@pytest.mark.parametrize(
    "label",
    [
        "",
        "2025-13",
        "2025-00",
        "2025-3",
        "2025-003",
        "2025-Q0",
        "2025-Q5",
        "2025-q1",
        "2025Q1",
        "25-03",
        "2025/03",
        "2025-03-01",
        " 2025",
        "2025 ",
        "2025-03\n",  # a trailing newline must not slip through (e.g. ?period=2025-03%0A)
        "1999",
        "2101-01",
        "twenty",
    ],
)
def test_bad_period_labels_are_refused_with_the_accepted_forms(label):
    with pytest.raises(ValueError, match=r"YYYY|2000 and 2100"):
        parse_period(label)


def test_a_period_moves_to_the_baseline_year_and_splits_into_months():
    assert parse_period("2025-Q2").shifted_to_year(2024) == parse_period("2024-Q2")
    assert parse_period("2025-02").shifted_to_year(2024).end == date(2024, 2, 29)
    assert parse_period("2026").shifted_to_year(2024) == parse_period("2024")
    assert [m.label for m in parse_period("2025-Q4").months()] == ["2025-10", "2025-11", "2025-12"]
    assert [m.label for m in parse_period("2024").months()] == [
        f"2024-{m:02d}" for m in range(1, 13)
    ]
    assert [m.label for m in parse_period("2024-02").months()] == ["2024-02"]


def _labels(now: datetime) -> tuple[str, str, str]:
    periods = current_periods(now)
    return periods["month"].label, periods["quarter"].label, periods["year"].label


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 23:30 UTC on New Year's Eve is 00:30 on 1 January in Amsterdam (CET, +01:00).
        (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), ("2026-01", "2026-Q1", "2026")),
        (datetime(2025, 12, 31, 22, 59, 59, tzinfo=UTC), ("2025-12", "2025-Q4", "2025")),
        (datetime(2025, 12, 31, 23, 0, tzinfo=UTC), ("2026-01", "2026-Q1", "2026")),
        # Summer time (+02:00) since 30 March 2025: 22:30 UTC on 31 March is 1 April.
        (datetime(2025, 3, 31, 22, 30, tzinfo=UTC), ("2025-04", "2025-Q2", "2025")),
        (datetime(2025, 3, 31, 21, 59, tzinfo=UTC), ("2025-03", "2025-Q1", "2025")),
        # Winter time again since 26 October 2025: 22:30 UTC on 31 October is still October.
        (datetime(2025, 10, 31, 22, 30, tzinfo=UTC), ("2025-10", "2025-Q4", "2025")),
        (datetime(2025, 10, 31, 23, 0, tzinfo=UTC), ("2025-11", "2025-Q4", "2025")),
        # The moment counts, not the offset it is written with.
        (
            datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=9))),  # 00:00 in Amsterdam
            ("2026-01", "2026-Q1", "2026"),
        ),
        (
            datetime(2025, 12, 31, 18, 59, tzinfo=timezone(timedelta(hours=-5))),  # 00:59 +01:00
            ("2026-01", "2026-Q1", "2026"),
        ),
    ],
)
def test_current_periods_follow_the_amsterdam_calendar_date(now, expected):
    assert _labels(now) == expected
