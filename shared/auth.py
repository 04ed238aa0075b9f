"""API keys with scopes (contract.md "HTTP, common to every service").

A key looks like ``vb_<key id>_<secret>``. Only the SHA-256 of the whole key is stored: keys are
256-bit random values, so a slow password hash would add latency to every request without adding
protection. The organisation of every write is the key's, never a field of the body.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

__all__ = [
    "ApiKey",
    "Principal",
    "Scope",
    "authenticate",
    "create_organisation",
    "issue_key",
    "organisation_exists",
    "revoke_key",
]


class Scope(StrEnum):
    ACTIVITIES = "activities"
    REGISTRATIONS = "registrations"
    REFERRALS = "referrals"
    TRAININGS = "trainings"
    MEASUREMENTS = "measurements"
    INDICATORS = "indicators"
    # The programme's analysts: the indicators also broken down by organisation (domain.md §7).
    INDICATORS_ORGANISATIONS = "indicators:organisations"
    # The Prometheus scrape credential: `GET /metrics` of every service.
    METRICS = "metrics"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an organisation and what its key may do."""

    organisation_id: str
    key_id: str
    scopes: frozenset[str]

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    organisation_id: str
    secret: str  # shown once, never stored


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_organisation(conn: asyncpg.Connection, organisation_id: str, name: str) -> bool:
    """Register a partner organisation; False if it already existed (then the name is updated)."""
    row = await conn.fetchrow(
        "INSERT INTO platform.organisations (id, name) VALUES ($1, $2) "
        "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0) AS inserted",
        organisation_id,
        name,
    )
    return bool(row and row["inserted"])


async def organisation_exists(conn: asyncpg.Connection, organisation_id: str) -> bool:
    """Whether ``organisation_id`` is a registered partner (e.g. the target of a referral)."""
    return bool(
        await conn.fetchval("SELECT 1 FROM platform.organisations WHERE id = $1", organisation_id)
    )


async def issue_key(
    conn: asyncpg.Connection, organisation_id: str, scopes: Iterable[str]
) -> ApiKey:
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in {m.value for m in Scope}]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {[m.value for m in Scope]}")
    key_id = secrets.token_hex(6)
    secret = f"vb_{key_id}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        "INSERT INTO platform.api_keys (id, organisation_id, key_hash, scopes) VALUES ($1,$2,$3,$4)",
        key_id,
        organisation_id,
        _hash(secret),
        wanted,
    )
    return ApiKey(key_id=key_id, organisation_id=organisation_id, secret=secret)


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE platform.api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        key_id,
    )
    return status.endswith(" 1")


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Principal | None:
    """The principal of a key, or None if the key is unknown or revoked.

    Looked up on every request (an indexed read), so a revoked key stops working at once.
    """
    row = await conn.fetchrow(
        "SELECT id, organisation_id, scopes FROM platform.api_keys "
        "WHERE key_hash = $1 AND revoked_at IS NULL",
        _hash(key),
    )
    if row is None:
        return None
    return Principal(row["organisation_id"], row["id"], frozenset(row["scopes"]))
