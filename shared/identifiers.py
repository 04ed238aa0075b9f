"""Identifier rules that more than one part of the platform checks, written once.

An organisation id travels in every event (``source: /organisations/{id}``, ``organisation_id``),
so the id the command line accepts when an organisation is created must be one the event
contracts accept: otherwise that organisation's every write would fail when its event is built.
"""

from __future__ import annotations

import re

__all__ = ["ORGANISATION_ID", "ORGANISATION_ID_PATTERN", "organisation_id_problem"]

# Letters, digits, `.`, `_` and `-`: safe in a URL path, a Kafka key and a Prometheus label.
ORGANISATION_ID = r"[A-Za-z0-9._-]{1,64}"
ORGANISATION_ID_PATTERN = rf"^{ORGANISATION_ID}$"
_ORGANISATION_ID = re.compile(ORGANISATION_ID_PATTERN)


def organisation_id_problem(value: str) -> str | None:
    """Why ``value`` is not an organisation id, or None if it is one."""
    if _ORGANISATION_ID.fullmatch(value):
        return None
    return (
        f"organisation id {value!r} is not allowed: use 1 to 64 letters, digits, `.`, `_` or `-` "
        "(it appears in every event and URL of that organisation)"
    )
