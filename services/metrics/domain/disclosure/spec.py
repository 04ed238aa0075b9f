"""What the disclosure engine protects: the base figures (counts), how they add up, and the
figures derived from them (rates, shares, statistics, growth) — domain.md §6 and §7.

Every published figure of the indicators rests on *base figures*: counts per cell, where a cell
is a period of the year × the municipality total or one key of one breakdown. A rate publishes
its two sides (numerator and the rest of its denominator), so both sides are base figures too,
even where they are not shown as counts of their own (``declined``, ``not_lonely``): a rate is
shown exactly when both sides are (§7 rule 3, "linked figures").

How counts add up decides which arithmetic a reader can do:

* ``sum`` — the parent is the sum of its children (events; new participants, who are new in one
  month and counted with the attributes of their first session; respondents per neighbourhood).
* ``sub`` — people counts over overlapping children: a person can attend in two months or two
  categories, so the parent lies between the largest child and the sum of the children.
* ``latest`` — states of people's latest answer in the period (lonely, improved): a person
  lonely in August may be no longer lonely by the end of the quarter, so a month can exceed its
  quarter; still the quarter is at most the sum of its months.
* ``cumulative`` — a stock at the end of the period (people trained): no period sums; a quarter
  *is* its last month, the year its December; a stock only grows, unless it counts partners
  (``shrinks``: a partner that leaves the registry no longer counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BREAKDOWNS",
    "FIGURES",
    "GROWTH",
    "INPUTS",
    "RATES",
    "SECTIONS",
    "STATISTICS",
    "VALID_INEQUALITIES",
    "FigureSpec",
    "Rate",
    "Statistic",
]

Relation = Literal["sum", "sub"]
PeriodRelation = Literal["sum", "sub", "latest", "cumulative"]

# Breakdowns of the API (`by`), plus the two lists of the total answer: trained people by role
# and referrals by signal, which are breakdowns of their figure like any other (§7 rule 4).
BREAKDOWNS: tuple[str, ...] = (
    "neighbourhood",
    "age_band",
    "category",
    "referrer_role",
    "organisation",
    "role",
    "signal",
)
# Subgoal sections of a cell (§7 rule 1): a section about fewer than k distinct people shows
# none of its figures. S1: respondents; S2: participants (anyone with a registration,
# attendance or no-show there); S3: referred residents.
SECTIONS: tuple[str, ...] = ("s1", "s2", "s3")

S2_BY = ("neighbourhood", "age_band", "category", "organisation")
S3_BY = ("referrer_role", "organisation")
S1_BY = ("neighbourhood", "age_band")


@dataclass(frozen=True)
class FigureSpec:
    """A base figure: a count per cell, with the distinct people behind it."""

    name: str
    subgoal: str
    section: str | None  # the section of rule 1; None: its own people are its section
    published: bool  # shown as a count of its own (else only through a rate)
    breakdowns: tuple[str, ...]
    periods: PeriodRelation
    keys: Relation = "sum"
    # Breakdowns whose keys overlap although ``keys`` is "sum": a referral with two signals
    # counts under both.
    overlapping: frozenset[str] = field(default_factory=frozenset)
    # A complement (value = whole − part), computed by the engine when the grid lacks it.
    complement_of: tuple[str, str] | None = None
    # A figure of public record (the number of partner organisations): never suppressed.
    public: bool = False
    # A stock that may also shrink (it counts partners, and a partner may leave the registry).
    shrinks: bool = False

    def relation(self, by: str) -> Relation:
        return "sub" if self.keys == "sub" or by in self.overlapping else "sum"


def _s2(name: str, periods: PeriodRelation, keys: Relation = "sum") -> FigureSpec:
    return FigureSpec(name, "s2", "s2", True, S2_BY, periods, keys)


def _s1(name: str, published: bool = False, of: tuple[str, str] | None = None) -> FigureSpec:
    # Each counts people's latest answer in the period: a month's answer with a total may be
    # followed by a partial one, so even the number of measurements can shrink from a month to
    # its quarter ("latest", not "sub").
    return FigureSpec(name, "s1", "s1", published, S1_BY, "latest", complement_of=of)


FIGURES: dict[str, FigureSpec] = {
    f.name: f
    for f in (
        # S2 — reach and participation.
        _s2("participants_unique", "sub", "sub"),
        _s2("participants_new", "sum"),
        _s2("retained", "sum"),
        _s2("attendances", "sum"),
        _s2("no_shows", "sum"),
        _s2("registrations", "sum"),
        _s2("cancellations", "sum"),
        # S3 — referrals (by the referral's creation period). The funnel: referrals (created)
        # ⊇ accepted ⊇ contacted ⊇ converted (first attendance) ⊇ referrals_retained; a
        # referral counts in every stage up to the furthest it reached (docs/disclosure.md).
        FigureSpec(
            "referrals", "s3", "s3", True, (*S3_BY, "signal"), "sum",
            overlapping=frozenset({"signal"}),
        ),
        FigureSpec("accepted", "s3", "s3", True, S3_BY, "sum"),
        FigureSpec("declined", "s3", "s3", False, S3_BY, "sum"),
        FigureSpec("contacted", "s3", "s3", True, S3_BY, "sum"),
        FigureSpec("converted", "s3", "s3", True, S3_BY, "sum"),
        FigureSpec("referrals_retained", "s3", "s3", True, S3_BY, "sum"),
        FigureSpec(
            "not_converted", "s3", "s3", False, S3_BY, "sum",
            complement_of=("referrals", "converted"),
        ),
        # S3 — training: stocks at the end of the period. A person trained under two roles
        # counts under both; per organisation the pseudonyms are the organisation's own.
        FigureSpec(
            "people_trained", "s3", None, True, ("role", "organisation"), "cumulative",
            overlapping=frozenset({"role"}),
        ),
        FigureSpec(
            "organisations_with_trained_staff", "s3", None, True, (), "cumulative", shrinks=True
        ),
        FigureSpec("partners", "s3", None, False, (), "cumulative", public=True),
        FigureSpec(
            "organisations_without_trained_staff", "s3", None, False, (), "cumulative",
            complement_of=("partners", "organisations_with_trained_staff"),
        ),
        # S1 — survey measurements (the latest per participant in the period).
        _s1("measurements", published=True),
        _s1("lonely"),
        _s1("not_lonely", of=("measurements", "lonely")),
        _s1("severe"),
        _s1("not_severe", of=("measurements", "severe")),
        _s1("emotional"),
        _s1("not_emotional", of=("emotional_measured", "emotional")),
        _s1("social"),
        _s1("not_social", of=("social_measured", "social")),
        # S1 — referral outcome: residents with an intake and a follow-up (total only), each
        # with their latest follow-up in the period. Not "sub": a resident's January pair can
        # be gone from the quarter when the quarter's latest follow-up has no intake of its
        # instrument.
        FigureSpec("outcome_pairs", "s1", None, True, (), "latest"),
        FigureSpec("improved", "s1", None, False, (), "latest"),
        FigureSpec(
            "not_improved", "s1", None, False, (), "latest",
            complement_of=("outcome_pairs", "improved"),
        ),
    )
}  # fmt: skip

# Grid inputs that are no cell of their own: denominators that are never published, needed
# only to compute a complement.
INPUTS: frozenset[str] = frozenset({"emotional_measured", "social_measured"})


@dataclass(frozen=True)
class Rate:
    """A rate or share: ``numerator / (numerator + other)``; published iff both sides are."""

    name: str
    subgoal: str
    numerator: str
    other: str


RATES: dict[str, Rate] = {
    r.name: r
    for r in (
        Rate("attendance_rate", "s2", "attendances", "no_shows"),
        Rate("referral_acceptance_rate", "s3", "accepted", "declined"),
        Rate("referral_conversion", "s3", "converted", "not_converted"),
        Rate(
            "organisations_with_trained_staff_share",
            "s3",
            "organisations_with_trained_staff",
            "organisations_without_trained_staff",
        ),
        Rate("prevalence_lonely", "s1", "lonely", "not_lonely"),
        Rate("prevalence_severe", "s1", "severe", "not_severe"),
        Rate("prevalence_emotional", "s1", "emotional", "not_emotional"),
        Rate("prevalence_social", "s1", "social", "not_social"),
        Rate("improved_share", "s1", "improved", "not_improved"),
    )
}


@dataclass(frozen=True)
class Statistic:
    """A median or mean over the people of a base figure: shown only over at least k people."""

    name: str
    subgoal: str
    support: str


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("days_to_first_attendance", "s3", "converted"),
        Statistic("days_to_first_contact", "s3", "contacted"),
        Statistic("outcome_mean_change", "s1", "outcome_pairs"),
    )
}

# Growth against the baseline year rests on participants_unique of both years.
GROWTH = "growth_vs_baseline"

# Relations between the figures of one cell that hold for the data (not only for the pattern):
# (smaller side, larger side), each a tuple of figures summed. Used by the exact check.
VALID_INEQUALITIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("participants_new",), ("participants_unique",)),
    (("participants_unique",), ("attendances",)),
    (("retained",), ("participants_new",)),
    (("accepted", "declined"), ("referrals",)),
    # The funnel's stages are nested: each is at most the one before it.
    (("contacted",), ("accepted",)),
    (("converted",), ("contacted",)),
    (("referrals_retained",), ("converted",)),
    (("severe",), ("lonely",)),
    (("organisations_with_trained_staff",), ("people_trained",)),
)
