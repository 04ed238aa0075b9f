"""The bench's target list (tools/bench/report.py): each target of issue 14 is judged there."""

from tools.bench.report import targets


def _judged(results: dict[str, object]) -> dict[str, bool | None]:
    return {t["target"]: t["met"] for t in targets(results)}


def test_the_rebuild_is_judged_against_30000_events_per_second() -> None:
    assert _judged({"rebuild": {"events_per_second": 30_000.0}}) == {"rebuild events/s": True}
    assert _judged({"rebuild": {"events_per_second": 29_999.9}}) == {"rebuild events/s": False}


def test_the_aggregation_is_judged_by_rate_and_by_its_ratio_to_the_bare_consumer() -> None:
    results = {
        "aggregation": {"metrics_service": {"events_per_second": 41_725.0}, "ratio_to_bare": 0.499}
    }
    assert _judged(results) == {
        "aggregation events/s": True,
        "aggregation / bare consumer": False,
    }
