"""The windows of the figures that look ahead of their period (domain.md §6), written once for
the SQL that counts them and the rule that marks them provisional.

- `retained`: a participant new in the period with at least 3 sessions on days before their
  first session's day + ``RETENTION_DAYS``.
- `converted` (and the conversion rate and the days to the first attendance): a referral made in
  the period with an attended session within ``CONVERSION_DAYS`` days of the referral. The
  constant is the referrals service's (shared/referral_matching.py), which records the same
  first attendance as ``referral.first_attendance``.
- `referrals_retained` (the last stage of the S3 funnel): a converted referral whose resident
  attended at least ``RETENTION_SESSIONS`` sessions on days before the first attendance's day +
  ``RETENTION_DAYS``; its window closes ``CONVERSION_DAYS + RETENTION_DAYS`` after the period.

Until the window of the period's last day has passed, such a figure can still grow: it is
published with ``provisional: true``.
"""

from __future__ import annotations

from datetime import date, timedelta

from shared.referral_matching import CONVERSION_DAYS

__all__ = [
    "CONVERSION_DAYS",
    "RETENTION_DAYS",
    "RETENTION_SESSIONS",
    "WINDOW_FIGURES",
    "provisional",
]

RETENTION_DAYS = 90  # sessions on days before first + 90: the first day and 89 more
RETENTION_SESSIONS = 3

# The published figures that rest on each window.
WINDOW_FIGURES: dict[str, dict[str, tuple[str, ...]]] = {
    "retention": {"s2": ("retained",)},
    "conversion": {"s3": ("converted", "referral_conversion", "days_to_first_attendance")},
    "referral_retention": {"s3": ("referrals_retained",)},
}


def provisional(period_end: date, today: date) -> dict[str, bool]:
    """Per window: whether it is still open for a period ending on ``period_end``."""
    return {
        "retention": today < period_end + timedelta(days=RETENTION_DAYS),
        "conversion": today <= period_end + timedelta(days=CONVERSION_DAYS),
        # The first attendance may come up to CONVERSION_DAYS after the period's last referral,
        # and its retention needs RETENTION_DAYS more.
        "referral_retention": today < period_end + timedelta(days=CONVERSION_DAYS + RETENTION_DAYS),
    }
