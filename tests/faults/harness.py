"""The fault suite's machinery: a private stack, one deployment per scenario, a simulated load,
and the checks that nothing accepted was lost or counted twice.

* :class:`Stack` — Kafka, PostgreSQL and the services of the suite alone, on free ports and in a
  temporary state directory, started, stopped and killed with ``deploy/local/stack.py`` (the
  shared broker and database of the other engineers are never touched). Kafka and PostgreSQL
  get a state directory each and so does every service process, so that stack.py's lock never
  makes one wait for another.
* :class:`Deployment` — one scenario's database, topic prefix and consumer group on that stack,
  the three services started against them, and the simulated partners' keys.
* :class:`Load` — the simulator's writes sent through the public HTTP API (``POST /v1/batch``),
  with retries and a ledger of what got a 2xx, plus every HTTP status seen on the way.
* :func:`verify` — the figures of ``/v1/indicators`` against ``expected_figures`` of the ledger,
  per period and indicator, and the facts against the accepted writes, one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.live import REPO, VERBINDING, cached_kafka_lib, free_port
from tools.simulator import (
    SendOptions,
    Summary,
    Write,
    accepted_writes,
    expected_figures,
    generate,
    plan_batches,
    published,
    read_ledger,
    send,
)
from tools.simulator.partners import create_partners
from tools.simulator.scenario import default_scenario

__all__ = [
    "SECRET",
    "Deployment",
    "Load",
    "ScenarioResult",
    "Stack",
    "Verdict",
    "periods_to_compare",
    "verify",
]

STACK = REPO / "deploy" / "local" / "stack.py"
SECRET = secrets.token_hex(32)  # random per run: no pseudonym secret is ever a constant
SERVICES = ("registrations", "referrals", "metrics")
# What a simulator write becomes in the metrics service's facts, and how its key is read there:
# write kind -> (fact table, the writing organisation, the write's id).
FACTS = {
    "activity": ("activity_versions", "organisation_id", "activity_id"),
    "registration": ("registrations", "organisation_id", "registration_id"),
    "cancellation": ("cancellations", "organisation_id", "registration_id"),
    "attendance": ("attendance", "organisation_id", "attendance_id"),
    "referral": ("referrals", "organisation_id", "referral_id"),
    # Written by the side that made the change (the receiving side, or the referrer).
    "referral_status": ("referral_status", "changed_by", "referral_id || ':' || status"),
    "training": ("trainings", "organisation_id", "training_id"),
    "measurement": ("measurements", "organisation_id", "measurement_id"),
}


# ------------------------------------------------------------------------------------- stack


@dataclass
class Stack:
    """The suite's own Kafka and PostgreSQL (and, per deployment, services), via stack.py."""

    root: Path
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    log: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def dsn(self, database: str = "verbinding") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{database}"

    def env(self, state: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("VERBINDING_")
        }  # nothing of the shared stack's settings may leak into the private one
        env.update(
            VERBINDING_STATE_DIR=str(self.root / state),
            VERBINDING_KAFKA_PORT=str(self.kafka_port),
            VERBINDING_KAFKA_CONTROLLER_PORT=str(self.controller_port),
            VERBINDING_PG_PORT=str(self.pg_port),
            VERBINDING_START_TIMEOUT="90",
        )
        lib = cached_kafka_lib()
        if lib:
            env["VERBINDING_KAFKA_LIB"] = lib
        env.update(extra or {})
        return env

    async def run(
        self, command: str, *args: str, state: str, extra: Mapping[str, str] | None = None
    ) -> str:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(STACK),
            command,
            *args,
            env=self.env(state, extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 180)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"stack.py {command} {' '.join(args)} took over 180 s") from None
        text = out.decode(errors="replace")
        self.log.append(f"$ stack.py {command} {' '.join(args)}  ({time.monotonic() - started:.1f}s)\n{text}")  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"stack.py {command} {' '.join(args)} failed:\n{text}")
        return text

    async def kafka_start(self) -> None:
        await self.run("kafka-start", state="kafka")
        await self.wait_kafka_serving()

    async def wait_kafka_serving(self, timeout: float = 90.0) -> None:
        """The port opens before the broker serves metadata and leadership (after a SIGKILL it
        re-registers once its old session expired): bounded retries until topics can be made."""
        from shared.kafka import ensure_topics

        deadline = time.monotonic() + timeout
        while True:
            try:
                await asyncio.wait_for(ensure_topics(self.bootstrap, "ready.", topics=[]), 10)
                return
            except Exception:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.5)

    async def kafka_stop(self) -> None:
        await self.run("kafka-stop", state="kafka")

    async def kafka_kill(self) -> None:
        await self.run("kafka-kill", state="kafka")

    async def pg_start(self) -> None:
        await self.run("pg-start", state="pg")

    async def pg_stop(self) -> None:
        await self.run("pg-stop", state="pg")

    async def pg_crash(self) -> None:
        await self.run("pg-crash", state="pg")

    async def create_database(self, name: str) -> str:
        """A new database, migrated as ``verbinding migrate`` does (a role per service, whose
        grants the services need: they connect as their roles and only check the schema)."""
        from services.registry import SERVICES
        from shared.db import create_pool, migrate_services

        conn = await asyncpg.connect(self.dsn(), timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        pool = await create_pool(self.dsn(name), max_size=2)
        try:
            await migrate_services(pool, {s: service.migrations for s, service in SERVICES.items()})
        finally:
            await pool.close()
        return self.dsn(name)

    async def service_start(
        self, name: str, instance: str, port: int, env: Mapping[str, str]
    ) -> None:
        extra = {**env, f"VERBINDING_{name.upper()}_PORT": str(port)}
        await self.run("service-start", name, state=f"svc-{instance}", extra=extra)

    async def service_stop(self, name: str, instance: str) -> None:
        await self.run("service-stop", name, state=f"svc-{instance}")

    def service_kill(self, name: str, instance: str) -> int:
        """SIGKILL a service this suite started (stack.py has no service-kill): the process
        group recorded in its pid file, checked to be ``verbinding serve <name>``."""
        pid_file = self.root / f"svc-{instance}" / "run" / f"{name}.pid"
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"serve" not in cmdline or name.encode() not in cmdline:
            raise RuntimeError(f"pid {pid} is not `verbinding serve {name}`: {cmdline!r}")
        os.killpg(pid, signal.SIGKILL)
        return pid

    async def down(self) -> None:
        """Stop everything of the suite; whatever fails, try the rest."""
        for pid_file in sorted(self.root.glob("svc-*/run/*.pid")):
            with contextlib.suppress(Exception):
                await self.run("service-stop", pid_file.stem, state=pid_file.parent.parent.name)
        for command, state in (("kafka-stop", "kafka"), ("pg-stop", "pg")):
            try:
                await self.run(command, state=state)
            except Exception:
                if command == "kafka-stop":
                    with contextlib.suppress(Exception):
                        await self.run("kafka-kill", state=state)


# -------------------------------------------------------------------------------- deployment


@dataclass
class Deployment:
    """One scenario's database, topics and consumer group, and its running services."""

    stack: Stack
    name: str
    dsn: str
    ports: dict[str, int]
    keys: dict[str, str] = field(default_factory=dict)
    reader_key: str = ""
    metrics_key: str = ""
    relays: list[asyncio.subprocess.Process] = field(default_factory=list)
    relay_in_process: bool = True

    @property
    def prefix(self) -> str:
        return f"{self.name}."

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self) -> dict[str, str]:
        """What every process of this deployment reads."""
        return {
            "VERBINDING_ENVIRONMENT": "test",
            "VERBINDING_DATABASE_URL": self.dsn,
            "VERBINDING_KAFKA_BOOTSTRAP": self.stack.bootstrap,
            "VERBINDING_TOPIC_PREFIX": self.prefix,
            "VERBINDING_PSEUDONYM_SECRET": SECRET,
            "VERBINDING_CONSUMER_GROUP": f"metrics-{self.name}",
            # k = 1 and no disclosure control (which hides zeros and, beside them, more):
            # every figure is published, so every one is compared (nothing hides a miss).
            "VERBINDING_SUPPRESSION_K": "1",
            "VERBINDING_DISCLOSURE_CONTROL": "off",
            "VERBINDING_INDICATOR_CACHE_SECONDS": "0",
            "VERBINDING_SNAPSHOT_INTERVAL_SECONDS": "600",
            "VERBINDING_LOG_LEVEL": "WARNING",
            "VERBINDING_RELAY_IN_PROCESS": "true" if self.relay_in_process else "false",
        }

    @classmethod
    async def create(cls, stack: Stack, name: str, *, relay_in_process: bool = True) -> Deployment:
        dsn = await stack.create_database(name)
        ports = {s: free_port() for s in (*SERVICES, "metrics2")}
        deployment = cls(stack, name, dsn, ports, relay_in_process=relay_in_process)
        deployment.keys = await create_partners(
            dsn, default_scenario().organisations, joined=date(2000, 1, 1)
        )
        from shared.auth import create_organisation, issue_key

        conn = await asyncpg.connect(dsn)
        try:
            await create_organisation(conn, "fault-suite-reader", "Fault suite reader")
            deployment.reader_key = (
                await issue_key(conn, "fault-suite-reader", ["indicators"])
            ).secret
            deployment.metrics_key = (
                await issue_key(conn, "fault-suite-reader", ["metrics"])
            ).secret
        finally:
            await conn.close()
        return deployment

    async def start(self) -> None:
        """The three services (each in its own stack.py state, so they start side by side);
        with ``relay_in_process`` false, standalone relays (``verbinding relay``) as well."""
        await asyncio.gather(
            *(self.stack.service_start(s, f"{self.name}-{s}", self.ports[s], self.env()) for s in SERVICES)
        )  # fmt: skip
        if not self.relay_in_process:
            for service in ("registrations", "referrals"):
                await self.start_relay(service)

    async def start_metrics(self, instance: str = "metrics") -> None:
        await self.stack.service_start("metrics", f"{self.name}-{instance}", self.ports[instance], self.env())  # fmt: skip

    async def stop_metrics(self, instance: str = "metrics") -> None:
        await self.stack.service_stop("metrics", f"{self.name}-{instance}")

    def kill_metrics(self, instance: str = "metrics") -> int:
        return self.stack.service_kill("metrics", f"{self.name}-{instance}")

    async def start_relay(self, service: str) -> asyncio.subprocess.Process:
        log = (self.stack.root / f"relay-{self.name}-{service}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            str(VERBINDING),
            "relay",
            service,
            env={**self.stack.env("relay"), **self.env()},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.relays.append(proc)
        return proc

    async def kill_relays(self) -> list[int]:
        killed = []
        for proc in self.relays:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                killed.append(proc.pid)
        self.relays = [p for p in self.relays if p.returncode is None]
        return killed

    async def stop(self) -> None:
        for proc in self.relays:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()

        async def stop(instance: str) -> None:
            name = "metrics" if instance == "metrics2" else instance
            with contextlib.suppress(Exception):
                await self.stack.service_stop(name, f"{self.name}-{instance}")

        await asyncio.gather(*(stop(i) for i in ("metrics2", *SERVICES)))

    def log(self, service: str, instance: str | None = None) -> str:
        path = (
            self.stack.root / f"svc-{self.name}-{instance or service}" / "logs" / f"{service}.log"
        )
        return path.read_text(errors="replace") if path.exists() else ""

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            yield conn
        finally:
            await conn.close()

    async def applied(self) -> int:
        """Events of partners' writes the metrics service applied. The first attendances the
        referrals service derives from the registrations topic (issue 15) are no partner's
        write: they are left out (their ids are in the referral's history)."""
        async with self.connection() as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM metrics.processed_events p WHERE NOT EXISTS ("
                    "SELECT 1 FROM referrals.referral_status_history h "
                    "WHERE h.status = 'first_attendance' AND h.event_id = p.event_id)"
                )
            )

    async def outbox_backlog(self) -> int:
        async with self.connection() as conn:
            return int(
                await conn.fetchval(
                    "SELECT (SELECT count(*) FROM registrations.outbox) "
                    "+ (SELECT count(*) FROM referrals.outbox)"
                )
            )

    async def not_yet_counted(self, accepted_until: datetime) -> int:
        """Events of writes accepted until then that the metrics service has not applied: the
        ids the services answered with (kept with the idempotent answer), and activities."""
        async with self.connection() as conn:
            return int(
                await conn.fetchval(
                    """
                    WITH due AS (
                        SELECT (response->>'event_id')::uuid AS id FROM registrations.idempotency
                        WHERE created_at <= $1 AND response ? 'event_id'
                        UNION ALL
                        SELECT (response->>'event_id')::uuid FROM referrals.idempotency
                        WHERE created_at <= $1 AND response ? 'event_id'
                    )
                    SELECT (SELECT count(*) FROM due WHERE id NOT IN
                               (SELECT event_id FROM metrics.processed_events))
                         + greatest(0, (SELECT count(*) FROM registrations.activities
                                        WHERE updated_at <= $1)
                                     - (SELECT count(DISTINCT (organisation_id, activity_id))
                                        FROM metrics.activity_versions))
                    """,
                    accepted_until,
                )
            )

    async def indicators(self, period: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url("metrics"), timeout=60) as client:
            r = await client.get(
                "/v1/indicators",
                params={"period": period},
                headers={"Authorization": f"Bearer {self.reader_key}"},
            )
        r.raise_for_status()
        return dict(r.json())


