"""The Prometheus series the metrics service exposes beyond those of ``shared/`` (read by
``verbinding describe``, which the documentation and the alert and dashboard tests use): the
consumer's and FastStream's metrics, and the indicator gauges rendered by the real snapshot
collector from figures in which no cell is suppressed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from services.metrics.domain import figures
from services.metrics.domain.periods import PeriodKind
from services.metrics.entrypoints.consumer import MetricsConsumer
from services.metrics.service_layer.snapshot import BREAKDOWN_FIGURES, IndicatorSnapshot

__all__ = ["series", "snapshot_families"]


class _Plenty(dict[str, Any]):
    """A stand-in for raw query results in which every figure is large enough to be shown."""

    def get(self, key: str, default: Any = None) -> Any:
        if key.endswith(("_by_role", "_by_signal")):
            return {"example": 1000}
        return 1000

    def __contains__(self, key: object) -> bool:
        return True


def snapshot_families() -> list[Any]:
    """The indicator gauges, rendered from a snapshot in which no cell is suppressed."""
    prevalence: dict[str, float | None] = dict.fromkeys(
        (
            "prevalence_lonely",
            "prevalence_severe",
            "prevalence_emotional",
            "prevalence_social",
        ),
        0.4,
    )
    result = {
        "freshness": {"newest_event_at": datetime.now(UTC).isoformat()},
        "s1": figures.s1_figures(_Plenty(), 10, prevalence, True),
        "s2": figures.s2_figures(_Plenty(), 10, 1000),
        "s3": {**figures.s3_figures(_Plenty(), 10, True), "referrals_overdue": {"value": 1000}},
    }
    snapshot = IndicatorSnapshot(service=None, interval=60)  # type: ignore[arg-type]
    for kind in get_args(PeriodKind):
        snapshot.periods[kind] = result
        for by in BREAKDOWN_FIGURES:
            cell: dict[str, Any] = {"key": "example"}
            cell["s1"] = figures.s1_figures(_Plenty(), 10, prevalence, False)
            cell["s2"] = figures.s2_figures(_Plenty(), 10, 1000)
            cell["s3"] = figures.s3_figures(_Plenty(), 10, False)
            snapshot.breakdowns[(kind, by)] = {"breakdown": [cell]}
    snapshot.partners = {"example": 0.0}
    snapshot.taken_at = 0.0
    return list(snapshot.collect())


def series() -> list[Any]:
    """Registers what registers itself only when a consumer is built (FastStream's middleware
    metrics) and returns the families that a collector renders (the indicator gauges)."""
    MetricsConsumer(None, bootstrap="127.0.0.1:1", group_id="catalogue")  # type: ignore[arg-type]
    return snapshot_families()
