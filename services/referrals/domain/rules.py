"""Referral, training and measurement rules, free of HTTP, Kafka and SQL: each returns the
fields it rejects, so that one answer names every problem at once."""

from __future__ import annotations

from services.referrals.domain.commands import (
    MeasurementCommand,
    MeasurementParticipantIn,
    ParticipantIn,
    ReferralCommand,
    ReferredToIn,
    StatusCommand,
    TrainingCommand,
)
from shared.reference import ReferenceData, check_one_of
from shared.timerules import check_moment

__all__ = [
    "FieldProblems",
    "check_measurement",
    "check_participant",
    "check_referral",
    "check_referred_to",
    "check_status",
    "check_training",
]

FieldProblems = list[tuple[str, str]]

# Contexts that follow one resident over time: their scores are compared per person, so the
# measurement must say whose it is.
IDENTIFIED_CONTEXTS = frozenset({"intake", "follow_up"})


def check_participant(
    p: ParticipantIn | MeasurementParticipantIn, ref: ReferenceData, prefix: str = "participant"
) -> FieldProblems:
    return check_one_of(
        f"{prefix}.neighbourhood", p.neighbourhood, ref.neighbourhoods, "neighbourhood"
    ) + check_one_of(f"{prefix}.age_band", p.age_band, ref.age_bands, "age band")


def check_referred_to(to: ReferredToIn, prefix: str = "referred_to") -> FieldProblems:
    """Exactly one form: an activity of an organisation, or a service."""
    names_activity = to.activity_id is not None or to.organisation_id is not None
    if names_activity and to.service is not None:
        return [
            (prefix, "give either `activity_id` with `organisation_id`, or `service`; not both")
        ]
    if not names_activity and to.service is None:
        return [
            (
                prefix,
                "say where the resident is referred: `{activity_id, organisation_id}` or "
                "`{service}`",
            )
        ]
    problems: FieldProblems = []
    if names_activity and to.activity_id is None:
        problems.append((f"{prefix}.activity_id", "required together with `organisation_id`"))
    if names_activity and to.organisation_id is None:
        problems.append(
            (
                f"{prefix}.organisation_id",
                "required together with `activity_id`: the organisation that runs the activity",
            )
        )
    return problems


def check_referral(cmd: ReferralCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_participant(cmd.participant, ref)
    problems += check_one_of("referrer_role", cmd.referrer_role, ref.referrer_roles, "role")
    seen: set[str] = set()
    for i, signal in enumerate(cmd.signals):
        if signal in seen:
            problems.append((f"signals.{i}", f"signal {signal!r} is listed twice"))
        else:
            problems += check_one_of(f"signals.{i}", signal, ref.signals, "signal")
        seen.add(signal)
    problems += check_referred_to(cmd.referred_to)
    return problems + check_moment("created_at", cmd.created_at)


def check_status(cmd: StatusCommand) -> FieldProblems:
    return check_moment("at", cmd.at)


def check_training(cmd: TrainingCommand, ref: ReferenceData) -> FieldProblems:
    return check_one_of("role", cmd.role, ref.referrer_roles, "role") + check_moment(
        "completed_at", cmd.completed_at
    )


def check_measurement(cmd: MeasurementCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_participant(cmd.participant, ref)
    if cmd.participant.ref is None:
        if cmd.context in IDENTIFIED_CONTEXTS:
            problems.append(
                (
                    "participant.ref",
                    f"required for context {cmd.context!r}: intake and follow-up scores are "
                    "compared per resident; only a `survey` may be anonymous",
                )
            )
        if cmd.participant.resident_token is not None:
            problems.append(
                (
                    "participant.resident_token",
                    "only together with `ref`: an anonymous survey answer carries nothing that "
                    "identifies the resident",
                )
            )
    return problems + check_moment("measured_at", cmd.measured_at)
