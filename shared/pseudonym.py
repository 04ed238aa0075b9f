"""Keyed pseudonyms for participant references, resident tokens and person references.

domain.md §3: a partner's own reference never enters the platform. It is replaced on arrival by
``HMAC-SHA256(key, organisation_id + ":" + ref)``; a coalition-wide resident token by
``HMAC-SHA256(key, "resident:" + token)``, which lets one resident be counted once across
organisations. The master secret comes from settings and is never logged.

Each purpose has its own key, derived from the one master secret with HKDF-SHA256 (RFC 5869;
the ``info`` names the purpose, see :data:`PURPOSES`): a participant pseudonym, a trainer's
(person) pseudonym, a resident-token pseudonym and the idempotency digest of a request body
can never be computed from one another, and a key that leaks from one purpose (say, the digests
kept beside every answer) opens none of the others. docs/privacy.md says more.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.events.models import Participant

__all__ = ["PURPOSES", "ParticipantReference", "Pseudonymiser", "derive_key", "participant_of"]

# HKDF ``info`` per purpose. Changing one changes every pseudonym of that purpose: never do that
# to a platform with data (tests/unit/test_pseudonym.py pins them with a known vector).
PURPOSES: dict[str, bytes] = {
    "participant": b"verbinding/v1/pseudonym/participant",
    "person": b"verbinding/v1/pseudonym/person",
    "resident": b"verbinding/v1/pseudonym/resident",
    "idempotency": b"verbinding/v1/digest/idempotency",
    "attendance": b"verbinding/v1/id/attendance",
    # Not a pseudonym: the key that encrypts webhook signing secrets at rest (shared/secretbox.py).
    "webhook-secrets": b"verbinding/v1/key/webhook-secrets",
}


def derive_key(master: bytes, purpose: str) -> bytes:
    """The 32-byte key of one purpose: HKDF-SHA256 over the master secret, no salt (the master
    secret is already uniformly random), ``info`` = :data:`PURPOSES` [purpose]."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSES[purpose]).derive(
        master
    )


class Pseudonymiser:
    def __init__(self, secret: str | bytes) -> None:
        if not secret:
            raise ValueError("a pseudonymisation secret is required")
        master = secret.encode() if isinstance(secret, str) else secret
        self._keys = {purpose: derive_key(master, purpose) for purpose in PURPOSES}
        # Each purpose's HMAC keyed once: a MAC copies the keyed state and hashes the message
        # (``hmac.new`` pads and hashes the key again every time: 4.4 against 2.7 µs a MAC
        # here, two of them per write under batch ingestion). The standard library's HMAC,
        # not a hand-made one: the 0.9 µs more of it are not worth crypto of our own.
        self._keyed = {
            purpose: hmac.new(key, digestmod=hashlib.sha256) for purpose, key in self._keys.items()
        }

    def _mac(self, purpose: str, message: bytes) -> str:
        mac = self._keyed[purpose].copy()
        mac.update(message)
        return mac.hexdigest()

    def participant(self, organisation_id: str, ref: str) -> str:
        return self._mac("participant", f"{organisation_id}:{ref}".encode())

    def resident(self, token: str) -> str:
        return self._mac("resident", f"resident:{token}".encode())

    def person(self, organisation_id: str, ref: str) -> str:
        """A trained professional or volunteer: the participant rule under a key of its own, so
        that a trainer and a participant with the same reference never share a pseudonym."""
        return self._mac("person", f"{organisation_id}:{ref}".encode())

    def digest(self, payload: bytes) -> str:
        """Keyed digest of a request body, for idempotency checks.

        Keyed because request bodies hold raw references: a plain hash of a short reference
        could be reversed by trying every candidate.
        """
        return self._mac("idempotency", payload)

    def attendance(
        self, organisation_id: str, activity_id: str, session_start: str, ref: str
    ) -> str:
        """The identity of one person at one session, for attendance that arrives without an id
        of its own (a spreadsheet row, a ticked list): the same row gives the same id, so sending
        it again is a replay. Keyed, because the id is stored and published while the partner's
        reference in it must not be recoverable (a plain hash of a short number is reversed by
        trying every number)."""
        parts = (organisation_id, activity_id, session_start, ref)
        return self._mac("attendance", "\x1f".join(parts).encode())

    def __repr__(self) -> str:  # never show a key, not even in a traceback
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


def participant_of(
    p: ParticipantReference, organisation_id: str, pseudonymiser: Pseudonymiser
) -> Participant:
    """Replace the partner's reference at once (domain.md §3); only coarse attributes remain
    (``lives_alone`` is not collected any more: shared/minimisation.py).

    A resident token wins over the partner's own reference: it is what lets one resident be
    counted once across organisations.
    """
    if p.resident_token:
        return Participant(
            id=pseudonymiser.resident(p.resident_token),
            scope="resident",
            neighbourhood=p.neighbourhood,
            age_band=p.age_band,
        )
    return Participant(
        id=pseudonymiser.participant(organisation_id, p.ref),
        scope="organisation",
        neighbourhood=p.neighbourhood,
        age_band=p.age_band,
    )
