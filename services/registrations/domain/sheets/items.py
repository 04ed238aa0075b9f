"""Good rows as batch items of the registrations service: the same items a partner's booking
system sends to ``POST /v1/batch``, so that they take the same write path and become the same
events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.registrations.domain.sheets.parse import ActivitySheetRow, AttendanceSheetRow

__all__ = ["ATTENDANCE_ID_PREFIX", "activity_items", "attendance_id", "attendance_items"]

# Ids derived from a row's content (see attendance_id) start with this, so that they are told
# apart from the ids a booking system chooses itself.
ATTENDANCE_ID_PREFIX = "att-"


def attendance_id(row: AttendanceSheetRow, identity: Callable[[str, str, str], str]) -> str:
    """The id of one person at one session: ``identity`` (a keyed hash, see
    shared/pseudonym.py ``Pseudonymiser.attendance``) of (activity, session start, participant
    number). Uploading the same row again gives the same id, so it is a replay (200), not a
    second attendance; the same id with another status is a conflict (409)."""
    return ATTENDANCE_ID_PREFIX + identity(*row.identity())[:32]


def attendance_items(
    rows: Sequence[AttendanceSheetRow], identity: Callable[[str, str, str], str]
) -> list[dict[str, Any]]:
    return [
        {
            "kind": "attendance",
            "body": {
                "attendance_id": attendance_id(row, identity),
                "activity_id": row.activity_id,
                "session_start": row.session_start.isoformat(),
                "participant": {
                    "ref": row.participant_number,
                    "neighbourhood": row.neighbourhood,
                    "age_band": row.age_band,
                },
                "status": row.status,
            },
        }
        for row in rows
    ]


def activity_items(rows: Sequence[ActivitySheetRow]) -> list[dict[str, Any]]:
    """Each row is the whole state of an activity (a PUT): what the sheet has no column for
    (target age bands) is left empty."""
    return [
        {
            "kind": "activity",
            "activity_id": row.activity_id,
            "body": {
                "title": row.title,
                "category": row.category,
                "aimed_at_connection": row.aimed_at_connection,
                "neighbourhood": row.neighbourhood,
                "capacity": row.capacity,
                "active": row.active,
            },
        }
        for row in rows
    ]
