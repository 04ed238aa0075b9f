"""The metrics service's query parameters: every bad value is a 422 that names the parameter,
never a 500 (the fuzzer in test_fuzz_http.py covers the same from the OpenAPI document)."""

from __future__ import annotations

from typing import Any

import pytest

from services.metrics.entrypoints.answers import IndicatorsAnswer, TrendAnswer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        # Two months up to January 2000 would begin in December 1999: this was a 500.
        ("/v1/trend", {"until": "2000-01", "months": 2}, {"query.months", "query.until"}),
        ("/v1/trend", {"until": "2000-12", "months": 13}, {"query.months", "query.until"}),
        ("/v1/trend", {"until": "1999-12"}, {"query.until"}),
        ("/v1/trend", {"until": "2101-01"}, {"query.until"}),
        ("/v1/trend", {"until": "2025-13"}, {"query.until"}),
        ("/v1/trend", {"until": "2025"}, {"query.until"}),
        ("/v1/trend", {"until": "2025-Q1"}, {"query.until"}),
        ("/v1/trend", {"months": 0}, {"query.months"}),
        ("/v1/trend", {"months": 61}, {"query.months"}),
        ("/v1/trend", {"months": "twelve"}, {"query.months"}),
        ("/v1/indicators", {}, {"query.period"}),
        ("/v1/indicators", {"period": "1999"}, {"query.period"}),
        ("/v1/indicators", {"period": "2025-Q5"}, {"query.period"}),
        ("/v1/indicators", {"period": "2025-3"}, {"query.period"}),
        ("/v1/indicators", {"period": "2025-03\n"}, {"query.period"}),
        ("/v1/indicators", {"period": "2025", "by": "street"}, {"query.by"}),
    ],
)
async def test_a_bad_query_parameter_is_a_422_naming_it(
    metrics: Any, make_partner: Any, path: str, params: dict[str, Any], named: set[str]
) -> None:
    reader = await make_partner(scopes="indicators")

    r = await metrics.get(path, params=params, headers=reader.headers)

    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    assert {d["field"] for d in body["details"]} == named


async def test_the_earliest_trend_there_can_be_is_answered(metrics: Any, make_partner: Any) -> None:
    reader = await make_partner(scopes="indicators")

    r = await metrics.get(
        "/v1/trend", params={"until": "2000-02", "months": 2}, headers=reader.headers
    )

    assert r.status_code == 200, r.text
    TrendAnswer.model_validate(r.json())  # as the OpenAPI document says (not validated)
    assert [m["period"] for m in r.json()["months"]] == ["2000-01", "2000-02"]


async def test_a_live_answer_says_how_fresh_its_figures_are(
    metrics: Any, make_partner: Any
) -> None:
    """``freshness`` of the live totals: the snapshot the figures come from and whether the
    facts changed since (stale-while-revalidate, docs/scale.md "Reads")."""
    reader = await make_partner(scopes="indicators")

    r = await metrics.get("/v1/indicators", params={"period": "2001-03"}, headers=reader.headers)

    assert r.status_code == 200, r.text
    IndicatorsAnswer.model_validate(r.json())
    freshness = r.json()["freshness"]
    assert set(freshness) >= {"newest_event_at", "events_applied", "figures_as_of", "stale"}
    # The app in the tests waits for every refresh (indicator_max_stale_seconds 0).
    assert freshness["stale"] is False
    assert freshness["stale_seconds"] == 0.0
    assert freshness["figures_as_of"] <= r.json()["generated_at"]
