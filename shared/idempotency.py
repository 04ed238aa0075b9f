"""Safe partner retries: same id + same body answers as the first time; another body is 409.

The check and the state change happen in one transaction; a transaction-scoped advisory lock on
(schema, organisation, kind, id) makes two concurrent identical requests queue instead of both
passing the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shared.errors import ConflictError
from shared.pseudonym import Pseudonymiser

__all__ = ["IdempotencyConflict", "Replay", "check", "remember", "request_digest"]


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


class IdempotencyConflict(ConflictError):
    def __init__(self, kind: str, item_id: str) -> None:
        super().__init__(
            f"{kind} {item_id!r} was already written with a different body; "
            "use a new id for a new write"
        )
        self.kind = kind
        self.item_id = item_id


def request_digest(
    pseudonymiser: Pseudonymiser, kind: str, item_id: str, body: dict[str, Any]
) -> str:
    canonical = orjson.dumps([kind, item_id, body], option=orjson.OPT_SORT_KEYS)
    return pseudonymiser.digest(canonical)


async def check(
    conn: asyncpg.Connection,
    schema: str,
    organisation_id: str,
    kind: str,
    item_id: str,
    digest: str,
) -> Replay | None:
    """Inside a transaction: the earlier answer to replay, None if this is the first time.

    Raises :class:`IdempotencyConflict` if the id was used with another body.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"{schema}\x1f{organisation_id}\x1f{kind}\x1f{item_id}",
    )
    row = await conn.fetchrow(
        f'SELECT request_digest, response FROM "{schema}".idempotency '
        "WHERE organisation_id = $1 AND kind = $2 AND item_id = $3",
        organisation_id,
        kind,
        item_id,
    )
    if row is None:
        return None
    if row["request_digest"] != digest:
        raise IdempotencyConflict(kind, item_id)
    return Replay(200, row["response"])


async def remember(
    conn: asyncpg.Connection,
    schema: str,
    organisation_id: str,
    kind: str,
    item_id: str,
    digest: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        f'INSERT INTO "{schema}".idempotency '
        "(organisation_id, kind, item_id, request_digest, status_code, response) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        organisation_id,
        kind,
        item_id,
        digest,
        status_code,
        body,
    )
