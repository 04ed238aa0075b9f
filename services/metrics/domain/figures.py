"""From raw numbers to published figures: rates, baselines and small-cell suppression.

Pure functions over plain data. Suppression (domain.md §3): a count below k, and a rate whose
denominator is below k, is published as ``null`` with ``"suppressed": true``. In a breakdown,
a single suppressed cell could be recovered as "total minus the visible cells", so the smallest
visible cell of that indicator is suppressed as well (complementary suppression).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.metrics.domain.windows import WINDOW_FIGURES

__all__ = ["breakdown_cells", "count", "empty", "mark_provisional", "rate", "subgoals"]

Figure = dict[str, Any]

# Indicators whose cells add up to the total (or nearly: a participant may sit in two cells),
# hence the ones where a lone suppressed cell could be derived by subtraction.
ADDITIVE = {
    "participants_unique",
    "participants_new",
    "attendances",
    "no_shows",
    "registrations",
    "cancellations",
    "retained",
    "referrals",
    "accepted",
    "converted",
    "people_trained",
    "measurements",
}


def count(value: int | None, k: int, baseline: float | None = None) -> Figure:
    n = int(value or 0)
    fig: Figure = (
        {"value": None, "suppressed": True} if n < k else {"value": n, "suppressed": False}
    )
    if baseline is not None:
        fig["baseline"] = baseline
    return fig


def rate(
    numerator: float | None,
    denominator: int | None,
    k: int,
    baseline: float | None = None,
    digits: int = 4,
) -> Figure:
    d = int(denominator or 0)
    if d < k:
        fig: Figure = {"value": None, "suppressed": True}
    else:
        fig = {"value": round(float(numerator or 0) / d, digits), "suppressed": False}
    if baseline is not None:
        fig["baseline"] = baseline
    return fig


def value_if(value: float | None, support: int | None, k: int, digits: int = 2) -> Figure:
    """A statistic (median, mean) shown only when it rests on at least k cases."""
    if int(support or 0) < k or value is None:
        return {"value": None, "suppressed": True}
    return {"value": round(float(value), digits), "suppressed": False}


def empty() -> dict[str, Any]:
    return {}


def s2_figures(raw: dict[str, Any], k: int, baseline_unique: int | None) -> dict[str, Figure]:
    unique = int(raw.get("participants_unique") or 0)
    attendances = int(raw.get("attendances") or 0)
    no_shows = int(raw.get("no_shows") or 0)
    growth: Figure
    if baseline_unique is None or baseline_unique < k or unique < k:
        growth = {"value": None, "suppressed": baseline_unique is not None}
    else:
        growth = {"value": round(unique / baseline_unique - 1, 4), "suppressed": False}
    growth["baseline"] = None if baseline_unique is None or baseline_unique < k else baseline_unique
    return {
        "participants_unique": count(unique, k),
        "participants_new": count(raw.get("participants_new"), k),
        "attendances": count(attendances, k),
        "no_shows": count(no_shows, k),
        "attendance_rate": rate(attendances, attendances + no_shows, k),
        "registrations": count(raw.get("registrations"), k),
        "cancellations": count(raw.get("cancellations"), k),
        "retained": count(raw.get("retained"), k),
        "growth_vs_baseline": growth,
    }


def s3_figures(raw: dict[str, Any], k: int, total: bool) -> dict[str, Any]:
    referrals = int(raw.get("referrals") or 0)
    accepted = int(raw.get("accepted") or 0)
    declined = int(raw.get("declined") or 0)
    converted = int(raw.get("converted") or 0)
    out: dict[str, Any] = {
        "referrals": count(referrals, k),
        "accepted": count(accepted, k),
        "converted": count(converted, k),
        "referral_acceptance_rate": rate(accepted, accepted + declined, k),
        "referral_conversion": rate(converted, referrals, k),
        "days_to_first_attendance": value_if(raw.get("days_to_first_attendance"), converted, k, 1),
    }
    if "people_trained" in raw or total:
        out["people_trained"] = count(raw.get("people_trained"), k)
        out["organisations_with_trained_staff"] = count(
            raw.get("organisations_with_trained_staff"), k
        )
    if total:
        # The coalition's partners registered at the end of the period (the partner registry).
        partners = int(raw.get("partners_registered") or 0)
        out["organisations_with_trained_staff_share"] = rate(
            raw.get("organisations_with_trained_staff"), partners, k
        )
        out["people_trained_by_role"] = {
            role: count(n, k)
            for role, n in sorted((raw.get("people_trained_by_role") or {}).items())
        }
        out["referrals_by_signal"] = {
            sig: count(n, k) for sig, n in sorted((raw.get("referrals_by_signal") or {}).items())
        }
    return out


def s1_figures(
    raw: dict[str, Any], k: int, baselines: dict[str, float | None], total: bool
) -> dict[str, Any]:
    n = int(raw.get("measurements") or 0)
    out: dict[str, Any] = {
        "measurements": count(n, k),
        "prevalence_lonely": rate(raw.get("lonely"), n, k, baselines.get("prevalence_lonely")),
        "prevalence_severe": rate(raw.get("severe"), n, k, baselines.get("prevalence_severe")),
        "prevalence_emotional": rate(
            raw.get("emotional"),
            raw.get("emotional_measured"),
            k,
            baselines.get("prevalence_emotional"),
        ),
        "prevalence_social": rate(
            raw.get("social"), raw.get("social_measured"), k, baselines.get("prevalence_social")
        ),
    }
    if total:
        pairs = int(raw.get("outcome_pairs") or 0)
        out["referral_outcome"] = {
            "pairs": count(pairs, k),
            "mean_change": value_if(raw.get("outcome_mean_change"), pairs, k, 2),
            "improved_share": rate(raw.get("outcome_improved"), pairs, k),
        }
    return out


def complementary_suppression(
    cells: list[dict[str, Any]],
    subgoal: str,
    truth: list[dict[str, Any]] | None = None,
) -> None:
    """Suppress the smallest visible cell of an additive count where "total minus the visible
    cells" would give a hidden cell away: where exactly one cell is hidden, and (with ``truth``,
    the unsuppressed values per cell) where exactly one hidden cell is not zero. Empty cells are
    hidden too (0 < k), but a small cell beside only empty hidden ones is no safer than alone:
    the difference is its value."""
    names = {name for cell in cells for name in cell.get(subgoal, {}) if name in ADDITIVE}
    for name in names:
        pairs = [
            (cell[subgoal][name], ((truth[i] if truth else {}).get(subgoal) or {}).get(name))
            for i, cell in enumerate(cells)
            if name in cell.get(subgoal, {})
        ]
        hidden = [(f, true) for f, true in pairs if f.get("suppressed")]
        hidden_not_empty = [true for _, true in hidden if true]
        visible = sorted((f for f, _ in pairs if not f.get("suppressed")), key=lambda f: f["value"])
        lone = len(hidden) == 1 or (truth is not None and len(hidden_not_empty) == 1)
        if lone and visible:
            visible[0].update(value=None, suppressed=True)


def breakdown_cells(
    cells: list[dict[str, Any]], truth: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Complementary suppression over the cells of a breakdown. ``truth``, parallel to
    ``cells``, holds each cell's raw numbers per subgoal (``{"s2": {"attendances": 4}}``)."""
    for subgoal in ("s1", "s2", "s3"):
        complementary_suppression(cells, subgoal, truth)
    return cells


def mark_provisional(section: dict[str, Any], windows_open: Mapping[str, bool]) -> None:
    """Give every figure that rests on a window ``provisional``: true while the window is still
    open for the period (it can still grow), false once it closed. ``section`` is a result or a
    breakdown cell (``{"s2": {...}, "s3": {...}}``)."""
    for window, figures in WINDOW_FIGURES.items():
        for subgoal, names in figures.items():
            for name in names:
                fig = section.get(subgoal, {}).get(name)
                if isinstance(fig, dict):
                    fig["provisional"] = bool(windows_open[window])


def subgoals() -> tuple[str, ...]:
    return ("s1", "s2", "s3")
