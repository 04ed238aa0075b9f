"""The benchmark's cases. Each returns plain figures (dicts) for the table and the JSON file."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tools.bench.http import ConnectionPool
from tools.bench.kafka_tools import KafkaTools
from tools.bench.memory import MemoryWatch
from tools.bench.prefill import Prefill, end_offsets, sample_values
from tools.bench.profile import Profiler
from tools.bench.stack import REPO, VENV_BIN, Stack

__all__ = [
    "Bench",
    "aggregation",
    "drop_database",
    "fresh_database",
    "freshness",
    "ingestion",
    "latency",
    "rebuild",
]

WRITES_PER_RESIDENT_YEAR = 5.0  # what the default scenario makes, a little under, to be safe


@dataclass
class Bench:
    stack: Stack
    memory: MemoryWatch
    kafka: KafkaTools
    keys: dict[str, str]
    work: Path  # logs, payload files, profiles
    repeat: int
    seed: int
    profile: bool
    say: Callable[[str], None]

    def child_env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.stack.env, "PYTHONUNBUFFERED": "1", **extra}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _median(figures: list[float]) -> float:
    return float(statistics.median(figures)) if figures else 0.0


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU time of a process so far (Linux /proc); with its ended children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(stack: Stack) -> float:
    """CPU time of the stack's PostgreSQL server and all its backends, living and ended (the
    postmaster reaps its backends, so theirs adds to its children's time); 0 for an external
    server."""
    postmaster = stack.postmaster_pid()
    if postmaster is None:
        return 0.0
    total = cpu_seconds(postmaster, with_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == postmaster:
                total += cpu_seconds(int(entry.name))
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dsn_for(dsn: str, database: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


async def fresh_database(dsn: str, name: str) -> str:
    """A new database, migrated like ``verbinding migrate`` does (the services connect to it
    as their own roles and only check that it is migrated)."""
    from shared.db import create_pool, migrate_services
    from tools.cli import SERVICES

    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    fresh = _dsn_for(dsn, name)
    pool = await create_pool(fresh, max_size=2)
    try:
        await migrate_services(pool, {service: p for service, (_, p) in SERVICES.items()})
    finally:
        await pool.close()
    return fresh


async def drop_database(dsn: str, name: str) -> None:
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _worker(bench: Bench, *args: str, name: str | None = None) -> dict[str, Any]:
    """``python -m tools.bench.worker ...`` in a process of its own; its JSON answer."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.worker",
        *args,
        cwd=REPO,
        env=bench.child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if name:
        bench.memory.watch(name, proc.pid)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args[:1])} failed:\n{err.decode()[-3000:]}")
    return dict(orjson.loads(out.splitlines()[-1]))


# ------------------------------------------------------------------------------ aggregation


async def _committed(admin: AIOKafkaAdminClient, group: str, topics: set[str]) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(max(m.offset, 0) for tp, m in offsets.items() if tp.topic in topics)


