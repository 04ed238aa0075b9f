"""PostgreSQL access: a pool with JSON codecs, and a small SQL-file migration runner.

Why a hand-written runner rather than Alembic or yoyo: every service owns one schema and a handful
of plain SQL files; the runner is ~40 lines, takes an advisory lock so that two instances
starting together do not race, and records what it applied in ``<schema>.schema_migrations``.
Alembic would add SQLAlchemy, which nothing else here uses.

Migrations run as the admin role, which then grants each service's role its rights
(shared/db_roles.py); a service itself only checks at start that its schema is migrated.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import orjson

from shared.db_roles import (
    ensure_roles,
    grant_platform,
    grant_platform_functions,
    grant_service,
    role_of,
)

__all__ = [
    "DatabaseUnavailable",
    "PooledConnection",
    "SchemaNotMigrated",
    "apply_migrations",
    "create_pool",
    "migrate_services",
    "migration_files",
    "require_migrated",
    "session_kept",
]

log = logging.getLogger(__name__)

_GRANT_LOCK = 0x6AA47  # advisory lock: one migration of a database grants at a time

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
    # When PostgreSQL shuts down, a connection may read the FATAL message before it notices the
    # socket closing: its protocol then waits forever for the end of the failed command, and the
    # next use (the pool's reset on release, or the next request's query) fails with "another
    # operation is in progress". asyncpg terminates such a connection on release; the request is
    # as retryable as any other during the outage.
    asyncpg.exceptions.InternalClientError,
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


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool's connection that can go back without asyncpg's reset statement (``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``), a round trip on every
    release, when its last user says it left no session state behind (:func:`session_kept`).

    Only the user knows that, and only when it finished without an error: a connection that
    PostgreSQL's shutdown broke in the middle of a command is found broken by that reset (asyncpg
    then terminates it), which is why every other release still runs it. An open transaction is
    rolled back on release either way (asyncpg does that before asking for the reset query)."""

    __slots__ = ("_session_kept",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_kept = False

    def keep_session(self) -> None:
        """The next release needs no reset statement."""
        self._session_kept = True

    def get_reset_query(self) -> str:
        kept, self._session_kept = self._session_kept, False
        return "" if kept else str(super().get_reset_query())


@contextlib.asynccontextmanager
async def session_kept(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of ``pool`` (made by :func:`create_pool`) for code that sets nothing
    session-wide on it: no LISTEN, no session advisory lock, no ``SET`` without ``LOCAL``, no
    cursor ``WITH HOLD``. If that code finishes without an exception, each statement it awaited
    was answered to the end (asyncpg returns only at the server's ready-for-query), so the
    connection goes back as it came, without the reset round trip; after an exception it is
    reset (and terminated if the reset fails) as any other."""
    async with pool.acquire() as conn:
        yield conn
        keep = getattr(conn, "keep_session", None)  # absent from other pools' connections
        if keep is not None:
            keep()


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float | None = 30,
    generic_plans: bool = False,
) -> asyncpg.Pool:
    """``command_timeout``: seconds a statement may take (an answer's bound); None for a batch
    job's pool, whose bulk statements grow with the data.

    ``generic_plans``: PostgreSQL plans each prepared statement once per connection
    (``plan_cache_mode = force_generic_plan``) instead of again at every execution. Left to
    itself it keeps planning the statements whose parameters are arrays (``= ANY($1)``,
    ``unnest``, JSON columns) anew, because their generic plan's estimate (an array of unknown
    length) looks dearer than a custom plan for the values at hand; for a single write that
    was most of PostgreSQL's CPU (the read 190 µs of planning against 30 µs of execution, the
    write 230 against 125: docs/benchmarks.md). For pools whose statements are few and fixed,
    each a lookup by key or a set write whose plan does not depend on the arrays' length."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"plan_cache_mode": "force_generic_plan"} if generic_plans else None,
        connection_class=PooledConnection,
        init=_init_connection,
        command_timeout=command_timeout,
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


async def migrate_service(
    pool: asyncpg.Pool, schema: str, package: str, *, role: str | None = None
) -> None:
    """The platform schema (organisations, keys), then the service's schema: the shared tables
    every service has (outbox, idempotency, processed events) and the service's own. With
    ``role``, grant that role its rights on the schema and the platform reader its rights on
    ``platform`` (as admin; see shared/db_roles.py)."""
    async with pool.acquire() as conn:
        await apply_migrations(conn, "platform", migration_files("shared.migrations"))
        await apply_migrations(conn, schema, _service_files(package))
        if role is not None:
            async with conn.transaction():
                # Two migrations of one database at once would grant on the same objects at
                # once ("tuple concurrently updated"): one at a time.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _GRANT_LOCK)
                await grant_platform(conn)
                await grant_service(conn, schema, role)
                await grant_platform_functions(conn, schema, role)


def _service_files(package: str) -> list[Traversable]:
    return [*migration_files("shared.migrations.service"), *migration_files(package)]


async def migrate_services(
    pool: asyncpg.Pool,
    services: dict[str, str],
    passwords: dict[str, str | None] | None = None,
) -> None:
    """What ``verbinding migrate`` does to the database, as the admin role: the service roles
    (with their passwords, where given), then each service's schema (named like the service,
    migrations from ``services[name]``) with its grants."""
    async with pool.acquire() as conn:
        await ensure_roles(conn, passwords)
    for name, package in services.items():
        await migrate_service(pool, name, package, role=role_of(name))


class SchemaNotMigrated(RuntimeError):
    """A service started on a database that ``verbinding migrate`` has not (fully) prepared."""


async def require_migrated(pool: asyncpg.Pool, schema: str, package: str) -> None:
    """At a service's start: every migration of ``platform`` and of its schema is applied.

    A service role may not create or change tables, so a missing migration is an operator's
    step to take, named in the error, rather than something the service could do itself."""
    for name, files in (
        ("platform", migration_files("shared.migrations")),
        (schema, _service_files(package)),
    ):
        try:
            rows = await pool.fetch(f'SELECT name FROM "{name}".schema_migrations')
        except (
            asyncpg.exceptions.UndefinedTableError,
            asyncpg.exceptions.InvalidSchemaNameError,
            asyncpg.exceptions.InsufficientPrivilegeError,
        ):
            rows = []
        missing = sorted({f.name for f in files} - {r["name"] for r in rows})
        if missing:
            raise SchemaNotMigrated(
                f"schema {name!r} lacks the migrations {missing} (or this role may not read "
                "it): run `verbinding migrate` with the admin DSN (VERBINDING_DATABASE_URL) first"
            )
