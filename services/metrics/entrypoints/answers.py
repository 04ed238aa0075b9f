"""The answers of the indicators API, as documentation: the routes attach them with
``responses={200: {"model": ...}}`` (shared.http.documented) and keep answering the dicts that
domain/answers.py and service_layer/indicators.py build, unvalidated (no CPU per request, and an
answer the model does not fit never becomes a 500); tests/integration check real answers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IndicatorsAnswer", "OwnIndicatorsAnswer", "TrendAnswer"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Figure(_Closed):
    """One published figure: the disclosure engine's decision for its cell."""

    value: float | None = Field(description="The figure; null when hidden.")
    suppressed: bool = Field(description="True when the figure is hidden.")
    reason: Literal["primary", "secondary", "linked"] | None = Field(
        None, description="Why it is hidden (only on a hidden figure); see `reasons`."
    )
    provisional: bool | None = Field(
        None,
        description="On figures that look ahead of their period: true while that window is "
        "still open (the figure can still grow).",
    )
    baseline: float | None = Field(
        None,
        description="The baseline beside it, where there is one (baseline-year participants "
        "beside `growth_vs_baseline`, the survey's prevalence beside a prevalence).",
    )


class ReferralOutcome(_Closed):
    """The change in loneliness score of referred residents measured before and after."""

    pairs: Figure
    mean_change: Figure
    improved_share: Figure


class S1(_Closed):
    """Subgoal 1: loneliness (De Jong Gierveld measurements)."""

    measurements: Figure
    prevalence_lonely: Figure
    prevalence_severe: Figure
    prevalence_emotional: Figure
    prevalence_social: Figure
    referral_outcome: ReferralOutcome | None = Field(None, description="Municipality total only.")


class S2(_Closed):
    """Subgoal 2: participation in activities."""

    participants_unique: Figure
    participants_new: Figure
    attendances: Figure
    no_shows: Figure
    attendance_rate: Figure
    registrations: Figure
    cancellations: Figure
    retained: Figure
    growth_vs_baseline: Figure


class S3(_Closed):
    """Subgoal 3: referrals (the funnel in its order) and trained staff."""

    referrals: Figure
    accepted: Figure
    contacted: Figure
    converted: Figure
    referrals_retained: Figure
    referral_acceptance_rate: Figure
    referral_conversion: Figure
    days_to_first_contact: Figure
    days_to_first_attendance: Figure
    people_trained: Figure | None = Field(
        None, description="In the municipality total and per organisation."
    )
    organisations_with_trained_staff: Figure | None = Field(
        None, description="Municipality total only."
    )
    organisations_with_trained_staff_share: Figure | None = Field(
        None, description="Municipality total only."
    )
    people_trained_by_role: dict[str, Figure] | None = Field(
        None, description="Municipality total only, from the latest release: role -> figure."
    )
    referrals_by_signal: dict[str, Figure] | None = Field(
        None, description="Municipality total only, from the latest release: signal -> figure."
    )
    referrals_overdue: Figure | None = Field(
        None,
        description="Municipality total only: referrals waiting for first contact longer "
        "than agreed, now (of no period).",
    )


class Freshness(_Closed):
    newest_event_at: datetime | None = Field(description="The newest event the figures include.")
    events_applied: int
    figures_as_of: datetime | None = Field(
        None, description="Live totals only: the snapshot the figures were computed from."
    )
    stale: bool | None = Field(None, description="Live totals only: a refresh is under way.")
    stale_seconds: float | None = Field(
        None, description="Live totals only: for how long the facts have changed since."
    )


class Cell(_Closed):
    """One cell of a breakdown: its key and the subgoals that have that breakdown."""

    key: str
    s1: S1 | None = None
    s2: S2 | None = None
    s3: S3 | None = None


Reasons = dict[str, dict[str, str]]
REASONS = "Per language (`nl`, `en`): what each `reason` means."


class IndicatorsAnswer(_Closed):
    period: str
    period_kind: Literal["month", "quarter", "year"]
    from_: date = Field(alias="from", description="The period's first day.")
    to: date = Field(description="The period's last day.")
    by: str | None = Field(description="The breakdown asked for, if any.")
    k: int = Field(description="The disclosure threshold.")
    generated_at: datetime
    released_at: datetime | None = Field(
        description="The release the breakdowns are from; null before the first."
    )
    freshness: Freshness
    baseline_year: int
    s1: S1
    s2: S2
    s3: S3
    breakdown: list[Cell] | None = Field(None, description="With `by` only.")
    reasons: Reasons = Field(description=REASONS)


class OwnCell(_Closed):
    s2: S2
    s3: S3


class OwnIndicatorsAnswer(_Closed):
    period: str
    period_kind: Literal["month", "quarter", "year"]
    from_: date = Field(alias="from", description="The period's first day.")
    to: date = Field(description="The period's last day.")
    organisation_id: str
    k: int = Field(description="The disclosure threshold.")
    generated_at: datetime
    released_at: datetime
    freshness: Freshness
    s2: S2
    s3: S3
    reasons: Reasons = Field(description=REASONS)


class TrendMonth(_Closed):
    period: str = Field(description="`YYYY-MM`.")
    participants_unique: Figure
    participants_new: Figure


class TrendAnswer(_Closed):
    months: list[TrendMonth] = Field(description="Oldest first.")
    k: int = Field(description="The disclosure threshold.")