# -------------------------------------------------------------------------------------- load


@dataclass
class Load:
    """A seeded simulator run, sent through the public API with the simulator's retries."""

    writes: list[Write]
    folder: Path
    batch_size: int = 250
    statuses: Counter[str] = field(default_factory=Counter)  # every HTTP answer
    asked: int = 0  # batch requests sent, retries included
    answered: int = 0  # batch requests answered, whatever the answer
    summaries: list[Summary] = field(default_factory=list)
    ledgers: list[Path] = field(default_factory=list)
    ok_at: list[float] = field(default_factory=list)  # when each 200 arrived (monotonic)
    started: float = 0.0
    finished: float = 0.0

    @classmethod
    def simulate(cls, seed: int, residents: int, today: date, folder: Path) -> Load:
        return cls(generate(seed, residents, 12, today, run_id=f"f{seed}"), folder)

    @property
    def requests(self) -> int:
        return len(plan_batches(self.writes, self.batch_size))

    @property
    def http(self) -> dict[str, int]:
        """Statuses seen, and requests that got no answer at all (connection errors)."""
        out = dict(self.statuses)
        if self.asked > self.answered:
            out["no answer"] = self.asked - self.answered
        return out

    async def _asked(self, _: httpx.Request) -> None:
        self.asked += 1

    async def _hook(self, response: httpx.Response) -> None:
        self.statuses[str(response.status_code)] += 1
        self.answered += 1
        if response.status_code == 200:
            self.ok_at.append(time.monotonic())

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first accepted batch after it."""
        later = [t for t in self.ok_at if t >= moment]
        return min(later) - moment if later else None

    async def send(
        self, deployment: Deployment, *, speed: float | None = None, window: timedelta | None = None
    ) -> Summary:
        """One complete pass: every write, in order per organisation, retried until a final
        answer (up to 10 minutes per batch)."""
        batches = plan_batches(self.writes, self.batch_size, window)
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
        clients = {
            s: httpx.AsyncClient(
                base_url=deployment.url(s),
                timeout=httpx.Timeout(60, connect=5),
                limits=limits,
                event_hooks={"request": [self._asked], "response": [self._hook]},
            )
            for s in ("registrations", "referrals")
        }
        self.started = self.started or time.monotonic()
        # A ledger per pass: two passes at once must not interleave their lines.
        ledger = self.folder / f"ledger-{len(self.ledgers) + 1}.jsonl"
        self.ledgers.append(ledger)
        try:
            summary = await send(
                batches,
                clients=clients,
                keys=deployment.keys,
                options=SendOptions(concurrency=4, speed=speed, retry_for=600, backoff_cap=2.0),
                ledger=ledger,
            )
        finally:
            for client in clients.values():
                await client.aclose()
        self.summaries.append(summary)
        self.finished = time.monotonic()
        return summary

    async def until_answered(self, share: float, timeout: float = 600) -> None:
        """Wait until ``share`` of one pass's batch requests have been answered."""
        wanted = max(1, int(self.requests * share))
        deadline = time.monotonic() + timeout
        while self.answered < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.answered} of {wanted} requests answered")
            await asyncio.sleep(0.05)

    def accepted(self) -> list[Write]:
        """The writes any pass got a 2xx for (a repeat answers 200 as the first time did)."""
        statuses: dict[Any, int] = {}
        for ledger in self.ledgers:
            if not ledger.exists():
                continue
            for key, status in read_ledger(ledger).items():
                if not 200 <= statuses.get(key, 0) < 300:
                    statuses[key] = status
        return accepted_writes(self.writes, statuses)

    @property
    def sent(self) -> int:
        return sum(s.writes for s in self.summaries)

    @property
    def retries(self) -> int:
        return sum(s.retries for s in self.summaries)


