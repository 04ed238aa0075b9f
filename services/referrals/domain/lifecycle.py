"""The lifecycle of a referral, as a pure state machine.

    created   → accepted | declined | withdrawn
    accepted  → contacted | withdrawn | closed
    contacted → closed | withdrawn
    declined, withdrawn, closed: final

Why these edges: the referred-to organisation accepts or declines; once accepted it contacts
the resident and the referral is closed when the help has run its course. Closing straight from
`accepted` covers a resident who joins an activity without a separate contact moment. A
resident may withdraw at any point until the referral is over, so `withdrawn` is reachable from
every open state. No state can be reached twice, so the history holds each status at most once.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import ConflictError

__all__ = [
    "FINAL",
    "STATUSES",
    "TRANSITIONS",
    "IllegalTransition",
    "allowed_next",
    "check_transition",
]

# The order of each tuple is the order in which `allowed` is reported to a partner.
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "created": ("accepted", "declined", "withdrawn"),
    "accepted": ("contacted", "withdrawn", "closed"),
    "contacted": ("closed", "withdrawn"),
    "declined": (),
    "withdrawn": (),
    "closed": (),
}
STATUSES: tuple[str, ...] = tuple(TRANSITIONS)
FINAL: frozenset[str] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(ConflictError):
    """The referral cannot move from its current status to the wanted one (409)."""

    def __init__(self, current: str, wanted: str) -> None:
        allowed = allowed_next(current)
        if allowed:
            hint = f"from {current!r} it can move to {', '.join(repr(a) for a in allowed)}"
        else:
            hint = f"{current!r} is final; the referral cannot change any more"
        super().__init__(
            f"the referral is {current!r} and cannot become {wanted!r}: {hint}", allowed
        )
        self.current = current
        self.wanted = wanted


def allowed_next(current: str) -> tuple[str, ...]:
    """The statuses a referral in ``current`` may move to (empty for a final status)."""
    try:
        return TRANSITIONS[current]
    except KeyError:
        raise ValueError(f"unknown referral status {current!r}") from None


def check_transition(current: str, wanted: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current → wanted`` is an edge of the lifecycle."""
    if wanted not in allowed_next(current):
        raise IllegalTransition(current, wanted)
