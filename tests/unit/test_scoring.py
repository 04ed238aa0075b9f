"""De Jong Gierveld scoring (domain.md §5), checked against oracles written out from the text.

The oracles below deliberately do not reuse the implementation's tables: each item's scoring is
spelled out answer by answer, so a slip in one place cannot hide behind the same slip in the other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referrals.domain.scoring import (
    Answer,
    Category,
    Instrument,
    Score,
    ScoringError,
    Thresholds,
    score,
)

Given = Literal["no", "more_or_less", "yes"]
NO: Final = "no"
MOL: Final = "more_or_less"
YES: Final = "yes"

# ---------------------------------------------------------------------------------------------
# djg6 oracle: items 3, 4, 7, 8, 9, 10 of the 11-item list, in that order.
# Negative items (3, 9, 10) score 1 on yes and more_or_less; positive ones (4, 7, 8) on no and
# more_or_less.
# ---------------------------------------------------------------------------------------------
DJG6_ORACLE: tuple[tuple[str, dict[str, int]], ...] = (
    ("emotional", {"no": 0, "more_or_less": 1, "yes": 1}),  # 3  general sense of emptiness
    ("social", {"no": 1, "more_or_less": 1, "yes": 0}),  # 4  plenty of people to lean on
    ("social", {"no": 1, "more_or_less": 1, "yes": 0}),  # 7  many people I can trust
    ("social", {"no": 1, "more_or_less": 1, "yes": 0}),  # 8  enough people I feel close to
    ("emotional", {"no": 0, "more_or_less": 1, "yes": 1}),  # 9  miss having people around
    ("emotional", {"no": 0, "more_or_less": 1, "yes": 1}),  # 10 often feel rejected
)
DJG6_CATEGORY = {
    0: "not_lonely",
    1: "not_lonely",
    2: "moderately_lonely",
    3: "moderately_lonely",
    4: "moderately_lonely",
    5: "severely_lonely",
    6: "severely_lonely",
}

# djg11 oracle: per item, the subscale and the answer that is *not* lonely (the definite answer
# of the other polarity and more_or_less are both lonely).
DJG11_SUBSCALE = ("S", "E", "E", "S", "E", "E", "S", "S", "E", "E", "S")
DJG11_NOT_LONELY: tuple[Given, ...] = (YES, NO, NO, YES, NO, NO, YES, YES, NO, NO, YES)
DJG11_LONELY: tuple[Given, ...] = (NO, YES, YES, NO, YES, YES, NO, NO, YES, YES, NO)
DJG11_CATEGORY = {
    **dict.fromkeys(range(3), "not_lonely"),
    **dict.fromkeys(range(3, 9), "moderately_lonely"),
    9: "severely_lonely",
    10: "severely_lonely",
    11: "very_severely_lonely",
}
CATEGORY_RANK = {
    "not_lonely": 0,
    "moderately_lonely": 1,
    "severely_lonely": 2,
    "very_severely_lonely": 3,
}

ALL_DJG6_PATTERNS: list[tuple[Answer, ...]] = list(
    itertools.product((NO, MOL, YES, None), repeat=6)
)


def _pattern_id(pattern: Sequence[Answer]) -> str:
    return "".join({NO: "n", MOL: "m", YES: "y", None: "_"}[a] for a in pattern)


# ---------------------------------------------------------------------------------------------
# djg6: every pattern, answered or not
# ---------------------------------------------------------------------------------------------


def test_the_djg6_pattern_set_is_complete() -> None:
    missing = [sum(a is None for a in p) for p in ALL_DJG6_PATTERNS]
    assert len(ALL_DJG6_PATTERNS) == 4**6
    assert missing.count(0) == 3**6
    assert missing.count(1) == 6 * 3**5


@pytest.mark.parametrize("pattern", ALL_DJG6_PATTERNS, ids=_pattern_id)
def test_djg6_every_pattern_matches_the_oracle(pattern: tuple[Answer, ...]) -> None:
    result = score("djg6", pattern)

    emotional: int | None = 0
    social: int | None = 0
    answered_total = 0
    for (subscale, points), answer in zip(DJG6_ORACLE, pattern, strict=True):
        if subscale == "emotional":
            emotional = None if answer is None or emotional is None else emotional + points[answer]
        else:
            social = None if answer is None or social is None else social + points[answer]
        if answer is not None:
            answered_total += points[answer]
    unanswered = pattern.count(None)
    total = answered_total if unanswered <= 1 else None

    assert result.answered == 6 - unanswered
    assert result.emotional == emotional
    assert result.social == social
    assert result.total == total
    if total is None:
        assert result.category is None
        assert result.lonely is None
        assert result.severe is None
    else:
        assert result.category == DJG6_CATEGORY[total]
        assert result.lonely is (total >= 2)
        assert result.severe is (total >= 5)
    # The 6-item subscales run 0-3: their cut-off is 2 (domain.md §5), not the 11-item 3.
    assert result.emotionally_lonely == (None if emotional is None else emotional >= 2)
    assert result.socially_lonely == (None if social is None else social >= 2)


def test_djg6_never_reaches_very_severely_lonely() -> None:
    categories = {score("djg6", p).category for p in ALL_DJG6_PATTERNS}
    assert Category.VERY_SEVERELY_LONELY not in categories
    assert categories == {
        None,
        Category.NOT_LONELY,
        Category.MODERATELY_LONELY,
        Category.SEVERELY_LONELY,
    }


# ---------------------------------------------------------------------------------------------
# djg11: properties
# ---------------------------------------------------------------------------------------------

complete_djg11 = st.lists(st.sampled_from((NO, MOL, YES)), min_size=11, max_size=11)
item_index = st.integers(min_value=0, max_value=10)


def _djg11(answers: Sequence[Answer]) -> Score:
    return score(Instrument.DJG11, answers)


@given(complete_djg11)
def test_djg11_total_is_the_sum_of_the_subscales(answers: list[Answer]) -> None:
    result = _djg11(answers)
    assert result.total is not None
    assert result.emotional is not None
    assert result.social is not None
    assert result.total == result.emotional + result.social
    assert 0 <= result.total <= 11
    assert 0 <= result.emotional <= 6
    assert 0 <= result.social <= 5
    assert result.answered == 11


@given(complete_djg11)
def test_djg11_matches_the_oracle(answers: list[Answer]) -> None:
    lonely_items = [a != ok for a, ok in zip(answers, DJG11_NOT_LONELY, strict=True)]
    emotional = sum(x for x, s in zip(lonely_items, DJG11_SUBSCALE, strict=True) if s == "E")
    social = sum(x for x, s in zip(lonely_items, DJG11_SUBSCALE, strict=True) if s == "S")
    total = emotional + social
    result = _djg11(answers)
    assert (result.total, result.emotional, result.social) == (total, emotional, social)
    assert result.category == DJG11_CATEGORY[total]
    assert result.lonely is (total >= 3)
    assert result.severe is (total >= 9)
    assert result.emotionally_lonely is (emotional >= 3)
    assert result.socially_lonely is (social >= 3)


@given(complete_djg11, item_index)
def test_djg11_more_or_less_never_lowers_the_total(answers: list[Answer], index: int) -> None:
    with_mol = [*answers[:index], MOL, *answers[index + 1 :]]
    with_not_lonely = [*answers[:index], DJG11_NOT_LONELY[index], *answers[index + 1 :]]
    mol_total = _djg11(with_mol).total
    calm_total = _djg11(with_not_lonely).total
    assert mol_total is not None
    assert calm_total is not None
    assert mol_total >= calm_total


@given(complete_djg11, item_index, st.sampled_from(("lonely", MOL)))
def test_djg11_one_lonely_item_adds_exactly_one(
    answers: list[Answer], index: int, flip_to: str
) -> None:
    before = [*answers[:index], DJG11_NOT_LONELY[index], *answers[index + 1 :]]
    lonely_answer = DJG11_LONELY[index] if flip_to == "lonely" else MOL
    after = [*answers[:index], lonely_answer, *answers[index + 1 :]]
    a, b = _djg11(before), _djg11(after)
    assert a.total is not None
    assert a.emotional is not None
    assert a.social is not None
    assert b.total == a.total + 1
    if DJG11_SUBSCALE[index] == "E":
        assert (b.emotional, b.social) == (a.emotional + 1, a.social)
    else:
        assert (b.emotional, b.social) == (a.emotional, a.social + 1)


@given(complete_djg11, complete_djg11)
def test_djg11_category_is_monotone_in_the_total(first: list[Answer], second: list[Answer]) -> None:
    a, b = sorted((_djg11(first), _djg11(second)), key=lambda r: r.total or 0)
    assert a.category is not None
    assert b.category is not None
    assert CATEGORY_RANK[a.category] <= CATEGORY_RANK[b.category]
    if a.total == b.total:
        assert a.category == b.category


# ---------------------------------------------------------------------------------------------
# Category boundaries, with an exact number of lonely items placed at the front and at the back
# ---------------------------------------------------------------------------------------------


def _with_lonely_items(
    lonely: Sequence[Given], not_lonely: Sequence[Given], count: int, *, from_back: bool
) -> list[Answer]:
    size = len(lonely)
    chosen = range(size - count, size) if from_back else range(count)
    return [lonely[i] if i in chosen else not_lonely[i] for i in range(size)]


@pytest.mark.parametrize("from_back", [False, True], ids=["front", "back"])
@pytest.mark.parametrize(
    ("lonely_items", "category", "lonely", "severe"),
    [
        (0, "not_lonely", False, False),
        (2, "not_lonely", False, False),
        (3, "moderately_lonely", True, False),
        (8, "moderately_lonely", True, False),
        (9, "severely_lonely", True, True),
        (10, "severely_lonely", True, True),
        (11, "very_severely_lonely", True, True),
    ],
)
def test_djg11_category_boundaries(
    lonely_items: int, category: str, lonely: bool, severe: bool, from_back: bool
) -> None:
    answers = _with_lonely_items(DJG11_LONELY, DJG11_NOT_LONELY, lonely_items, from_back=from_back)
    result = _djg11(answers)
    assert result.total == lonely_items
    assert result.category == category
    assert result.lonely is lonely
    assert result.severe is severe


DJG6_LONELY: tuple[Given, ...] = (YES, NO, NO, NO, YES, YES)
DJG6_NOT_LONELY: tuple[Given, ...] = (NO, YES, YES, YES, NO, NO)


@pytest.mark.parametrize("from_back", [False, True], ids=["front", "back"])
@pytest.mark.parametrize(
    ("lonely_items", "category", "lonely", "severe"),
    [
        (0, "not_lonely", False, False),
        (1, "not_lonely", False, False),
        (2, "moderately_lonely", True, False),
        (4, "moderately_lonely", True, False),
        (5, "severely_lonely", True, True),
        (6, "severely_lonely", True, True),
    ],
)
def test_djg6_category_boundaries(
    lonely_items: int, category: str, lonely: bool, severe: bool, from_back: bool
) -> None:
    answers = _with_lonely_items(DJG6_LONELY, DJG6_NOT_LONELY, lonely_items, from_back=from_back)
    result = score(Instrument.DJG6, answers)
    assert result.total == lonely_items
    assert result.category == category
    assert result.lonely is lonely
    assert result.severe is severe


def test_instrument_may_be_given_as_enum_or_string() -> None:
    answers: list[Answer] = [MOL] * 11
    assert score("djg11", answers) == score(Instrument.DJG11, answers)


# ---------------------------------------------------------------------------------------------
# Subscale thresholds come from configuration
# ---------------------------------------------------------------------------------------------


def test_subscale_thresholds_are_configurable() -> None:
    # Items 2 and 3 (emotional) and 1 and 4 (social) lonely: both subscales exactly 2.
    answers: list[Answer] = list(DJG11_NOT_LONELY)
    for index in (0, 1, 2, 3):
        answers[index] = DJG11_LONELY[index]

    default = score("djg11", answers)
    assert (default.emotional, default.social) == (2, 2)
    assert default.emotionally_lonely is False
    assert default.socially_lonely is False

    lenient = score("djg11", answers, Thresholds(emotional=2, social=2))
    assert lenient.emotionally_lonely is True
    assert lenient.socially_lonely is True
    # Thresholds only move the subscale flags, never the total or its category.
    assert (lenient.total, lenient.category, lenient.lonely) == (
        default.total,
        default.category,
        default.lonely,
    )


def test_subscale_thresholds_are_independent() -> None:
    answers: list[Answer] = list(DJG11_NOT_LONELY)
    for index in (0, 1, 2, 3):
        answers[index] = DJG11_LONELY[index]
    result = score("djg11", answers, Thresholds(emotional=2))
    assert result.emotionally_lonely is True
    assert result.socially_lonely is False


def test_each_instrument_has_its_own_cut_offs_from_one_place() -> None:
    from shared.scale import DEFAULT_THRESHOLDS, ScaleSettings

    assert DEFAULT_THRESHOLDS["djg11"] == Thresholds(emotional=3, social=3)
    assert DEFAULT_THRESHOLDS["djg6"] == Thresholds(emotional=2, social=2)
    assert ScaleSettings().thresholds() == dict(DEFAULT_THRESHOLDS)
    configured = ScaleSettings(djg6_emotional_threshold=3).thresholds()
    assert configured["djg6"] == Thresholds(emotional=3, social=2)
    # Emotional items 3 and 9 lonely, 10 not: 2 of 3, lonely on the short scale's cut-off.
    answers: list[Answer] = [YES, YES, YES, YES, YES, NO]
    assert score("djg6", answers).emotional == 2
    assert score("djg6", answers).emotionally_lonely is True
    assert score("djg6", answers, configured["djg6"]).emotionally_lonely is False


@pytest.mark.parametrize("bad", [0, -1])
def test_a_threshold_below_one_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=r"thresholds\.emotional"):
        Thresholds(emotional=bad)


# ---------------------------------------------------------------------------------------------
# Errors a partner can act on
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instrument", "count", "message"),
    [
        ("djg11", 9, "djg11 needs exactly 11 answers in item order, got 9"),
        ("djg11", 12, "djg11 needs exactly 11 answers in item order, got 12"),
        ("djg11", 0, "djg11 needs exactly 11 answers in item order, got 0"),
        (
            "djg6",
            11,
            "djg6 needs exactly 6 answers in item order (items 3, 4, 7, 8, 9, 10 of the "
            "11-item scale), got 11",
        ),
    ],
)
def test_wrong_number_of_answers(instrument: str, count: int, message: str) -> None:
    with pytest.raises(ScoringError) as caught:
        score(instrument, [NO] * count)
    assert str(caught.value) == message
    assert caught.value.field == "answers"


def test_unanswered_djg11_item() -> None:
    answers: list[Answer] = [NO] * 11
    answers[3] = None
    with pytest.raises(ScoringError) as caught:
        score("djg11", answers)
    assert str(caught.value) == "all 11 answers are required for djg11; item 4 is unanswered"
    assert caught.value.field == "answers[3]"


def test_several_unanswered_djg11_items_are_all_named() -> None:
    answers: list[Answer] = [NO] * 11
    answers[3] = answers[6] = None
    with pytest.raises(ScoringError) as caught:
        score("djg11", answers)
    assert str(caught.value) == "all 11 answers are required for djg11; items 4, 7 are unanswered"
    assert caught.value.field == "answers[3]"


@pytest.mark.parametrize("instrument", ["djg11", "djg6"])
@pytest.mark.parametrize("value", ["ja", "Yes", "", "more or less", 1, True])
def test_invalid_answer_value(instrument: str, value: object) -> None:
    answers: list[object] = [NO] * (11 if instrument == "djg11" else 6)
    answers[3] = value
    with pytest.raises(ScoringError) as caught:
        score(instrument, answers)  # type: ignore[arg-type]
    assert caught.value.field == "answers[3]"
    assert str(caught.value) == (
        f"answers[3] must be one of 'no', 'more_or_less', 'yes' or null (unanswered), got {value!r}"
    )


def test_unknown_instrument() -> None:
    with pytest.raises(ScoringError) as caught:
        score("djg12", [NO] * 11)
    assert caught.value.field == "instrument"
    assert str(caught.value) == "instrument must be one of 'djg11', 'djg6', got 'djg12'"


def test_a_string_is_not_a_list_of_answers() -> None:
    with pytest.raises(ScoringError) as caught:
        score("djg6", "nnnnnn")  # type: ignore[arg-type]
    assert caught.value.field == "answers"


def test_scoring_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="needs exactly 6 answers"):
        score("djg6", [])
