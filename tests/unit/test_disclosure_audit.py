"""The disclosure audit on synthetic sets of published figures (no stack): it finds the known
leaks of issue 11, says what gave each away, accepts a safe set, and reads the answers of the
endpoints the way a reader sees them."""

from __future__ import annotations

from typing import Any

import pytest

from tools.disclosure_audit.check import audit
from tools.disclosure_audit.cli import build_parser
from tools.disclosure_audit.published import (
    Published,
    from_indicators,
    from_metrics,
    from_own,
    from_trend,
)

YEAR, K = 2025, 10
SOURCE = "test"


def pub(figure: str, period: str, value: float | None, by: str = "", key: str = "", **kw: Any) -> Published:  # fmt: skip
    return Published(figure, by, key, period, value, SOURCE, **kw)


def found(figures: list[Published], **kw: Any) -> dict[str, tuple[int, int]]:
    report = audit(figures, YEAR, K, **kw)
    assert report.conflicts == [], report.conflicts
    return {str(d.variable): (round(d.low), round(d.high)) for d in report.disclosures}


def test_a_quarter_minus_its_visible_months():
    figures = [
        pub("attendances", "2025-Q1", 44),
        pub("attendances", "2025-01", 20),
        pub("attendances", "2025-02", 20),
        pub("attendances", "2025-03", None),
    ]
    report = audit(figures, YEAR, K)

    (disclosure,) = report.disclosures
    assert str(disclosure.variable) == "attendances municipality 2025-03"
    assert (disclosure.low, disclosure.high) == (4, 4)
    assert disclosure.exact_by_algebra is True
    text = disclosure.describe()
    assert "= 4" in text
    for given_away in ("2025-Q1 (test) = 44", "2025-01 (test) = 20", "2025-02 (test) = 20"):
        assert given_away in text


def test_a_rate_beside_a_visible_count():
    assert found(
        [
            pub("attendances", "2025-01", 16),
            pub("attendance_rate", "2025-01", 0.8),
            pub("no_shows", "2025-01", None),
        ]
    ) == {"no_shows municipality 2025-01": (4, 4)}


def test_a_prevalence_beside_the_number_of_answers_gives_small_counts_nobody_shows():
    assert found(
        [pub("measurements", "2025-01", 16), pub("prevalence_lonely", "2025-01", 0.4375)]
    ) == {
        "lonely municipality 2025-01": (7, 7),
        "not_lonely municipality 2025-01": (9, 9),
    }


def test_a_growth_figure_times_its_baseline():
    assert found(
        [
            pub("participants_unique", "2025-01", None),
            pub("growth_vs_baseline", "2025-01", 0.2, baseline=5.0),
        ]
    ) == {"participants_unique municipality 2025-01": (6, 6)}


def test_a_list_against_its_total():
    """A reader who takes every referral to carry one signal subtracts the visible signals
    from the total. The data do not allow it (a referral may carry two), so the audit counts
    it only when told to assume it; its own verdict then matches the stronger reader's."""
    figures = [
        pub("referrals", "2025-01", 30),
        pub("referrals", "2025-01", 15, "signal", "emotional"),
        pub("referrals", "2025-01", 12, "signal", "social"),
        pub("referrals", "2025-01", None, "signal", "practical"),
    ]
    assert found(figures, additive_lists=True) == {"referrals signal=practical 2025-01": (3, 3)}
    assert found(figures) == {}  # a referral may carry several signals: at least 3, no more


def test_a_list_against_the_period_hierarchy_is_a_leak_for_any_reader():
    assert found(
        [
            pub("referrals", "2025-Q1", 30, "signal", "social"),
            pub("referrals", "2025-01", 15, "signal", "social"),
            pub("referrals", "2025-02", 14, "signal", "social"),
            pub("referrals", "2025-03", None, "signal", "social"),
        ]
    ) == {"referrals signal=social 2025-03": (1, 1)}


def test_the_same_cell_hidden_on_one_endpoint_and_shown_on_another():
    report = audit(
        [
            Published("attendances", "organisation", "org-a", "2025-01", None, "by organisation"),
            Published("attendances", "organisation", "org-a", "2025-01", 12, "own figures"),
        ],
        YEAR,
        K,
    )
    (disclosure,) = report.disclosures
    assert "one decision per cell" in disclosure.describe()


def test_people_counts_only_bound_their_quarter():
    """Unique participants of a quarter are at most the sum of its months (a person attends
    in two months): the quarter minus two visible months is no disclosure of the third."""
    assert (
        found(
            [
                pub("participants_unique", "2025-Q1", 44),
                pub("participants_unique", "2025-01", 20),
                pub("participants_unique", "2025-02", 20),
                pub("participants_unique", "2025-03", None),
            ]
        )
        == {}
    )


def test_a_safe_set_passes():
    """Two hidden months of a quarter, each neighbourhood's hidden cell beside another hidden
    one, and rates only where both sides are shown."""
    figures = [
        pub("attendances", "2025-Q1", 60),
        pub("attendances", "2025-01", 20),
        pub("attendances", "2025-02", None),
        pub("attendances", "2025-03", None),
        pub("attendances", "2025-01", 12, "neighbourhood", "a"),
        pub("attendances", "2025-01", None, "neighbourhood", "b"),
        pub("attendances", "2025-01", None, "neighbourhood", "c"),
        pub("no_shows", "2025-01", 10),
        pub("attendance_rate", "2025-01", 0.6667),
    ]
    report = audit(figures, YEAR, K)
    assert report.ok, report.describe()
    assert report.checked >= 4


