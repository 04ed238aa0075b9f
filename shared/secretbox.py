"""Secrets the platform must read back (a webhook's signing secret: HMAC needs the secret
itself, unlike an API key, which is stored as its hash), encrypted at rest with AES-256-GCM
under a key derived from the master secret (HKDF, purpose ``webhook-secrets``,
shared/pseudonym.py). A dump of the database alone opens none of them."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.pseudonym import derive_key

__all__ = ["SecretBox"]

_NONCE = 12


class SecretBox:
    def __init__(self, master: str | bytes, purpose: str = "webhook-secrets") -> None:
        raw = master.encode() if isinstance(master, str) else master
        self._aead = AESGCM(derive_key(raw, purpose))

    def seal(self, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), None)

    def open(self, sealed: bytes) -> str:
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], None).decode()

    def __repr__(self) -> str:  # never show a key
        return "SecretBox(<key>)"
