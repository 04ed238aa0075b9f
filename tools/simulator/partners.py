"""The simulated partners' API keys: created in the platform's database, kept in a JSON file.

Creation goes through ``shared.auth`` and ``shared.partners``, the code paths of ``verbinding
partner create`` and ``verbinding partner register``, so a simulated partner is an organisation
with a key and a registered coalition partner exactly like a real one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import orjson

from tools.simulator.scenario import Organisation

__all__ = ["PARTNER_SCOPES", "create_partners", "read_keys", "write_keys"]

PARTNER_SCOPES = ("activities", "registrations", "referrals", "trainings", "measurements")


async def create_partners(
    database_url: str,
    organisations: Iterable[Organisation],
    scopes: Iterable[str] = PARTNER_SCOPES,
    *,
    joined: date,
) -> dict[str, str]:
    """Create each organisation (or keep it), issue it a new key, and register it as a partner
    of the coalition from ``joined``; ``{org_id: key}``."""
    from shared.auth import create_organisation, issue_key
    from shared.db import apply_migrations, create_pool, migration_files
    from shared.partners import register

    wanted = list(scopes)
    keys: dict[str, str] = {}
    pool = await create_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "platform", migration_files("shared.migrations"))
            async with conn.transaction():
                for org in organisations:
                    await create_organisation(conn, org.id, org.name)
                    await register(conn, org.id, org.name, joined)
                    keys[org.id] = (await issue_key(conn, org.id, wanted)).secret
    finally:
        await pool.close()
    return keys


def write_keys(path: Path, keys: dict[str, str]) -> None:
    """Owner-only: the file holds live API keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(keys, option=orjson.OPT_INDENT_2) + b"\n")
    tmp.replace(path)


def read_keys(path: Path) -> dict[str, str]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise SystemExit(
            f"keys file {path} does not exist; create partners with --create-partners"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise SystemExit(f"keys file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise SystemExit(f"keys file {path} must be a JSON object of organisation id to API key")
    return data
