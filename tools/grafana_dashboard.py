"""The Grafana dashboard as code: one row per subgoal (S1, S2, S3) and one for operations.

Municipality-level figures only: `/metrics` carries no breakdowns (domain.md §7), so the
breakdowns by neighbourhood, age band, category, referrer role, role and signal are read on the
coalition dashboard and the JSON API, which take them from the same disclosure decisions.

    python -m tools.grafana_dashboard          write deploy/grafana/verbinding.json
    python -m tools.grafana_dashboard --check  exit 1 when the committed file is out of date

Built with grafana-foundation-sdk (the builders of Grafana 11.6, the version docker-compose.yml
runs). Every query reads a series that the metrics service or the shared HTTP/outbox code exposes
(tools.docs.exposed_metrics); tests/unit/test_grafana.py checks that and that the committed JSON
is what this file produces.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import get_args

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from services.metrics.domain.periods import PeriodKind

__all__ = ["DATASOURCE_UID", "OUTPUT", "build", "render"]

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "deploy" / "grafana" / "verbinding.json"
# The uid of the datasource provisioned in deploy/grafana/provisioning/datasources/.
DATASOURCE_UID = "prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
PERIOD = 'period="$period"'
PERIODS: tuple[str, ...] = get_args(PeriodKind)  # the `period` label of the indicator gauges
RATE = "$__rate_interval"
API_ROUTES = 'route!~"/healthz|/readyz|/metrics"'

Panel = stat.Panel | timeseries.Panel | table.Panel


class _Ids:
    def __init__(self) -> None:
        self._next = itertools.count(1)

    def __call__(self) -> int:
        return next(self._next)


def _query(expr: str, legend: str, *, instant: bool = False, ref: str = "A") -> Dataquery:
    query = Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return query.instant() if instant else query.range()


def _with(panel: Panel, queries: list[tuple[str, str]], *, instant: bool = False) -> Panel:
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(_query(expr, legend, instant=instant, ref=ref))
    return panel


def _stat(
    ids: _Ids,
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 6,
    red_from: float | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(5)
        .no_value("suppressed / none")
    )
    if red_from is not None:
        panel.thresholds(
            ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=red_from, color="red")])
        )
    return _with(panel, queries, instant=True)  # type: ignore[return-value]


def _series(
    ids: _Ids,
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    *,
    unit: str = "short",
    width: int = 8,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .id(ids())
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .min(0)
    )
    return _with(panel, queries)  # type: ignore[return-value]


def _s1(ids: _Ids) -> tuple[Row, list[Panel]]:
    row = Row("S1 — Loneliness (De Jong Gierveld measurements)").id(ids())
    now_and_base = [
        (f"verbinding_s1_prevalence_lonely_ratio{{{PERIOD}}}", "now"),
        (f"verbinding_s1_prevalence_lonely_ratio_baseline{{{PERIOD}}}", "baseline"),
    ]
    return row, [
        _stat(
            ids,
            "Lonely",
            "Share of survey measurements in the period that are (moderately or severely) "
            "lonely, the latest per participant; beside the baseline.",
            now_and_base,
            unit="percentunit",
        ),
        _stat(
            ids,
            "Severely lonely",
            "Share of measurements in the period that are (very) severely lonely.",
            [
                (f"verbinding_s1_prevalence_severe_ratio{{{PERIOD}}}", "now"),
                (f"verbinding_s1_prevalence_severe_ratio_baseline{{{PERIOD}}}", "baseline"),
            ],
            unit="percentunit",
        ),
        _stat(
            ids,
            "Emotional / social loneliness",
            "Share of measurements in the period with emotional, and with social loneliness.",
            [
                (f"verbinding_s1_prevalence_emotional_ratio{{{PERIOD}}}", "emotional"),
                (f"verbinding_s1_prevalence_social_ratio{{{PERIOD}}}", "social"),
            ],
            unit="percentunit",
        ),
        _stat(
            ids,
            "Measurements",
            "Questionnaires scored in the period (hidden below the suppression threshold).",
            [(f"verbinding_s1_measurements{{{PERIOD}}}", "measurements")],
        ),
        _series(
            ids,
            "Prevalence over time",
            "How the current period's prevalence figures moved as measurements arrived.",
            [
                (f"verbinding_s1_prevalence_lonely_ratio{{{PERIOD}}}", "lonely"),
                (f"verbinding_s1_prevalence_severe_ratio{{{PERIOD}}}", "severe"),
                (f"verbinding_s1_prevalence_emotional_ratio{{{PERIOD}}}", "emotional"),
                (f"verbinding_s1_prevalence_social_ratio{{{PERIOD}}}", "social"),
                (f"verbinding_s1_prevalence_lonely_ratio_baseline{{{PERIOD}}}", "lonely, baseline"),
            ],
            unit="percentunit",
            width=24,
        ),
        _stat(
            ids,
            "Referral outcome: moved to a lower category",
            "Among residents with an intake and a follow-up measurement.",
            [(f"verbinding_s1_referral_outcome_improved_ratio{{{PERIOD}}}", "improved")],
            unit="percentunit",
            width=8,
        ),
        _stat(
            ids,
            "Referral outcome: mean change of the score",
            "Follow-up minus intake total score (negative is better).",
            [(f"verbinding_s1_referral_outcome_mean_change{{{PERIOD}}}", "mean change")],
            width=8,
        ),
        _stat(
            ids,
            "Referral outcome: residents measured twice",
            "Intake and follow-up pairs the outcome rests on.",
            [(f"verbinding_s1_referral_outcome_pairs{{{PERIOD}}}", "pairs")],
            width=8,
        ),
    ]


def _s2(ids: _Ids) -> tuple[Row, list[Panel]]:
    row = Row("S2 — Reach and participation (connection activities)").id(ids())
    return row, [
        _stat(
            ids,
            "Unique participants",
            "Distinct participants with at least one attended session in the period, beside the "
            "same period of the baseline year.",
            [
                (f"verbinding_s2_participants_unique{{{PERIOD}}}", "now"),
                (f"verbinding_s2_participants_unique_baseline{{{PERIOD}}}", "baseline year"),
            ],
        ),
        _stat(
            ids,
            "Growth vs baseline",
            "Unique participants of the period / those of the same period of the baseline year − 1.",
            [(f"verbinding_s2_growth_vs_baseline_ratio{{{PERIOD}}}", "growth")],
            unit="percentunit",
        ),
        _stat(
            ids,
            "New participants",
            "Participants whose first ever attended session falls in the period.",
            [(f"verbinding_s2_participants_new{{{PERIOD}}}", "new")],
        ),
        _stat(
            ids,
            "Attendance rate",
            "Attendances / (attendances + no-shows).",
            [(f"verbinding_s2_attendance_ratio{{{PERIOD}}}", "attendance")],
            unit="percentunit",
        ),
        _stat(
            ids,
            "Attendances and no-shows",
            "Sessions attended, and not shown up for, in the period.",
            [
                (f"verbinding_s2_attendances{{{PERIOD}}}", "attended"),
                (f"verbinding_s2_no_shows{{{PERIOD}}}", "no-show"),
            ],
            width=8,
        ),
        _stat(
            ids,
            "Registrations and cancellations",
            "Registrations created and cancelled in the period.",
            [
                (f"verbinding_s2_registrations{{{PERIOD}}}", "registered"),
                (f"verbinding_s2_cancellations{{{PERIOD}}}", "cancelled"),
            ],
            width=8,
        ),
        _stat(
            ids,
            "Retained",
            "New participants of the period who attended at least 3 sessions within 90 days.",
            [(f"verbinding_s2_retained{{{PERIOD}}}", "retained")],
            width=8,
        ),
        _series(
            ids,
            "Unique and new participants",
            "The current period's figures as events arrive.",
            [
                (f"verbinding_s2_participants_unique{{{PERIOD}}}", "unique"),
                (f"verbinding_s2_participants_new{{{PERIOD}}}", "new"),
                (
                    f"verbinding_s2_participants_unique_baseline{{{PERIOD}}}",
                    "unique, baseline year",
                ),
            ],
            width=24,
        ),
    ]


def _s3(ids: _Ids) -> tuple[Row, list[Panel]]:
    row = Row("S3 — Signalling and referral").id(ids())
    return row, [
        _stat(
            ids,
            "Referrals",
            "The funnel of the referrals created in the period: referred, accepted, contacted, "
            "first attendance (within 60 days), retained (3 sessions within 90 days of the "
            "first); a referral counts in every stage up to the furthest it reached.",
            [
                (f"verbinding_s3_referrals{{{PERIOD}}}", "referred"),
                (f"verbinding_s3_accepted{{{PERIOD}}}", "accepted"),
                (f"verbinding_s3_contacted{{{PERIOD}}}", "contacted"),
                (f"verbinding_s3_converted{{{PERIOD}}}", "attended"),
                (f"verbinding_s3_referrals_retained{{{PERIOD}}}", "retained"),
            ],
            width=8,
        ),
        _stat(
            ids,
            "Acceptance and conversion",
            "Accepted / (accepted + declined); converted / referred.",
            [
                (f"verbinding_s3_referral_acceptance_ratio{{{PERIOD}}}", "accepted"),
                (f"verbinding_s3_referral_conversion_ratio{{{PERIOD}}}", "converted"),
            ],
            unit="percentunit",
            width=8,
        ),
        _stat(
            ids,
            "Days to first attendance",
            "Median time from referral to the first attended session, among converted referrals.",
            [(f"verbinding_s3_time_to_first_attendance_seconds{{{PERIOD}}}", "median")],
            unit="s",
            width=4,
        ),
        _stat(
            ids,
            "Overdue referrals",
            "Open referrals without a status change for more than 14 days (live). Red from 21, "
            "where the VerbindingReferralsOverdue alert fires.",
            [("verbinding_s3_referrals_overdue", "overdue")],
            width=4,
            red_from=21,
        ),
        _stat(
            ids,
            "Organisations with trained staff",
            "Partner organisations with at least one trained person, and their share of all.",
            [(f"verbinding_s3_organisations_with_trained_staff{{{PERIOD}}}", "organisations")],
            width=12,
        ),
        _stat(
            ids,
            "Share of organisations with trained staff",
            "Of all registered partner organisations.",
            [(f"verbinding_s3_organisations_with_trained_staff_ratio{{{PERIOD}}}", "share")],
            unit="percentunit",
            width=12,
        ),
    ]


def _partners(ids: _Ids) -> table.Panel:
    return (
        table.Panel()
        .id(ids())
        .title("Time since the last event, per organisation")
        .description("Red after 14 days: the VerbindingPartnerSilent alert.")
        .datasource(DATASOURCE)
        .unit("s")
        .span(8)
        .height(8)
        .thresholds(
            ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=14 * 86400, color="red")])
        )
        .with_target(
            _query(
                "time() - verbinding_partner_last_event_timestamp_seconds",
                "{{organisation}}",
                instant=True,
            ).format(PromQueryFormat.TABLE)
        )
    )


def _operations(ids: _Ids) -> tuple[Row, list[Panel]]:
    row = Row("Operations").id(ids())
    return row, [
        _series(
            ids,
            "Requests per second",
            "API requests by service (health, readiness and metrics probes excluded).",
            [
                (
                    f"sum by (service) (rate(verbinding_http_requests_total{{{API_ROUTES}}}[{RATE}]))",
                    "{{service}}",
                )
            ],
            unit="reqps",
        ),
        _series(
            ids,
            "5xx ratio",
            "Share of API requests answered 5xx; the VerbindingHttpErrorsHigh alert fires "
            "above 5%.",
            [
                (
                    f'sum by (service) (rate(verbinding_http_requests_total{{status=~"5..", {API_ROUTES}}}[{RATE}]))'
                    f" / sum by (service) (rate(verbinding_http_requests_total{{{API_ROUTES}}}[{RATE}]))",
                    "{{service}}",
                )
            ],
            unit="percentunit",
        ),
        _series(
            ids,
            "Request latency, 95th percentile",
            "By service and route template.",
            [
                (
                    "histogram_quantile(0.95, sum by (service, route, le) "
                    f"(rate(verbinding_http_request_duration_seconds_bucket{{{API_ROUTES}}}[{RATE}])))",
                    "{{service}} {{route}}",
                )
            ],
            unit="s",
        ),
        _series(
            ids,
            "Outbox backlog",
            "Accepted events waiting to be published, per service.",
            [("verbinding_outbox_backlog_events", "{{service}}")],
        ),
        _series(
            ids,
            "Oldest unpublished event",
            "Age of the oldest event in each outbox.",
            [("verbinding_outbox_oldest_event_age_seconds", "{{service}}")],
            unit="s",
        ),
        _series(
            ids,
            "Relays",
            "Active outbox relays (1 per service), and failed publish attempts per second.",
            [
                ("sum by (service) (verbinding_outbox_relay_active)", "{{service}} active"),
                (
                    f"sum by (service) (rate(verbinding_outbox_publish_errors_total[{RATE}]))",
                    "{{service}} errors/s",
                ),
            ],
        ),
        _series(
            ids,
            "Events published per second",
            "By the outbox relays, per topic.",
            [
                (
                    f"sum by (topic) (rate(verbinding_outbox_published_events_total[{RATE}]))",
                    "{{topic}}",
                )
            ],
            unit="ops",
        ),
        _series(
            ids,
            "Events consumed per second",
            "Applied to the indicators by the metrics service, per topic; and redeliveries "
            "skipped as duplicates.",
            [
                (
                    f"sum by (topic) (rate(verbinding_metrics_events_consumed_total[{RATE}]))",
                    "{{topic}}",
                ),
                (f"rate(verbinding_metrics_events_duplicate_total[{RATE}])", "duplicates"),
            ],
            unit="ops",
        ),
        _series(
            ids,
            "Consumer lag",
            "Events on each topic not yet committed by the metrics consumer group.",
            [("sum by (topic) (verbinding_metrics_consumer_lag_events)", "{{topic}}")],
        ),
        _series(
            ids,
            "Dead-lettered events",
            "Events the metrics service could not decode or apply, per origin topic.",
            [
                (
                    f"sum by (topic) (increase(verbinding_metrics_events_deadlettered_total[{RATE}]))",
                    "{{topic}}",
                )
            ],
        ),
        _series(
            ids,
            "Freshness",
            "Time since the newest applied event was accepted, and age of the indicator snapshot "
            "behind these panels.",
            [
                ("time() - verbinding_metrics_newest_event_timestamp_seconds", "newest event"),
                ("time() - verbinding_metrics_snapshot_timestamp_seconds", "snapshot"),
            ],
            unit="s",
        ),
        _series(
            ids,
            "Batch apply duration",
            "Decode, one transaction, dead letters: per consumed batch.",
            [
                (
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(verbinding_metrics_batch_apply_duration_seconds_bucket[{RATE}])))",
                    "median",
                ),
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(verbinding_metrics_batch_apply_duration_seconds_bucket[{RATE}])))",
                    "95th percentile",
                ),
            ],
            unit="s",
        ),
        _stat(
            ids,
            "Services up",
            "1 when Prometheus reaches the service.",
            [('up{job=~"verbinding-.+"}', "{{job}}")],
            width=16,
        ),
        _partners(ids),
    ]


def build() -> Dashboard:
    ids = _Ids()
    dashboard = (
        Dashboard("Verbinding")
        .uid("verbinding")
        .description(
            "Live indicators of the loneliness programme per subgoal, and the health of the "
            "platform. Generated by tools/grafana_dashboard.py; edit that, not this dashboard."
        )
        .tags(["verbinding", "generated"])
        .timezone("Europe/Amsterdam")
        .time("now-7d", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .with_variable(
            CustomVariable("period")
            .label("Period")
            .description("The current calendar month, quarter or year (Europe/Amsterdam).")
            .values(",".join(PERIODS))
            .current(VariableOption(selected=True, text=PERIODS[0], value=PERIODS[0]))
            .options([VariableOption(selected=p == PERIODS[0], text=p, value=p) for p in PERIODS])
        )
    )
    for section in (_s1, _s2, _s3, _operations):
        row, panels = section(ids)
        dashboard.with_row(row)
        for panel in panels:
            dashboard.with_panel(panel)
    return dashboard


def render() -> str:
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(build().build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.grafana_dashboard")
    parser.add_argument("--check", action="store_true", help="fail when the file is out of date")
    args = parser.parse_args(argv)
    content = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if current == content:
        return 0
    if args.check:
        print(f"{OUTPUT.relative_to(REPO)} is out of date; run `make dashboards`", file=sys.stderr)
        return 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(content, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
