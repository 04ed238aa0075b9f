"""Releases in the metrics schema: every breakdown answer of a cut, stored atomically.

A release is one row of ``releases`` and its answers in ``release_answers``, written in one
transaction: a reader sees the previous release or the new one, never part of one. The newest
release is the one published; the one before it is kept (a reader that looked up the newest a
moment before the new one was committed still finds its answers), older ones are deleted.

A year whose facts retention deletes is **closed** first: the latest release's answers of that
year are kept in ``closed_answers`` for good (migration 011), so that its published figures
stay when the facts that made them are gone.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.metrics.domain.disclosure import year_periods

__all__ = ["RELEASE_LOCK", "Release", "ReleaseStore", "release_lock"]

log = logging.getLogger(__name__)

# Advisory lock held while a release is cut: one cut at a time, whichever instance or command.
RELEASE_LOCK = 0x5E1EA5E
KEEP = 2
# How long a cut that must happen (an operator's `verbinding metrics release`) waits for one
# under way elsewhere (the schedule of a running instance). A cut of a large year takes
# minutes, far beyond the pool's 30 s statement timeout, which must not apply to this wait.
LOCK_WAIT_SECONDS = 3600.0


@contextlib.asynccontextmanager
async def release_lock(
    conn: asyncpg.Connection, *, wait: bool, wait_seconds: float = LOCK_WAIT_SECONDS
) -> AsyncIterator[bool]:
    """Hold the release lock on ``conn`` for the block; yields False (lock not taken) when
    ``wait`` is off and another cut is under way."""
    taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELEASE_LOCK))
    if not taken and wait:
        log.info("a release cut is under way elsewhere: waiting for it to finish")
        await conn.execute("SELECT pg_advisory_lock($1)", RELEASE_LOCK, timeout=wait_seconds)
        taken = True
    try:
        yield taken
    finally:
        if taken:
            await conn.execute("SELECT pg_advisory_unlock($1)", RELEASE_LOCK)


@dataclass(frozen=True)
class Release:
    release_id: int
    released_at: datetime
    k: int
    control: str
    newest_event_at: datetime | None
    events_applied: int
    years: Mapping[str, Any]


class ReleaseStore:
    """Role: keep releases and read their answers (schema ``metrics``, or a test's)."""

    def __init__(self, schema: str = "metrics") -> None:
        self.s = schema

    async def latest(self, conn: asyncpg.Connection) -> Release | None:
        row = await conn.fetchrow(
            f"SELECT * FROM {self.s}.releases ORDER BY release_id DESC LIMIT 1"
        )
        return _release(row) if row else None

    async def answer(
        self, conn: asyncpg.Connection, release_id: int, period: str, breakdown: str
    ) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = await conn.fetchval(
            f"SELECT answer FROM {self.s}.release_answers "
            "WHERE release_id = $1 AND period = $2 AND breakdown = $3",
            release_id,
            period,
            breakdown,
        )
        return answer

    async def save(
        self,
        conn: asyncpg.Connection,
        *,
        released_at: datetime,
        k: int,
        control: str,
        newest_event_at: datetime | None,
        events_applied: int,
        years: Mapping[str, Any],
        answers: Iterable[tuple[str, str, dict[str, Any]]],
        decisions: Mapping[int, tuple[str, dict[str, Any]]] | None = None,
    ) -> Release:
        """Store a release and its answers ((period, breakdown, answer); breakdown ``""`` for
        the municipality answer) in one transaction; drop the releases before the previous.
        ``decisions``: per year, the fingerprint of the engine's input and its decisions (a
        JSON document), for the next cut to reuse."""
        rows = list(answers)
        kept = sorted((decisions or {}).items())
        async with conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO {self.s}.releases (released_at, k, control, newest_event_at, "
                "events_applied, years) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                released_at,
                k,
                control,
                newest_event_at,
                events_applied,
                dict(years),
            )
            release = _release(row)
            await conn.execute(
                f"INSERT INTO {self.s}.release_answers (release_id, period, breakdown, answer) "
                "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::jsonb[])",
                release.release_id,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
            )
            await conn.execute(
                f"INSERT INTO {self.s}.release_years (release_id, year, fingerprint, decisions) "
                "SELECT $1, * FROM unnest($2::integer[], $3::text[], $4::bytea[])",
                release.release_id,
                [year for year, _ in kept],
                [fp for _, (fp, _) in kept],
                [
                    zlib.compress(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), 1)
                    for _, (_, doc) in kept
                ],
            )
            await conn.execute(
                f"DELETE FROM {self.s}.releases WHERE release_id NOT IN ("
                f"SELECT release_id FROM {self.s}.releases ORDER BY release_id DESC LIMIT {KEEP})"
            )
        return release

    async def fingerprints(self, conn: asyncpg.Connection) -> dict[tuple[int, str], int]:
        """(year, fingerprint) -> the newest kept release that holds that year's decisions
        for that fingerprint (the newest release and the one before it are kept)."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (year, fingerprint) year, fingerprint, release_id "
            f"FROM {self.s}.release_years ORDER BY year, fingerprint, release_id DESC"
        )
        return {(r["year"], r["fingerprint"]): r["release_id"] for r in rows}

    async def decisions(
        self, conn: asyncpg.Connection, release_id: int, year: int, fingerprint: str
    ) -> dict[str, Any] | None:
        """A year's decisions (the document stored), if the release holds them for exactly
        that fingerprint."""
        blob: bytes | None = await conn.fetchval(
            f"SELECT decisions FROM {self.s}.release_years "
            "WHERE release_id = $1 AND year = $2 AND fingerprint = $3",
            release_id,
            year,
            fingerprint,
        )
        if blob is None:
            return None
        doc: dict[str, Any] = orjson.loads(zlib.decompress(blob))
        return doc

    async def closed_years(self, conn: asyncpg.Connection) -> dict[int, datetime]:
        """The years closed by retention, each with the moment its kept answers were released."""
        rows = await conn.fetch(f"SELECT year, released_at FROM {self.s}.closed_years")
        return {r["year"]: r["released_at"] for r in rows}

    async def closed_answer(
        self, conn: asyncpg.Connection, year: int, period: str, breakdown: str
    ) -> dict[str, Any] | None:
        """The answer kept for ``period`` of the closed ``year``, with ``released_at``: the
        moment the release it came from was cut."""
        row = await conn.fetchrow(
            f"SELECT a.answer, y.released_at FROM {self.s}.closed_answers a "
            f"JOIN {self.s}.closed_years y ON y.year = $1 "
            "WHERE a.period = $2 AND a.breakdown = $3",
            year,
            period,
            breakdown,
        )
        if row is None:
            return None
        answer: dict[str, Any] = row["answer"]
        answer["released_at"] = row["released_at"].isoformat()
        return answer

    async def close_years(self, conn: asyncpg.Connection, years: Sequence[int]) -> list[int]:
        """Close ``years``: keep the latest release's answers of each for good. Only a year the
        latest release decided can be closed (its figures as published); the others are left
        out of the result, and their facts must stay until a release holds them. In the
        caller's transaction, so that the answers are kept if and only if the facts go."""
        release = await self.latest(conn)
        if release is None:
            return []
        held = sorted(y for y in set(years) if str(y) in release.years)
        if not held:
            return []
        labels = [label for year in held for label in year_periods(year)]
        await conn.execute(
            f"INSERT INTO {self.s}.closed_answers (period, breakdown, answer) "
            f"SELECT period, breakdown, answer FROM {self.s}.release_answers "
            "WHERE release_id = $1 AND period = ANY($2::text[]) "
            "ON CONFLICT (period, breakdown) DO NOTHING",
            release.release_id,
            labels,
        )
        await conn.execute(
            f"INSERT INTO {self.s}.closed_years (year, closed_at, release_id, released_at) "
            "SELECT y, now(), $2, $3 FROM unnest($1::integer[]) y "
            "ON CONFLICT (year) DO NOTHING",
            held,
            release.release_id,
            release.released_at,
        )
        return held


def _release(row: asyncpg.Record) -> Release:
    return Release(
        release_id=row["release_id"],
        released_at=row["released_at"],
        k=row["k"],
        control=row["control"],
        newest_event_at=row["newest_event_at"],
        events_applied=row["events_applied"],
        years=row["years"],
    )