# ----------------------------------------------------------------------------------- verdict


def periods_to_compare(today: date) -> list[str]:
    """Two years, two quarters and four months, the current ones among them (late events)."""

    def month(back: int) -> str:
        index = today.year * 12 + today.month - 1 - back
        return f"{index // 12:04d}-{index % 12 + 1:02d}"

    quarter = (today.month - 1) // 3 + 1
    previous = f"{today.year}-Q{quarter - 1}" if quarter > 1 else f"{today.year - 1}-Q4"
    return [
        f"{today.year}",
        f"{today.year - 1}",
        f"{today.year}-Q{quarter}",
        previous,
        month(0),
        month(1),
        month(5),
        month(11),
    ]


S2_COUNTS = (
    "participants_unique",
    "participants_new",
    "attendances",
    "no_shows",
    "registrations",
    "cancellations",
)


def _expected_published(figures: Mapping[str, Any]) -> dict[str, Any]:
    """What /v1/indicators must say (k = 1), including the rates built on the raw counts."""
    pub = published(figures, k=1)
    raw = figures

    def rate(numerator: int, denominator: int) -> float | None:
        return round(float(numerator) / denominator, 4) if denominator >= 1 else None

    s1, s2, s3 = raw["s1"], raw["s2"], raw["s3"]
    return {
        "s1": {
            "measurements": pub["s1"]["measurements"],
            "prevalence_lonely": rate(s1["lonely"], s1["measurements"]),
            "prevalence_severe": rate(s1["severe"], s1["measurements"]),
        },
        "s2": {
            **{n: pub["s2"][n] for n in S2_COUNTS},
            "attendance_rate": rate(s2["attendances"], s2["attendances"] + s2["no_shows"]),
        },
        "s3": {
            "referrals": pub["s3"]["referrals"],
            "accepted": pub["s3"]["accepted"],
            "converted": pub["s3"]["converted"],
            "referral_acceptance_rate": rate(s3["accepted"], s3["accepted"] + s3["declined"]),
            "referral_conversion": rate(s3["converted"], s3["referrals"]),
            "days_to_first_attendance": pub["s3"]["days_to_first_attendance"],
        },
    }


