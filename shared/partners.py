"""The partner registry: which organisations are the coalition's partners, from when to when.

Only the `verbinding partner` command writes it; the metrics service reads it (a partner counts at
the end of a period when it joined on or before that day and had not left by then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from shared.identifiers import organisation_id_problem

__all__ = ["Partner", "PartnerError", "leave", "partners", "register"]


class PartnerError(ValueError):
    """A registry change that cannot be made; the message says why."""


@dataclass(frozen=True)
class Partner:
    organisation_id: str
    name: str
    joined: date
    left_on: date | None


async def register(conn: asyncpg.Connection, organisation_id: str, name: str, joined: date) -> bool:
    """Register a partner, or update its name and joining date; True if it is new.

    The registry holds one membership per organisation: registering one that had left makes it a
    partner again from ``joined`` on.
    """
    problem = organisation_id_problem(organisation_id)
    if problem:
        raise PartnerError(problem)
    if not name.strip():
        raise PartnerError("a partner needs a name")
    row = await conn.fetchrow(
        "INSERT INTO platform.partners (organisation_id, name, joined) VALUES ($1, $2, $3) "
        "ON CONFLICT (organisation_id) DO UPDATE SET name = EXCLUDED.name, "
        "joined = EXCLUDED.joined, left_on = NULL RETURNING (xmax = 0) AS inserted",
        organisation_id,
        name.strip(),
        joined,
    )
    return bool(row and row["inserted"])


async def leave(conn: asyncpg.Connection, organisation_id: str, on: date) -> None:
    """Record that a partner left: from ``on`` it no longer counts."""
    joined = await conn.fetchval(
        "SELECT joined FROM platform.partners WHERE organisation_id = $1", organisation_id
    )
    if joined is None:
        raise PartnerError(f"{organisation_id!r} is not a registered partner")
    if on <= joined:
        raise PartnerError(f"{organisation_id!r} joined on {joined}; it can only leave after that")
    await conn.execute(
        "UPDATE platform.partners SET left_on = $2 WHERE organisation_id = $1", organisation_id, on
    )


async def partners(conn: asyncpg.Connection) -> list[Partner]:
    rows = await conn.fetch(
        "SELECT organisation_id, name, joined, left_on FROM platform.partners "
        "ORDER BY organisation_id"
    )
    return [Partner(**dict(r)) for r in rows]
