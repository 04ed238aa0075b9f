"""What both writing services' request bodies have in common, written once: the participant
object of the contract (contract.md: registrations, attendance, referrals and measurements all
name a resident the same way), the identifier types and the base of every command model.

Unknown fields are rejected (a partner's typo must not pass unnoticed), commands are frozen
(the domain decides from them and never changes them), and their text must be storable
(:class:`shared.text.StorableText`).
"""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import ConfigDict, Field, StringConstraints

from shared.minimisation import lives_alone_ignored
from shared.reference import ReferenceData, check_one_of
from shared.text import StorableText

__all__ = ["Command", "Id", "ParticipantIn", "Ref", "check_participant"]

Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Id = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\s/]+$"),
]


class Command(StorableText):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParticipantIn(Command):
    """A resident as the partner knows them. `ref` and `resident_token` are pseudonymised on
    arrival and never stored."""

    ref: Ref = Field(description="The partner's own participant reference (no name, no BSN).")
    resident_token: Ref | None = Field(
        None, description="Coalition-wide resident token, if the partner has one."
    )
    neighbourhood: str = Field(description="One of the municipality's neighbourhoods.")
    age_band: str = Field(description="`0-15`, `16-25`, `26-64`, `65-74`, `75+` or `unknown`.")
    lives_alone: bool | None = lives_alone_ignored()


class _Placed(Protocol):
    """Whatever names a resident's neighbourhood and age band (an anonymous survey answer
    does too)."""

    @property
    def neighbourhood(self) -> str: ...

    @property
    def age_band(self) -> str: ...


def check_participant(
    p: _Placed, ref: ReferenceData, prefix: str = "participant"
) -> list[tuple[str, str]]:
    """The neighbourhood and age band on the reference lists, each problem naming its field."""
    return check_one_of(
        f"{prefix}.neighbourhood", p.neighbourhood, ref.neighbourhoods, "neighbourhood"
    ) + check_one_of(f"{prefix}.age_band", p.age_band, ref.age_bands, "age band")