@dataclass
class Verdict:
    """The comparison of one deployment with its ledger."""

    accepted: int
    counted: int
    lost: int
    double_counted: int
    facts_missing: dict[str, int]
    facts_extra: dict[str, int]
    mismatches: list[str]
    periods: list[str]
    indicators_compared: int

    @property
    def exact(self) -> bool:
        return not (self.lost or self.double_counted or self.mismatches or self.facts_extra)


async def _facts(deployment: Deployment) -> dict[str, set[tuple[str, str]]]:
    out = {}
    async with deployment.connection() as conn:
        for kind, (table, org, key) in FACTS.items():
            rows = await conn.fetch(f"SELECT {org} AS org, {key} AS id FROM metrics.{table}")
            out[kind] = {(r["org"], r["id"]) for r in rows}
    return out


async def verify(deployment: Deployment, load: Load, periods: Sequence[str]) -> Verdict:
    """Compare everything once; :func:`converge` repeats this until it holds or time is up."""
    accepted = load.accepted()
    expected_keys: dict[str, set[tuple[str, str]]] = {kind: set() for kind in FACTS}
    for w in accepted:
        expected_keys[w.kind].add((w.organisation, w.id))
    facts = await _facts(deployment)
    missing = {k: len(expected_keys[k] - facts[k]) for k in FACTS if expected_keys[k] - facts[k]}
    extra = {k: len(facts[k] - expected_keys[k]) for k in FACTS if facts[k] - expected_keys[k]}
    counted = await deployment.applied()
    mismatches = []
    compared = 0
    for period in periods:
        want = _expected_published(expected_figures(accepted, period))
        got = await deployment.indicators(period)
        for subgoal, names in want.items():
            for name, value in names.items():
                compared += 1
                have = got[subgoal][name]["value"]
                if have != value:
                    mismatches.append(f"{period} {subgoal}.{name}: expected {value}, got {have}")
    return Verdict(
        accepted=len(accepted),
        counted=counted,
        lost=sum(missing.values()),
        # One event per accepted write: more applied events would be a write counted twice.
        double_counted=max(0, counted - len(accepted)) + sum(extra.values()),
        facts_missing=missing,
        facts_extra=extra,
        mismatches=mismatches,
        periods=list(periods),
        indicators_compared=compared,
    )


