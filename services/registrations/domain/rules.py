"""Registration rules, free of HTTP, Kafka and SQL: each returns the fields it rejects."""

from __future__ import annotations

from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from shared.commands import check_participant
from shared.reference import ReferenceData, check_one_of
from shared.timerules import check_moment

__all__ = [
    "FieldProblems",
    "check_activity",
    "check_attendance",
    "check_cancellation",
    "check_participant",
    "check_registration",
]

FieldProblems = list[tuple[str, str]]


def check_activity(cmd: ActivityCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_one_of("category", cmd.category, ref.activity_categories, "category")
    problems += check_one_of(
        "neighbourhood", cmd.neighbourhood, ref.neighbourhoods, "neighbourhood"
    )
    for i, band in enumerate(cmd.target_age_bands):
        problems += check_one_of(f"target_age_bands.{i}", band, ref.age_bands, "age band")
    return problems


def check_registration(cmd: RegistrationCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_participant(cmd.participant, ref)
    if cmd.referring_organisation_id is not None and cmd.referral_id is None:
        problems.append(
            (
                "referring_organisation_id",
                "names the organisation that made the referral in `referral_id`; give both",
            )
        )
    return problems + check_moment("registered_at", cmd.registered_at)


def check_attendance(cmd: AttendanceCommand, ref: ReferenceData) -> FieldProblems:
    return check_participant(cmd.participant, ref) + check_moment(
        "session_start", cmd.session_start
    )


def check_cancellation(cmd: CancellationCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_moment("cancelled_at", cmd.cancelled_at)
    if cmd.reason is not None:
        problems += check_one_of(
            "reason", cmd.reason, ref.cancellation_reasons, "cancellation reason"
        )
    return problems
