"""Referral, training and measurement rules, free of HTTP, Kafka and SQL: each returns the
fields it rejects, so that one answer names every problem at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from services.referrals.domain.commands import (
    MeasurementCommand,
    ReferralCommand,
    ReferredToIn,
    StatusCommand,
    TrainingCommand,
)
from shared.commands import check_participant
from shared.errors import ConflictError, ForbiddenError, NotFoundError
from shared.reference import ReferenceData, check_one_of
from shared.referral_parties import may_change, who_may
from shared.timerules import check_moment

__all__ = [
    "REFERRER_PARAMETER",
    "FieldProblems",
    "check_may_change",
    "check_measurement",
    "check_participant",
    "check_referral",
    "check_referred_to",
    "check_status",
    "check_training",
    "choose_referral",
    "receiving_organisation",
]

FieldProblems = list[tuple[str, str]]

# Contexts that follow one resident over time: their scores are compared per person, so the
# measurement must say whose it is.
IDENTIFIED_CONTEXTS = frozenset({"intake", "follow_up"})


def check_referred_to(
    to: ReferredToIn, services: Mapping[str, str] | None = None, prefix: str = "referred_to"
) -> FieldProblems:
    """Exactly one form: an activity of an organisation, or a service of the service list."""
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
    if to.service is not None and services is not None:
        # The service's provider is the receiving side: a service nobody provides could be
        # accepted by nobody.
        problems += check_one_of(f"{prefix}.service", to.service, services, "service")
    return problems


def receiving_organisation(referrer: str, to: ReferredToIn, services: Mapping[str, str]) -> str:
    """The receiving side of a (checked) referral: the organisation it was sent to, else the
    provider of its service. A referrer that names its own activity is both sides."""
    if to.organisation_id is not None:
        return to.organisation_id
    assert to.service is not None
    return services[to.service]


def check_may_change(status: str, organisation: str, referrer: str, receiver: str | None) -> None:
    """Raise :class:`ForbiddenError` (403) unless ``organisation`` is the side that makes this
    change; the message names who may."""
    if may_change(status, organisation, referrer, receiver):
        return
    raise ForbiddenError(
        f"only {who_may(status, referrer, receiver)} may set a referral to {status!r}; "
        "the receiving side accepts, declines, marks contacted and closes, the referring "
        "organisation withdraws"
    )


class _Referral(Protocol):
    @property
    def organisation_id(self) -> str: ...


ReferralT = TypeVar("ReferralT", bound=_Referral)

# The query parameter by which a receiver names the referrer of an ambiguous id.
REFERRER_PARAMETER = "referring_organisation_id"


def choose_referral(
    organisation: str,
    referral_id: str,
    own: ReferralT | None,
    received: Sequence[ReferralT],
) -> ReferralT:
    """The referral ``organisation`` means by ``referral_id`` when it does not name the referrer:
    its own if it made one with that id, else the one sent to it, if exactly one referrer sent
    one. Another organisation's referral is reported as not existing (404), so that its
    existence is not revealed; several referrers of one id are a 409 naming the parameter that
    tells them apart."""
    if own is not None:
        return own
    if not received:
        raise NotFoundError(f"no referral {referral_id!r} made by or sent to your organisation")
    if len(received) > 1:
        senders = ", ".join(r.organisation_id for r in received)
        raise ConflictError(
            f"{len(received)} organisations ({senders}) sent you a referral with id "
            f"{referral_id!r}: name the one you mean with ?{REFERRER_PARAMETER}=<its organisation "
            "id>"
        )
    return received[0]


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
    problems += check_referred_to(cmd.referred_to, ref.services)
    return problems + check_moment("created_at", cmd.created_at)


def check_status(cmd: StatusCommand, ref: ReferenceData) -> FieldProblems:
    problems = check_moment("at", cmd.at)
    if cmd.outcome is not None:
        problems += check_one_of("outcome", cmd.outcome, ref.referral_outcomes, "outcome")
    return problems


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
