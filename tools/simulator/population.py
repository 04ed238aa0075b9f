"""Residents and their answers to the De Jong Gierveld scale.

A resident's loneliness is a latent 11-item total drawn so that the population matches the
baseline (overall, per neighbourhood, per age band, severe). Questionnaires are generated from
that total, so a survey scores back to the intended category (checked against
services/referrals/domain/scoring.py in the tests).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from shared.scale import LONELY_FROM, SEVERE_FROM
from tools.simulator.scenario import Scenario

__all__ = [
    "OUTSIDE",
    "Resident",
    "build_population",
    "djg6_answers",
    "djg11_answers",
    "lonely_probability",
]

OUTSIDE = "outside-municipality"

# Item polarity of the 11-item scale (domain.md §5): True for the negatively worded items.
_NEGATIVE11 = (False, True, True, False, True, True, False, False, True, True, False)
_DJG6_ITEMS = (2, 3, 6, 7, 8, 9)  # zero-based positions of items 3, 4, 7, 8, 9, 10
_NEGATIVE6 = tuple(_NEGATIVE11[i] for i in _DJG6_ITEMS)

# Totals within each state; lower totals are more common within a band, as in survey data.
_NOT_LONELY = ((0, 1, 2), (0.45, 0.33, 0.22))
_MODERATE = ((3, 4, 5, 6, 7, 8), (0.25, 0.22, 0.18, 0.14, 0.12, 0.09))
# Social items score a little more often than chance would have it: with the emotional and
# social thresholds of 3, this gives the baseline's 26% emotionally and 23% socially lonely.
_WEIGHT11 = tuple(1.0 if negative else 1.1 for negative in _NEGATIVE11)
_SEVERE = ((9, 10, 11), (0.5, 0.3, 0.2))
_DJG6_TOTALS = {
    "not": ((0, 1), (0.6, 0.4)),
    "moderate": ((2, 3, 4), (0.45, 0.35, 0.2)),
    "severe": ((5, 6), (0.6, 0.4)),
}


@dataclass(frozen=True, slots=True)
class Resident:
    no: int
    neighbourhood: str
    age_band: str
    lives_alone: bool
    token: str | None
    total: int | None  # latent 11-item total; None for children (the scale is for 16+)
    lonely: bool

    @property
    def adult(self) -> bool:
        return self.age_band != "0-15"

    @property
    def surveyed(self) -> bool:
        """Part of the municipality's population survey (16+, living in the municipality)."""
        return self.adult and self.neighbourhood != OUTSIDE

    @property
    def state(self) -> str:
        return state_of(self.total)


def state_of(total: int | None) -> str:
    """The band of an 11-item total (the cut-offs of shared/scale.py)."""
    if total is None or total < LONELY_FROM["djg11"]:
        return "not"
    return "moderate" if total < SEVERE_FROM["djg11"] else "severe"


def _neighbourhood_factors(scenario: Scenario) -> dict[str, float]:
    """Multipliers on the age-band probability that give each neighbourhood its baseline share.

    Neighbourhoods without a baseline figure share one factor, chosen so that the municipality as
    a whole stays at the overall figure.
    """
    targets = scenario.loneliness
    weights = {n: w for n, w in scenario.neighbourhood_weights.items() if n != OUTSIDE}
    total = sum(weights.values())
    named = {n: t / targets.overall for n, t in targets.by_neighbourhood.items() if n in weights}
    named_weight = sum(weights[n] for n in named)
    rest = (1 - sum(weights[n] / total * f for n, f in named.items())) / (1 - named_weight / total)
    return {n: named.get(n, rest) for n in weights} | {OUTSIDE: 1.0}


def lonely_probability(scenario: Scenario, neighbourhood: str, age_band: str) -> float:
    if age_band == "0-15":
        return 0.12  # pupils (very) lonely in the past year, baseline 2021
    factor = _neighbourhood_factors(scenario).get(neighbourhood, 1.0)
    return min(0.95, scenario.loneliness.by_age_band[age_band] * factor)


