"""The live indicators as Prometheus gauges, from a snapshot refreshed every few seconds.

A refresh asks the indicator service for the live answers of the current month, quarter and
year: their figures are computed again only when the facts changed (the change marker,
docs/scale.md "Reads"), once per year for all three; otherwise a refresh costs a query of a
few rows and the rendering.

A scrape never queries the database: a custom collector renders the latest snapshot. The figures
are those of the live municipality answer of ``/v1/indicators`` (the disclosure engine's
decisions, domain.md §7 rule 5); suppressed ones are omitted (an absent series, not a zero).
Only municipality-level indicators are exposed: no breakdown and no by-role or by-signal list,
which would be live breakdowns that change with every scrape. Labels are bounded: the period kind, and the organisation only
for the partner-silence timestamp (operational, behind the `metrics` scrape credential).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.metrics.adapters import queries
from services.metrics.domain.periods import current_periods
from services.metrics.service_layer.indicators import IndicatorService

__all__ = ["IndicatorSnapshot", "metric_name"]

log = logging.getLogger(__name__)

REFRESH_PAUSE_FACTOR = 4

# While the consumer group is more events behind than this (the number the consumer-lag alert
# uses per topic, deploy/prometheus/rules/verbinding.yml), it is catching up: after an outage,
# a new instance, a replay. Each refresh then brings the live totals up to date with tens of
# thousands of people whose shares the next seconds change again, and it competed with the
# catch-up for the same cores: with a refresh every 15 s, two instances applied 1M events 24%
# slower, PostgreSQL's CPU per event 35 instead of 20 us (docs/benchmarks.md "The snapshot while
# catching up"). The figures such a refresh publishes are behind by the lag anyway, so it
# waits, up to CATCH_UP_MAX_AGE: below the stale-snapshot alert's 300 s, so that no alert fires
# for it.
CATCH_UP_LAG = 10_000
CATCH_UP_MAX_AGE = 120.0

DEFERRED = Counter(
    "verbinding_metrics_snapshot_deferred",
    "Snapshot refreshes put off because the consumer group was catching up.",
)

RATES = {
    "attendance_rate": "attendance_ratio",
    "referral_acceptance_rate": "referral_acceptance_ratio",
    "referral_conversion": "referral_conversion_ratio",
    "growth_vs_baseline": "growth_vs_baseline_ratio",
    "organisations_with_trained_staff_share": "organisations_with_trained_staff_ratio",
    "prevalence_lonely": "prevalence_lonely_ratio",
    "prevalence_severe": "prevalence_severe_ratio",
    "prevalence_emotional": "prevalence_emotional_ratio",
    "prevalence_social": "prevalence_social_ratio",
}


# Medians in days, exposed in seconds (Prometheus base units).
DURATIONS = {
    "days_to_first_attendance": "time_to_first_attendance_seconds",
    "days_to_first_contact": "time_to_first_contact_seconds",
}


def metric_name(subgoal: str, indicator: str) -> str:
    if indicator in DURATIONS:
        return f"verbinding_{subgoal}_{DURATIONS[indicator]}"
    return f"verbinding_{subgoal}_{RATES.get(indicator, indicator)}"


def _value(fig: Any, indicator: str) -> float | None:
    if not isinstance(fig, dict) or fig.get("suppressed") or fig.get("value") is None:
        return None
    value = float(fig["value"])
    return value * 86400 if indicator in DURATIONS else value


class IndicatorSnapshot(Collector):
    def __init__(
        self,
        service: IndicatorService,
        interval: float = 15.0,
        behind: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.service = service
        self.interval = interval
        # The consumer group's lag in events, if known (None: no consumer, or not observed).
        self.behind = behind
        self.periods: dict[str, dict[str, Any]] = {}
        self.partners: dict[str, float] = {}
        self.taken_at: float | None = None
        self.took: float | None = None  # seconds the last refresh took

    async def refresh(self) -> None:
        # Built aside and swapped in at once: a scrape during a refresh (or after a failed one)
        # sees one whole snapshot, never this round's month beside last round's year.
        started = time.perf_counter()
        figures: dict[str, dict[str, Any]] = {}
        for kind, period in current_periods(datetime.now(UTC)).items():
            # The live municipality answer: the same decisions as /v1/indicators (rule 5).
            figures[kind] = await self.service.live(period, lists=False)
        async with self.service.pool.acquire() as conn:
            partners = await queries.last_event_times(conn, self.service.schema)
        self.periods = figures
        self.partners = partners
        self.taken_at = time.time()
        self.took = time.perf_counter() - started

    def catching_up(self) -> bool:
        """Whether to put this round off: the group is catching up and the snapshot is younger
        than ``CATCH_UP_MAX_AGE`` (the first one is always taken)."""
        lag = self.behind()
        young = self.taken_at is not None and time.time() - self.taken_at < CATCH_UP_MAX_AGE
        return lag is not None and lag > CATCH_UP_LAG and young

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            if self.catching_up():
                DEFERRED.inc()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                continue
            try:
                await self.refresh()
            except Exception as exc:  # the next round retries; the last snapshot stays exposed
                log.warning("indicator snapshot failed", extra={"error": repr(exc)})
            # A refresh costs more as the tables grow; while the consumer catches up on a busy
            # database it took most of PostgreSQL's time (docs/benchmarks.md). Pausing at least
            # four times as long as it took keeps it to a fifth at most.
            pause = max(self.interval, REFRESH_PAUSE_FACTOR * (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            if name not in families:
                families[name] = GaugeMetricFamily(name, doc, labels=labels)
            return families[name]

        for kind, result in self.periods.items():
            for subgoal in ("s1", "s2", "s3"):
                for indicator, fig in result[subgoal].items():
                    if indicator == "referrals_overdue":
                        # A live figure of no period: one series, not one per period kind.
                        value = _value(fig, indicator) if kind == "month" else None
                        if value is not None:
                            gauge(
                                "verbinding_s3_referrals_overdue",
                                "Open referrals without a status change for more than 14 days.",
                                [],
                            ).add_metric([], value)
                        continue
                    if indicator == "referral_outcome":
                        for part, sub in fig.items():
                            value = _value(sub, part)
                            if value is not None:
                                name = "verbinding_s1_referral_outcome_" + (
                                    "improved_ratio" if part == "improved_share" else part
                                )
                                gauge(
                                    name,
                                    f"Referral outcome: {part} (intake to follow-up).",
                                    ["period"],
                                ).add_metric([kind], value)
                        continue
                    if isinstance(fig, dict) and "value" not in fig:
                        continue  # a by-role or by-signal list: a breakdown, not exposed
                    value = _value(fig, indicator)
                    if value is not None:
                        gauge(
                            metric_name(subgoal, indicator),
                            f"{indicator} ({subgoal}), current {kind}.",
                            ["period"],
                        ).add_metric([kind], value)
                    baseline = fig.get("baseline") if isinstance(fig, dict) else None
                    if baseline is not None:
                        name = metric_name(
                            subgoal,
                            indicator
                            if indicator != "growth_vs_baseline"
                            else "participants_unique",
                        )
                        gauge(
                            name + "_baseline", f"Baseline of {indicator}.", ["period"]
                        ).add_metric([kind], float(baseline))
        newest = self.periods.get("month", {}).get("freshness", {}).get("newest_event_at")
        if newest:
            gauge(
                "verbinding_metrics_newest_event_timestamp_seconds",
                "Time of the newest event applied (freshness).",
                [],
            ).add_metric([], datetime.fromisoformat(newest).timestamp())
        for org, ts in self.partners.items():
            gauge(
                "verbinding_partner_last_event_timestamp_seconds",
                "Time of the last event of each partner organisation.",
                ["organisation"],
            ).add_metric([org], ts)
        if self.taken_at is not None:
            gauge(
                "verbinding_metrics_snapshot_timestamp_seconds",
                "When the indicator snapshot was last computed.",
                [],
            ).add_metric([], self.taken_at)
        if self.took is not None:
            # How long the last refresh took: as the facts grow, a refresh that recomputes the
            # year's totals grows with them (docs/scale.md "Reads"); the bench reads it too.
            gauge(
                "verbinding_metrics_snapshot_refresh_seconds",
                "How long the last refresh of the indicator snapshot took.",
                [],
            ).add_metric([], self.took)
        yield from families.values()
