"""What a reader can read: every published figure, with where it was read.

The audit's input is a flat list of :class:`Published` figures. This module turns the answers
of the public endpoints into that list — ``GET /v1/indicators`` (total and every breakdown),
``GET /v1/own/indicators``, ``GET /v1/trend`` and the ``/metrics`` exposition — exactly as a
reader would see them: a suppressed figure is a figure whose value is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "Published",
    "from_indicators",
    "from_metrics",
    "from_own",
    "from_trend",
]

# The breakdown "name" of a municipality total.
TOTAL = ""


@dataclass(frozen=True)
class Published:
    """One figure as a reader sees it: ``value`` None means suppressed."""

    figure: str
    by: str  # TOTAL, a breakdown, or "role" / "signal" for the lists of the total answer
    key: str
    period: str
    value: float | None
    source: str
    baseline: float | None = None  # the baseline-year count shown beside a growth figure

    @property
    def suppressed(self) -> bool:
        return self.value is None

    def cell(self) -> str:
        where = "municipality" if not self.by else f"{self.by}={self.key}"
        return f"{self.figure} {where} {self.period}"


# Figures of an answer that carry no count information (configured baselines beside the
# prevalence are the programme's survey figures, not counts of this platform's records).
IGNORED = {"referrals_overdue", "days_to_first_attendance", "days_to_first_contact"}
LISTS = {"people_trained_by_role": ("people_trained", "role"), "referrals_by_signal": ("referrals", "signal")}  # fmt: skip
OUTCOME = {"pairs": "outcome_pairs", "improved_share": "improved_share", "mean_change": None}


def _figure(value: Any) -> bool:
    return isinstance(value, Mapping) and "suppressed" in value


def _section(
    section: Mapping[str, Any], by: str, key: str, period: str, source: str
) -> Iterator[Published]:
    for name, fig in section.items():
        if name in IGNORED:
            continue
        if name in LISTS and isinstance(fig, Mapping):
            figure, list_by = LISTS[name]
            for list_key, item in fig.items():
                if _figure(item):
                    yield Published(figure, list_by, str(list_key), period, _value(item), source)
            continue
        if name == "referral_outcome" and isinstance(fig, Mapping):
            for part, item in fig.items():
                outcome = OUTCOME.get(part)
                if outcome and _figure(item):
                    yield Published(outcome, by, key, period, _value(item), source)
            continue
        if _figure(fig):
            baseline = fig.get("baseline") if name == "growth_vs_baseline" else None
            yield Published(
                name,
                by,
                key,
                period,
                _value(fig),
                source,
                float(baseline) if isinstance(baseline, int | float) else None,
            )


def _value(fig: Mapping[str, Any]) -> float | None:
    if fig.get("suppressed") or fig.get("value") is None:
        return None
    return float(fig["value"])


def from_indicators(answer: Mapping[str, Any], source: str) -> list[Published]:
    """An answer of ``GET /v1/indicators`` (with or without ``by``)."""
    period = str(answer["period"])
    out: list[Published] = []
    for subgoal in ("s1", "s2", "s3"):
        out.extend(_section(answer.get(subgoal, {}), TOTAL, "", period, source))
    by = answer.get("by")
    for cell in answer.get("breakdown", []) if by else []:
        for subgoal in ("s1", "s2", "s3"):
            out.extend(_section(cell.get(subgoal, {}), str(by), str(cell["key"]), period, source))
    return out


def from_own(answer: Mapping[str, Any], source: str) -> list[Published]:
    """An answer of ``GET /v1/own/indicators``: the organisation's cell of the breakdown."""
    period, org = str(answer["period"]), str(answer["organisation_id"])
    out: list[Published] = []
    for subgoal in ("s1", "s2", "s3"):
        out.extend(_section(answer.get(subgoal, {}), "organisation", org, period, source))
    return out


def from_trend(answer: Mapping[str, Any], source: str) -> list[Published]:
    """An answer of ``GET /v1/trend``: monthly totals."""
    out: list[Published] = []
    for month in answer.get("months", []):
        for name in ("participants_unique", "participants_new"):
            if _figure(month.get(name)):
                out.append(
                    Published(name, TOTAL, "", str(month["period"]), _value(month[name]), source)
                )
    return out


# Series of the metrics service's exposition, by the figure they carry (the gauges are named
# after the figures, rates with `_ratio`; see the README's table).
METRIC_FIGURES: dict[str, str] = {
    "verbinding_s2_attendance_ratio": "attendance_rate",
    "verbinding_s2_growth_vs_baseline_ratio": "growth_vs_baseline",
    "verbinding_s3_referral_acceptance_ratio": "referral_acceptance_rate",
    "verbinding_s3_referral_conversion_ratio": "referral_conversion",
    "verbinding_s3_organisations_with_trained_staff_ratio": "organisations_with_trained_staff_share",
    "verbinding_s1_prevalence_lonely_ratio": "prevalence_lonely",
    "verbinding_s1_prevalence_severe_ratio": "prevalence_severe",
    "verbinding_s1_prevalence_emotional_ratio": "prevalence_emotional",
    "verbinding_s1_prevalence_social_ratio": "prevalence_social",
    "verbinding_s1_referral_outcome_pairs": "outcome_pairs",
    "verbinding_s1_referral_outcome_improved_ratio": "improved_share",
}
# The count series per subgoal (`verbinding_<subgoal>_<figure>`).
COUNTS: dict[str, tuple[str, ...]] = {
    "s2": (
        "participants_unique",
        "participants_new",
        "attendances",
        "no_shows",
        "registrations",
        "cancellations",
        "retained",
    ),
    "s3": (
        "referrals",
        "accepted",
        "contacted",
        "converted",
        "referrals_retained",
        "people_trained",
        "organisations_with_trained_staff",
    ),
    "s1": ("measurements",),
}


def from_metrics(text: str, periods: Mapping[str, str], source: str) -> list[Published]:
    """A ``/metrics`` exposition; ``periods`` maps its period kinds (month, quarter, year) to
    the period labels they stood for when it was read. Only series that are there count (the
    exposition omits suppressed figures, and a figure can be absent for other reasons).
    Series with other labels than the period are breakdowns (which the exposition must not
    carry): they are taken as published all the same."""
    names = dict(METRIC_FIGURES)
    for subgoal, figures in COUNTS.items():
        for figure in figures:
            names[f"verbinding_{subgoal}_{figure}"] = figure
    seen: dict[tuple[str, str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = names.get(sample.name)
            if name is None or sample.labels.get("period") not in periods:
                continue
            period = periods[sample.labels["period"]]
            rest = {k: v for k, v in sample.labels.items() if k != "period"}
            by, key = next(iter(rest.items())) if rest else (TOTAL, "")
            seen[(name, by, key, period)] = float(sample.value)
    out = [
        Published(figure, by, key, period, value, source)
        for (figure, by, key, period), value in sorted(seen.items())
    ]
    return out


def unique(figures: Iterable[Published]) -> list[Published]:
    """Without exact repeats (the same figure, value and source read twice)."""
    return list(dict.fromkeys(figures))
