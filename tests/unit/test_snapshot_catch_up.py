"""The indicator snapshot puts its refreshes off while the consumer group catches up
(services/metrics/service_layer/snapshot.py): never its first, never for longer than
CATCH_UP_MAX_AGE, never when the lag is small or not known."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.metrics.service_layer import snapshot as module
from services.metrics.service_layer.snapshot import IndicatorSnapshot


class Counted(IndicatorSnapshot):
    def __init__(self, lag: list[int | None]) -> None:
        super().__init__(service=None, interval=0.01, behind=lambda: lag[0])  # type: ignore[arg-type]
        self.refreshes = 0

    async def refresh(self) -> None:
        self.refreshes += 1
        self.taken_at = time.time()


async def run_for(snap: IndicatorSnapshot, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(snap.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


@pytest.mark.parametrize("lag", [None, 0, module.CATCH_UP_LAG])
async def test_refreshes_on_the_interval_when_not_catching_up(lag: int | None) -> None:
    snap = Counted([lag])
    await run_for(snap, 0.3)
    assert snap.refreshes >= 5


async def test_catching_up_takes_the_first_then_waits_until_the_snapshot_is_old() -> None:
    lag: list[int | None] = [module.CATCH_UP_LAG + 1]
    snap = Counted(lag)
    deferred = module.DEFERRED._value.get()
    await run_for(snap, 0.3)
    assert snap.refreshes == 1  # the first: nothing to show otherwise
    assert module.DEFERRED._value.get() - deferred >= 5
    # Older than CATCH_UP_MAX_AGE: refreshed though still behind.
    assert snap.taken_at is not None
    snap.taken_at -= module.CATCH_UP_MAX_AGE + 1
    await run_for(snap, 0.1)
    assert snap.refreshes == 2
    # Caught up: back to the interval.
    lag[0] = 0
    await run_for(snap, 0.3)
    assert snap.refreshes >= 5
