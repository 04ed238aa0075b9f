"""The De Jong Gierveld cut-offs (domain.md §5), written once: the referrals service's scorer and
the metrics service's prevalence figures and outcome pairs both take them from here.

The total score's bands (not lonely, moderately, severely, very severely lonely) are the
published scale's and fixed; "lonely" and "severely lonely" are the totals from the moderate and
the severe band on.

A resident is emotionally (socially) lonely from the cut-off of that subscale on. The 11-item
version's subscales run 0-6 and 0-5, cut-off 3; the 6-item version's run 0-3, cut-off 2. Each is
configurable (``VERBINDING_DJG_*_THRESHOLD``), for a municipality that follows another source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CATEGORY_ORDER",
    "DEFAULT_THRESHOLDS",
    "LONELY_FROM",
    "SEVERE_FROM",
    "TOTAL_BANDS",
    "ScaleSettings",
    "Thresholds",
]

# The categories of a total score, from the least lonely on (an improvement is a move down).
CATEGORY_ORDER: tuple[str, ...] = (
    "not_lonely",
    "moderately_lonely",
    "severely_lonely",
    "very_severely_lonely",
)

# Per instrument, (lowest total of the band, category), ascending. The short version has no
# "very severely" band: its range (0-6) is too narrow to tell.
TOTAL_BANDS: Mapping[str, tuple[tuple[int, str], ...]] = MappingProxyType(
    {
        "djg11": (
            (0, "not_lonely"),
            (3, "moderately_lonely"),
            (9, "severely_lonely"),
            (11, "very_severely_lonely"),
        ),
        "djg6": ((0, "not_lonely"), (2, "moderately_lonely"), (5, "severely_lonely")),
    }
)


def _band_start(instrument: str, category: str) -> int:
    return next(low for low, name in TOTAL_BANDS[instrument] if name == category)


# Lonely: a total in the moderate band or above; severely lonely: the severe band or above.
LONELY_FROM: Mapping[str, int] = MappingProxyType(
    {i: _band_start(i, "moderately_lonely") for i in TOTAL_BANDS}
)
SEVERE_FROM: Mapping[str, int] = MappingProxyType(
    {i: _band_start(i, "severely_lonely") for i in TOTAL_BANDS}
)


@dataclass(frozen=True)
class Thresholds:
    """Subscale scores from which a person counts as emotionally or socially lonely."""

    emotional: int = 3
    social: int = 3

    def __post_init__(self) -> None:
        # A threshold below 1 would label everyone lonely, which is a configuration mistake
        # rather than a policy choice.
        for name in ("emotional", "social"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"thresholds.{name} must be a whole number of at least 1, got {value!r}"
                )


DEFAULT_THRESHOLDS: Mapping[str, Thresholds] = MappingProxyType(
    {"djg11": Thresholds(emotional=3, social=3), "djg6": Thresholds(emotional=2, social=2)}
)


class ScaleSettings(BaseSettings):
    """The cut-offs as settings; a service's settings class inherits them."""

    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    djg_emotional_threshold: int = Field(
        DEFAULT_THRESHOLDS["djg11"].emotional,
        ge=1,
        description="11-item scale: emotional subscale score (0-6) from which a resident counts "
        "as emotionally lonely.",
    )
    djg_social_threshold: int = Field(
        DEFAULT_THRESHOLDS["djg11"].social,
        ge=1,
        description="11-item scale: social subscale score (0-5) from which a resident counts as "
        "socially lonely.",
    )
    djg6_emotional_threshold: int = Field(
        DEFAULT_THRESHOLDS["djg6"].emotional,
        ge=1,
        le=3,
        description="6-item scale: emotional subscale score (0-3) from which a resident counts as "
        "emotionally lonely.",
    )
    djg6_social_threshold: int = Field(
        DEFAULT_THRESHOLDS["djg6"].social,
        ge=1,
        le=3,
        description="6-item scale: social subscale score (0-3) from which a resident counts as "
        "socially lonely.",
    )

    def thresholds(self) -> dict[str, Thresholds]:
        """Per instrument (``djg11``, ``djg6``)."""
        return {
            "djg11": Thresholds(self.djg_emotional_threshold, self.djg_social_threshold),
            "djg6": Thresholds(self.djg6_emotional_threshold, self.djg6_social_threshold),
        }