async def converge(
    deployment: Deployment, load: Load, periods: Sequence[str], timeout: float = 120
) -> tuple[Verdict, float]:
    """Bounded wait until the figures equal the ledger's (the backlog drains); the verdict and
    how long it took from the end of the load."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        if await deployment.applied() >= len(load.accepted()) or time.monotonic() >= deadline:
            verdict = await verify(deployment, load, periods)
            if verdict.exact or time.monotonic() >= deadline:
                return verdict, time.monotonic() - started
        await asyncio.sleep(0.5)


async def recovery_time(
    deployment: Deployment, cleared_at: datetime, cleared_mono: float, timeout: float = 120
) -> float | None:
    """Seconds from the fault's removal until every event of a write accepted by then has been
    counted (None if that did not happen in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await deployment.not_yet_counted(cleared_at) == 0:
                return time.monotonic() - cleared_mono
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the database itself may be the fault
        await asyncio.sleep(0.25)
    return None


@dataclass
class ScenarioResult:
    """One row of the fault report."""

    scenario: str
    fault: str
    events_sent: int
    accepted: int
    counted: int
    lost: int
    double_counted: int
    recovery_s: float | None
    converged_s: float
    load_s: float
    retries: int
    http: dict[str, int]
    kafka_duplicates_absorbed: int = 0
    indicators_compared: int = 0
    periods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    passed: bool = False
