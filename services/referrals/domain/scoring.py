"""Scoring of the De Jong Gierveld loneliness scale (domain.md §5).

Pure domain logic: no I/O and no framework types, so the same rules serve the referral API, the
Kafka consumers and the indicator jobs. The item tables below are data on purpose: the rules are
published tables, and keeping them as tables lets a reviewer check them against the source line by
line.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Literal, TypeAlias

from shared.scale import DEFAULT_THRESHOLDS, LONELY_FROM, SEVERE_FROM, TOTAL_BANDS, Thresholds

__all__ = [
    "Answer",
    "Category",
    "Instrument",
    "Score",
    "ScoringError",
    "Thresholds",
    "score",
]

Answer: TypeAlias = Literal["no", "more_or_less", "yes"] | None
"""One item's answer (nee / min of meer / ja); ``None`` means the item was left unanswered."""

_VALID_ANSWERS: tuple[str, ...] = ("no", "more_or_less", "yes")

# Answer values can come straight from a partner's payload; keep a hostile one out of the message.
_short_repr = reprlib.Repr()
_short_repr.maxstring = 40
_short_repr.maxother = 40


class Instrument(StrEnum):
    """Which version of the scale was administered."""

    DJG11 = "djg11"
    DJG6 = "djg6"


class Category(StrEnum):
    """Loneliness category of a total score."""

    NOT_LONELY = "not_lonely"
    MODERATELY_LONELY = "moderately_lonely"
    SEVERELY_LONELY = "severely_lonely"
    VERY_SEVERELY_LONELY = "very_severely_lonely"


@dataclass(frozen=True)
class Score:
    """The outcome of scoring one administration of the scale.

    A value is ``None`` when domain.md says it is missing (only possible for djg6, whose answers
    may be partly unanswered). ``lonely`` means moderately lonely or worse; ``severe`` means
    severely lonely or worse. ``answered`` counts the items that were answered.
    """

    total: int | None
    emotional: int | None
    social: int | None
    category: Category | None
    lonely: bool | None
    severe: bool | None
    emotionally_lonely: bool | None
    socially_lonely: bool | None
    answered: int


