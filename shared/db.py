"""PostgreSQL access: a pool with JSON codecs, and a small SQL-file migration runner.

Why a hand-written runner rather than Alembic or yoyo: every service owns one schema and a handful
of plain SQL files; the runner is ~40 lines, takes an advisory lock so that two instances
starting together do not race, and records what it applied in ``<schema>.schema_migrations``.
Alembic would add SQLAlchemy, which nothing else here uses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import orjson

__all__ = ["DatabaseUnavailable", "apply_migrations", "create_pool", "migration_files"]

log = logging.getLogger(__name__)

# Errors that mean "the database is not there right now" (the service answers 503, not 500),
# and transient conflicts a retry resolves: neither may be mistaken for a bad event or request.
DatabaseUnavailable: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    TimeoutError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=30,
        timeout=5,
    )
    assert pool is not None
    return pool


def migration_files(package: str) -> list[Traversable]:
    """The ``NNN_name.sql`` files of a package, in order."""
    root = resources.files(package)
    return sorted((f for f in root.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)


async def apply_migrations(
    conn: asyncpg.Connection, schema: str, files: Iterable[Traversable]
) -> list[str]:
    """Apply the files not yet applied to ``schema``, each in its own transaction."""
    applied: list[str] = []
    lock_id = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big")
    await conn.execute("SELECT pg_advisory_lock($1)", lock_id)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')
        }
        for file in files:
            if file.name in done:
                continue
            sql = file.read_text(encoding="utf-8")
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)', file.name
                )
            log.info("migration applied", extra={"schema": schema, "migration": file.name})
            applied.append(file.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)
    return applied


def as_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def migrate_service(pool: asyncpg.Pool, schema: str, package: str) -> None:
    """The platform schema (organisations, keys), then the service's schema: the shared tables
    every service has (outbox, idempotency, processed events) and the service's own."""
    async with pool.acquire() as conn:
        await apply_migrations(conn, "platform", migration_files("shared.migrations"))
        await apply_migrations(
            conn, schema, [*migration_files("shared.migrations.service"), *migration_files(package)]
        )
