"""`verbinding demo-report`: the table a newcomer reads, and when it is printed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tools.simulator.report import Addresses, caught_up, last_complete_month, render_report


def _fig(value, suppressed=False, baseline=None):
    fig = {"value": value, "suppressed": suppressed}
    return fig if baseline is None else fig | {"baseline": baseline}


def _doc(period: str, lonely: float | None, referrals: int | None) -> dict:
    return {
        "period": period,
        "k": 10,
        "baseline_year": 2024,
        "freshness": {"events_applied": 12345, "newest_event_at": "2026-11-28T10:00:00+00:00"},
        "s1": {
            "measurements": _fig(480),
            "prevalence_lonely": _fig(lonely, lonely is None, 0.44),
            "referral_outcome": {"pairs": _fig(None, True), "mean_change": _fig(None, True)},
        },
        "s2": {
            "participants_unique": _fig(368),
            "attendance_rate": _fig(0.8361),
            "growth_vs_baseline": {"value": None, "suppressed": False, "baseline": None},
        },
        "s3": {"referrals": _fig(referrals, referrals is None), "referrals_overdue": _fig(12)},
    }


def test_the_table_shows_each_subgoal_for_both_periods_beside_the_baseline(tmp_path):
    year, month = _doc("2026", 0.4441, 159), _doc("2026-10", None, None)
    by_nbh = {
        "breakdown": [
            {"key": "pijnacker-noord", "s1": {"prevalence_lonely": _fig(0.537, False, 0.5)}},
            {"key": "delfgauw", "s1": {"prevalence_lonely": _fig(0.41)}},  # no baseline: no row
        ]
    }
    text = render_report(
        year,
        month,
        Addresses(
            metrics="http://127.0.0.1:8003",
            registrations="http://127.0.0.1:8001",
            referrals="http://127.0.0.1:8002",
            key="vb_k_secret",
            asyncapi=tmp_path / "asyncapi.yaml",
        ),
        breakdowns={"neighbourhood": (by_nbh, None)},
    )
    lines = text.splitlines()
    assert lines[0].split() == ["2026", "2026-10", "baseline"]
    assert [line for line in lines if line.startswith("S")] == [
        "S1  fewer residents feel lonely",
        "S2  residents find their way to activities",
        "S3  professionals and volunteers signal and refer",
    ]
    lonely = next(line for line in lines if "lonely (moderately" in line).split()
    assert lonely[-3:] == ["44.4%", "suppressed", "44%"]
    referrals = next(line for line in lines if line.strip().startswith("referrals ")).split()
    assert referrals[-2:] == ["159", "<10"]
    assert "lonely in pijnacker-noord" in text
    assert "delfgauw" not in text
    assert "83.6%" in text
    assert "http://127.0.0.1:8003/#key=vb_k_secret" in text
    assert "curl -s -H 'Authorization: Bearer vb_k_secret'" in text
    assert "period=2026-10" in text
    assert "http://127.0.0.1:8003/metrics" in text
    assert "http://127.0.0.1:8001/docs" in text
    assert "http://127.0.0.1:8002/docs" in text
    assert "asyncapi.yaml (not generated yet)" in text
    assert "12,345" in text


def test_the_asyncapi_file_is_named_without_a_warning_once_it_exists(tmp_path):
    spec = Path(tmp_path / "asyncapi.yaml")
    spec.write_text("asyncapi: 3.0.0\n")
    a = Addresses("http://m", "http://r", "http://f", None, spec)
    text = render_report(_doc("2026", 0.44, 20), _doc("2026-10", 0.44, 20), a)
    assert "not generated yet" not in text
    assert "<coalition key>" in text


def test_caught_up_when_the_expected_events_are_in_or_nothing_grows_any_more():
    assert not caught_up([], None, 5)
    assert caught_up([(0.0, 50)], 40, 5)
    assert not caught_up([(0.0, 30), (1.0, 35)], 40, 5)
    # When the expected count cannot come (events dead-lettered): stop once nothing grows.
    assert not caught_up([(0.0, 30), (3.0, 30)], 40, 5)
    assert caught_up([(0.0, 30), (3.0, 30), (6.0, 30)], 40, 5)
    assert not caught_up([(0.0, 10), (3.0, 20), (6.0, 30)], None, 5)
    assert not caught_up([(0.0, 0), (9.0, 0)], None, 5)  # nothing at all yet


def test_the_last_complete_month():
    assert last_complete_month(date(2026, 11, 28)) == "2026-10"
    assert last_complete_month(date(2026, 1, 1)) == "2025-12"
