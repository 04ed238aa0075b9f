"""Reference lists (neighbourhoods, age bands, categories, roles, signals, cancellation reasons,
referral outcomes) and the coalition's service list (service -> the partner organisation that
provides it).

Cancellation reasons and referral outcomes are codes from these lists, never free text: a note
field is an easy channel for names and health details, and no indicator reads one
(docs/privacy.md, "Minimisation").

They are data, not code: a municipality that adopts Verbinding brings its own file
(``VERBINDING_REFERENCE_FILE``). The defaults are Pijnacker-Nootdorp's (domain.md §4).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = ["ReferenceData", "check_one_of", "load_reference"]


@dataclass(frozen=True)
class ReferenceData:
    municipality: str
    neighbourhoods: frozenset[str]
    age_bands: frozenset[str]
    activity_categories: frozenset[str]
    referrer_roles: frozenset[str]
    signals: frozenset[str]
    # A cancellation's `reason` and a status change's `outcome` are one of these codes (the
    # outcome travels to the other side of the referral too: feed, webhooks).
    cancellation_reasons: frozenset[str]
    referral_outcomes: frozenset[str]
    # A referral to a service names one of these; its provider is the referral's receiving side.
    services: Mapping[str, str]
    # Ordered copies for display and for documentation (sets lose the order of the file).
    neighbourhood_order: tuple[str, ...]
    age_band_order: tuple[str, ...]
    category_order: tuple[str, ...] = ()
    cancellation_reason_order: tuple[str, ...] = ()
    referral_outcome_order: tuple[str, ...] = ()
    # Readable names per language and list (``labels["nl"]["neighbourhoods"]["oude-leede"]``),
    # for people who fill in a form or a spreadsheet. Optional in a municipality's own file: a
    # value without a label is shown as it is.
    labels: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)

    def ordered(self, name: str) -> tuple[str, ...]:
        """The values of a list (``neighbourhoods``, ``age_bands``, ``activity_categories``) in
        the order of the file."""
        return {
            "neighbourhoods": self.neighbourhood_order,
            "age_bands": self.age_band_order,
            "activity_categories": self.category_order,
            "cancellation_reasons": self.cancellation_reason_order,
            "referral_outcomes": self.referral_outcome_order,
        }[name]

    def label(self, name: str, value: str, lang: str) -> str:
        """The readable name of ``value`` on list ``name`` in ``lang``; the value itself if the
        reference file gives none."""
        return self.labels.get(lang, {}).get(name, {}).get(value, value)


@cache
def load_reference(path: str | None = None) -> ReferenceData:
    raw = (
        Path(path).read_text(encoding="utf-8")
        if path
        else resources.files("shared.data").joinpath("reference.json").read_text(encoding="utf-8")
    )
    data = json.loads(raw)
    return ReferenceData(
        municipality=data["municipality"]["name"],
        neighbourhoods=frozenset(data["neighbourhoods"]),
        age_bands=frozenset(data["age_bands"]),
        activity_categories=frozenset(data["activity_categories"]),
        referrer_roles=frozenset(data["referrer_roles"]),
        signals=frozenset(data["signals"]),
        cancellation_reasons=frozenset(data["cancellation_reasons"]),
        referral_outcomes=frozenset(data["referral_outcomes"]),
        services=MappingProxyType(dict(data.get("services", {}))),
        neighbourhood_order=tuple(data["neighbourhoods"]),
        age_band_order=tuple(data["age_bands"]),
        category_order=tuple(data["activity_categories"]),
        cancellation_reason_order=tuple(data["cancellation_reasons"]),
        referral_outcome_order=tuple(data["referral_outcomes"]),
        labels=data.get("labels", {}),
    )


def check_one_of(
    field: str, value: str, allowed: Collection[str], what: str
) -> list[tuple[str, str]]:
    """``[(field, message)]`` if ``value`` is not on a reference list, else ``[]``.

    The message lists what is allowed: the lists are short, and a partner fixes the value faster
    when the right spelling is in front of them.
    """
    # The lists are frozensets already: tested as they are (copying one into a set for every
    # value was a measurable share of checking a batch), copied only to list them.
    if value in allowed:
        return []
    allowed = set(allowed)
    return [(field, f"unknown {what} {value!r}; allowed: {', '.join(sorted(allowed))}")]
