"""Pre-fill prefixed topics with N simulator events, produced straight to Kafka.

The simulation is cut into independent chunks (a municipality of ``RESIDENTS_PER_CHUNK``
residents over a year, each chunk with its own seed and id prefix), generated and converted to
events in worker processes while the main process produces the previous chunk. With ``years``
above 1, chunk i simulates the year ending i % years years before today: the events spread
evenly over that many years (history) instead of all falling in the last twelve months. A
marker file in the state dir remembers a finished pre-fill, so that the next run on the same
stack reuses the topics instead of producing them again (``--refill`` forces it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from tqdm import tqdm

from shared.events import KAFKA_HEADERS, Topic, topic_name
from shared.kafka import ensure_topics, topic_partitions

__all__ = ["CONSUMED", "Prefill", "end_offsets", "prefill", "sample_values"]

# The topics the metrics service consumes; the pre-fill writes to these only.
CONSUMED = (
    Topic.ACTIVITIES,
    Topic.REGISTRATIONS,
    Topic.REFERRALS,
    Topic.TRAININGS,
    Topic.MEASUREMENTS,
)
RESIDENTS_PER_CHUNK = 10_000
PARTITIONS = 4


@dataclass(frozen=True)
class Prefill:
    prefix: str
    events: int
    per_topic: dict[str, int]
    seconds: float  # 0 when reused
    reused: bool
    mean_value_bytes: float

    @property
    def topics(self) -> list[str]:
        return [topic_name(t, self.prefix) for t in CONSUMED]


def _chunk(seed: int, index: int, today: date, secret: str) -> list[tuple[str, bytes, bytes]]:
    """One independent simulation, as (topic, key, value) with topics not yet prefixed."""
    from shared.pseudonym import Pseudonymiser
    from tools.bench.events import EventFactory, encoded
    from tools.simulator.generate import generate
    from tools.simulator.scenario import default_scenario

    writes = generate(
        seed * 1000 + index, RESIDENTS_PER_CHUNK, 12, today, run_id=f"b{seed}c{index:03d}"
    )
    # The benchmark registers every organisation of the scenario as a partner.
    partners = [o.id for o in default_scenario().organisations]
    factory = EventFactory(Pseudonymiser(secret), partners)
    return [(e.topic, e.key, e.value) for e in encoded(factory.events(writes), "")]


def _years_back(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


class _Chunks:
    """Chunks in order, computed ahead by worker processes, no more than ``events`` need."""

    def __init__(
        self, seed: int, today: date, secret: str, workers: int, events: int, years: int = 1
    ) -> None:
        context = multiprocessing.get_context("spawn")  # no forked event loop or Kafka sockets
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        self.args = (seed, today, secret)
        self.years = max(1, years)
        self.workers = workers
        self.events = events
        self.per_chunk = 50_000  # a first guess; learnt from the first chunk
        self.submitted = 0
        self.ahead: list[concurrent.futures.Future[list[tuple[str, bytes, bytes]]]] = []

    def _submit(self) -> None:
        seed, today, secret = self.args
        ending = _years_back(today, self.submitted % self.years)
        self.ahead.append(self.pool.submit(_chunk, seed, self.submitted, ending, secret))
        self.submitted += 1

    def _top_up(self) -> None:
        while len(self.ahead) < self.workers and self.submitted * self.per_chunk < self.events:
            self._submit()

    def next(self) -> list[tuple[str, bytes, bytes]]:
        self._top_up()
        if not self.ahead:
            # The chunks so far held fewer events than the last one's size promised (chunks
            # differ in size): one more (a 5M pre-fill ran out of chunks).
            self._submit()
        chunk = self.ahead.pop(0).result()
        self.per_chunk = max(1, len(chunk))
        self._top_up()
        return chunk

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Records on each topic (end minus beginning offsets, summed over partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await topic_partitions(bootstrap, topics)
        if not parts:
            return dict.fromkeys(topics, 0)
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
    finally:
        await consumer.stop()
    counts = dict.fromkeys(topics, 0)
    for tp in parts:
        counts[tp.topic] += ends[tp] - begins[tp]
    return counts


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
            for _ in range(100):  # deletion is asynchronous on the broker
                if not set(await admin.list_topics()) & set(doomed):
                    break
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def prefill(
    bootstrap: str,
    state_dir: Path,
    *,
    events: int,
    seed: int,
    secret: str,
    refill: bool = False,
    workers: int = 2,
    years: int = 1,
    say: object = print,
) -> Prefill:
    """Topics ``bench-<events>-s<seed>.<topic>`` holding exactly ``events`` events
    (``bench-<events>-s<seed>-y<years>.<topic>`` when spread over ``years`` years)."""
    prefix = f"bench-{events}-s{seed}." if years <= 1 else f"bench-{events}-s{seed}-y{years}."
    topics = [topic_name(t, prefix) for t in CONSUMED]
    marker = state_dir / "bench" / f"prefill-{prefix.rstrip('.')}.json"
    if not refill and marker.exists():
        counts = await end_offsets(bootstrap, topics)
        if sum(counts.values()) == events:
            meta = orjson.loads(marker.read_bytes())
            return Prefill(prefix, events, counts, 0.0, True, float(meta["mean_value_bytes"]))
    marker.unlink(missing_ok=True)
    await _delete_topics(bootstrap, topics)
    await ensure_topics(bootstrap, prefix, partitions=PARTITIONS, topics=CONSUMED)

    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1_048_576,
    )
    await producer.start()
    sent = 0
    value_bytes = 0
    per_topic = dict.fromkeys(topics, 0)
    chunks = _Chunks(seed, date.today(), secret, workers, events, years)
    bar = tqdm(total=events, unit="ev", desc="pre-filling", dynamic_ncols=True, mininterval=1)
    try:
        while sent < events:
            chunk = await asyncio.get_running_loop().run_in_executor(None, chunks.next)
            pending = []
            for topic, key, value in chunk[: events - sent]:
                physical = prefix + topic
                pending.append(
                    await producer.send(physical, value=value, key=key, headers=KAFKA_HEADERS)
                )
                per_topic[physical] += 1
                value_bytes += len(value)
                if len(pending) >= 20_000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    sent += len(pending)
                    pending = []
            await asyncio.gather(*pending)
            bar.update(len(pending))
            sent += len(pending)
    finally:
        chunks.close()
        bar.close()
        await producer.stop()
    seconds = time.perf_counter() - started
    mean = value_bytes / max(sent, 1)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(
        orjson.dumps(
            {
                "prefix": prefix,
                "events": sent,
                "seed": seed,
                "years": years,
                "mean_value_bytes": mean,
            }
        )
    )
    return Prefill(prefix, sent, per_topic, seconds, False, mean)


async def sample_values(bootstrap: str, topics: list[str], n: int) -> list[bytes]:
    """About ``n`` real event values from the start of ``topics`` (payloads for the producer
    perf test), in proportion to how the pre-fill spread them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await topic_partitions(bootstrap, topics)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=n)
            out.extend(r.value for msgs in batch.values() for r in msgs if r.value)
        return out[:n]
    finally:
        await consumer.stop()
