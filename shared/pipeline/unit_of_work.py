"""The unit of work (cosmicpython): one transaction in which a batch's state is loaded, and its
decisions' changes, events and answers are written together. Services subclass it with their
records; bootstrap injects the PostgreSQL implementation, unit tests a fake.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any, Protocol, Self

from shared.events import CloudEvent
from shared.pipeline.decisions import BatchState, IdempotencyKey, Remembered

__all__ = ["AbstractUnitOfWork", "ConcurrentWrite", "RememberedAnswers"]


class ConcurrentWrite(Exception):
    """A write met a record it could not foresee: another transaction wrote it between this
    one's load and its write (a unique key, a deadlock between two batches). Nothing of the
    statement was written; the pipeline decides those items again, one by one."""


class RememberedAnswers(Protocol):
    """The answers of idempotent writes, kept for their replays."""

    async def load(self, keys: Collection[IdempotencyKey]) -> dict[IdempotencyKey, Remembered]:
        """The answers given before under these keys. Call after the records the decisions
        change were loaded (and locked): a concurrent write of the same key has then either
        committed (its answer is here) or not started."""
        ...


class AbstractUnitOfWork(abc.ABC):
    """``async with uow:`` begins a transaction; leaving it without :meth:`commit` rolls back.
    One unit of work may run several transactions, one after another."""

    remembered: RememberedAnswers

    async def __aenter__(self) -> Self:
        await self._begin()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._end()

    @contextlib.asynccontextmanager
    async def writing(self, items: int, locks_nothing: bool) -> AsyncIterator[Self]:
        """``async with uow.writing(n, locks_nothing):`` in place of ``async with uow:`` for a
        write of ``n`` items; ``locks_nothing``: loading them takes no lock (reads only). An
        implementation may then fit its transaction to the write: a small write whose load
        locks nothing and whose save is one statement may run without a transaction of its own
        (that statement is atomic by itself); :meth:`commit` is called after the save as always.
        This default is ``async with uow``."""
        async with self:
            yield self

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _end(self) -> None:
        """Roll back unless committed."""

    @abc.abstractmethod
    async def commit(self) -> None: ...

    @abc.abstractmethod
    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A part of the transaction that an exception undoes alone (the fallback writes item
        by item inside one transaction, so that all-or-nothing still holds)."""

    @abc.abstractmethod
    async def save(self, state: BatchState, events: Sequence[CloudEvent[Any]]) -> None:
        """Write what the decisions changed in ``state`` (records added and changed, answers to
        remember) and their events (the outbox), set-based. Raises :class:`ConcurrentWrite`."""
