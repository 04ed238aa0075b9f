"""Sending the writes through the services' public ``POST /v1/batch``, as partners would.

Batches hold the writes of one organisation for one service, in time order. Each organisation's
batches to a service go one after the other (a cancellation must not overtake its registration),
different organisations in parallel up to a bound. A write on another organisation's record (the
receiving side moves a referral along) waits until the window's other writes are in. Failed requests are retried with backoff:
every write has its own id, so a retry of a batch that did get through is answered as before.
Every write's final status goes to the ledger, from which a test can compute what the
indicators must show.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
from tqdm import tqdm

from tools.simulator.generate import Write

__all__ = [
    "Batch",
    "SendOptions",
    "Summary",
    "open_clients",
    "plan_batches",
    "send",
]

RETRYABLE = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Batch:
    service: str
    organisation: str
    window: int  # batches of one window are sent before any of the next
    due: float  # simulated seconds after the first write, for pacing
    writes: tuple[Write, ...]
    phase: int = 0  # within a window, phase 0 before phase 1

    def body(self) -> bytes:
        return orjson.dumps({"items": [w.item for w in self.writes]})


# Writes on a record another organisation made: sent after everything else of their window, so
# that the referral a receiving side accepts exists by then (organisations send in parallel).
LATER_PHASE = frozenset({"referral_status"})


def plan_batches(
    writes: Sequence[Write], batch_size: int, window: timedelta | None = None
) -> list[Batch]:
    """Cut the writes into batches: per window of simulated time (all at once without one), per
    service and organisation in order of first appearance, at most ``batch_size`` each. Depends
    only on its arguments, so the same writes give the same request bodies."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not writes:
        return []
    origin = writes[0].at
    windows: dict[tuple[int, int], dict[tuple[str, str], list[Write]]] = {}
    for w in writes:
        index = 0 if window is None else int((w.at - origin) / window)
        phase = int(w.kind in LATER_PHASE)
        windows.setdefault((index, phase), {}).setdefault((w.service, w.organisation), []).append(w)
    batches = []
    for index, phase in sorted(windows):
        due = 0.0 if window is None else (index * window).total_seconds()
        for (service, org), stream in windows[(index, phase)].items():
            for i in range(0, len(stream), batch_size):
                chunk = tuple(stream[i : i + batch_size])
                batches.append(Batch(service, org, index, due, chunk, phase))
    return batches


@dataclass(frozen=True)
class SendOptions:
    concurrency: int = 4
    speed: float | None = None  # simulated seconds per wall-clock second; None: no waiting
    retry_for: float = 300.0  # give a batch up after retrying this long
    backoff_cap: float = 10.0


@dataclass
class Summary:
    writes: int = 0
    accepted: int = 0
    # Answered 201: written for the first time, one new event each. A replay of a write that
    # got through before answers 200 (contract.md), and so does an unchanged activity.
    created: int = 0
    failed: int = 0  # given up on after retrying
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, int]] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.accepted == self.writes

    def as_dict(self) -> dict[str, Any]:
        seconds = max(self.elapsed, 1e-9)
        return {
            "writes": self.writes,
            "accepted": self.accepted,
            "created": self.created,
            "rejected": sum(self.rejected.values()),
            "failed": self.failed,
            "requests": self.requests,
            "retries": self.retries,
            "elapsed_seconds": round(self.elapsed, 3),
            "writes_per_second": round(self.accepted / seconds, 1),
            "requests_per_second": round(self.requests / seconds, 1),
            "accepted_by_kind": dict(sorted(self.by_kind.items())),
            "rejected_by_kind_and_status": {
                f"{kind} {status}": n for (kind, status), n in sorted(self.rejected.items())
            },
            "rejection_examples": self.examples,
        }

    def render(self) -> str:
        d = self.as_dict()
        lines = [
            f"writes {d['writes']:,}: accepted {d['accepted']:,} ({d['created']:,} new), "
            f"rejected {d['rejected']:,}, given up {d['failed']:,}",
            f"{d['requests']:,} requests ({d['retries']:,} retries) in {d['elapsed_seconds']:.1f}s: "
            f"{d['writes_per_second']:,.0f} writes/s, {d['requests_per_second']:,.1f} requests/s",
            "accepted by kind: "
            + ", ".join(f"{k} {n:,}" for k, n in d["accepted_by_kind"].items()),
        ]
        if self.rejected:
            lines.append(
                "rejected: "
                + ", ".join(f"{k}: {n:,}" for k, n in d["rejected_by_kind_and_status"].items())
            )
            for example in self.examples:
                lines.append(f"  e.g. {orjson.dumps(example).decode()}")
        return "\n".join(lines)


class _Ledger:
    """JSON lines, flushed per batch, so that a run that is killed leaves a usable ledger."""

    def __init__(self, fh: IO[bytes] | None) -> None:
        self.fh = fh

    def record(
        self, w: Write, status: int, error: str | None = None, event_id: str | None = None
    ) -> None:
        if self.fh is None:
            return
        row: dict[str, Any] = {
            "service": w.service,
            "kind": w.kind,
            "organisation": w.organisation,
            "id": w.id,
            "status": status,
        }
        if event_id:
            row["event_id"] = event_id  # lets a test wait for exactly these events
        if error:
            row["error"] = error
        self.fh.write(orjson.dumps(row) + b"\n")

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()


class _GiveUp(Exception):
    pass


