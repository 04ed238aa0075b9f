"""The Prometheus series the metrics service exposes beyond those of ``shared/`` (read by
``verbinding describe``, which the documentation and the alert and dashboard tests use): the
consumer's and FastStream's metrics, and the indicator gauges rendered by the real snapshot
collector from figures in which no cell is suppressed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from services.metrics.domain import answers
from services.metrics.domain.disclosure import (
    FIGURES,
    TOTAL,
    Baseline,
    Count,
    YearGrid,
    unsuppressed,
)
from services.metrics.domain.periods import PeriodKind
from services.metrics.entrypoints.consumer import MetricsConsumer
from services.metrics.service_layer.snapshot import IndicatorSnapshot

__all__ = ["series", "snapshot_families"]


def snapshot_families() -> list[Any]:
    """The indicator gauges, rendered from a snapshot in which no cell is suppressed."""
    period = "2025"
    names = [*FIGURES, "emotional_measured", "social_measured"]
    stocks = {name for name, spec in FIGURES.items() if spec.periods == "cumulative"}
    plenty = YearGrid(
        year=2025,
        keys={},
        # Stocks (trained people, partners) are counted at the end of the period: December.
        counts={
            (name, TOTAL, "", "2025-12" if name in stocks else period): Count(1000, 1000)
            for name in names
        }
        | {("partners", TOTAL, "", "2025-12"): Count(2000, 2000)},
        statistics={
            ("days_to_first_attendance", TOTAL, "", period): 10.0,
            ("days_to_first_contact", TOTAL, "", period): 5.0,
            ("outcome_mean_change", TOTAL, "", period): -1.0,
        },
        baselines={(TOTAL, "", period): Baseline(500, public=True)},
    )
    prevalence = dict.fromkeys(answers.PREVALENCES, 0.4)
    result = {
        "freshness": {"newest_event_at": datetime.now(UTC).isoformat()},
        **answers.sections(unsuppressed(plenty), period, prevalence),
    }
    result["s3"]["referrals_overdue"] = {"value": 1000, "suppressed": False}
    snapshot = IndicatorSnapshot(service=None, interval=60)  # type: ignore[arg-type]
    for kind in get_args(PeriodKind):
        snapshot.periods[kind] = result
    snapshot.partners = {"example": 0.0}
    snapshot.taken_at = 0.0
    return list(snapshot.collect())


def series() -> list[Any]:
    """Registers what registers itself only when a consumer is built (FastStream's middleware
    metrics) and returns the families that a collector renders (the indicator gauges)."""
    MetricsConsumer(None, bootstrap="127.0.0.1:1", group_id="catalogue")  # type: ignore[arg-type]
    return snapshot_families()
