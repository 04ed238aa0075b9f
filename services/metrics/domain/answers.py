"""From the engine's decisions to the published figures: the sections of an answer.

Pure functions over plain data. Every figure is the disclosure engine's decision for its cell
(domain.md §7 rule 5: one decision per cell, on every channel): ``{"value": ..., "suppressed":
false}`` when shown, ``{"value": null, "suppressed": true, "reason": ...}`` when hidden, with
``reason`` one of ``primary`` (fewer than k people, or fewer than k on one side of a rate),
``secondary`` (hidden so that another hidden figure cannot be worked out) or ``linked`` (a
figure it rests on is hidden); :func:`reasons` says so in Dutch and English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.metrics.domain.disclosure import REASONS, TOTAL, Decision, Decisions
from services.metrics.domain.windows import WINDOW_FIGURES

__all__ = [
    "BREAKDOWNS",
    "LISTS",
    "cell",
    "empty_cell",
    "mark_provisional",
    "reasons",
    "s1_section",
    "s2_section",
    "s3_section",
    "sections",
]

Figure = dict[str, Any]

# The API's breakdowns (`by`) and the subgoals each applies to, in the order of the answers.
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    "neighbourhood": ("s1", "s2"),
    "age_band": ("s1", "s2"),
    "category": ("s2",),
    "referrer_role": ("s3",),
    "organisation": ("s2", "s3"),
}
# The lists of the municipality answer: a figure broken down by a key of its own.
LISTS: dict[str, tuple[str, str]] = {
    "people_trained_by_role": ("people_trained", "role"),
    "referrals_by_signal": ("referrals", "signal"),
}
PREVALENCES = (
    "prevalence_lonely",
    "prevalence_severe",
    "prevalence_emotional",
    "prevalence_social",
)
# Statistics are rounded for reading: days to one decimal, score changes to two.
DIGITS = {"days_to_first_attendance": 1, "days_to_first_contact": 1, "outcome_mean_change": 2}
# What an answer shows for a figure of which the decisions know nothing (a cell of no data).
_NOTHING = Decision(None, True, "primary")


def reasons(k: int) -> dict[str, dict[str, str]]:
    """The explanation of each reason for hiding, per language (``nl``, ``en``)."""
    return {
        lang: {reason: text.format(k=k) for reason, text in texts.items()}
        for lang, texts in REASONS.items()
    }


def _figure(decision: Decision | None, name: str = "") -> Figure:
    d = decision or _NOTHING
    out = d.as_json()
    if not d.suppressed and d.value is not None and name in DIGITS:
        out["value"] = round(float(d.value), DIGITS[name])
    return out


def _get(decisions: Decisions, name: str, by: str, key: str, period: str) -> Figure:
    return _figure(decisions.figures.get((name, by, key, period)), name)


def s2_section(decisions: Decisions, by: str, key: str, period: str) -> dict[str, Figure]:
    def get(name: str) -> Figure:
        return _get(decisions, name, by, key, period)

    growth = get("growth_vs_baseline")
    growth["baseline"] = decisions.baseline(by, key, period)
    return {
        "participants_unique": get("participants_unique"),
        "participants_new": get("participants_new"),
        "attendances": get("attendances"),
        "no_shows": get("no_shows"),
        "attendance_rate": get("attendance_rate"),
        "registrations": get("registrations"),
        "cancellations": get("cancellations"),
        "retained": get("retained"),
        "growth_vs_baseline": growth,
    }


def s3_section(
    decisions: Decisions,
    by: str,
    key: str,
    period: str,
    *,
    lists: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The S3 figures of a cell. People trained are per role and per organisation, so a cell of
    the breakdown by organisation has them, one by referrer role does not. ``lists``: the keys
    of the municipality answer's lists (role, signal) to publish beside the totals."""

    def get(name: str) -> Figure:
        return _get(decisions, name, by, key, period)

    out: dict[str, Any] = {
        # The funnel, in its order: referrals (created) → accepted → contacted → converted
        # (first attendance within 60 days) → referrals_retained.
        "referrals": get("referrals"),
        "accepted": get("accepted"),
        "contacted": get("contacted"),
        "converted": get("converted"),
        "referrals_retained": get("referrals_retained"),
        "referral_acceptance_rate": get("referral_acceptance_rate"),
        "referral_conversion": get("referral_conversion"),
        "days_to_first_contact": get("days_to_first_contact"),
        "days_to_first_attendance": get("days_to_first_attendance"),
    }
    if by in (TOTAL, "organisation"):
        out["people_trained"] = get("people_trained")
    if by == TOTAL:
        out["organisations_with_trained_staff"] = get("organisations_with_trained_staff")
        out["organisations_with_trained_staff_share"] = get(
            "organisations_with_trained_staff_share"
        )
        for name, (figure, list_by) in LISTS.items():
            out[name] = {
                list_key: _get(decisions, figure, list_by, list_key, period)
                for list_key in (lists or {}).get(list_by, ())
            }
    return out


def s1_section(
    decisions: Decisions,
    by: str,
    key: str,
    period: str,
    prevalence_baselines: Mapping[str, float | None],
) -> dict[str, Any]:
    """The S1 figures of a cell, each prevalence beside its configured baseline (the programme's
    survey figures) where there is one; the referral outcome in the municipality total only."""

    def get(name: str) -> Figure:
        return _get(decisions, name, by, key, period)

    out: dict[str, Any] = {"measurements": get("measurements")}
    for name in PREVALENCES:
        fig = get(name)
        baseline = prevalence_baselines.get(name)
        if baseline is not None:
            fig["baseline"] = baseline
        out[name] = fig
    if by == TOTAL:
        out["referral_outcome"] = {
            "pairs": get("outcome_pairs"),
            "mean_change": get("outcome_mean_change"),
            "improved_share": get("improved_share"),
        }
    return out


def sections(
    decisions: Decisions,
    period: str,
    prevalence_baselines: Mapping[str, float | None],
    *,
    lists: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The municipality's figures of a period: ``{"s1": ..., "s2": ..., "s3": ...}``."""
    return {
        "s1": s1_section(decisions, TOTAL, "", period, prevalence_baselines),
        "s2": s2_section(decisions, TOTAL, "", period),
        "s3": s3_section(decisions, TOTAL, "", period, lists=lists),
    }


def cell(
    decisions: Decisions,
    by: str,
    key: str,
    period: str,
    prevalence_baselines: Mapping[str, float | None],
) -> dict[str, Any]:
    """One cell of the breakdown ``by``: its key and the subgoals that have that breakdown."""
    out: dict[str, Any] = {"key": key}
    applicable = BREAKDOWNS[by]
    if "s1" in applicable:
        out["s1"] = s1_section(decisions, by, key, period, prevalence_baselines)
    if "s2" in applicable:
        out["s2"] = s2_section(decisions, by, key, period)
    if "s3" in applicable:
        out["s3"] = s3_section(decisions, by, key, period)
    return out


def empty_cell(by: str, key: str, k: int, year: int) -> dict[str, Any]:
    """A cell of which nothing is recorded: every figure hidden (fewer than k people)."""
    nothing = Decisions(k=k, year=year, figures={}, baselines={})
    return cell(nothing, by, key, f"{year:04d}", {})


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
