"""The Grafana dashboard: committed as generated, reading only series the code exposes, and laid
out as one row per subgoal plus operations, on the provisioned datasource."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from services.metrics.domain.periods import current_periods
from tests.unit.test_alert_rules import PROMETHEUS_SERIES, TARGET_LABELS, promql_references
from tools import grafana_dashboard
from tools.docs import exposed_metrics

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(grafana_dashboard.OUTPUT.read_text(encoding="utf-8"))
    return doc


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_committed_dashboard_is_what_the_generator_produces() -> None:
    assert grafana_dashboard.OUTPUT.exists(), "deploy/grafana/verbinding.json is missing"
    assert grafana_dashboard.OUTPUT.read_text(encoding="utf-8") == grafana_dashboard.render(), (
        "deploy/grafana/verbinding.json is out of date: run `make dashboards`"
    )


def test_one_row_per_subgoal_and_an_operations_row_each_with_panels() -> None:
    panels = _dashboard()["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    titles = [panels[i]["title"] for i in rows]
    assert [t.split(" ")[0] for t in titles] == ["S1", "S2", "S3", "Operations"]
    for start, end in zip(rows, [*rows[1:], len(panels)], strict=True):
        assert end - start > 1, f"row {panels[start]['title']!r} has no panels"


def test_operations_row_shows_what_operators_need() -> None:
    panels = _dashboard()["panels"]
    start = next(i for i, p in enumerate(panels) if p.get("title") == "Operations")
    exprs = " ".join(t["expr"] for p in panels[start + 1 :] for t in p.get("targets", []))
    for metric in (
        "verbinding_http_requests_total",
        "verbinding_http_request_duration_seconds_bucket",
        "verbinding_outbox_backlog_events",
        "verbinding_metrics_consumer_lag_events",
        "verbinding_metrics_events_deadlettered_total",
        "verbinding_metrics_newest_event_timestamp_seconds",
        "verbinding_metrics_batch_apply_duration_seconds_bucket",
        "verbinding_partner_last_event_timestamp_seconds",
    ):
        assert metric in exprs, f"the operations row does not show {metric}"


def test_every_query_reads_series_and_labels_the_code_exposes() -> None:
    exposed = exposed_metrics()
    for panel in _panels():
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            metrics, grouping = promql_references(target["expr"])
            assert metrics, f"{panel['title']!r}: no metric in {target['expr']!r}"
            known = set(TARGET_LABELS)
            for name, labels in metrics.items():
                if name in PROMETHEUS_SERIES:
                    continue
                assert name in exposed, f"{panel['title']!r}: {name} is not exposed by the code"
                assert labels <= exposed[name] | TARGET_LABELS, (
                    f"{panel['title']!r}: {name} has no label {labels - exposed[name]}"
                )
                known |= exposed[name]
            assert grouping <= known, f"{panel['title']!r}: no series has {grouping - known}"
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in known | grouping, f"{panel['title']!r}: legend uses {label}"


def test_queries_use_the_provisioned_datasource_and_defined_variables() -> None:
    provisioned = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    uids = {d["uid"] for d in provisioned["datasources"] if d["type"] == "prometheus"}
    assert grafana_dashboard.DATASOURCE_UID in uids
    variables = {v["name"] for v in _dashboard()["templating"]["list"]}
    builtin = {"__rate_interval", "__interval", "__range"}
    for panel in _panels():
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= variables | builtin, f"{panel['title']!r}: undefined {used - variables}"


def test_period_variable_offers_exactly_the_periods_the_gauges_carry() -> None:
    (period,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "period"]
    offered = [o["value"] for o in period["options"]]
    assert offered == list(current_periods(datetime.now(UTC)))


def test_panels_fit_the_grid_and_ids_are_unique() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]


def test_provisioning_loads_the_dashboard_folder() -> None:
    provider = yaml.safe_load(
        (PROVISIONING / "dashboards" / "verbinding.yml").read_text(encoding="utf-8")
    )["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    source = mounts[provider["options"]["path"]]
    assert (REPO / source).resolve() == grafana_dashboard.OUTPUT.parent.resolve()
