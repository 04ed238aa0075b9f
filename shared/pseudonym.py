"""Keyed pseudonyms for participant references, resident tokens and person references.

domain.md §3: a partner's own reference never enters the platform. It is replaced on arrival by
``HMAC-SHA256(secret, organisation_id + ":" + ref)``; a coalition-wide resident token by
``HMAC-SHA256(secret, "resident:" + token)``, which lets one resident be counted once across
organisations. The secret comes from settings and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Pseudonymiser"]


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
