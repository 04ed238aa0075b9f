"""Test fixtures. Integration tests use the real Kafka broker and PostgreSQL that `make up`
starts (or that VERBINDING_KAFKA_BOOTSTRAP / VERBINDING_DATABASE_URL point at).

Every test session gets its own database and its own topic prefix, so runs never see each
other's data. If Kafka or PostgreSQL is not reachable, the tests that need them FAIL: a test
that skips when the broker is missing would prove nothing.

The database is migrated as ``verbinding migrate`` does it (as the admin role, with a role per
service), and every service built here connects as its own role: the suite runs with the
separation that production has. The ``pool`` fixture is the admin's, for tests that look
everywhere. The pseudonym secret is random per session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.live import cached_kafka_lib, free_port

BASE_DSN = os.environ.get(
    "VERBINDING_DATABASE_URL", "postgresql://postgres@127.0.0.1:55432/verbinding"
)
KAFKA = os.environ.get("VERBINDING_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
RUN_ID = secrets.token_hex(4)
TOPIC_PREFIX = f"t{RUN_ID}."
TEST_DB = f"verbinding_test_{RUN_ID}"
SECRET = secrets.token_hex(32)


def _dsn_for(database: str) -> str:
    base, _, _ = BASE_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    """Environment every service built in a test reads (pydantic-settings)."""
    from shared.db_roles import SERVICE_ROLES, service_dsn

    env = {
        "VERBINDING_ENVIRONMENT": "test",
        "VERBINDING_DATABASE_URL": _dsn_for(TEST_DB),
        "VERBINDING_KAFKA_BOOTSTRAP": KAFKA,
        "VERBINDING_TOPIC_PREFIX": TOPIC_PREFIX,
        "VERBINDING_PSEUDONYM_SECRET": SECRET,
        # The referrals service's consumers, in groups of this session alone.
        "VERBINDING_ATTENDANCE_CONSUMER_GROUP": f"referrals-attendance-{RUN_ID}",
        "VERBINDING_WEBHOOK_CONSUMER_GROUP": f"referrals-webhooks-{RUN_ID}",
        # Webhook retries on a test's time scale: a receiver down for 30 s still gets its
        # deliveries (14 attempts, waits doubling from 0.5 s to at most 4 s: 33 to 44 s in
        # all); one that always fails is dead within a minute.
        "VERBINDING_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
        "VERBINDING_WEBHOOK_RETRY_MAX_SECONDS": "4",
        "VERBINDING_WEBHOOK_MAX_ATTEMPTS": "14",
        "VERBINDING_WEBHOOK_TIMEOUT_SECONDS": "3",
    }
    # Each service as its own role on the session's database (explicitly: a shell that
    # exported another DSN for a service must not point a test at another database).
    for service in SERVICE_ROLES:
        env[f"VERBINDING_{service.upper()}_DATABASE_URL"] = service_dsn(_dsn_for(TEST_DB), service)
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
async def kafka(test_env: dict[str, str]) -> AsyncIterator[str]:
    from shared.kafka import ensure_topics, kafka_reachable

    if not await kafka_reachable(KAFKA, wait=3):
        pytest.fail(f"Kafka is not reachable at {KAFKA}; run `make up` first")
    await ensure_topics(KAFKA, TOPIC_PREFIX, partitions=4)
    yield KAFKA
    # The session's topics go with it, as its database does: a broker that kept every run's
    # topics took minutes to start after a day of test runs (thousands of partitions).
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=10_000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(TOPIC_PREFIX)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """The admin's pool on the session's database, migrated like ``verbinding migrate``."""
    from services.registry import SERVICES
    from shared.db import create_pool, migrate_services

    pool = await create_pool(database, max_size=10)
    await migrate_services(pool, {name: s.migrations for name, s in SERVICES.items()})
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


@pytest.fixture(scope="session")
async def referrals(pool: asyncpg.Pool, kafka: str) -> AsyncIterator[httpx.AsyncClient]:
    """The referrals service, in-process, on the test database, its relay publishing."""
    from services.referrals.bootstrap import build_app

    async for client in serve(build_app()):
        yield client


async def read_topic(topic: str, *, expect: int | None = None, timeout: float = 15.0) -> list[Any]:
    """All records of a (prefixed) topic from the beginning. With ``expect``, waits (bounded)
    until at least that many arrived, then reads a little longer so that extra copies show."""
    from shared.kafka import topic_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False)
    await consumer.start()
    try:
        name = f"{TOPIC_PREFIX}{topic}"
        partitions = await topic_partitions(KAFKA, [name])
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


@pytest.fixture(scope="session")
async def metrics_app(pool: asyncpg.Pool, kafka: str) -> AsyncIterator[Any]:
    """The metrics service app, in-process, consuming the test topics with its own group.

    Yields the FastAPI app (its state holds the indicator service); use ``metrics`` for a client.
    """
    from services.metrics.bootstrap import build_app
    from services.metrics.settings import MetricsSettings

    settings = MetricsSettings(
        consumer_group=f"metrics-{RUN_ID}",
        snapshot_interval_seconds=1.0,
        indicator_cache_seconds=0.0,
        # Tests read right after the consumer applied what they wrote: the figures must be
        # those of the facts as they are (stale-while-revalidate has tests of its own).
        indicator_max_stale_seconds=0.0,
    )
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        # The service cuts its first release at start-up, in the background; breakdowns answer
        # 503 until then. Tests that write data and read breakdowns cut a release themselves.
        await app.state.indicators.cut_release()
        yield app


@pytest.fixture(scope="session")
async def metrics(metrics_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metrics_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture(scope="session")
async def metrics_url(metrics_app: Any) -> AsyncIterator[str]:
    """The same metrics app served over real HTTP on a free port (for a browser)."""

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The app's lifespan already runs in the metrics_app fixture; uvicorn must not run it again.
    server = uvicorn.Server(
        uvicorn.Config(metrics_app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
    )
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done() or loop.time() > deadline:
            pytest.fail("the metrics app did not start serving HTTP")
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def wait_for_events(metrics_app: Any, event_ids: Any, timeout: float = 30.0) -> None:
    """Bounded wait until the metrics service has applied these events (by CloudEvent id).

    Safer than counting: the test database is shared by the whole session, so a count can be
    reached by other tests' events before this test's are in.
    """
    wanted = [uuid.UUID(str(e)) for e in event_ids]
    pool = metrics_app.state.pool
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    done = 0
    while loop.time() < deadline:
        done = await pool.fetchval(
            "SELECT count(*) FROM metrics.processed_events WHERE event_id = ANY($1::uuid[])", wanted
        )
        if done == len(set(wanted)):
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"metrics applied only {done} of {len(set(wanted))} events within {timeout} s")


async def wait_for_applied(metrics_app: Any, at_least: int, timeout: float = 30.0) -> int:
    """Bounded wait until the metrics service has applied ``at_least`` events in total."""
    pool = metrics_app.state.pool
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    applied = 0
    while loop.time() < deadline:
        applied = await pool.fetchval("SELECT count(*) FROM metrics.processed_events")
        if applied >= at_least:
            return int(applied)
        await asyncio.sleep(0.1)
    pytest.fail(f"metrics applied only {applied} of {at_least} events within {timeout} s")


# ------------------------------------------------------------------------------------------------
# Outbox, consumer and fault tests: scratch schemas, any topic on any broker, a private broker.
# ------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
STACK = REPO / "deploy" / "local" / "stack.py"


@pytest.fixture
async def scratch_schema(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh schema holding the tables every service has (outbox, idempotency,
    processed_events), migrated with the shared migrations; dropped afterwards."""
    from shared.db import apply_migrations, migration_files

    name = f"scratch_{uuid.uuid4().hex[:12]}"
    async with pool.acquire() as conn:
        await apply_migrations(conn, name, migration_files("shared.migrations.service"))
    yield name
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def topic_prefix(kafka: str) -> str:
    """A topic prefix of this test alone: the topics under it hold only what the test wrote."""
    return f"{TOPIC_PREFIX}{uuid.uuid4().hex[:8]}."


