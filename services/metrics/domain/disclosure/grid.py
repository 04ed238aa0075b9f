"""The engine's input: the *year grid* of every base figure, built by the query layer.

For one calendar year and every base figure of :mod:`.spec`: for every period of the year (the
year, its quarters, its months) × (the municipality total + every key of every breakdown that
applies to the figure), the value and the number of distinct people behind it; per subgoal
section of a cell the distinct people in that section; the statistics (medians, means); and
per cell the participants of the same period of the baseline year (for the growth figure).

A cell the grid does not mention is empty (value 0, nobody): every key of ``keys`` is a row of
every breakdown, so that an absent cell is never mistaken for a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "TOTAL",
    "Baseline",
    "CellRef",
    "Count",
    "YearGrid",
    "quarter_of",
    "year_periods",
]

# The breakdown "name" of the municipality total (its key is "").
TOTAL = ""

# (figure, breakdown or TOTAL, key or "", period label)
CellRef = tuple[str, str, str, str]


@dataclass(frozen=True)
class Count:
    """A count and the distinct people it is about (rule 1: people, not events)."""

    value: int
    people: int

    def __post_init__(self) -> None:
        if self.value < 0 or self.people < 0:
            raise ValueError(f"a count cannot be negative: {self}")


@dataclass(frozen=True)
class Baseline:
    """participants_unique of the same cell in the baseline year, and whether a reader knows it:
    ``public`` when the baseline file configures it, ``visible`` when the baseline year's own
    suppression pattern shows the cell, ``same_cell`` when the grid is of the baseline year."""

    value: int
    public: bool = False
    visible: bool = False
    # The baseline year against itself: the baseline *is* this cell's participants, known to a
    # reader exactly when they are shown.
    same_cell: bool = False


@dataclass(frozen=True)
class YearGrid:
    year: int
    # Every key of every breakdown, in the fixed order used for ties (deterministic output).
    keys: Mapping[str, Sequence[str]]
    counts: Mapping[CellRef, Count]
    # (section, breakdown, key, period) -> distinct people with any record of that section.
    sections: Mapping[CellRef, int] = field(default_factory=dict)
    # (statistic, breakdown, key, period) -> value (median days, mean change).
    statistics: Mapping[CellRef, float] = field(default_factory=dict)
    # (breakdown, key, period) -> the baseline year's participants of that cell.
    baselines: Mapping[tuple[str, str, str], Baseline] = field(default_factory=dict)

    def count(self, ref: CellRef) -> Count:
        return self.counts.get(ref, EMPTY)


EMPTY = Count(0, 0)


def year_periods(year: int) -> list[str]:
    """The periods of a year: the year, Q1–Q4, then the twelve months (the fixed order)."""
    return (
        [f"{year:04d}"]
        + [f"{year:04d}-Q{q}" for q in range(1, 5)]
        + [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    )


def quarter_of(month_label: str) -> str:
    year, month = month_label.split("-")
    return f"{year}-Q{(int(month) - 1) // 3 + 1}"
