"""The simulated municipality: its partner organisations, their activities, and who lives there.

The organisations, their activities and the population mix are data (``pijnacker-nootdorp.json``,
modelled on domain.md §1 and §4); the rates of the model are below. The loneliness targets are
not repeated anywhere: they come from the metrics service's baseline file, so the simulated
population produces the baseline that the dashboard compares against, and a municipality with its
own baseline gets a population to match.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from services.metrics.domain.baseline import Baseline, load_baseline

__all__ = [
    "DEFAULT_FILE",
    "ActivitySpec",
    "LonelinessTargets",
    "Organisation",
    "Scenario",
    "default_scenario",
    "load_scenario",
]

DEFAULT_FILE = "pijnacker-nootdorp.json"


@dataclass(frozen=True)
class ActivitySpec:
    """A weekly activity. ``launch`` is the fraction of the simulated span after which it starts
    (0: running from the start), so that some growth shows over time."""

    slug: str
    title: str
    category: str
    neighbourhood: str
    weekday: int  # Monday = 0
    hour: int
    minute: int = 0
    aimed_at_connection: bool = True
    target_age_bands: tuple[str, ...] = ()
    capacity: int | None = None
    launch: float = 0.0
    summer_break: bool = False


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    kind: str
    roles: tuple[str, ...]  # referrer roles of its staff and volunteers, most common first
    staff: int  # people who could follow the signal training
    area: tuple[str, ...] = ()  # neighbourhoods it mainly serves (besides its activities')
    activities: tuple[ActivitySpec, ...] = ()

    @property
    def neighbourhoods(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.area)
        seen.update(dict.fromkeys(a.neighbourhood for a in self.activities))
        return tuple(seen)


@dataclass(frozen=True)
class LonelinessTargets:
    """Share of residents (16+) in each state, from the baseline file."""

    overall: float
    severe: float
    by_age_band: dict[str, float]
    by_neighbourhood: dict[str, float]

    @classmethod
    def from_baseline(cls, baseline: Baseline, age_mix: dict[str, float]) -> LonelinessTargets:
        """The baseline's figures come from different years and sources (the 16-25 figure is
        regional, 2022) and do not add up with this age mix. The municipality-wide figure wins:
        the bands the baseline names keep their figure except 26-64, which takes the remainder,
        so that the adult share comes out at the overall figure."""
        overall = baseline.prevalence["lonely"]
        adults = {band: w for band, w in age_mix.items() if band != "0-15"}
        total = sum(adults.values())
        by_age = {
            band: baseline.prevalence_lonely_by_age_band.get(band, overall) for band in adults
        }
        if "26-64" in by_age:
            rest = sum(w / total * by_age[b] for b, w in adults.items() if b != "26-64")
            by_age["26-64"] = (overall - rest) / (adults["26-64"] / total)
        return cls(
            overall=overall,
            severe=baseline.prevalence["severe"],
            by_age_band=by_age,
            by_neighbourhood=dict(baseline.prevalence_lonely_by_neighbourhood),
        )


@dataclass(frozen=True)
class Scenario:
    organisations: tuple[Organisation, ...]
    # Relative sizes; outside-municipality are people from elsewhere who join activities.
    neighbourhood_weights: dict[str, float]
    age_mix: dict[str, float]
    loneliness: LonelinessTargets
    # Chance per year that a resident takes part in at least one activity (before loneliness).
    participation: dict[str, float] = field(
        default_factory=lambda: {
            "0-15": 0.22,
            "16-25": 0.22,
            "26-64": 0.24,
            "65-74": 0.42,
            "75+": 0.45,
        }
    )
    lonely_participation_factor: float = 0.5  # lonely residents find their way less often
    token_share: float = 0.55  # residents with a coalition-wide resident token
    referral_rate_lonely: float = 0.30  # chance per year that a lonely adult is referred
    referral_rate_other: float = 0.015
    survey_rate: float = 0.06  # chance per month that an adult answers the population survey
    # A minority of the survey uses the short scale (its own cut-offs: 2 of 3 per subscale), as
    # in the GGD's monitor, where the 11-item scale is the main instrument.
    survey_djg6_share: float = 0.1
    survey_anonymous_share: float = 0.3
    attended_share: float = 0.85  # of recorded sessions; the rest are no-shows
    cancellation_share: float = 0.10
    trained_share: float = 0.55


def _activity(raw: dict[str, Any]) -> ActivitySpec:
    hour, minute = (int(part) for part in raw["time"].split(":"))
    return ActivitySpec(
        slug=raw["slug"],
        title=raw["title"],
        category=raw["category"],
        neighbourhood=raw["neighbourhood"],
        weekday=int(raw["weekday"]),
        hour=hour,
        minute=minute,
        aimed_at_connection=bool(raw.get("aimed_at_connection", True)),
        target_age_bands=tuple(raw.get("target_age_bands", ())),
        capacity=raw.get("capacity"),
        launch=float(raw.get("launch", 0.0)),
        summer_break=bool(raw.get("summer_break", False)),
    )


def load_scenario(path: str | Path | None = None, baseline: Baseline | None = None) -> Scenario:
    """A municipality's scenario file (default: Pijnacker-Nootdorp's, next to this module)."""
    raw = (
        Path(path).read_text(encoding="utf-8")
        if path
        else resources.files("tools.simulator").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    )
    data = json.loads(raw)
    organisations = tuple(
        Organisation(
            id=o["id"],
            name=o["name"],
            kind=o["kind"],
            roles=tuple(o["roles"]),
            staff=int(o["staff"]),
            area=tuple(o.get("area", ())),
            activities=tuple(_activity(a) for a in o.get("activities", ())),
        )
        for o in data["organisations"]
    )
    age_mix = {band: float(w) for band, w in data["age_mix"].items()}
    return Scenario(
        organisations=organisations,
        neighbourhood_weights={n: float(w) for n, w in data["neighbourhood_weights"].items()},
        age_mix=age_mix,
        loneliness=LonelinessTargets.from_baseline(baseline or load_baseline(), age_mix),
    )


def default_scenario() -> Scenario:
    return _default()


@functools.cache
def _default() -> Scenario:
    return load_scenario()
