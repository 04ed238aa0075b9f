"""Sending: batches in order per organisation, retries that are safe, a ledger that is true."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tools.simulator import (
    SendOptions,
    Write,
    accepted_writes,
    generate,
    plan_batches,
    read_ledger,
    send,
)
from tools.simulator.cli import parse_duration, parse_speed

TODAY = date(2026, 11, 28)


def _write(org: str, n: int, service: str = "registrations", hours: int = 0) -> Write:
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hours)
    item = {"kind": "attendance", "body": {"attendance_id": f"{org}-{n}"}}
    return Write(service, org, "attendance", f"{org}-{n}", at, item)


def test_batches_keep_each_organisations_order_and_size():
    writes = [_write("a" if i % 3 else "b", i, hours=i) for i in range(25)]
    batches = plan_batches(writes, 4)
    assert all(len(b.writes) <= 4 for b in batches)
    for org in ("a", "b"):
        sent = [w for b in batches if b.organisation == org for w in b.writes]
        assert sent == [w for w in writes if w.organisation == org]
    assert {b.organisation for b in batches[:1]} == {"b"}  # first to appear, first planned


def test_windows_split_batches_by_simulated_time():
    writes = [_write("a", i, hours=12 * i) for i in range(6)]  # three days
    batches = plan_batches(writes, 100, timedelta(days=1))
    assert [b.window for b in batches] == [0, 1, 2]
    assert [b.due for b in batches] == [0.0, 86_400.0, 172_800.0]
    assert [len(b.writes) for b in batches] == [2, 2, 2]


class Partner:
    """A fake service: answers each batch item with 201, after the failures it is told to give."""

    def __init__(self, failures: list[Any] | None = None, item_status: int = 201) -> None:
        self.failures = list(failures or [])
        self.item_status = item_status
        self.requests: list[tuple[str, str, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((str(request.url), request.headers["Authorization"], request.content))
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return httpx.Response(failure, json={"error": "unavailable"})
        items = orjson.loads(request.content)["items"]
        results = [
            {
                "index": i,
                "status": self.item_status,
                "body": {"event_id": f"e-{item['body'].get('attendance_id')}"},
            }
            if self.item_status < 300
            else {
                "index": i,
                "status": self.item_status,
                "error": "validation_failed",
                "details": [{"field": "participant.age_band", "message": "unknown age band"}],
            }
            for i, item in enumerate(items)
        ]
        return httpx.Response(200, json={"accepted": 0, "rejected": 0, "results": results})


async def _send(partner: Partner, writes: list[Write], ledger: Path, **options: Any):
    delays: list[float] = []

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    transport = httpx.MockTransport(partner)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://reg") as reg,
        httpx.AsyncClient(transport=transport, base_url="http://ref") as ref,
    ):
        summary = await send(
            plan_batches(writes, 3),
            clients={"registrations": reg, "referrals": ref},
            keys={"a": "key-a", "b": "key-b"},
            options=SendOptions(**options),
            ledger=ledger,
            sleep=no_sleep,
        )
    return summary, delays


async def test_each_batch_goes_to_its_service_with_its_organisations_key(tmp_path):
    partner = Partner()
    writes = [_write("a", 1), _write("b", 2, "referrals"), _write("a", 3)]
    summary, _ = await _send(partner, writes, tmp_path / "ledger.jsonl")
    assert summary.ok
    assert summary.accepted == 3
    assert summary.created == 3
    sent = sorted((url, auth) for url, auth, _ in partner.requests)
    assert sent == [
        ("http://ref/v1/batch", "Bearer key-b"),
        ("http://reg/v1/batch", "Bearer key-a"),
    ]


async def test_unavailable_and_dropped_connections_are_retried_and_booked_once(tmp_path):
    partner = Partner([503, httpx.ConnectError("refused"), 502])
    writes = [_write("a", i) for i in range(5)]
    ledger = tmp_path / "ledger.jsonl"
    summary, delays = await _send(partner, writes, ledger, concurrency=1)
    assert summary.ok
    assert summary.retries == 3
    assert summary.requests == 5
    assert len(delays) == 3
    assert all(0 < d <= 10 for d in delays)
    rows = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    assert [r["id"] for r in rows] == [w.id for w in writes]
    assert {r["status"] for r in rows} == {201}
    assert rows[0]["event_id"] == "e-a-0"
    assert accepted_writes(writes, read_ledger(ledger)) == writes


async def test_a_batch_is_given_up_after_retrying_long_enough(tmp_path):
    partner = Partner([503] * 100)
    ledger = tmp_path / "ledger.jsonl"
    summary, _ = await _send(partner, [_write("a", 1)], ledger, retry_for=0.0)
    assert not summary.ok
    assert summary.failed == 1
    (row,) = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    assert row["status"] == 0
    assert "HTTP 503" in row["error"]
    assert accepted_writes([_write("a", 1)], read_ledger(ledger)) == []


async def test_rejected_items_are_not_retried_and_say_why(tmp_path):
    partner = Partner(item_status=422)
    ledger = tmp_path / "ledger.jsonl"
    summary, delays = await _send(partner, [_write("a", 1), _write("a", 2)], ledger)
    assert summary.accepted == 0
    assert summary.rejected[("attendance", 422)] == 2
    assert delays == []
    row = orjson.loads(ledger.read_bytes().splitlines()[0])
    assert row["status"] == 422
    assert "participant.age_band" in row["error"]
    assert "participant.age_band" in summary.render()


async def test_a_refused_key_rejects_the_whole_batch_without_retrying(tmp_path):
    partner = Partner([401])
    summary, delays = await _send(partner, [_write("a", 1)], tmp_path / "l.jsonl")
    assert summary.rejected[("attendance", 401)] == 1
    assert delays == []
    assert summary.requests == 1


async def test_an_organisation_without_a_key_is_named_before_anything_is_sent(tmp_path):
    with pytest.raises(ValueError, match="c"):
        await _send(Partner(), [_write("c", 1)], tmp_path / "l.jsonl")


async def test_the_same_seed_sends_the_same_requests_in_the_same_order(tmp_path):
    async def run() -> list[tuple[str, str, bytes]]:
        writes = generate(3, 200, 3, TODAY)
        partner = Partner()
        transport = httpx.MockTransport(partner)
        keys = {w.organisation: f"key-{w.organisation}" for w in writes}
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://reg") as reg,
            httpx.AsyncClient(transport=transport, base_url="http://ref") as ref,
        ):
            await send(
                plan_batches(writes, 50),
                clients={"registrations": reg, "referrals": ref},
                keys=keys,
                options=SendOptions(concurrency=1),
            )
        return partner.requests

    first, again = await run(), await run()
    assert len(first) > 10
    assert first == again


async def test_paced_sending_waits_for_the_simulated_moment(tmp_path):
    writes = [_write("a", i, hours=24 * i) for i in range(3)]
    transport = httpx.MockTransport(Partner())
    slept: list[float] = []
    now = [0.0]  # a clock that only sleeping moves: the test does not depend on the machine

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    async with httpx.AsyncClient(transport=transport, base_url="http://reg") as reg:
        await send(
            plan_batches(writes, 10, timedelta(days=1)),
            clients={"registrations": reg},
            keys={"a": "k"},
            options=SendOptions(speed=86_400 * 10),  # a day in 0.1 s
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert slept == pytest.approx([0.1, 0.1])


def test_speed_and_duration_options():
    assert parse_speed("max") is None
    assert parse_speed("1") == 1.0
    assert parse_duration("60s") == 60
    assert parse_duration("5m") == 300
    assert parse_duration("1h") == 3600
    with pytest.raises(Exception, match="duration"):
        parse_duration("soon")
    with pytest.raises(Exception, match="max"):
        parse_speed("fast")
