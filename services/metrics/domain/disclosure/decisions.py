"""The engine's output: one decision per cell and figure (domain.md §7 rule 5)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REASONS", "Decision", "Decisions", "Reason"]

Reason = Literal["primary", "secondary", "linked"]

# What the dashboard says about a hidden figure, per reason (Dutch first: the coalition's
# language; English for the English view).
REASONS: dict[str, dict[Reason, str]] = {
    "nl": {
        "primary": "Verborgen: gaat over minder dan {k} mensen (of minder dan {k} aan één kant "
        "van een percentage).",
        "secondary": "Verborgen ter bescherming: anders is een ander verborgen getal terug te "
        "rekenen uit de zichtbare getallen.",
        "linked": "Verborgen omdat een getal waarop het rust verborgen is.",
    },
    "en": {
        "primary": "Hidden: about fewer than {k} people (or fewer than {k} on one side of a "
        "percentage).",
        "secondary": "Hidden for protection: otherwise another hidden figure could be worked "
        "out from the visible ones.",
        "linked": "Hidden because a figure it rests on is hidden.",
    },
}


@dataclass(frozen=True)
class Decision:
    value: float | int | None
    suppressed: bool
    reason: Reason | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "suppressed": self.suppressed}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


# (figure, breakdown or "" for the total, key or "", period label)
Ref = tuple[str, str, str, str]


@dataclass(frozen=True)
class Decisions(Mapping[Ref, Decision]):
    """Every figure of every cell: base counts (also those never shown as counts, such as
    ``declined``: their decision says whether a rate publishes them), rates, statistics and
    growth. ``baselines`` holds the baseline-year figure beside the growth where a reader may
    see it."""

    k: int
    year: int
    figures: Mapping[Ref, Decision]
    baselines: Mapping[tuple[str, str, str], int]
    # Hidden cells the engine could not protect (should be empty; the exact check reports
    # them rather than loop for ever).
    unprotected: tuple[Ref, ...] = ()

    def __getitem__(self, ref: Ref) -> Decision:
        return self.figures[ref]

    def __iter__(self) -> Iterator[Ref]:
        return iter(self.figures)

    def __len__(self) -> int:
        return len(self.figures)

    def visible(self, ref: Ref) -> bool:
        return not self.figures[ref].suppressed

    def baseline(self, by: str, key: str, period: str) -> int | None:
        """The baseline-year participants shown beside the growth of this cell, if any."""
        return self.baselines.get((by, key, period))
