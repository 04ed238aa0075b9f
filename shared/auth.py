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
from datetime import datetime
from enum import StrEnum

import asyncpg

from shared.identifiers import organisation_id_problem

__all__ = [
    "VOLUNTEER_LABEL_MAX",
    "ApiKey",
    "KeyInfo",
    "Principal",
    "Scope",
    "authenticate",
    "create_organisation",
    "issue_key",
    "issue_volunteer_key",
    "organisation_exists",
    "revoke_key",
    "revoke_volunteer_key",
    "volunteer_keys",
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
    # A volunteer's key: keep the organisation's activities and record attendance, nothing
    # else (no registrations, no referrals). Issued and revoked by the organisation itself.
    ATTENDANCE = "attendance"
    # Manage the organisation's volunteer keys (issue, list, revoke) over the API.
    KEYS = "keys"
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


@dataclass(frozen=True)
class KeyInfo:
    """What a list of keys shows: never the key, never its hash."""

    key_id: str
    scopes: tuple[str, ...]
    label: str | None
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


# The label a coordinator gives a volunteer key ("tablet buurthuis"); the database checks it too.
VOLUNTEER_LABEL_MAX = 80


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    return key_id, f"vb_{key_id}_{secrets.token_urlsafe(32)}"


async def create_organisation(conn: asyncpg.Connection, organisation_id: str, name: str) -> bool:
    """Create an organisation that can hold API keys; False if it already existed (then the name
    is updated). Raises ValueError, creating nothing, for an id the event contracts would refuse."""
    problem = organisation_id_problem(organisation_id)
    if problem:
        raise ValueError(problem)
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
    key_id, secret = _new_key()
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


async def issue_volunteer_key(
    conn: asyncpg.Connection, organisation_id: str, label: str | None, created_by: str | None
) -> ApiKey:
    """A key with exactly the scope ``attendance`` for one of the organisation's volunteers.

    Goes through ``platform.issue_volunteer_key`` (shared/migrations/002_volunteer_keys.sql):
    the registrations service's role may call that function but not write ``platform``.
    """
    key_id, secret = _new_key()
    await conn.execute(
        "SELECT platform.issue_volunteer_key($1, $2, $3, $4, $5)",
        organisation_id,
        key_id,
        _hash(secret),
        label,
        created_by,
    )
    return ApiKey(key_id=key_id, organisation_id=organisation_id, secret=secret)


async def revoke_volunteer_key(conn: asyncpg.Connection, organisation_id: str, key_id: str) -> bool:
    """Revoke a volunteer key of this organisation; False if there is no such active key
    (another organisation's key, a key with other scopes and an unknown id alike)."""
    return bool(
        await conn.fetchval("SELECT platform.revoke_volunteer_key($1, $2)", organisation_id, key_id)
    )


async def volunteer_keys(conn: asyncpg.Connection, organisation_id: str) -> list[KeyInfo]:
    """The organisation's volunteer keys (scope ``attendance`` only), newest first."""
    rows = await conn.fetch(
        "SELECT id, scopes, label, created_at, created_by, revoked_at FROM platform.api_keys "
        "WHERE organisation_id = $1 AND scopes = $2::text[] ORDER BY created_at DESC, id",
        organisation_id,
        [Scope.ATTENDANCE.value],
    )
    return [
        KeyInfo(
            key_id=r["id"],
            scopes=tuple(r["scopes"]),
            label=r["label"],
            created_at=r["created_at"],
            created_by=r["created_by"],
            revoked_at=r["revoked_at"],
        )
        for r in rows
    ]


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
