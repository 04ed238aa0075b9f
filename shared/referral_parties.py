"""Who may move a referral, written once for the service that enforces it and the indicators
that rely on it (domain.md §6).

A referral has two sides: the referring organisation, and the receiving side (the organisation
it was sent to, or the provider of the service it names). The receiving side accepts, declines,
marks contacted and closes; the referrer withdraws. An organisation that refers to one of its own
activities is both sides.
"""

from __future__ import annotations

__all__ = ["RECEIVER_STATUSES", "REFERRER_STATUSES", "may_change", "who_may"]

RECEIVER_STATUSES: frozenset[str] = frozenset({"accepted", "declined", "contacted", "closed"})
REFERRER_STATUSES: frozenset[str] = frozenset({"withdrawn"})


def may_change(status: str, organisation: str, referrer: str, receiver: str | None) -> bool:
    """Whether ``organisation`` may move a referral of ``referrer`` received by ``receiver`` to
    ``status``."""
    if status in REFERRER_STATUSES:
        return organisation == referrer
    if status in RECEIVER_STATUSES:
        return receiver is not None and organisation == receiver
    return False


def who_may(status: str, referrer: str, receiver: str | None) -> str:
    """The party that may make the change, in words for an error message."""
    if status in REFERRER_STATUSES:
        return f"the referring organisation ({referrer})"
    if receiver is None:
        return "the receiving organisation, which is not known for this referral"
    return f"the receiving organisation ({receiver})"