class ScoringError(ValueError):
    """Answers that cannot be scored; ``field`` names the offending input, e.g. ``answers[3]``."""

    def __init__(self, message: str, field: str) -> None:
        # Both go to ValueError so that the exception survives pickling (multiprocessing, logs).
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class _Polarity(Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class _Subscale(Enum):
    EMOTIONAL = "emotional"
    SOCIAL = "social"


@dataclass(frozen=True)
class _Item:
    number: int  # position in the 11-item list, the numbering every source uses
    polarity: _Polarity
    subscale: _Subscale


_POS = _Polarity.POSITIVE
_NEG = _Polarity.NEGATIVE
_EMO = _Subscale.EMOTIONAL
_SOC = _Subscale.SOCIAL

_DJG11_ITEMS: tuple[_Item, ...] = (
    _Item(1, _POS, _SOC),
    _Item(2, _NEG, _EMO),
    _Item(3, _NEG, _EMO),
    _Item(4, _POS, _SOC),
    _Item(5, _NEG, _EMO),
    _Item(6, _NEG, _EMO),
    _Item(7, _POS, _SOC),
    _Item(8, _POS, _SOC),
    _Item(9, _NEG, _EMO),
    _Item(10, _NEG, _EMO),
    _Item(11, _POS, _SOC),
)

_DJG6_ITEM_NUMBERS: tuple[int, ...] = (3, 4, 7, 8, 9, 10)
# Derived from the 11-item table so that the two versions cannot disagree about an item's kind.
_DJG6_ITEMS: tuple[_Item, ...] = tuple(_DJG11_ITEMS[n - 1] for n in _DJG6_ITEM_NUMBERS)

# "more_or_less" is in both sets: the scale treats any hesitation as a sign of loneliness.
_LONELY_ANSWERS: dict[_Polarity, frozenset[str]] = {
    _Polarity.NEGATIVE: frozenset({"yes", "more_or_less"}),
    _Polarity.POSITIVE: frozenset({"no", "more_or_less"}),
}


@dataclass(frozen=True)
class _Version:
    items: tuple[_Item, ...]
    bands: tuple[tuple[int, Category], ...]  # (lowest total of the band, category), ascending
    lonely_from: int
    severe_from: int
    all_required: bool
    max_unanswered_for_total: int


_VERSIONS: dict[Instrument, _Version] = {
    Instrument.DJG11: _Version(
        items=_DJG11_ITEMS,
        bands=tuple((low, Category(name)) for low, name in TOTAL_BANDS["djg11"]),
        lonely_from=LONELY_FROM["djg11"],
        severe_from=SEVERE_FROM["djg11"],
        all_required=True,
        max_unanswered_for_total=0,
    ),
    Instrument.DJG6: _Version(
        items=_DJG6_ITEMS,
        # The short version has no "very severely" band (shared/scale.py).
        bands=tuple((low, Category(name)) for low, name in TOTAL_BANDS["djg6"]),
        lonely_from=LONELY_FROM["djg6"],
        severe_from=SEVERE_FROM["djg6"],
        all_required=False,
        max_unanswered_for_total=1,
    ),
}


def score(
    instrument: Instrument | str,
    answers: Sequence[Answer],
    thresholds: Thresholds | None = None,
) -> Score:
    """Score one administration of the De Jong Gierveld scale.

    ``thresholds`` are the subscale cut-offs of this instrument (default: the configured
    defaults of shared/scale.py for it). ``answers`` are in the item order of the chosen version: for djg11 items 1..11, for djg6
    items 3, 4, 7, 8, 9, 10 of the 11-item list. Raises :class:`ScoringError` when the input
    cannot be scored (unknown instrument, wrong number of answers, an invalid answer value, or an
    unanswered djg11 item).
    """
    version_id = _parse_instrument(instrument)
    version = _VERSIONS[version_id]
    # Each version has its own cut-offs: the 6-item subscales only reach 3 (shared/scale.py).
    thresholds = thresholds or DEFAULT_THRESHOLDS[version_id.value]
    _check_answer_count(version_id, version, answers)

    given = [_validated(i, answer) for i, answer in enumerate(answers)]
    unanswered = [i for i, answer in enumerate(given) if answer is None]
    if version.all_required and unanswered:
        numbers = ", ".join(str(version.items[i].number) for i in unanswered)
        noun = "item" if len(unanswered) == 1 else "items"
        verb = "is" if len(unanswered) == 1 else "are"
        raise ScoringError(
            f"all {len(version.items)} answers are required for {version_id}; "
            f"{noun} {numbers} {verb} unanswered",
            field=f"answers[{unanswered[0]}]",
        )

    per_item = [
        None if answer is None else int(answer in _LONELY_ANSWERS[item.polarity])
        for item, answer in zip(version.items, given, strict=True)
    ]
    emotional = _subscale_sum(version.items, per_item, _EMO)
    social = _subscale_sum(version.items, per_item, _SOC)

    total: int | None
    if len(unanswered) > version.max_unanswered_for_total:
        total = None
    else:
        # domain.md only declares the djg6 total missing with more than one unanswered item, so
        # with exactly one the total is what was answered. Imputing (e.g. scaling up by 6/5)
        # would invent an answer the resident never gave; the total is then a lower bound.
        total = sum(v for v in per_item if v is not None)

    return Score(
        total=total,
        emotional=emotional,
        social=social,
        category=None if total is None else _category(version, total),
        lonely=None if total is None else total >= version.lonely_from,
        severe=None if total is None else total >= version.severe_from,
        emotionally_lonely=None if emotional is None else emotional >= thresholds.emotional,
        socially_lonely=None if social is None else social >= thresholds.social,
        answered=len(answers) - len(unanswered),
    )


def _parse_instrument(instrument: Instrument | str) -> Instrument:
    try:
        return Instrument(instrument)
    except ValueError:
        allowed = ", ".join(f"'{i.value}'" for i in Instrument)
        raise ScoringError(
            f"instrument must be one of {allowed}, got {_short_repr.repr(instrument)}",
            field="instrument",
        ) from None


def _check_answer_count(version_id: Instrument, version: _Version, answers: object) -> None:
    # A string is a Sequence too; without this check "yes" would read as three invalid answers.
    if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
        raise ScoringError(
            f"answers must be a list of answers in item order, got {type(answers).__name__}",
            field="answers",
        )
    expected = len(version.items)
    if len(answers) != expected:
        numbers = tuple(item.number for item in version.items)
        which = ""
        if numbers != tuple(range(1, expected + 1)):
            # A partner who sends all 11 answers for djg6 needs to learn which six are meant.
            which = f" (items {', '.join(map(str, numbers))} of the 11-item scale)"
        raise ScoringError(
            f"{version_id} needs exactly {expected} answers in item order{which}, "
            f"got {len(answers)}",
            field="answers",
        )


def _validated(index: int, answer: object) -> str | None:
    if answer is None or (isinstance(answer, str) and answer in _VALID_ANSWERS):
        return answer
    allowed = ", ".join(f"'{a}'" for a in _VALID_ANSWERS)
    raise ScoringError(
        f"answers[{index}] must be one of {allowed} or null (unanswered), "
        f"got {_short_repr.repr(answer)}",
        field=f"answers[{index}]",
    )


def _subscale_sum(
    items: tuple[_Item, ...], per_item: list[int | None], subscale: _Subscale
) -> int | None:
    values = [v for item, v in zip(items, per_item, strict=True) if item.subscale is subscale]
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _category(version: _Version, total: int) -> Category:
    found = version.bands[0][1]
    for lowest, category in version.bands:
        if total >= lowest:
            found = category
    return found
