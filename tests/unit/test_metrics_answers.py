"""The published figures of an answer, rendered from the engine's decisions (domain.md §7):
every figure is its cell's decision, hidden ones with their reason; the growth's baseline only
where a reader may know it; the lists with every key; the reasons in Dutch and English."""

from __future__ import annotations

from services.metrics.domain import answers
from services.metrics.domain.disclosure import (
    REASONS,
    TOTAL,
    Baseline,
    Count,
    Decisions,
    YearGrid,
    suppress,
    unsuppressed,
)
from services.metrics.domain.growth import baselines

PERIOD = "2025"


def big_grid() -> YearGrid:
    counts = {
        ("participants_unique", TOTAL, "", PERIOD): Count(40, 40),
        ("attendances", TOTAL, "", PERIOD): Count(90, 40),
        ("no_shows", TOTAL, "", PERIOD): Count(12, 11),
        ("referrals", TOTAL, "", PERIOD): Count(3, 3),
        ("referrals", "signal", "social", PERIOD): Count(3, 3),
        ("people_trained", "role", "gp", "2025-12"): Count(12, 12),
        ("people_trained", TOTAL, "", "2025-12"): Count(12, 12),
    }
    # Every month the same, so that the year is its only cell with figures to protect.
    for label in (f"{PERIOD}-Q1", f"{PERIOD}-01"):
        counts[("participants_unique", TOTAL, "", label)] = Count(40, 40)
        counts[("attendances", TOTAL, "", label)] = Count(90, 40)
        counts[("no_shows", TOTAL, "", label)] = Count(12, 11)
        counts[("referrals", TOTAL, "", label)] = Count(3, 3)
        counts[("referrals", "signal", "social", label)] = Count(3, 3)
    return YearGrid(
        2025,
        {"role": ["gp", "police"], "signal": ["social", "health"]},
        counts,
        baselines={(TOTAL, "", PERIOD): Baseline(32, public=True)},
    )


def test_a_shown_figure_is_its_value_and_a_hidden_one_says_why():
    d = suppress(big_grid())
    out = answers.sections(d, PERIOD, {"prevalence_lonely": 0.44}, lists=big_grid().keys)
    assert out["s2"]["participants_unique"] == {"value": 40, "suppressed": False}
    assert out["s2"]["attendance_rate"] == {"value": round(90 / 102, 4), "suppressed": False}
    assert out["s3"]["referrals"] == {"value": None, "suppressed": True, "reason": "primary"}
    # Growth against a public baseline, the baseline beside it.
    assert out["s2"]["growth_vs_baseline"] == {"value": 0.25, "suppressed": False, "baseline": 32}
    # The configured survey figure beside the prevalence, even where the prevalence is hidden.
    assert out["s1"]["prevalence_lonely"]["baseline"] == 0.44
    assert out["s1"]["prevalence_lonely"]["suppressed"]
    # Every key of a list is a row, the empty ones too (absent is not zero).
    assert set(out["s3"]["people_trained_by_role"]) == {"gp", "police"}
    assert out["s3"]["referrals_by_signal"]["health"]["suppressed"]


def test_the_cells_of_a_breakdown_have_their_subgoals_only():
    d = unsuppressed(big_grid())
    assert set(answers.cell(d, "category", "meeting", PERIOD, {})) == {"key", "s2"}
    assert set(answers.cell(d, "referrer_role", "gp", PERIOD, {})) == {"key", "s3"}
    by_org = answers.cell(d, "organisation", "org-a", PERIOD, {})
    assert set(by_org) == {"key", "s2", "s3"}
    assert "people_trained" in by_org["s3"]
    assert "people_trained" not in answers.cell(d, "referrer_role", "gp", PERIOD, {})["s3"]
    empty = answers.empty_cell("organisation", "org-z", 10, 2025)
    assert all(f["suppressed"] for f in empty["s2"].values())


def test_statistics_are_rounded_for_reading():
    grid = YearGrid(
        2025,
        {},
        {("converted", TOTAL, "", PERIOD): Count(3, 3)},
        statistics={("days_to_first_attendance", TOTAL, "", PERIOD): 12.345},
    )
    out = answers.s3_section(unsuppressed(grid), TOTAL, "", PERIOD)
    assert out["days_to_first_attendance"] == {"value": 12.3, "suppressed": False}


def test_the_reasons_are_the_engines_texts_with_k():
    texts = answers.reasons(10)
    assert set(texts) == {"nl", "en"}
    assert texts["nl"]["primary"] == REASONS["nl"]["primary"].format(k=10)
    assert "minder dan 10" in texts["nl"]["primary"]


def test_baselines_come_from_the_baseline_years_decisions():
    from services.metrics.domain.disclosure import Decision

    base = YearGrid(2024, {"neighbourhood": ["delfgauw", "emerald"]}, {
        ("participants_unique", TOTAL, "", "2024-03"): Count(25, 25),
        ("participants_unique", "neighbourhood", "delfgauw", "2024-03"): Count(20, 20),
        ("participants_unique", "neighbourhood", "emerald", "2024-03"): Count(5, 5),
    })  # fmt: skip
    decided = Decisions(10, 2024, {
        ("participants_unique", "neighbourhood", "delfgauw", "2024-03"): Decision(20, False),
        ("participants_unique", "neighbourhood", "emerald", "2024-03"): Decision(None, True, "primary"),
    }, {})  # fmt: skip
    year = YearGrid(2025, {"neighbourhood": ["delfgauw", "emerald"]}, {})
    out = baselines(year, 2024, {"2024-Q1": 70}, base, decided)
    assert out[("neighbourhood", "delfgauw", "2025-03")] == Baseline(20, visible=True)
    assert out[("neighbourhood", "emerald", "2025-03")] == Baseline(5, visible=False)
    # The configured figure of the municipality is public.
    assert out[(TOTAL, "", "2025-Q1")] == Baseline(70, public=True)
    # The baseline year against itself: the cell itself.
    own = baselines(base, 2024, {}, None, None)
    assert own[(TOTAL, "", "2024-03")] == Baseline(25, same_cell=True)
