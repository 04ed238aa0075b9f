"""Least privilege in PostgreSQL: one login role per service, limited to its own schema.

* ``verbinding_registrations``, ``verbinding_referrals``, ``verbinding_metrics``: each may read
  and write the tables of its own schema (``registrations``, ``referrals``, ``metrics``) and
  nothing else; none owns anything, so none can change a table, create a schema or read another
  service's schema.
* ``verbinding_platform_reader`` (no login): read access to the ``platform`` schema, which every
  service needs to authenticate (organisations, API keys, the partner registry). Every service
  role is a member.
* ``verbinding_registrations`` may also call the two functions of :data:`PLATFORM_FUNCTIONS`,
  which issue and revoke volunteer keys (scope ``attendance`` only) and can do nothing else.
* The admin role (``VERBINDING_DATABASE_URL``: ``postgres`` locally, ``verbinding`` in
  docker-compose) owns every table, runs the migrations and grants; ``verbinding migrate`` does
  both.

Roles are cluster-wide while grants are per database, and several test sessions migrate their
own databases on one cluster at once: creating the roles is idempotent and retried when another
session created or changed them at the same moment.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

__all__ = [
    "PLATFORM_FUNCTIONS",
    "PLATFORM_READER",
    "SERVICE_ROLES",
    "ensure_roles",
    "grant_platform",
    "grant_platform_functions",
    "grant_service",
    "role_of",
    "service_dsn",
]

SERVICE_ROLES: dict[str, str] = {
    "registrations": "verbinding_registrations",
    "referrals": "verbinding_referrals",
    "metrics": "verbinding_metrics",
}
PLATFORM_READER = "verbinding_platform_reader"
# What a service may do in ``platform`` besides reading it: call these SECURITY DEFINER functions
# (shared/migrations/002_volunteer_keys.sql), never write a table.
PLATFORM_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "registrations": (
        "platform.issue_volunteer_key(text, text, bytea, text, text)",
        "platform.revoke_volunteer_key(text, text)",
    ),
}


def role_of(service: str) -> str:
    """The database role of a service (its schema has the service's name)."""
    return SERVICE_ROLES[service]


def service_dsn(admin_dsn: str, service: str) -> str:
    """The admin's server and database, as the service's own role and without the admin's
    password (the local stack trusts connections on 127.0.0.1; elsewhere give each service a
    DSN of its own, ``VERBINDING_<SERVICE>_DATABASE_URL``)."""
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "password")])
    return urlunsplit(parts._replace(netloc=f"{role_of(service)}@{host}", query=query))


# Another session creating or granting the same cluster-wide role at the same moment.
_RACES = (
    asyncpg.exceptions.UniqueViolationError,
    asyncpg.exceptions.DuplicateObjectError,
    asyncpg.exceptions.InternalServerError,  # "tuple concurrently updated"
)


async def ensure_roles(
    conn: asyncpg.Connection,
    passwords: Mapping[str, str | None] | None = None,
    *,
    roles: Mapping[str, str] = SERVICE_ROLES,
    reader: str = PLATFORM_READER,
) -> None:
    """Create the service roles and the platform reader if missing; set a service role's
    password where ``passwords`` gives one (docker-compose), leave it alone otherwise.
    (``roles`` and ``reader`` differ from the defaults only in the test of the races.)"""
    for attempt in range(8):
        try:
            await _ensure_roles_once(conn, passwords or {}, roles, reader)
            return
        except _RACES:
            if attempt == 7:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.3))  # noqa: S311 - jitter, not a secret


async def _ensure_roles_once(
    conn: asyncpg.Connection,
    passwords: Mapping[str, str | None],
    roles: Mapping[str, str],
    reader: str,
) -> None:
    existing = {
        r["rolname"]
        for r in await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])",
            [reader, *roles.values()],
        )
    }
    if reader not in existing:
        await conn.execute(f"CREATE ROLE {reader} NOLOGIN")
    for service, role in roles.items():
        if role not in existing:
            # No superuser, no CREATEDB/CREATEROLE, no replication: a login that can use what
            # it is granted and nothing more.
            await conn.execute(
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
            )
        if not await conn.fetchval("SELECT pg_has_role($1, $2, 'MEMBER')", role, reader):
            await conn.execute(f"GRANT {reader} TO {role}")
        password = passwords.get(service)
        if password:
            # format() quotes the password as a literal: ALTER ROLE takes no bind parameters.
            statement = await conn.fetchval(
                "SELECT format('ALTER ROLE %I WITH PASSWORD %L', $1::text, $2::text)",
                role,
                password,
            )
            await conn.execute(statement)


async def grant_platform(conn: asyncpg.Connection) -> None:
    """Read access to every table of ``platform`` (what authentication needs: organisations,
    API keys, the partner registry). Nothing there is personal data; only the admin writes it."""
    await conn.execute(f"GRANT USAGE ON SCHEMA platform TO {PLATFORM_READER}")
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA platform TO {PLATFORM_READER}")


async def grant_platform_functions(conn: asyncpg.Connection, service: str, role: str) -> None:
    """Let ``role`` call the ``platform`` functions of its service (:data:`PLATFORM_FUNCTIONS`)."""
    await conn.execute(f"GRANT USAGE ON SCHEMA platform TO {role}")
    for function in PLATFORM_FUNCTIONS.get(service, ()):
        await conn.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {role}")


async def grant_service(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """A service role's rights on its own schema: read and write rows, nothing structural.
    Run after every migration, so that tables added later are covered too."""
    await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
    await conn.execute(
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}'
    )
    await conn.execute(
        f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}'
    )
    # The service checks which migrations were applied; only the admin records them.
    await conn.execute(f'REVOKE INSERT, UPDATE, DELETE ON "{schema}".schema_migrations FROM {role}')
