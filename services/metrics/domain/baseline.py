"""Baselines and targets: configuration (a JSON file), not constants in code.

The defaults are the programme's figures (domain.md §1). A municipality that adopts Verbinding
brings its own file (``VERBINDING_BASELINE_FILE``). ``participants_unique`` may name figures per
period label of the baseline year; where it does not, the baseline is computed from the events of
the same period in ``baseline_year``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["Baseline", "load_baseline"]


@dataclass(frozen=True)
class Baseline:
    baseline_year: int
    prevalence: dict[str, float]
    prevalence_lonely_by_neighbourhood: dict[str, float]
    prevalence_lonely_by_age_band: dict[str, float]
    targets: dict[str, Any]
    participants_unique: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def prevalence_for(
        self, indicator: str, by: str | None = None, key: str | None = None
    ) -> float | None:
        name = indicator.removeprefix("prevalence_")
        if by is None:
            return self.prevalence.get(name)
        if name != "lonely":
            return None
        table = {
            "neighbourhood": self.prevalence_lonely_by_neighbourhood,
            "age_band": self.prevalence_lonely_by_age_band,
        }.get(by, {})
        return table.get(key or "")


def load_baseline(path: str | None = None) -> Baseline:
    raw = (
        Path(path).read_text(encoding="utf-8")
        if path
        else resources.files("services.metrics")
        .joinpath("baseline.json")
        .read_text(encoding="utf-8")
    )
    data = json.loads(raw)
    return Baseline(
        baseline_year=int(data["baseline_year"]),
        prevalence={k: float(v) for k, v in data["prevalence"].items()},
        prevalence_lonely_by_neighbourhood=data.get("prevalence_lonely_by_neighbourhood", {}),
        prevalence_lonely_by_age_band=data.get("prevalence_lonely_by_age_band", {}),
        targets=data.get("targets", {}),
        participants_unique={k: int(v) for k, v in data.get("participants_unique", {}).items()},
        source=data.get("source", ""),
    )
