"""Telling the metrics service's readers at once that the facts changed (issue 13: freshness).

The change marker (migration 006) says whether the facts changed since the live totals were
decided; a reader reads it again at most every ``indicator_cache_seconds``, so a change used to
show up to that long after its commit. Now the consumer, after each transaction that changed the
facts, sends one NOTIFY on :data:`CHANNEL` with the schema's name, and every instance listening
reads the marker again at its next answer. The time bound stays as the fallback: a notification
lost with a broken connection delays a change by at most that, as before.

The NOTIFY is sent after the commit, in a statement of its own, never by the writing transaction
(a trigger): PostgreSQL serialises the commits of transactions that notified, their fsync
included (shared/outbox.py, the relay's wake-up, for the same reason). At most one is under way
per instance; changes committed meanwhile are told by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from shared.db import session_kept

__all__ = ["CHANNEL", "ChangeNotifier", "listen_for_changes", "notify_changed"]

log = logging.getLogger(__name__)

CHANNEL = "verbinding_metrics_facts_changed"

# How long a listener whose connection failed waits before it listens again.
RETRY_SECONDS = 1.0


async def notify_changed(conn: asyncpg.Connection, schema: str) -> None:
    """One notification that the facts of ``schema`` changed (outside the writing transaction,
    after its commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, schema)


class ChangeNotifier:
    """Role: after a commit that changed the facts, tell the listening instances, without
    making the next transaction wait for the round trip."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        """The facts changed (committed): one NOTIFY soon, shared with other changes meanwhile."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            self._pending = False
            try:
                async with session_kept(self.pool) as conn:
                    await notify_changed(conn, self.schema)
            except Exception as exc:  # the readers' time bound covers a lost notification
                log.debug("change not notified", extra={"error": repr(exc)})
                return

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


async def listen_for_changes(
    pool: asyncpg.Pool, schema: str, on_change: Callable[[], None], stop: asyncio.Event
) -> None:
    """Call ``on_change`` on every notification that the facts of ``schema`` changed, until
    ``stop``; on one connection of ``pool`` held for it. After a failure it listens again (and
    calls ``on_change`` once then: a change may have gone untold meanwhile)."""

    def received(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == schema:
            on_change()

    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, received)
                on_change()
                waits = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(stop.wait())]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for wait in waits:
                        wait.cancel()
                with contextlib.suppress(Exception):
                    await conn.remove_listener(CHANNEL, received)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("not listening for changes of the facts", extra={"error": repr(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETRY_SECONDS)