async def read_records(
    topic: str | Sequence[str],
    *,
    bootstrap: str = KAFKA,
    expect: int | None = None,
    until: Callable[[list[Any]], bool] | None = None,
    timeout: float = 15.0,
    settle: float = 1.0,
) -> list[Any]:
    """All records of ``topic`` (full names; one or several) on ``bootstrap``, from the
    beginning up to at least the end offsets at the time of the call.

    With ``expect`` (a count) or ``until`` (a condition on the records read so far): also
    waits, bounded by ``timeout``, for that; then keeps reading for ``settle`` seconds so that
    extra copies would show. After ``timeout`` it returns what it has, for the test's
    assertions to judge. Records are sorted by topic, partition and offset."""
    from shared.kafka import topic_partitions

    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000
    )
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: list[TopicPartition] = []
        for name in topics:
            while True:
                found = await topic_partitions(bootstrap, [name])
                if found:
                    partitions.extend(found)
                    break
                assert loop.time() < deadline, f"topic {name} does not exist on {bootstrap}"
                await asyncio.sleep(0.1)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        waiting = expect is not None or until is not None
        records: list[Any] = []
        settle_until: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                records.extend(msgs)
            caught_up = True
            for tp in partitions:
                if await consumer.position(tp) < ends[tp]:
                    caught_up = False
                    break
            satisfied = (
                caught_up
                and (expect is None or len(records) >= expect)
                and (until is None or until(records))
            )
            if satisfied and not waiting:
                break
            if satisfied:
                settle_until = settle_until or loop.time() + settle
                if loop.time() >= settle_until:
                    break
            elif loop.time() >= deadline:
                break
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        await consumer.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 20.0,
    what: str = "condition",
    explain: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` (and what ``explain`` says about
    the state of things) after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() >= deadline:
            detail = f"\n{await explain()}" if explain is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        await asyncio.sleep(0.05)


@dataclass
class PrivateKafka:
    """A single-node broker of one test alone, started and stopped with deploy/local/stack.py.

    Fault tests stop and kill it at will; the shared broker is never touched."""

    state_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            VERBINDING_STATE_DIR=str(self.state_dir),
            VERBINDING_KAFKA_PORT=str(self.port),
            VERBINDING_KAFKA_CONTROLLER_PORT=str(self.controller_port),
            VERBINDING_START_TIMEOUT="60",
        )
        env.pop("VERBINDING_KAFKA_LIB", None)
        lib = cached_kafka_lib()
        if lib:
            env["VERBINDING_KAFKA_LIB"] = lib
        return env

    async def _stack(self, command: str, timeout: float = 120.0) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(STACK),
            command,
            env=self._env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            pytest.fail(f"stack.py {command} did not finish within {timeout:.0f}s")
        if proc.returncode != 0:
            pytest.fail(f"stack.py {command} failed (exit {proc.returncode}):\n{out.decode()}")

    async def start(self) -> None:
        """Start (or restart) the broker and wait until it serves metadata."""
        from shared.kafka import ensure_topics

        await self._stack("kafka-start")
        # The port opens before the broker can create topics: retry, bounded.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            try:
                await ensure_topics(self.bootstrap, "ready-check.", topics=[])
                return
            except Exception:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await self._stack("kafka-stop")

    async def kill(self) -> None:
        await self._stack("kafka-kill")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.state_dir / "kafka" / "broker.log").read_text(errors="replace")
        except OSError as exc:
            return f"(no broker log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
async def private_kafka(tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    """A private broker, NOT started: the test starts, stops or kills it. Always stopped in
    teardown (SIGTERM, then SIGKILL), whatever the test did."""
    broker = PrivateKafka(tmp_path / "stack", free_port(), free_port())
    try:
        yield broker
    finally:
        try:
            await broker.stop()
        except BaseException:
            await broker.kill()


def event_id_of(record: Any) -> str | None:
    """The CloudEvent id of a Kafka record, or None for a record that is not an event (other
    tests put poison messages on the session's topics on purpose)."""
    try:
        doc = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return doc.get("id") if isinstance(doc, dict) else None


async def subject_id_of(pool: asyncpg.Pool, schema: str, pseudonym: str) -> str:
    """The subject id under which a writing service publishes the person with ``pseudonym``
    (shared/subjects.py): events carry it, never the pseudonym."""
    found = await pool.fetchval(
        f'SELECT subject_id FROM "{schema}".subjects WHERE pseudonym = $1', pseudonym
    )
    assert found is not None, f"{schema} has no subject id for that pseudonym"
    return str(found)