@contextlib.asynccontextmanager
async def open_clients(
    urls: Mapping[str, str], concurrency: int, request_timeout: float = 60.0
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per service; connections bounded by the concurrency."""
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency)
    clients = {
        name: httpx.AsyncClient(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(request_timeout, connect=5.0),
            limits=limits,
        )
        for name, url in urls.items()
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


async def send(
    batches: Sequence[Batch],
    *,
    clients: Mapping[str, httpx.AsyncClient],
    keys: Mapping[str, str],
    options: SendOptions | None = None,
    ledger: Path | IO[bytes] | None = None,
    progress: bool = False,
    sleep: Callable[[float], Any] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Summary:
    """Send every batch; return what happened. Never raises for an HTTP answer: rejections and
    given-up batches are counted and written to the ledger. ``sleep`` and ``clock`` go together:
    a test passes a clock that only its sleep moves."""
    options = options or SendOptions()
    missing = sorted({b.organisation for b in batches} - set(keys))
    if missing:
        raise ValueError(f"no API key for organisations {', '.join(missing)}; see --keys")
    unknown = sorted({b.service for b in batches} - set(clients))
    if unknown:
        raise ValueError(f"no address for services {', '.join(unknown)}")
    summary = Summary(writes=sum(len(b.writes) for b in batches))
    opened: IO[bytes] | None = None
    if isinstance(ledger, Path):
        ledger.parent.mkdir(parents=True, exist_ok=True)
        # Appended to: a run that is started again after a crash continues the same record.
        opened = ledger.open("ab")
        book = _Ledger(opened)
    else:
        book = _Ledger(ledger)
    bar = tqdm(
        total=summary.writes,
        unit="write",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5,
        desc="simulating",
    )
    gate = asyncio.Semaphore(options.concurrency)
    jitter = random.Random()  # not the simulation's generator: timing must not change bodies
    started = clock()

    async def post(batch: Batch) -> None:
        client = clients[batch.service]
        headers = {
            "Authorization": f"Bearer {keys[batch.organisation]}",
            "Content-Type": "application/json",
        }
        content = batch.body()
        first_try = clock()
        attempt = 0
        while True:
            error: str
            wait: float | None = None
            async with gate:
                summary.requests += 1
                try:
                    response = await client.post("/v1/batch", content=content, headers=headers)
                except httpx.TransportError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        results = _results(response, len(batch.writes))
                        if results is not None and not any(
                            r.get("status", 0) >= 500 for r in results
                        ):
                            _book(batch, results, summary, book)
                            return
                        error = "an incomplete batch answer"
                    elif response.status_code in RETRYABLE:
                        error = f"HTTP {response.status_code}"
                        wait = _retry_after(response)
                    else:
                        _book_whole(batch, response, summary, book)
                        return
            attempt += 1
            if clock() - first_try > options.retry_for:
                for w in batch.writes:
                    book.record(w, 0, f"gave up after {attempt} attempts: {error}")
                summary.failed += len(batch.writes)
                return
            summary.retries += 1
            backoff = min(options.backoff_cap, 0.2 * 2 ** min(attempt, 10))
            await sleep(wait if wait is not None else backoff * jitter.uniform(0.5, 1.0))

    async def stream(group: list[Batch]) -> None:
        for batch in group:
            await post(batch)
            book.flush()
            bar.update(len(batch.writes))
            bar.set_postfix(accepted=summary.accepted, retries=summary.retries, refresh=False)

    try:
        windows: dict[tuple[int, int], dict[tuple[str, str], list[Batch]]] = {}
        for b in batches:
            key = (b.window, b.phase)
            windows.setdefault(key, {}).setdefault((b.service, b.organisation), []).append(b)
        for index in sorted(windows):
            streams = windows[index]
            if options.speed:
                due = next(iter(streams.values()))[0].due / options.speed
                delay = started + due - clock()
                if delay > 0:
                    await sleep(delay)
            await asyncio.gather(*(stream(group) for group in streams.values()))
    finally:
        summary.elapsed = clock() - started
        bar.close()
        book.flush()
        if opened is not None:
            opened.close()
    return summary


def _results(response: httpx.Response, expected: int) -> list[dict[str, Any]] | None:
    try:
        results = response.json()["results"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(results, list) or len(results) != expected:
        return None
    return sorted(results, key=lambda r: int(r.get("index", 0)))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return min(30.0, max(0.0, float(raw))) if raw is not None else None
    except ValueError:
        return None


def _error_text(result: Mapping[str, Any]) -> str:
    parts = [str(result.get("error") or "")]
    if result.get("message"):
        parts.append(str(result["message"]))
    for d in result.get("details") or ():
        parts.append(f"{d.get('field')}: {d.get('message')}")
    return "; ".join(p for p in parts if p)


def _book(batch: Batch, results: list[dict[str, Any]], summary: Summary, book: _Ledger) -> None:
    for w, result in zip(batch.writes, results, strict=True):
        status = int(result.get("status", 0))
        if 200 <= status < 300:
            summary.accepted += 1
            summary.by_kind[w.kind] += 1
            summary.created += status == 201
            body = result.get("body") or {}
            book.record(w, status, event_id=body.get("event_id"))
        else:
            _reject(w, status, _error_text(result), summary, book)


def _book_whole(batch: Batch, response: httpx.Response, summary: Summary, book: _Ledger) -> None:
    try:
        error = _error_text(response.json())
    except ValueError:
        error = response.text[:200]
    for w in batch.writes:
        _reject(w, response.status_code, error or f"HTTP {response.status_code}", summary, book)


def _reject(w: Write, status: int, error: str, summary: Summary, book: _Ledger) -> None:
    summary.rejected[(w.kind, status)] += 1
    if len(summary.examples) < 5:
        summary.examples.append(
            {
                "kind": w.kind,
                "organisation": w.organisation,
                "id": w.id,
                "status": status,
                "error": error,
            }
        )
    book.record(w, status, error)
