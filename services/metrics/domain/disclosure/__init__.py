"""Disclosure control (domain.md §7): the year grid, the suppression engine, its decisions.

    decisions = suppress(grid, k=10)
    decisions[("attendances", "neighbourhood", "delfgauw", "2025-Q1")]  # Decision(...)

See :mod:`.engine` for the method and :mod:`.grid` for what the query layer provides.
"""

from .decisions import REASONS, Decision, Decisions
from .engine import suppress, unsuppressed
from .grid import TOTAL, Baseline, CellRef, Count, YearGrid, quarter_of, year_periods
from .spec import BREAKDOWNS, FIGURES, GROWTH, RATES, STATISTICS

__all__ = [
    "BREAKDOWNS",
    "FIGURES",
    "GROWTH",
    "RATES",
    "REASONS",
    "STATISTICS",
    "TOTAL",
    "Baseline",
    "CellRef",
    "Count",
    "Decision",
    "Decisions",
    "YearGrid",
    "quarter_of",
    "suppress",
    "unsuppressed",
    "year_periods",
]