async def _metrics_instance(bench: Bench, prefill: Prefill, dsn: str) -> dict[str, Any]:
    """A second metrics service (``verbinding serve metrics``) on its own database, reading the
    pre-filled topics with a new consumer group; timed by its committed offsets."""
    group = f"bench-aggregation-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    log = bench.work / "metrics-aggregation.log"
    env = bench.child_env(
        VERBINDING_DATABASE_URL=dsn,
        VERBINDING_TOPIC_PREFIX=prefill.prefix,
        VERBINDING_CONSUMER_GROUP=group,
        VERBINDING_ENVIRONMENT="development",
    )
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "verbinding"),
            "serve",
            "metrics",
            "--port",
            str(port),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bench.memory.watch("metrics (aggregation instance)", proc.pid)
    profiler = (
        Profiler.start(proc.pid, bench.work / "profile-metrics-aggregation")
        if bench.profile
        else None
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.stack.bootstrap)
    await admin.start()
    topics = set(prefill.topics)
    launched = time.perf_counter()
    samples: list[tuple[float, int]] = []
    cpu_marks: list[tuple[int, float, float]] = []  # (committed, service cpu, postgres cpu)
    try:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"the metrics service exited ({proc.returncode}); log: {log}")
            with contextlib.suppress(Exception):  # the group does not exist until it commits
                done = await _committed(admin, group, topics)
                samples.append((time.perf_counter(), done))
                if done > 0 and (len(cpu_marks) == 0 or done >= prefill.events):
                    cpu_marks.append(
                        (done, cpu_seconds(proc.pid), postgres_cpu_seconds(bench.stack))
                    )
                if done >= prefill.events:
                    break
            if time.perf_counter() - launched > 7200:
                raise TimeoutError("the metrics service did not catch up within two hours")
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
        report = profiler.stop() if profiler else None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    started = next((t, n) for t, n in samples if n > 0)
    finished = next((t, n) for t, n in samples if n >= prefill.events)
    # The first commit marks the start: process start, imports, migrations and the group join
    # are not the consumer's throughput (they are in `with_start_up_seconds`).
    steady = (finished[1] - started[1]) / max(finished[0] - started[0], 1e-9)
    (n0, cpu0, pg0), (n1, cpu1, pg1) = cpu_marks[0], cpu_marks[-1]
    events = max(n1 - n0, 1)
    return {
        "cpu_us_per_event": (cpu1 - cpu0) / events * 1e6,
        "postgres_cpu_us_per_event": (pg1 - pg0) / events * 1e6,
        "events": prefill.events,
        "events_per_second": steady,
        "seconds": finished[0] - started[0],
        "with_start_up_seconds": finished[0] - launched,
        "profile": report,
    }


async def aggregation(bench: Bench, prefill: Prefill) -> dict[str, Any]:
    """The metrics service's consumer against the bare consumer and kafka-consumer-perf-test,
    interleaved so that a burst of load from elsewhere does not hit one of them only."""
    topics = ",".join(prefill.topics)
    bare: list[float] = []
    bare_cpu: list[float] = []
    raw: list[float] = []
    perf: list[float] = []

    async def baselines() -> None:
        result = await _worker(
            bench, "bare", "--bootstrap", bench.stack.bootstrap, "--topics", topics
        )
        bare.append(result["events_per_second"])
        bare_cpu.append(result["cpu_us_per_event"])
        result = await _worker(
            bench, "bare", "--bootstrap", bench.stack.bootstrap, "--topics", topics, "--no-decode"
        )
        raw.append(result["events_per_second"])
        measured = await bench.kafka.consume(prefill.per_topic)
        perf.append(measured.per_second)
        bench.say(
            f"  baselines: bare+decode {bare[-1]:,.0f}/s, bare no decode {raw[-1]:,.0f}/s, "
            f"kafka-consumer-perf-test {perf[-1]:,.0f}/s"
        )

    await baselines()
    dsn = await fresh_database(bench.stack.dsn, "verbinding_bench")
    service = await _metrics_instance(bench, prefill, dsn)
    bench.say(f"  metrics service: {service['events_per_second']:,.0f}/s")
    for _ in range(max(0, bench.repeat - 1)):
        await baselines()
    metrics = service["events_per_second"]
    return {
        "events": prefill.events,
        "metrics_service": service,
        "database": dsn,
        "bare_decode": {
            "runs": bare,
            "events_per_second": _median(bare),
            "cpu_us_per_event": _median(bare_cpu),
        },
        # Each process's own CPU per event: what the rates would be if each had a core to
        # itself, however busy the machine was.
        "cpu_ratio_to_bare": _median(bare_cpu) / service["cpu_us_per_event"]
        if bare_cpu and service.get("cpu_us_per_event")
        else None,
        "bare_no_decode": {"runs": raw, "events_per_second": _median(raw)},
        "kafka_consumer_perf_test": {"runs": perf, "events_per_second": _median(perf)},
        "ratio_to_bare": metrics / _median(bare) if bare else None,
        "ratio_to_kafka": metrics / _median(perf) if perf else None,
    }


