"""``GET /metrics``: the live indicators of the current month, quarter and year as gauges (from a
snapshot, suppressed cells omitted) and the consumer's own health counters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.adapters.facts import FactWriter
from services.metrics.domain.periods import current_periods
from services.metrics.service_layer.snapshot import IndicatorSnapshot
from shared.consumer import BatchConsumer, RawRecord
from shared.events import CloudEvent, encode_event
from shared.timerules import AMSTERDAM
from tests.conftest import RUN_ID, TOPIC_PREFIX, eventually
from tests.integration.test_metrics_scenario import (
    activity,
    attendance,
    create_metrics_schema,
    drop_schema,
    hexid,
    person,
    publish,
    referral,
    service,
    status,
    wait_applied,
)

pytestmark = pytest.mark.integration

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Series, list[tuple[str, tuple[tuple[str, str], ...]]]]:
    """The samples of an exposition, and the series that appear more than once."""
    samples = [
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    seen = Counter((name, labels) for name, labels, _ in samples)
    return {(n, lab): v for n, lab, v in samples}, [key for key, n in seen.items() if n > 1]


def sessions_now(org: str, activity_id: str, people: list[Any], tag: str) -> list[CloudEvent[Any]]:
    start = datetime.now(AMSTERDAM).replace(second=0, microsecond=0)
    return [
        attendance(org, f"{tag}-{i}", activity_id, who, start.isoformat(), start.date())
        for i, who in enumerate(people)
    ]


async def test_metrics_endpoint_shows_the_current_figures_above_k_and_omits_the_rest(
    metrics, metrics_app, pool
):
    org = f"prom-{RUN_ID}"
    big = [person(hexid(f"prom-big-{RUN_ID}-{i}"), "s-gravenhout", "26-64") for i in range(12)]
    # A second visible cell: klapwijk's 3 would otherwise be the only hidden non-empty cell,
    # and complementary suppression would hide the smallest visible one with it.
    more = [person(hexid(f"prom-more-{RUN_ID}-{i}"), "delfgauw", "26-64") for i in range(10)]
    small = [person(hexid(f"prom-small-{RUN_ID}-{i}"), "klapwijk", "26-64") for i in range(3)]
    events = [activity(org, "prom-act", "meeting", True)]
    events += sessions_now(org, "prom-act", big + more + small, f"prom-{RUN_ID}")
    await publish(events, TOPIC_PREFIX)
    await wait_applied(pool, "metrics", events)

    month = current_periods(datetime.now(AMSTERDAM))["month"]
    svc = metrics_app.state.indicators  # the app's own service: k = 10
    assert svc.k == 10
    series: Series = {}

    async def exposed() -> bool:
        nonlocal series
        response = await metrics.get("/metrics")
        assert response.status_code == 200
        series, duplicates = parse(response.text)
        assert duplicates == [], duplicates
        value = series.get(("verbinding_s2_participants_unique", (("period", "month"),)))
        return value is not None and value >= 15

    # The snapshot recomputes every period and breakdown over the whole session's data, which
    # takes a while on a busy machine late in a full run.
    await eventually(exposed, timeout=120, what="the current month's participants on /metrics")
    expected = await svc.compute(month)
    for kind in ("month", "quarter", "year"):
        assert series[("verbinding_s2_participants_unique", (("period", kind),))] >= 15
        assert series[("verbinding_s2_attendances", (("period", kind),))] >= 15
    # The snapshot shows what the API answers for the same period (nothing else was consumed).
    assert (
        series[("verbinding_s2_participants_unique", (("period", "month"),))]
        == (expected["s2"]["participants_unique"]["value"])
    )
    cells = {c["key"]: c for c in (await svc.compute(month, "neighbourhood"))["breakdown"]}
    name = "verbinding_s2_participants_unique_by_neighbourhood"
    for key, cell in cells.items():
        labels = (("neighbourhood", key), ("period", "month"))
        fig = cell["s2"]["participants_unique"]
        if fig["suppressed"]:
            assert (name, labels) not in series, key  # omitted, not 0
        else:
            assert series[(name, labels)] == fig["value"], key
    # The larger of the two visible cells stays visible whatever else the session recorded.
    assert cells["s-gravenhout"]["s2"]["participants_unique"]["value"] >= 12
    assert cells["klapwijk"]["s2"]["participants_unique"]["suppressed"]  # our 3 < k
    # The service's own health: events applied per topic, the last event time per partner.
    consumed = series[("verbinding_metrics_events_consumed_total", (("topic", "registrations"),))]
    assert consumed >= 15
    assert (
        "verbinding_partner_last_event_timestamp_seconds",
        (("organisation", org),),
    ) in series


async def test_the_snapshot_renders_each_series_once_with_exact_values(pool):
    """The gauges of a snapshot over known data (own schema, k = 2), without the HTTP layer."""
    schema = await create_metrics_schema(pool)
    try:
        org = f"snap-{RUN_ID}"
        people = [person(hexid(f"snap-{i}"), "delfgauw", "65-74") for i in range(3)]
        lone = person(hexid("snap-lone"), "emerald", "75+")
        # Two more in another cell: the lone hidden cell (emerald, 1) would otherwise be the
        # total minus the visible cells, so the smallest visible one (klapwijk, 2) is hidden too.
        pair = [person(hexid(f"snap-pair-{i}"), "klapwijk", "26-64") for i in range(2)]
        old = (datetime.now(AMSTERDAM) - timedelta(days=40)).isoformat()
        events = [activity(org, "snap-act", "meeting", True)]
        events += sessions_now(org, "snap-act", [*people, lone, *pair], "snap")
        # Three referrals open and silent for 40 days: overdue, a live figure of no period.
        for i, who in enumerate(people):
            events.append(referral(org, f"snap-r{i}", who, "gp", ["social"], old, to_org=org))
        events.append(status(org, "snap-r0", people[0], org, "created", "accepted", old))
        records = [
            RawRecord(e.data.topic.value, 0, i, e.key, encode_event(e))
            for i, e in enumerate(events)
        ]

        class NoLetters:
            async def send(self, letters: Any) -> None:
                raise AssertionError(letters)

        result = await BatchConsumer(
            pool, schema, FactWriter(schema), NoLetters(), tracking="offsets"
        ).handle(records)
        assert result.applied == len(events)

        snapshot = IndicatorSnapshot(service(pool, schema, k=2, baseline_year=2024))
        await snapshot.refresh()
        registry = CollectorRegistry()
        registry.register(snapshot)
        series, duplicates = parse(generate_latest(registry).decode())
    finally:
        await drop_schema(pool, schema)

    assert duplicates == [], duplicates
    for kind in ("month", "quarter", "year"):
        period = (("period", kind),)
        assert series[("verbinding_s2_participants_unique", period)] == 6
        assert series[("verbinding_s2_attendances", period)] == 6
        assert series[("verbinding_s2_attendance_ratio", period)] == 1.0
        assert ("verbinding_s2_no_shows", period) not in series  # 0 < k: omitted
        by = "verbinding_s2_participants_unique_by_neighbourhood"
        assert series[(by, (("neighbourhood", "delfgauw"), ("period", kind)))] == 3
        assert (by, (("neighbourhood", "emerald"), ("period", kind))) not in series  # 1 < k
        assert (by, (("neighbourhood", "klapwijk"), ("period", kind))) not in series  # complement
        by = "verbinding_s2_participants_unique_by_age_band"
        assert series[(by, (("age_band", "65-74"), ("period", kind)))] == 3
        assert (by, (("age_band", "75+"), ("period", kind))) not in series
        assert (by, (("age_band", "26-64"), ("period", kind))) not in series  # complement
    assert series[("verbinding_s3_referrals_overdue", ())] == 3
    assert series[("verbinding_partner_last_event_timestamp_seconds", (("organisation", org),))] > 0