def test_a_zero_pinned_at_zero_is_no_disclosure():
    assert (
        found(
            [
                pub("attendances", "2025-Q1", 40),
                pub("attendances", "2025-01", 20),
                pub("attendances", "2025-02", 20),
                pub("attendances", "2025-03", None),
            ]
        )
        == {}
    )


# -------------------------------------------------------------------- reading the endpoints

INDICATORS = {
    "period": "2025-Q1",
    "by": "neighbourhood",
    "k": 10,
    "s1": {
        "measurements": {"value": 16, "suppressed": False},
        "prevalence_lonely": {"value": 0.4375, "suppressed": False, "baseline": 0.44},
        "referral_outcome": {
            "pairs": {"value": None, "suppressed": True},
            "mean_change": {"value": None, "suppressed": True},
            "improved_share": {"value": None, "suppressed": True},
        },
    },
    "s2": {
        "participants_unique": {"value": 30, "suppressed": False},
        "growth_vs_baseline": {"value": 0.5, "suppressed": False, "baseline": 20},
    },
    "s3": {
        "referrals_overdue": {"value": 12, "suppressed": False},
        "people_trained_by_role": {"gp": {"value": 12, "suppressed": False}},
        "referrals_by_signal": {"social": {"value": None, "suppressed": True}},
    },
    "breakdown": [
        {"key": "delfgauw", "s2": {"participants_unique": {"value": None, "suppressed": True}}}
    ],
}


def test_an_indicators_answer_becomes_its_figures():
    figures = {(p.figure, p.by, p.key): p for p in from_indicators(INDICATORS, SOURCE)}

    assert figures[("measurements", "", "")].value == 16
    assert figures[("prevalence_lonely", "", "")].value == 0.4375  # the baseline is no count
    assert figures[("outcome_pairs", "", "")].suppressed
    assert ("mean_change", "", "") not in figures
    assert figures[("growth_vs_baseline", "", "")].baseline == 20
    assert figures[("people_trained", "role", "gp")].value == 12
    assert figures[("referrals", "signal", "social")].suppressed
    assert figures[("participants_unique", "neighbourhood", "delfgauw")].suppressed
    assert ("referrals_overdue", "", "") not in figures  # live, of no period
    assert {p.period for p in figures.values()} == {"2025-Q1"}


def test_own_figures_are_the_organisations_cell():
    own = {
        "period": "2025-01",
        "organisation_id": "buurthuis",
        "s2": {"attendances": {"value": 14, "suppressed": False}},
    }
    (figure,) = from_own(own, SOURCE)
    assert (figure.figure, figure.by, figure.key, figure.value) == (
        "attendances",
        "organisation",
        "buurthuis",
        14,
    )


def test_the_trend_and_the_exposition_are_read_as_totals():
    trend = {"months": [{"period": "2025-01", "participants_unique": {"value": 31, "suppressed": False}, "participants_new": {"value": None, "suppressed": True}}]}  # fmt: skip
    assert [(p.figure, p.value) for p in from_trend(trend, SOURCE)] == [
        ("participants_unique", 31),
        ("participants_new", None),
    ]
    text = (
        "# TYPE verbinding_s2_attendances gauge\n"
        'verbinding_s2_attendances{period="month"} 44\n'
        'verbinding_s2_attendances{period="year"} 400\n'
        "# TYPE verbinding_s1_prevalence_lonely_ratio gauge\n"
        'verbinding_s1_prevalence_lonely_ratio{period="month"} 0.4\n'
        "# TYPE verbinding_metrics_events_consumed_total counter\n"
        'verbinding_metrics_events_consumed_total{topic="registrations"} 10\n'
    )
    figures = from_metrics(text, {"month": "2025-03", "quarter": "2025-Q1"}, SOURCE)
    assert sorted((p.figure, p.period, p.value) for p in figures) == [
        ("attendances", "2025-03", 44),
        ("prevalence_lonely", "2025-03", 0.4),
    ]


@pytest.mark.parametrize(
    "argv", [["--year", "2025", "--key", "k"], ["--key", "k", "--additive-lists"]]
)
def test_the_command_line_takes_the_audiences_keys(argv):
    args = build_parser().parse_args([*argv, "--partner-key", "p1", "--partner-key", "p2"])
    assert args.key == "k"
    assert args.partner_key == ["p1", "p2"]


def test_a_funnel_stage_between_two_shown_stages():
    """The stages are nested (each at most the one before it): a hidden contacted stage between
    an accepted and a converted stage of 11 is 11, and one between 12 and 11 lies in [11, 12]."""
    assert found(
        [
            pub("accepted", "2025-01", 11),
            pub("contacted", "2025-01", None),
            pub("converted", "2025-01", 11),
        ]
    ) == {"contacted municipality 2025-01": (11, 11)}
    assert "contacted municipality 2025-01" in found(
        [
            pub("accepted", "2025-01", 12),
            pub("contacted", "2025-01", None),
            pub("converted", "2025-01", 11),
        ]
    )
    # Two apart, the range is wide enough; the retained stage hidden below a shown converted
    # stage is bounded above only.
    assert (
        found(
            [
                pub("accepted", "2025-01", 13),
                pub("contacted", "2025-01", None),
                pub("converted", "2025-01", 11),
                pub("referrals_retained", "2025-01", None),
            ]
        )
        == {}
    )
