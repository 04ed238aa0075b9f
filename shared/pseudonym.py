"""Keyed pseudonyms for participant references, resident tokens and person references.

domain.md §3: a partner's own reference never enters the platform. It is replaced on arrival by
``HMAC-SHA256(secret, organisation_id + ":" + ref)``; a coalition-wide resident token by
``HMAC-SHA256(secret, "resident:" + token)``, which lets one resident be counted once across
organisations. The secret comes from settings and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from shared.events.models import Participant

__all__ = ["ParticipantReference", "Pseudonymiser", "participant_of"]


class Pseudonymiser:
    def __init__(self, secret: str | bytes) -> None:
        if not secret:
            raise ValueError("a pseudonymisation secret is required")
        self._key = secret.encode() if isinstance(secret, str) else secret

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def participant(self, organisation_id: str, ref: str) -> str:
        return self._mac(f"{organisation_id}:{ref}")

    def resident(self, token: str) -> str:
        return self._mac(f"resident:{token}")

    def person(self, organisation_id: str, ref: str) -> str:
        """A trained professional or volunteer: the same rule as a participant reference."""
        return self._mac(f"{organisation_id}:{ref}")

    def digest(self, payload: bytes) -> str:
        """Keyed digest of a request body, for idempotency checks.

        Keyed because request bodies hold raw references: a plain hash of a short reference
        could be reversed by trying every candidate.
        """
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key, not even in a traceback
        return "Pseudonymiser(<secret>)"


class ParticipantReference(Protocol):
    """A participant as a partner sends it (any service's request model fits)."""

    @property
    def ref(self) -> str: ...
    @property
    def resident_token(self) -> str | None: ...
    @property
    def neighbourhood(self) -> str: ...
    @property
    def age_band(self) -> str: ...
    @property
    def lives_alone(self) -> bool | None: ...


def participant_of(
    p: ParticipantReference, organisation_id: str, pseudonymiser: Pseudonymiser
) -> Participant:
    """Replace the partner's reference at once (domain.md §3); only coarse attributes remain.

    A resident token wins over the partner's own reference: it is what lets one resident be
    counted once across organisations.
    """
    if p.resident_token:
        return Participant(
            id=pseudonymiser.resident(p.resident_token),
            scope="resident",
            neighbourhood=p.neighbourhood,
            age_band=p.age_band,
            lives_alone=p.lives_alone,
        )
    return Participant(
        id=pseudonymiser.participant(organisation_id, p.ref),
        scope="organisation",
        neighbourhood=p.neighbourhood,
        age_band=p.age_band,
        lives_alone=p.lives_alone,
    )
