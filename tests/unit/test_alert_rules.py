"""The Prometheus alert rules: valid, unit-tested with promtool, documented, and reading only
series that the code exposes (so that renaming a metric breaks this test, not the pager)."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.docs import exposed_metrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTS_DOC = REPO / "docs" / "alerts.md"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

# Series Prometheus makes itself, not the services.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "ALERTS", "ALERTS_FOR_STATE"}
TARGET_LABELS = {"job", "instance"}

# ------------------------------------------------------------------------ a small PromQL reader

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "atan2", "inf", "nan",
}  # fmt: skip
AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "limitk", "limit_ratio",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # a string
    r"|\[[^\]]*\]"  # a range or subquery, e.g. [5m], [$__rate_interval]
    r"|(?<![\w.$])(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<brace>\{)"
)
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _closing(expr: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``start``; brackets inside strings do not count."""
    depth, quoted, escaped = 0, False, False
    for i in range(start, len(expr)):
        char = expr[i]
        if quoted:
            escaped, quoted = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            quoted = True
        elif char == open_:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_!r} in {expr!r}")


def promql_references(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """(metric name -> label names in its matchers, label names used in by/on/... clauses)."""
    metrics: dict[str, set[str]] = {}
    grouping: set[str] = set()
    pos = 0
    while (m := TOKEN.search(expr, pos)) is not None:
        pos = m.end()
        name = m.group("ident")
        if name is None:
            if m.group("brace"):  # a selector without a name: {__name__=...}; not used here
                pos = _closing(expr, m.start(), "{", "}") + 1
            continue
        rest = expr[pos:].lstrip()
        if name in GROUPING:
            if rest.startswith("("):
                start = pos + expr[pos:].index("(")
                end = _closing(expr, start, "(", ")")
                grouping |= {x.strip() for x in expr[start + 1 : end].split(",") if x.strip()}
                pos = end + 1
            continue
        if name in KEYWORDS:
            continue
        if rest.startswith("(") or (name in AGGREGATIONS and re.match(r"(by|without)\b", rest)):
            continue  # a function or an aggregation
        labels = metrics.setdefault(name, set())
        if rest.startswith("{"):
            start = pos + expr[pos:].index("{")
            end = _closing(expr, start, "{", "}")
            body = expr[start + 1 : end]
            found = MATCHER.findall(body)
            assert not MATCHER.sub("", body).strip(), f"cannot read the matchers {body!r}"
            labels |= {label for label, _, _ in found}
            pos = end + 1
    return metrics, grouping


# ------------------------------------------------------------------------------------ fixtures


@cache
def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.fail(
            "promtool is missing: install the Debian package `prometheus` (scripts/bootstrap does)"
        )
    return found


def _run(*args: str) -> None:
    result = subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )


# --------------------------------------------------------------------------------------- tests


def test_rule_files_exist() -> None:
    assert RULE_FILES, "no rule files in deploy/prometheus/rules"
    assert TEST_FILES, "no promtool tests in deploy/prometheus/tests"
    assert len(_alerts()) >= 10


def test_promtool_checks_the_rules() -> None:
    _run("check", "rules", *map(str, RULE_FILES))


