"""In-memory units of work for the service-layer unit tests (cosmicpython's fakes): the same
roles as the PostgreSQL ones, over dictionaries. A transaction works on a copy of the tables that
``commit`` puts in place; leaving without a commit drops it."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.referrals.domain import decide as referrals
from services.registrations.domain import decide as registrations
from shared.events import CloudEvent
from shared.pipeline.decisions import BatchState, IdempotencyKey, Remembered
from shared.pipeline.unit_of_work import AbstractUnitOfWork, ConcurrentWrite


@dataclass
class Tables:
    """What a service's database would hold."""

    records: dict[str, dict[Any, Any]] = field(default_factory=dict)
    remembered: dict[IdempotencyKey, Remembered] = field(default_factory=dict)
    outbox: list[CloudEvent[Any]] = field(default_factory=list)

    def table(self, name: str) -> dict[Any, Any]:
        return self.records.setdefault(name, {})

    def merge(self, other: Tables) -> None:
        for name, rows in other.records.items():
            self.table(name).update(rows)
        self.remembered.update(other.remembered)
        self.outbox.extend(e for e in other.outbox if e not in self.outbox)


class _Table:
    def __init__(self, uow: FakeUnitOfWork, name: str) -> None:
        self.uow = uow
        self.name = name

    @property
    def rows(self) -> dict[Any, Any]:
        return self.uow.tables.table(self.name)

    async def load(self, keys: Collection[Any], *, lock: bool = False) -> dict[Any, Any]:
        self.uow.loads += 1
        return {k: self.rows[k] for k in keys if k in self.rows}


class _Remembered:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    async def load(self, keys: Collection[IdempotencyKey]) -> dict[IdempotencyKey, Remembered]:
        self.uow.loads += 1
        return {k: self.uow.tables.remembered[k] for k in keys if k in self.uow.tables.remembered}


class FakeUnitOfWork(AbstractUnitOfWork):
    # The state's records, each kept in a table of that name.
    records: ClassVar[tuple[str, ...]] = ()

    def __init__(self, tables: Tables | None = None) -> None:
        self.committed = tables or Tables()
        self.tables = self.committed
        self.remembered = _Remembered(self)
        self.commits = 0
        self.loads = 0
        self.saves = 0
        # Raise ConcurrentWrite on this many of the next saves: another writer got there first,
        # and committed ``concurrent`` (if given) between this transaction's load and its write.
        self.conflicts = 0
        self.concurrent: Tables | None = None

    async def _begin(self) -> None:
        self.tables = copy.deepcopy(self.committed)

    async def _end(self) -> None:
        self.tables = self.committed

    async def commit(self) -> None:
        self.committed = self.tables
        self.commits += 1

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        saved = copy.deepcopy(self.tables)
        try:
            yield
        except BaseException:
            self.tables = saved
            raise

    async def save(self, state: BatchState, events: Sequence[CloudEvent[Any]]) -> None:
        self.saves += 1
        if self.conflicts:
            self.conflicts -= 1
            if self.concurrent is not None:
                self.committed.merge(self.concurrent)
                self.concurrent = None
            raise ConcurrentWrite("another writer got there first")
        for name in self.records:
            records = getattr(state, name)
            for key, value in [*records.added_items(), *records.changed_items()]:
                self.tables.table(name)[key] = value
        for key, remembered in state.remembered.added_items():
            self.tables.remembered[key] = remembered
        self.tables.outbox.extend(events)


class FakeRegistrationsUnitOfWork(FakeUnitOfWork):
    records = ("activities", "registrations", "attendance")

    def __init__(self, tables: Tables | None = None) -> None:
        super().__init__(tables)
        self.activities = _Activities(self, "activities")
        self.registrations = _Table(self, "registrations")
        self.attendance = _Attendance(self, "attendance")

    async def activities_and_answers(
        self, keys: Collection[Any], answers: Collection[IdempotencyKey]
    ) -> tuple[dict[Any, Any], dict[IdempotencyKey, Remembered]]:
        return await self.activities.load(keys), await self.remembered.load(answers)


class _Activities(_Table):
    async def of_organisation(self, organisation_id: str) -> list[registrations.Activity]:
        found = [a for (org, _), a in self.rows.items() if org == organisation_id]
        return sorted(found, key=lambda a: (not a.active, a.title.lower(), a.activity_id))


class _Attendance(_Table):
    async def statuses(self, organisation_id: str, ids: Collection[str]) -> dict[str, str]:
        return {
            i: self.rows[(organisation_id, i)].status
            for i in ids
            if (organisation_id, i) in self.rows
        }


class FakeReferralsUnitOfWork(FakeUnitOfWork):
    records = ("referrals", "history", "trainings", "measurements")

    def __init__(self, tables: Tables | None = None, partners: Collection[str] = ()) -> None:
        super().__init__(tables)
        self.referrals = _Referrals(self, "referrals")
        self.organisations = _Organisations(set(partners))
        self.trainings = _Table(self, "trainings")
        self.measurements = _Table(self, "measurements")


class _Referrals(_Table):
    async def received(
        self,
        organisation_id: str,
        referral_ids: Collection[str],
        services: Collection[str],
        *,
        lock: bool = False,
    ) -> list[referrals.Referral]:
        return [
            r
            for r in self.rows.values()
            if r.referral_id in referral_ids
            and r.organisation_id != organisation_id
            and (
                r.receiving_organisation_id == organisation_id
                or (r.receiving_organisation_id is None and r.referred_to_service in services)
            )
        ]

    async def history(self, organisation_id: str, referral_id: str) -> list[Any]:
        rows = self.uow.tables.table("history").values()
        found = [
            h for h in rows if (h.organisation_id, h.referral_id) == (organisation_id, referral_id)
        ]
        return sorted(found, key=lambda h: h.sequence)


class _Organisations:
    def __init__(self, partners: set[str]) -> None:
        self.partners = partners

    async def registered(self, organisation_ids: Collection[str]) -> set[str]:
        return set(organisation_ids) & self.partners
