"""The baselines of growth against the baseline year (domain.md §6 `growth_vs_baseline`), as
the disclosure engine needs them: per cell, the baseline year's participants of the same cell
and period, and whether a reader knows that number (§7 rule 4: "a growth figure times its
baseline" gives this year's participants back only where the baseline is known)."""

from __future__ import annotations

from collections.abc import Mapping

from services.metrics.domain.disclosure import TOTAL, Baseline, Decisions, YearGrid, year_periods

__all__ = ["GROWTH_BREAKDOWNS", "baselines"]

# The breakdowns of participants (S2) that carry a growth figure.
GROWTH_BREAKDOWNS = ("neighbourhood", "age_band", "category", "organisation")


def baselines(
    grid: YearGrid,
    baseline_year: int,
    configured: Mapping[str, int],
    base_grid: YearGrid | None,
    base_decisions: Decisions | None,
) -> dict[tuple[str, str, str], Baseline]:
    """For every cell of ``grid`` with participants (the total and the S2 breakdowns present in
    the grid), its baseline: the configured figure of the baseline file (municipality only,
    public), else the baseline year's own count — known to a reader where the baseline year's
    decisions show it. ``base_grid``/``base_decisions`` are the baseline year's (None when
    ``grid`` is of the baseline year itself: then the baseline is the cell itself)."""
    out: dict[tuple[str, str, str], Baseline] = {}
    cells = [(TOTAL, "")] + [(by, key) for by in GROWTH_BREAKDOWNS for key in grid.keys.get(by, ())]
    for period in year_periods(grid.year):
        base_period = f"{baseline_year:04d}{period[4:]}"
        for by, key in cells:
            if by == TOTAL and base_period in configured:
                out[(by, key, period)] = Baseline(int(configured[base_period]), public=True)
            elif grid.year == baseline_year or base_grid is None:
                own = grid.count(("participants_unique", by, key, period)).value
                out[(by, key, period)] = Baseline(own, same_cell=True)
            else:
                ref = ("participants_unique", by, key, base_period)
                value = base_grid.count(ref).value
                decision = base_decisions.figures.get(ref) if base_decisions else None
                visible = decision is not None and not decision.suppressed
                out[(by, key, period)] = Baseline(value, visible=visible)
    return out