def test_promtool_checks_the_prometheus_config_and_finds_the_rules(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    loaded = {p for pattern in config["rule_files"] for p in PROMETHEUS.glob(pattern)}
    assert loaded == set(RULE_FILES), "prometheus.yml does not load every rule file"
    # promtool checks that the scrape key's file exists; the real one is a deployment's secret,
    # never in the repository, so the check runs on a copy beside a stand-in key.
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    with pytest.raises(AssertionError, match="credentials"):
        _run("check", "config", str(copy / "prometheus.yml"))
    for job in config["scrape_configs"]:
        if "authorization" in job:
            secret = copy / job["authorization"]["credentials_file"]
            secret.parent.mkdir(parents=True, exist_ok=True)
            secret.write_text("vb_example_not-a-real-key\n", encoding="utf-8")
    _run("check", "config", str(copy / "prometheus.yml"))


def test_prometheus_sends_the_metrics_key_to_every_service() -> None:
    """`/metrics` needs a key with scope `metrics` (contract.md): every job of a Verbinding
    service authenticates with the mounted key file, and no other job receives it."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ours = {name for name in jobs if name.startswith("verbinding-")}
    assert ours == {"verbinding-registrations", "verbinding-referrals", "verbinding-metrics"}
    for name, job in jobs.items():
        if name in ours:
            assert job["authorization"] == {
                "type": "Bearer",
                "credentials_file": "secrets/metrics-scrape-key",
            }, name
        else:
            assert "authorization" not in job, f"{name} must not receive the key"


def test_promtool_unit_tests_pass() -> None:
    _run("test", "rules", *map(str, TEST_FILES))


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        loaded = {(path.parent / p).resolve() for p in doc["rule_files"]}
        assert loaded == {p.resolve() for p in RULE_FILES}, f"{path.name} must load every rule file"
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested staying silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_for_severity_team_and_a_runbook_section() -> None:
    doc = ALERTS_DOC.read_text(encoding="utf-8")
    sections = {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", doc, flags=re.M)
    }
    names = [a["alert"] for a in _alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for alert in _alerts():
        name = alert["alert"]
        assert re.fullmatch(r"Verbinding[A-Z][A-Za-z]+", name), name
        assert re.fullmatch(r"\d+[smhd]", str(alert.get("for", ""))), f"{name}: needs `for:`"
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["labels"]["team"] in {"operations", "programme"}, name
        notes = alert["annotations"]
        assert notes.get("summary"), name
        assert len(notes.get("description", "")) > 80, f"{name}: say what to do"
        anchor = name.lower()
        assert notes["runbook_url"] == f"docs/alerts.md#{anchor}", name
        assert anchor in sections, f"docs/alerts.md has no section `## {name}`"
        assert f"[{name}](#{anchor})" in doc, f"docs/alerts.md's table does not list {name}"
    assert sections == {n.lower() for n in names}, (
        "docs/alerts.md documents alerts that do not exist"
    )


def test_rules_read_only_series_and_labels_the_code_exposes() -> None:
    exposed = exposed_metrics()
    for rule in _rules():
        metrics, grouping = promql_references(rule["expr"])
        assert metrics, f"no metric found in {rule['expr']!r}"
        known_labels: set[str] = set(TARGET_LABELS)
        for name, labels in metrics.items():
            if name in PROMETHEUS_SERIES:
                continue
            assert name in exposed, (
                f"{rule.get('alert')}: {name} is not exposed by the code (renamed?); "
                f"close: {difflib.get_close_matches(name, exposed, n=3, cutoff=0.6)}"
            )
            allowed = exposed[name] | TARGET_LABELS
            assert labels <= allowed, f"{rule.get('alert')}: {name} has no label {labels - allowed}"
            known_labels |= exposed[name]
        assert grouping <= known_labels, (
            f"{rule.get('alert')}: groups by {grouping - known_labels}, which no series has"
        )


def test_the_promql_reader_finds_names_and_labels() -> None:
    metrics, grouping = promql_references(
        'sum by (job, service) (rate(verbinding_http_requests_total{status=~"5.{1}", '
        'route!~"/healthz|/readyz"}[5m])) / on (job) group_left sum(up) > 0.05 '
        "and on () day_of_month() >= 21 or absent(x_total offset 1h) * 1e3"
    )
    assert metrics == {
        "verbinding_http_requests_total": {"status", "route"},
        "up": set(),
        "x_total": set(),
    }
    assert grouping == {"job", "service"}


def test_alertmanager_routes_to_defined_receivers_and_inhibits_real_alerts() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {r["receiver"] for r in routes} <= receivers
    teams = {a["labels"]["team"] for a in _alerts()}
    routed = {
        m.split("=")[1].strip('"')
        for r in routes
        for m in r.get("matchers", [])
        if m.startswith("team=")
    }
    assert teams - {"operations"} <= routed, "a team without its own route"
    names = {a["alert"] for a in _alerts()}
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            label, op, value = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
            if label == "alertname" and op in {"=", "=~"}:
                for name in value.split("|"):
                    assert name in names, f"alertmanager inhibits {name}, which is no alert"


def test_the_exposition_passes_promtool_lint() -> None:
    """Metric names follow the Prometheus conventions (style.md, habit 6), as promtool reads them."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.registry import Collector

    from services.describe import exposed_metrics as register_every_metric
    from services.metrics.entrypoints.catalogue import snapshot_families

    register_every_metric()  # imports and registers every metric of the code

    class Indicators(Collector):
        def collect(self) -> Any:
            return snapshot_families()

    from prometheus_client import CollectorRegistry

    from services.metrics.service_layer.snapshot import IndicatorSnapshot

    # A registry of its own: in a full test run a metrics app of another test may have its
    # snapshot registered globally, which would emit the indicator families a second time.
    registry = CollectorRegistry()
    for collector in list(REGISTRY._collector_to_names):
        if not isinstance(collector, IndicatorSnapshot):
            registry.register(collector)
    registry.register(Indicators())
    text = generate_latest(registry)
    assert b"verbinding_s2_participants_unique" in text
    result = subprocess.run(
        [_promtool(), "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
