"""Cutting releases on an interval (domain.md §7 rule 6): the metrics service keeps the latest
release at most ``interval`` old; several instances share the work (one cut at a time, whoever
holds the release lock; the others see the fresh release and wait)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from services.metrics.service_layer.indicators import IndicatorService

__all__ = ["ReleaseSchedule"]

log = logging.getLogger(__name__)

# However long the interval, look again this often: another instance, or an operator with
# `verbinding metrics release`, may have cut one meanwhile.
LOOK_AGAIN = timedelta(minutes=5)
# After a failed cut (the database away), try again after this long.
RETRY = timedelta(minutes=1)


class ReleaseSchedule:
    def __init__(self, service: IndicatorService, interval: timedelta) -> None:
        self.service = service
        self.interval = interval

    async def due_in(self) -> timedelta:
        """How long until the next cut is due (zero or less: now). A service without any
        release cuts one at once: until then no breakdown can be answered."""
        latest = await self.service.latest_release()
        if latest is None:
            return timedelta(0)
        return latest.released_at + self.interval - datetime.now(UTC)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            pause = LOOK_AGAIN
            try:
                due = await self.due_in()
                if due <= timedelta(0):
                    report = await self.service.cut_release(wait=False)
                    if report is not None:
                        log.info(
                            "release cut on schedule",
                            extra={"release": report.release.release_id},
                        )
                    due = await self.due_in()
                pause = min(max(due, timedelta(seconds=10)), LOOK_AGAIN)
            except Exception as exc:  # the next round retries; the last release stays published
                log.warning("release not cut", extra={"error": repr(exc)})
                pause = RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause.total_seconds())
