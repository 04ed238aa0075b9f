"""Small-cell suppression (domain.md §3) and the published figures built from raw numbers.

A count below k, and a rate whose denominator is below k, is published as ``null`` with
``"suppressed": true``. In a breakdown, a lone hidden cell could be recovered as "total minus the
visible cells", so the smallest visible cell is hidden as well (complementary suppression).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.metrics.domain.figures import (
    ADDITIVE,
    breakdown_cells,
    count,
    rate,
    s1_figures,
    s2_figures,
    s3_figures,
    value_if,
)

HIDDEN = {"value": None, "suppressed": True}


def shown(value: Any) -> dict[str, Any]:
    return {"value": value, "suppressed": False}


# --- counts and rates -----------------------------------------------------------------------


def test_a_count_below_k_is_hidden_and_from_k_on_shown():
    assert count(9, 10) == HIDDEN
    assert count(10, 10) == shown(10)
    assert count(11, 10) == shown(11)
    assert count(0, 10) == HIDDEN
    assert count(None, 10) == HIDDEN
    assert count(1, 1) == shown(1)
    assert count(3, 10, baseline=0.44) == {**HIDDEN, "baseline": 0.44}


def test_a_rate_is_hidden_when_its_denominator_is_below_k_whatever_the_numerator():
    assert rate(9, 9, 10) == HIDDEN
    assert rate(0, 9, 10) == HIDDEN
    assert rate(3, 10, 10) == shown(0.3)  # 3 is a small count, but the rule is on the denominator
    assert rate(2, 3, 3) == shown(0.6667)  # four digits
    assert rate(None, 12, 10) == shown(0.0)
    assert rate(1, 0, 1) == HIDDEN  # no division by zero
    assert rate(5, 10, 10, baseline=0.44) == {**shown(0.5), "baseline": 0.44}
    assert rate(5, 9, 10, baseline=0.44) == {**HIDDEN, "baseline": 0.44}


def test_a_median_or_mean_is_shown_only_when_it_rests_on_k_cases():
    assert value_if(14.5, 2, 2, 1) == shown(14.5)
    assert value_if(14.5, 1, 2, 1) == HIDDEN
    assert value_if(None, 5, 2) == HIDDEN
    assert value_if(-2.254, 4, 2, 2) == shown(-2.25)


# --- figures per subgoal --------------------------------------------------------------------


def test_s2_attendance_rate_and_growth_against_the_baseline_year():
    raw = {"participants_unique": 12, "attendances": 30, "no_shows": 10, "participants_new": 4}
    out = s2_figures(raw, k=10, baseline_unique=8)
    assert out["participants_unique"] == shown(12)
    assert out["participants_new"] == HIDDEN
    assert out["attendance_rate"] == shown(0.75)  # 30 / (30 + 10)
    # A baseline below k is itself a small cell: neither the growth nor the baseline is shown.
    assert out["growth_vs_baseline"] == {**HIDDEN, "baseline": None}
    assert s2_figures(raw, 10, 10)["growth_vs_baseline"] == {**shown(0.2), "baseline": 10}
    assert s2_figures(raw, 10, 24)["growth_vs_baseline"] == {**shown(-0.5), "baseline": 24}
    few = {**raw, "participants_unique": 9}
    assert s2_figures(few, 10, 24)["growth_vs_baseline"] == {**HIDDEN, "baseline": 24}
    # Without any baseline figure there is nothing to hide, and nothing to show.
    assert s2_figures(raw, 10, None)["growth_vs_baseline"] == {
        "value": None,
        "suppressed": False,
        "baseline": None,
    }
    # No sessions at all: the rate has denominator 0 and is hidden, never a division by zero.
    assert s2_figures({}, 1, 0)["attendance_rate"] == HIDDEN


def test_s3_share_of_trained_organisations_divides_by_all_registered_organisations():
    raw = {
        "referrals": 20,
        "accepted": 12,
        "declined": 4,
        "converted": 9,
        "days_to_first_attendance": 11.0,
        "people_trained": 15,
        "organisations_with_trained_staff": 11,
        "partners_registered": 33,
        "people_trained_by_role": {"gp": 10, "volunteer": 5},
        "referrals_by_signal": {"social": 14, "health": 2},
    }
    out = s3_figures(raw, k=10, total=True)
    assert out["referrals"] == shown(20)
    assert out["referral_acceptance_rate"] == shown(0.75)  # 12 / (12 + 4): 16 decided
    assert out["referral_conversion"] == shown(0.45)  # 9 / 20
    assert out["converted"] == HIDDEN
    assert out["days_to_first_attendance"] == HIDDEN  # a median of 9 cases
    assert out["organisations_with_trained_staff"] == shown(11)
    assert out["organisations_with_trained_staff_share"] == shown(0.3333)  # 11 / 33
    assert out["people_trained_by_role"] == {"gp": shown(10), "volunteer": HIDDEN}
    assert out["referrals_by_signal"] == {"health": HIDDEN, "social": shown(14)}
    # A cell of a breakdown has no share and no by-role/by-signal figures.
    assert "organisations_with_trained_staff_share" not in s3_figures(raw, 10, total=False)


def test_s1_prevalence_uses_the_measurements_that_have_the_score_in_question():
    raw = {
        "measurements": 10,
        "lonely": 5,
        "severe": 1,
        "emotional": 3,
        "emotional_measured": 9,
        "social": 4,
        "social_measured": 12,
        "outcome_pairs": 10,
        "outcome_mean_change": -1.234,
        "outcome_improved": 6,
    }
    out = s1_figures(raw, 10, {"prevalence_lonely": 0.44}, total=True)
    assert out["prevalence_lonely"] == {**shown(0.5), "baseline": 0.44}
    assert out["prevalence_severe"] == shown(0.1)
    assert out["prevalence_emotional"] == HIDDEN  # only 9 measurements with an emotional score
    assert out["prevalence_social"] == shown(0.3333)  # 4 / 12
    assert out["referral_outcome"] == {
        "pairs": shown(10),
        "mean_change": shown(-1.23),
        "improved_share": shown(0.6),
    }


# --- complementary suppression --------------------------------------------------------------


def _cells(values: dict[str, int], k: int, name: str = "participants_unique") -> list[dict]:
    return [{"key": key, "s2": {name: count(v, k)}} for key, v in values.items()]


def _published(cells: list[dict], name: str = "participants_unique") -> dict[str, int | None]:
    return {cell["key"]: cell["s2"][name]["value"] for cell in cells}


def test_one_hidden_cell_takes_the_smallest_visible_cell_with_it():
    # With only "b" hidden, the total 71 minus 40, 12 and 15 would give b = 4 away.
    cells = breakdown_cells(_cells({"a": 40, "b": 4, "c": 12, "d": 15}, k=10))
    assert _published(cells) == {"a": 40, "b": None, "c": None, "d": 15}
    assert cells[2]["s2"]["participants_unique"] == HIDDEN


def test_two_hidden_cells_need_no_further_suppression():
    cells = breakdown_cells(_cells({"a": 40, "b": 4, "c": 12, "d": 3}, k=10))
    assert _published(cells) == {"a": 40, "b": None, "c": 12, "d": None}


def test_nothing_hidden_means_nothing_added():
    cells = breakdown_cells(_cells({"a": 40, "b": 10}, k=10))
    assert _published(cells) == {"a": 40, "b": 10}


def test_a_zero_cell_counts_as_hidden():
    # 0 < k is suppressed like any small count, so it does not stand alone either.
    cells = breakdown_cells(_cells({"a": 40, "b": 0, "c": 25}, k=10))
    assert _published(cells) == {"a": 40, "b": None, "c": None}


def test_rates_are_not_complemented_and_each_count_is_complemented_on_its_own():
    cells = [
        {
            "key": key,
            "s2": {
                "attendances": count(att, 10),
                "no_shows": count(ns, 10),
                "attendance_rate": rate(att, att + ns, 10),
            },
        }
        for key, att, ns in (("a", 50, 20), ("b", 5, 30), ("c", 30, 10))
    ]
    breakdown_cells(cells)
    assert [c["s2"]["attendances"]["value"] for c in cells] == [50, None, None]
    assert [c["s2"]["no_shows"]["value"] for c in cells] == [20, 30, 10]
    assert [c["s2"]["attendance_rate"]["value"] for c in cells] == [0.7143, 0.1429, 0.75]


def test_complementary_suppression_works_in_every_subgoal():
    cells = [
        {
            "key": key,
            "s1": {"measurements": count(n, 10)},
            "s3": {"referrals": count(r, 10), "people_trained": count(t, 10)},
        }
        for key, n, r, t in (("a", 3, 11, 25), ("b", 30, 12, 20), ("c", 40, 2, 4))
    ]
    breakdown_cells(cells)
    assert [c["s1"]["measurements"]["value"] for c in cells] == [None, None, 40]
    assert [c["s3"]["referrals"]["value"] for c in cells] == [None, 12, None]
    assert [c["s3"]["people_trained"]["value"] for c in cells] == [25, None, None]


@given(
    k=st.integers(1, 12),
    values=st.lists(
        st.dictionaries(st.sampled_from(sorted(ADDITIVE)), st.integers(0, 40), min_size=1),
        min_size=2,
        max_size=9,
    ),
)
def test_total_minus_visible_cells_never_reveals_a_single_hidden_cell(k, values):
    subgoal = "s2"
    names = {name for cell in values for name in cell}
    cells = [
        {"key": str(i), subgoal: {name: count(v, k) for name, v in cell.items()}}
        for i, cell in enumerate(values)
    ]
    before = copy.deepcopy(cells)
    breakdown_cells(cells)
    for name in names:
        pairs = [
            (b[subgoal][name], a[subgoal][name])
            for b, a in zip(before, cells, strict=True)
            if name in b[subgoal]
        ]
        hidden = [after for _, after in pairs if after["suppressed"]]
        # Never exactly one hidden cell among several: the difference would be that cell.
        assert len(hidden) != 1 or len(pairs) == 1
        for original, after in pairs:
            if original["suppressed"]:
                assert after == HIDDEN  # what was small stays hidden
            elif not after["suppressed"]:
                assert after == original  # what is shown is the true value
        # At most one extra cell per indicator: suppression does not eat the breakdown.
        extra = sum(1 for o, a in pairs if not o["suppressed"] and a["suppressed"])
        assert extra <= 1