async def rebuild(bench: Bench, prefill: Prefill, dsn: str, bare_rate: float) -> dict[str, Any]:
    """``rebuild()`` (``verbinding metrics rebuild``) replaying the pre-filled topics."""
    result = await _worker(
        bench,
        "rebuild",
        "--bootstrap",
        bench.stack.bootstrap,
        "--prefix",
        prefill.prefix,
        "--database-url",
        dsn,
        name="rebuild",
    )
    result["ratio_to_bare"] = result["events_per_second"] / bare_rate if bare_rate else None
    return result


# -------------------------------------------------------------------------------- ingestion


async def _outbox_rows(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT (SELECT count(*) FROM registrations.outbox) + "
            "(SELECT count(*) FROM referrals.outbox)"
        )
    )


async def ingestion(bench: Bench, writes_wanted: int, prefill: Prefill | None) -> dict[str, Any]:
    """Simulator writes through both services' POST /v1/batch, timed until both outboxes are
    empty again (the relays published everything), beside kafka-producer-perf-test."""
    from tools.simulator import SendOptions, generate, plan_batches, send
    from tools.simulator.send import open_clients

    tag = f"bi{datetime.now(UTC):%H%M%S}{uuid.uuid4().hex[:4]}"
    residents = math.ceil(writes_wanted / WRITES_PER_RESIDENT_YEAR)
    writes = generate(bench.seed, residents, 12, date.today(), run_id=tag)[:writes_wanted]
    batches = plan_batches(writes, 500)
    pool = await asyncpg.create_pool(bench.stack.dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        backlog_before = await _outbox_rows(pool)
        urls = {s: bench.stack.url(s) for s in ("registrations", "referrals")}
        pids = bench.stack.service_pids()
        profilers = {
            name: Profiler.start(pids[name], bench.work / f"profile-{name}-ingestion")
            for name in ("registrations", "referrals")
            if bench.profile and name in pids
        }
        started = time.perf_counter()
        async with open_clients(urls, 4) as clients:
            summary = await send(
                batches, clients=clients, keys=bench.keys, options=SendOptions(concurrency=4)
            )
        answered = time.perf_counter()
        peak_backlog = 0
        while True:
            rows = await _outbox_rows(pool)
            peak_backlog = max(peak_backlog, rows)
            if rows == 0:
                break
            if time.perf_counter() - answered > 600:
                raise TimeoutError(f"the outboxes still hold {rows} events after 10 minutes")
            await asyncio.sleep(0.05)
        drained = time.perf_counter()
    finally:
        await pool.close()
        profiles = {name: p.stop() for name, p in profilers.items()}
    events = summary.created
    perf = await _producer_perf(bench, max(50_000, writes_wanted), prefill)
    rate = events / (drained - started)
    return {
        "writes": summary.writes,
        "events": events,
        "rejected": sum(summary.rejected.values()),
        "failed": summary.failed,
        "requests": summary.requests,
        "http_seconds": answered - started,
        "drain_seconds_after_last_answer": drained - answered,
        "outbox_rows_before": backlog_before,
        "outbox_rows_after_last_answer": peak_backlog,
        "events_per_second": rate,
        "accepted_per_second_http_only": events / (answered - started),
        "kafka_producer_perf_test": perf,
        "ratio_to_kafka": rate / perf["events_per_second"] if perf["events_per_second"] else None,
        "by_kind": dict(summary.by_kind),
        "profiles": profiles,
    }


async def _producer_perf(bench: Bench, records: int, prefill: Prefill | None) -> dict[str, Any]:
    payload = bench.work / "payload.txt"
    if prefill is not None:
        values = await sample_values(bench.stack.bootstrap, prefill.topics, 2000)
    else:
        values = await sample_values(
            bench.stack.bootstrap, ["registrations", "referrals", "measurements"], 2000
        )
    if not values:
        raise RuntimeError("no events to take payloads from")
    payload.write_bytes(b"\n".join(values) + b"\n")
    topic = f"bench-producer-perf-{uuid.uuid4().hex[:6]}"
    runs = []
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.stack.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    try:
        for _ in range(bench.repeat):
            result = await bench.kafka.produce(topic, records, payload)
            runs.append(result.per_second)
            bench.say(f"  kafka-producer-perf-test: {result.per_second:,.0f}/s")
    finally:
        await _delete_topic(bench.stack.bootstrap, topic)
    return {
        "records": records,
        "mean_value_bytes": sum(map(len, values)) / len(values),
        "runs": runs,
        "events_per_second": _median(runs),
    }


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
    finally:
        await admin.close()


# ---------------------------------------------------------------------- latency, freshness


@dataclass(frozen=True)
class _Templates:
    organisation: str
    activity_id: str
    activity: dict[str, Any]
    registration: dict[str, Any]


def _templates(seed: int, tag: str) -> _Templates:
    """An activity and a registration body of one simulated organisation."""
    from tools.simulator import generate

    writes = generate(seed, 300, 12, date.today(), run_id=tag)
    first = next(w for w in writes if w.kind == "registration")
    activity = next(
        w
        for w in writes
        if w.kind == "activity" and w.item["activity_id"] == first.item["body"]["activity_id"]
    )
    return _Templates(
        first.organisation, activity.item["activity_id"], activity.item["body"], first.item["body"]
    )


def _registration(t: _Templates, tag: str, i: int) -> dict[str, Any]:
    body = dict(t.registration)
    participant = {k: v for k, v in body["participant"].items() if k != "resident_token"}
    participant["ref"] = f"{tag}-p{i}"
    body.update(
        registration_id=f"{tag}-r{i}",
        participant=participant,
        registered_at=datetime.now(UTC).isoformat(),
    )
    return body


async def _open_loop(
    rate: float, count: int, fire: Callable[[int, float], Any], lateness: list[float]
) -> None:
    """Start ``fire(i, scheduled)`` at t0 + i/rate whatever the answers do (open loop)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    tasks = []
    for i in range(count):
        scheduled = t0 + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness.append(loop.time() - scheduled)
        tasks.append(asyncio.create_task(fire(i, scheduled)))
    await asyncio.gather(*tasks)


def _summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p90_ms": percentile(values, 90) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000,
    }


async def _put_activity(pool: ConnectionPool, t: _Templates) -> None:
    answer = await pool.request("PUT", f"/v1/activities/{t.activity_id}", orjson.dumps(t.activity))
    if answer.status not in (200, 201):
        raise RuntimeError(f"PUT activity answered {answer.status}: {answer.body[:300]!r}")


async def latency(bench: Bench, rate: float, seconds: float) -> dict[str, Any]:
    """Single ``POST /v1/registrations`` at a fixed rate; latency from the scheduled moment
    (so that a stalled server is not hidden by a client that waits for it)."""
    tag = f"bl{uuid.uuid4().hex[:6]}"
    t = _templates(bench.seed, tag)
    headers = {"Authorization": f"Bearer {bench.keys[t.organisation]}"}
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lateness: list[float] = []
    bodies = [orjson.dumps(_registration(t, tag, i)) for i in range(int(rate * seconds))]
    async with ConnectionPool(bench.stack.url("registrations"), headers, size=64) as pool:
        await _put_activity(pool, t)
        for i in range(20):  # warm-up: connections, caches
            await pool.request(
                "POST", "/v1/registrations", orjson.dumps(_registration(t, tag + "w", i))
            )

        async def fire(i: int, scheduled: float) -> None:
            try:
                answer = await pool.request("POST", "/v1/registrations", bodies[i])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                statuses[0] += 1
                return
            statuses[answer.status] += 1
            latencies.append(loop.time() - scheduled)

        await _open_loop(rate, len(bodies), fire, lateness)
    return {
        "rate_per_second": rate,
        "seconds": seconds,
        "statuses": {str(k): v for k, v in statuses.items()},
        **_summary_ms(latencies),
        "load_generator_lateness_p99_ms": percentile(lateness, 99) * 1000 if lateness else None,
    }


async def _metrics_caught_up(bench: Bench, within: float = 600) -> None:
    """Wait until the stack's metrics consumer has committed everything on the live topics."""
    from services.metrics.entrypoints.consumer import CONSUMED_TOPICS
    from services.metrics.settings import MetricsSettings
    from shared.events import topic_name

    settings = MetricsSettings()  # what the stack's metrics service reads from the same env
    topics = [topic_name(t, settings.topic_prefix) for t in CONSUMED_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.stack.bootstrap)
    await admin.start()
    deadline = time.perf_counter() + within
    try:
        while time.perf_counter() < deadline:
            total = sum((await end_offsets(bench.stack.bootstrap, topics)).values())
            with contextlib.suppress(Exception):
                if await _committed(admin, settings.consumer_group, set(topics)) >= total:
                    return
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    raise TimeoutError("the metrics service did not catch up with the live topics")


async def freshness(bench: Bench, rate: float, seconds: float, batch: int = 50) -> dict[str, Any]:
    """Registrations at ``rate`` events/s (batches of ``batch`` every batch/rate seconds);
    for each event the time from its 2xx answer until its id is in metrics.processed_events,
    the tracking record committed in the same transaction as the facts it changed."""
    await _metrics_caught_up(bench)
    tag = f"bf{uuid.uuid4().hex[:6]}"
    t = _templates(bench.seed, tag)
    headers = {"Authorization": f"Bearer {bench.keys[t.organisation]}"}
    loop = asyncio.get_running_loop()
    answered: dict[uuid.UUID, float] = {}
    seen: dict[uuid.UUID, float] = {}
    post_latency: list[float] = []
    statuses: Counter[int] = Counter()
    lateness: list[float] = []
    count = int(rate * seconds / batch)
    sending = True
    pool = await asyncpg.create_pool(bench.stack.dsn, min_size=1, max_size=2)
    assert pool is not None

    async def poll() -> None:
        while sending or len(seen) < len(answered):
            pending = [e for e in answered if e not in seen]
            if pending:
                rows = await pool.fetch(
                    "SELECT event_id FROM metrics.processed_events WHERE event_id = ANY($1::uuid[])",
                    pending,
                )
                now = loop.time()
                for row in rows:
                    seen[row["event_id"]] = now
            await asyncio.sleep(0.02)

    async with ConnectionPool(bench.stack.url("registrations"), headers, size=64) as client:
        await _put_activity(client, t)
        bodies = [
            orjson.dumps(
                {
                    "items": [
                        {"kind": "registration", "body": _registration(t, tag, k * batch + j)}
                        for j in range(batch)
                    ]
                }
            )
            for k in range(count)
        ]

        async def fire(k: int, scheduled: float) -> None:
            answer = await client.request("POST", "/v1/batch", bodies[k])
            now = loop.time()
            statuses[answer.status] += 1
            post_latency.append(now - scheduled)
            if answer.status == 200:
                for result in orjson.loads(answer.body)["results"]:
                    if result["status"] == 201:
                        answered[uuid.UUID(result["body"]["event_id"])] = now

        poller = asyncio.create_task(poll())
        try:
            await _open_loop(rate / batch, count, fire, lateness)
            sending = False
            await asyncio.wait_for(poller, timeout=120)
        finally:
            sending = False
            poller.cancel()
            await pool.close()
    fresh = [seen[e] - answered[e] for e in answered if e in seen]
    return {
        "rate_per_second": rate,
        "batch": batch,
        "seconds": seconds,
        "events_answered": len(answered),
        "events_seen": len(fresh),
        "statuses": {str(k): v for k, v in statuses.items()},
        "freshness": _summary_ms(fresh),
        "batch_post": _summary_ms(post_latency),
        "measured_in": "metrics.processed_events (polled every 20 ms)",
    }
