"""Test fixtures. Integration tests use the real Kafka broker and PostgreSQL that `make up`
starts (or that VERBINDING_KAFKA_BOOTSTRAP / VERBINDING_DATABASE_URL point at).

Every test session gets its own database and its own topic prefix, so runs never see each
other's data. If Kafka or PostgreSQL is not reachable, the tests that need them FAIL: a test
that skips when the broker is missing would prove nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

BASE_DSN = os.environ.get(
    "VERBINDING_DATABASE_URL", "postgresql://postgres@127.0.0.1:55432/verbinding"
)
KAFKA = os.environ.get("VERBINDING_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
RUN_ID = secrets.token_hex(4)
TOPIC_PREFIX = f"t{RUN_ID}."
TEST_DB = f"verbinding_test_{RUN_ID}"
SECRET = "test-secret-of-sufficient-length-0123456789"


def _dsn_for(database: str) -> str:
    base, _, _ = BASE_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    """Environment every service built in a test reads (pydantic-settings)."""
    env = {
        "VERBINDING_ENVIRONMENT": "test",
        "VERBINDING_DATABASE_URL": _dsn_for(TEST_DB),
        "VERBINDING_KAFKA_BOOTSTRAP": KAFKA,
        "VERBINDING_TOPIC_PREFIX": TOPIC_PREFIX,
        "VERBINDING_PSEUDONYM_SECRET": SECRET,
    }
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
async def database(test_env: dict[str, str]) -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(BASE_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {BASE_DSN} ({exc!r}); run `make up` first")
    await admin.execute(f'CREATE DATABASE "{TEST_DB}"')
    await admin.close()
    yield test_env["VERBINDING_DATABASE_URL"]
    admin = await asyncpg.connect(BASE_DSN, timeout=5)
    await admin.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def kafka(test_env: dict[str, str]) -> str:
    from shared.kafka import ensure_topics, kafka_reachable

    if not await kafka_reachable(KAFKA, wait=3):
        pytest.fail(f"Kafka is not reachable at {KAFKA}; run `make up` first")
    await ensure_topics(KAFKA, TOPIC_PREFIX, partitions=4)
    return KAFKA


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    from shared.db import apply_migrations, create_pool, migration_files

    pool = await create_pool(database, max_size=10)
    async with pool.acquire() as conn:
        await apply_migrations(conn, "platform", migration_files("shared.migrations"))
    yield pool
    await pool.close()


@dataclass(frozen=True)
class Partner:
    organisation_id: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


PartnerFactory = Callable[..., Awaitable[Partner]]


@pytest.fixture(scope="session")
async def make_partner(pool: asyncpg.Pool) -> PartnerFactory:
    from shared.auth import create_organisation, issue_key

    async def factory(
        scopes: str = "activities,registrations,referrals,trainings,measurements,indicators",
        organisation_id: str | None = None,
    ) -> Partner:
        org = organisation_id or f"org-{uuid.uuid4().hex[:8]}"
        async with pool.acquire() as conn:
            await create_organisation(conn, org, f"Organisation {org}")
            key = await issue_key(conn, org, scopes.split(","))
        return Partner(org, key.secret, key.key_id)

    return factory


async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run a service's app with its lifespan (pool, migrations, relay) and a client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(scope="session")
async def registrations(pool: asyncpg.Pool, kafka: str) -> AsyncIterator[httpx.AsyncClient]:
    """The registrations service, in-process, on the test database, its relay publishing."""
    from services.registrations.bootstrap import build_app

    async for client in serve(build_app()):
        yield client


async def read_topic(topic: str, *, expect: int | None = None, timeout: float = 15.0) -> list[Any]:
    """All records of a (prefixed) topic from the beginning. With ``expect``, waits (bounded)
    until at least that many arrived, then reads a little longer so that extra copies show."""
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        name = f"{TOPIC_PREFIX}{topic}"
        cluster = await consumer._client.fetch_all_metadata()
        ids = cluster.partitions_for_topic(name) or set()
        partitions = [TopicPartition(name, p) for p in ids]
        assert partitions, f"topic {name} does not exist"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle_until: float | None = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                records.extend(msgs)
            if expect is None or len(records) >= expect:
                settle_until = settle_until or loop.time() + 1.0
                if loop.time() >= settle_until:
                    break
        return records
    finally:
        await consumer.stop()
