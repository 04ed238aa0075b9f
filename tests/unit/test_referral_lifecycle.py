"""The referral lifecycle, pair by pair: every current status against every status a partner can
ask for. The expected table is written out by hand from the issue, not derived from the code, so a
wrong edge in the implementation cannot hide behind the same edge in the test."""

from __future__ import annotations

import pytest

from services.referrals.domain.lifecycle import (
    IllegalTransition,
    allowed_next,
    check_transition,
)
from shared.errors import ConflictError

CURRENT = ("created", "accepted", "declined", "withdrawn", "contacted", "closed")
WANTED = ("accepted", "declined", "contacted", "withdrawn", "closed")

# (current, wanted) -> legal?  All 6 x 5 = 30 pairs, spelled out.
LEGAL: dict[tuple[str, str], bool] = {
    ("created", "accepted"): True,
    ("created", "declined"): True,
    ("created", "contacted"): False,
    ("created", "withdrawn"): True,
    ("created", "closed"): False,
    ("accepted", "accepted"): False,
    ("accepted", "declined"): False,
    ("accepted", "contacted"): True,
    ("accepted", "withdrawn"): True,
    ("accepted", "closed"): True,
    ("declined", "accepted"): False,
    ("declined", "declined"): False,
    ("declined", "contacted"): False,
    ("declined", "withdrawn"): False,
    ("declined", "closed"): False,
    ("withdrawn", "accepted"): False,
    ("withdrawn", "declined"): False,
    ("withdrawn", "contacted"): False,
    ("withdrawn", "withdrawn"): False,
    ("withdrawn", "closed"): False,
    ("contacted", "accepted"): False,
    ("contacted", "declined"): False,
    ("contacted", "contacted"): False,
    ("contacted", "withdrawn"): True,
    ("contacted", "closed"): True,
    ("closed", "accepted"): False,
    ("closed", "declined"): False,
    ("closed", "contacted"): False,
    ("closed", "withdrawn"): False,
    ("closed", "closed"): False,
}

# What a partner is told it may do instead, in the order the answer lists it.
ALLOWED: dict[str, list[str]] = {
    "created": ["accepted", "declined", "withdrawn"],
    "accepted": ["contacted", "withdrawn", "closed"],
    "contacted": ["closed", "withdrawn"],
    "declined": [],
    "withdrawn": [],
    "closed": [],
}


def test_the_table_covers_every_pair() -> None:
    assert set(LEGAL) == {(c, w) for c in CURRENT for w in WANTED}
    assert len(LEGAL) == 30


@pytest.mark.parametrize(("current", "wanted"), sorted(LEGAL))
def test_transition(current: str, wanted: str) -> None:
    if LEGAL[(current, wanted)]:
        check_transition(current, wanted)  # does not raise
        return
    with pytest.raises(IllegalTransition) as caught:
        check_transition(current, wanted)
    error = caught.value
    assert isinstance(error, ConflictError)  # so that HTTP and batches answer 409
    assert error.allowed == ALLOWED[current]
    assert error.current == current
    assert error.wanted == wanted
    assert repr(current) in error.message
    assert repr(wanted) in error.message


@pytest.mark.parametrize("current", CURRENT)
def test_allowed_next_matches_the_table(current: str) -> None:
    assert list(allowed_next(current)) == ALLOWED[current]
    assert sorted(allowed_next(current)) == sorted(w for w in WANTED if LEGAL[(current, w)])


@pytest.mark.parametrize("final", ["declined", "withdrawn", "closed"])
def test_a_final_status_says_so(final: str) -> None:
    with pytest.raises(IllegalTransition, match="is final"):
        check_transition(final, "accepted")


def test_an_unknown_current_status_is_a_programming_error_not_a_409() -> None:
    with pytest.raises(ValueError, match="unknown referral status"):
        check_transition("lost", "accepted")
