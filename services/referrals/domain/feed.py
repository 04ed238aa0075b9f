"""The feed of an organisation's referrals (``GET /v1/referrals?changed_since=``), the light
polling mode for partners without a server (FHIR SDOH's "referral recipient light"): what an
item says, and the cursor. Pure.

An item says the referral's key, the reader's side, its status and dates, the outcome code of
its current status (codes of the configured list only) and the day of the first attendance:
never the resident, never free text. The cursor is opaque to partners: the position after the
last change read (a transaction id and a change number, adapters/repository.py)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from services.referrals.domain.decide import FIRST_ATTENDANCE
from services.referrals.domain.webhooks import role_of

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Position", "decode_cursor", "encode_cursor", "feed_item"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Position = tuple[int, int]  # (transaction id, change number) of the last change read
_CURSOR = re.compile(r"^v1\.(\d{1,20})\.(\d{1,20})$")


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(f"v1.{position[0]}.{position[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """Raises ValueError for a cursor this service did not give."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor of this feed") from None
    match = _CURSOR.match(text)
    if match is None:
        raise ValueError("not a cursor of this feed")
    return int(match[1]), int(match[2])


def feed_item(
    organisation_id: str,
    referrer: str,
    referral_id: str,
    receiver: str | None,
    status: str,
    created_at: datetime,
    status_changed_at: datetime,
    first_attended_on: date | None,
    milestones: Mapping[str, Any],
    outcome: str | None,
    outcomes: Collection[str],
) -> dict[str, Any]:
    return {
        "referring_organisation_id": referrer,
        "referral_id": referral_id,
        "receiving_organisation_id": receiver,
        "role": role_of(organisation_id, referrer, receiver),
        "status": status,
        "created_at": created_at.isoformat(),
        "status_changed_at": status_changed_at.isoformat(),
        "outcome": outcome if outcome in outcomes else None,
        "first_attendance_on": first_attended_on.isoformat() if first_attended_on else None,
        "milestones": {k: v for k, v in milestones.items() if k != FIRST_ATTENDANCE},
    }