def _pick(rng: random.Random, table: tuple[Sequence[int], Sequence[float]]) -> int:
    return rng.choices(table[0], table[1])[0]


def build_population(rng: random.Random, n: int, scenario: Scenario, tag: str) -> list[Resident]:
    nbh_names = list(scenario.neighbourhood_weights)
    nbh_weights = list(scenario.neighbourhood_weights.values())
    ages = list(scenario.age_mix)
    age_weights = list(scenario.age_mix.values())
    factors = _neighbourhood_factors(scenario)
    severe_given_lonely = scenario.loneliness.severe / scenario.loneliness.overall
    alone = {"0-15": 0.0, "16-25": 0.08, "26-64": 0.18, "65-74": 0.35, "75+": 0.5}
    lonely_carry: dict[tuple[str, str], float] = {}
    severe_carry: dict[tuple[str, str], float] = {}

    def systematic(carry: dict[tuple[str, str], float], cell: tuple[str, str], p: float) -> bool:
        # Systematic sampling per cell instead of a coin per person: each neighbourhood and age
        # band gets its share to within one person, so that a small demo population still
        # shows the baseline rather than the luck of its seed.
        acc = (carry[cell] if cell in carry else rng.random()) + p
        carry[cell] = acc - (acc >= 1)
        return acc >= 1

    residents = []
    for no in range(n):
        nbh = rng.choices(nbh_names, nbh_weights)[0]
        age = rng.choices(ages, age_weights)[0]
        total: int | None
        if age == "0-15":
            total = None
            lonely = rng.random() < 0.12
        else:
            p = min(0.95, scenario.loneliness.by_age_band[age] * factors[nbh])
            lonely = systematic(lonely_carry, (nbh, age), p)
            if not lonely:
                total = _pick(rng, _NOT_LONELY)
            elif systematic(severe_carry, (nbh, age), severe_given_lonely):
                total = _pick(rng, _SEVERE)
            else:
                total = _pick(rng, _MODERATE)
        # Living alone goes with loneliness (domain.md §1, higher risk).
        lives_alone = rng.random() < min(0.9, alone[age] * (1.6 if lonely else 0.75))
        token = (
            f"{tag}-rt{rng.getrandbits(40):010x}" if rng.random() < scenario.token_share else None
        )
        residents.append(Resident(no, nbh, age, lives_alone, token, total, lonely))
    return residents


def _answers(
    rng: random.Random, negative: Sequence[bool], lonely_items: set[int]
) -> list[str | None]:
    out: list[str | None] = []
    for i, neg in enumerate(negative):
        if i in lonely_items:
            # "more or less" counts as lonely on either kind of item (domain.md §5).
            out.append(("yes" if neg else "no") if rng.random() < 0.55 else "more_or_less")
        else:
            out.append("no" if neg else "yes")
    return out


def djg11_answers(rng: random.Random, total: int) -> list[str | None]:
    """Eleven answers that score exactly ``total``."""
    # Weighted sampling without replacement (Efraimidis-Spirakis): the largest keys win.
    keys = sorted(range(11), key=lambda i: rng.random() ** (1 / _WEIGHT11[i]), reverse=True)
    return _answers(rng, _NEGATIVE11, set(keys[:total]))


def djg6_answers(rng: random.Random, state: str) -> list[str | None]:
    """Six answers in the category of ``state`` on the short scale; now and then one item is
    left unanswered (allowed for djg6), always one that would not have scored."""
    total = _pick(rng, _DJG6_TOTALS[state])
    lonely_items = set(rng.sample(range(6), total))
    out = _answers(rng, _NEGATIVE6, lonely_items)
    if total < 6 and rng.random() < 0.05:
        out[rng.choice([i for i in range(6) if i not in lonely_items])] = None
    return out
