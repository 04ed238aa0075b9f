"""Least privilege in PostgreSQL (issue 17): each service's role reads and writes its own schema
and reads ``platform``, and nothing else — not another service's schema, not the structure of
its own; the services of this suite really connect as those roles; creating the roles is safe
when several sessions do it at once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
from services.metrics.service_layer.rebuild import rebuild
from shared.db import SchemaNotMigrated, migrate_service
from shared.db_roles import PLATFORM_READER, SERVICE_ROLES, ensure_roles, service_dsn
from shared.kafka import ensure_topics
from tests.conftest import KAFKA, TEST_DB, _dsn_for

pytestmark = pytest.mark.integration

SERVICES = tuple(SERVICE_ROLES)
# A table of every service schema (the shared ones every service has) and of platform.
OWN_TABLE = "outbox"
PLATFORM_TABLES = ("organisations", "api_keys")


@contextlib.asynccontextmanager
async def as_role(service: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(service_dsn(_dsn_for(TEST_DB), service), timeout=5)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_role_does_its_own_work(pool, service):
    async with as_role(service) as conn:
        assert await conn.fetchval("SELECT current_user") == SERVICE_ROLES[service]
        for table in PLATFORM_TABLES:
            await conn.fetch(f"SELECT * FROM platform.{table} LIMIT 1")
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO {service}.outbox (event_id, topic, key, value) "
                "VALUES ($1, 'role-test', 'k', 'v')",
                uuid.uuid4(),
            )
            assert await conn.fetchval(f"SELECT count(*) FROM {service}.outbox") >= 1
            await conn.execute(f"DELETE FROM {service}.outbox WHERE topic = 'role-test'")
        migrations = await conn.fetch(f"SELECT name FROM {service}.schema_migrations")
        assert migrations, "the service checks its migrations at start"


@pytest.mark.parametrize(
    ("service", "other"), [(s, o) for s in SERVICES for o in SERVICES if s != o]
)
async def test_a_role_cannot_read_another_services_schema(pool, service, other):
    async with as_role(service) as conn:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetch(f"SELECT * FROM {other}.{OWN_TABLE} LIMIT 1")
        tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", other)
        assert len(tables) >= 4
        for row in tables:  # not one table of it, not only the outbox
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch(f'SELECT 1 FROM {other}."{row["tablename"]}" LIMIT 1')


@pytest.mark.parametrize("service", SERVICES)
async def test_a_role_cannot_change_structure_or_platform(pool, service):
    async with as_role(service) as conn:
        denied = [
            f"CREATE TABLE {service}.intruder (x int)",
            f"ALTER TABLE {service}.outbox ADD COLUMN intruder int",
            f"DROP TABLE {service}.outbox",
            "CREATE SCHEMA intruder",
            f"INSERT INTO {service}.schema_migrations (name) VALUES ('999_intruder.sql')",
            "INSERT INTO platform.organisations (id, name) VALUES ('intruder', 'x')",
            "UPDATE platform.api_keys SET revoked_at = NULL",
            "DELETE FROM platform.api_keys",
        ]
        for statement in denied:
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(statement)


async def test_the_suites_services_connect_as_their_roles(
    registrations, referrals, metrics_app, pool
):
    """Every service the other tests use holds connections as its own role, never as admin."""
    await registrations.get("/readyz")
    await referrals.get("/readyz")
    users = {
        r["usename"]
        for r in await pool.fetch(
            "SELECT usename FROM pg_stat_activity WHERE datname = $1", TEST_DB
        )
    }
    assert set(SERVICE_ROLES.values()) <= users
    assert await metrics_app.state.pool.fetchval("SELECT current_user") == "verbinding_metrics"


async def test_a_service_on_an_unmigrated_database_says_what_to_do(pool, test_env):
    from services.metrics.bootstrap import build_app
    from services.metrics.settings import MetricsSettings

    name = f"{TEST_DB}_empty"
    await pool.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = MetricsSettings(
            metrics_database_url=service_dsn(_dsn_for(name), "metrics"), consume=False
        )
        app = build_app(settings)
        with pytest.raises(SchemaNotMigrated, match="run `verbinding migrate`"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_rebuild_grants_the_metrics_role_on_the_swapped_in_schema(pool, topic_prefix):
    """`verbinding metrics rebuild` runs as admin and swaps in a fresh schema: the metrics
    role must be able to use it at once."""
    await ensure_topics(KAFKA, topic_prefix, partitions=1)
    live = f"mrole_{uuid.uuid4().hex[:10]}"
    await migrate_service(
        pool, live, "services.metrics.adapters.migrations", role="verbinding_metrics"
    )
    try:
        report = await rebuild(
            pool, KAFKA, CONSUMED_TOPICS, schema=live, prefix=topic_prefix,
            grant_to="verbinding_metrics",
        )  # fmt: skip
        assert report.swapped
        async with as_role("metrics") as conn:
            await conn.execute(
                f"INSERT INTO {live}.processed_batches "
                "(topic, kafka_partition, event_ids, kafka_offsets) VALUES ('t', 0, $1, '{0}')",
                uuid.uuid4().bytes,
            )
            assert await conn.fetchval(f"SELECT count(*) FROM {live}.processed_events") == 1
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute(f"DROP TABLE {live}.processed_batches")
    finally:
        await pool.execute(f'DROP SCHEMA IF EXISTS "{live}" CASCADE')


async def test_creating_roles_is_safe_from_parallel_sessions(pool):
    """Roles belong to the whole cluster, which several engineers' test sessions share: many
    sessions creating the same roles at the same moment all succeed, and the roles end up
    right. (Throwaway role names: the real ones are in use by other sessions.)"""
    tag = uuid.uuid4().hex[:8]
    roles = {service: f"vbtest_{tag}_{service}" for service in SERVICES}
    reader = f"vbtest_{tag}_reader"
    other_db = f"{TEST_DB}_roles"
    await pool.execute(f'CREATE DATABASE "{other_db}"')
    conns = [
        await asyncpg.connect(_dsn_for(TEST_DB if i % 2 else other_db), timeout=5) for i in range(6)
    ]
    try:
        await asyncio.gather(*(ensure_roles(c, roles=roles, reader=reader) for c in conns))
        # docker-compose's migrate: the password of a service's DSN, set on its role.
        password = "pw-" + uuid.uuid4().hex
        await asyncio.gather(
            *(ensure_roles(c, {"metrics": password}, roles=roles, reader=reader) for c in conns)
        )
        with_password = await pool.fetch(
            "SELECT rolname FROM pg_authid WHERE rolname = ANY($1::text[]) "
            "AND rolpassword IS NOT NULL",
            list(roles.values()),
        )
        assert [r["rolname"] for r in with_password] == [roles["metrics"]]
        rows = await pool.fetch(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, "
            "pg_has_role(rolname, $2, 'MEMBER') AS reads_platform "
            "FROM pg_roles WHERE rolname = ANY($1::text[])",
            list(roles.values()),
            reader,
        )
        assert sorted(r["rolname"] for r in rows) == sorted(roles.values())
        for r in rows:
            assert r["rolcanlogin"]
            assert not any(r[k] for k in ("rolsuper", "rolcreatedb", "rolcreaterole"))
            assert r["reads_platform"]
    finally:
        for c in conns:
            await c.close()
        await pool.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')
        for role in [*roles.values(), reader]:
            await pool.execute(f"DROP ROLE IF EXISTS {role}")


async def test_the_real_roles_exist_with_no_more_than_login(pool):
    rows = await pool.fetch(
        "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls "
        "FROM pg_roles WHERE rolname = ANY($1::text[])",
        [*SERVICE_ROLES.values(), PLATFORM_READER],
    )
    by_name = {r["rolname"]: r for r in rows}
    assert set(by_name) == {*SERVICE_ROLES.values(), PLATFORM_READER}
    assert not by_name[PLATFORM_READER]["rolcanlogin"]
    for role in SERVICE_ROLES.values():
        r = by_name[role]
        assert r["rolcanlogin"]
        assert not any(r[k] for k in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolbypassrls"))
