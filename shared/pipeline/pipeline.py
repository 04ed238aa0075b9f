"""The one write path of both writing services, for a batch of a thousand items and for a single
write alike (a batch of one):

1. validate every item (its model, the key's scope for its kind, the rules that need no state);
2. load the state the valid items need, set-wise, in one transaction (records that decisions
   change are locked first; the remembered answers are read after them);
3. decide item by item against that state and the batch's own effects (each decision's events
   are applied to the state before the next item is decided);
4. write what changed set-based, in one statement (records, outbox, remembered answers), and
   commit once.

Where loading takes no lock (the model's ``locks_nothing``: a registration or attendance only
reads), a write whose save is one statement runs without a transaction of its own: the reads
and then that statement, which is atomic by itself (READ COMMITTED gives a transaction's
statements no common snapshot either); no BEGIN and COMMIT to wait for.

When a write meets a record it could not foresee (another transaction wrote it after this one
loaded), nothing of the statement stands; the items are then decided again one by one, each in a
savepoint of one transaction, against state loaded for that item alone: exactly what they would
have had on their own, and all-or-nothing still holds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from shared.auth import Principal
from shared.errors import DOMAIN_ERRORS, FieldError
from shared.events import CloudEvent
from shared.pipeline.decisions import BatchState, Context, Decision, decide_and_apply
from shared.pipeline.items import (
    BatchItemResult,
    WriteResult,
    failed,
    under,
    validation_details,
)
from shared.pipeline.unit_of_work import AbstractUnitOfWork, ConcurrentWrite
from shared.pseudonym import Pseudonymiser

__all__ = ["Pipeline", "WriteContention", "WriteModel"]

ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT", bound=BatchState)
UowT = TypeVar("UowT", bound=AbstractUnitOfWork)
UowT_contra = TypeVar("UowT_contra", bound=AbstractUnitOfWork, contravariant=True)

# How often an item is decided again when its write keeps meeting concurrent writes.
ATTEMPTS = 3


class WriteContention(Exception):
    """An item met a concurrent write of the same records on every attempt; the partner
    retries (503, safe: the write is idempotent)."""


class WriteModel(Protocol[ItemT, StateT, UowT_contra]):
    """What a service gives the pipeline: its items, its rules, and how to load its state."""

    def parse(self, raw: Any) -> ItemT:
        """A raw batch item as the service's item model; raises FieldError."""
        ...

    def scope_problem(self, principal: Principal, item: ItemT) -> str | None:
        """Why this key may not write this kind of item, if it may not."""
        ...

    def own_fields(self, item: ItemT) -> Collection[str]:
        """The fields an item names beside its body (a single endpoint's path ids)."""
        ...

    def check(self, item: ItemT) -> None:
        """The rules that need no state; raises FieldError naming fields of the body."""
        ...

    async def load(self, uow: UowT_contra, organisation_id: str, items: Sequence[ItemT]) -> StateT:
        """The state the items' decisions consult, loaded set-wise."""
        ...

    def locks_nothing(self, items: Sequence[ItemT]) -> bool:
        """Whether :meth:`load` only reads for these items, taking no lock: their write then
        needs no transaction beyond its own statement (``uow.writing``)."""
        ...

    def decide(self, item: ItemT, state: StateT, context: Context) -> Decision: ...

    def evolve(self, state: StateT, event: CloudEvent[Any]) -> None: ...


@dataclass
class _Decided:
    outcomes: list[WriteResult | Exception]
    events: list[CloudEvent[Any]]

    @property
    def refused(self) -> bool:
        return any(isinstance(o, Exception) for o in self.outcomes)


class Pipeline(Generic[ItemT, StateT, UowT]):
    def __init__(
        self,
        model: WriteModel[ItemT, StateT, UowT],
        pseudonymiser: Pseudonymiser,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model = model
        self.pseudonymiser = pseudonymiser
        self.clock = clock

    async def batch(
        self,
        uow: UowT,
        principal: Principal,
        raw_items: Sequence[Any],
        *,
        all_or_nothing: bool = False,
    ) -> list[BatchItemResult]:
        """Apply ``raw_items`` (as a partner sends them) for the key's organisation: one result
        per item. With ``all_or_nothing`` one refused item means that none is written (the
        results still say what each item did or would have done)."""
        results: list[BatchItemResult | None] = [None] * len(raw_items)
        valid: list[tuple[int, ItemT]] = []
        for index, raw in enumerate(raw_items):
            try:
                item = self.model.parse(raw)
                lacking = self.model.scope_problem(principal, item)
                if lacking:
                    raise FieldError([("kind", lacking)])
                try:
                    self.model.check(item)
                except FieldError as exc:
                    raise under(exc, "body", self.model.own_fields(item)) from None
            except FieldError as exc:
                results[index] = failed(index, exc)
                continue
            valid.append((index, item))
        # With all-or-nothing an invalid item means nothing is written; the valid ones are
        # still decided, to say what each would have done.
        doomed = all_or_nothing and len(valid) < len(raw_items)
        outcomes = await self.apply(
            uow, principal.organisation_id, [item for _, item in valid], all_or_nothing, doomed
        )
        for (index, item), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, Exception):
                results[index] = failed(index, under(outcome, "body", self.model.own_fields(item)))
            else:
                results[index] = BatchItemResult(
                    index=index, status=outcome.status_code, body=outcome.body
                )
        return [r for r in results if r is not None]

    async def one(self, uow: UowT, principal: Principal, item: ItemT) -> WriteResult:
        """A single write: a batch of one, whose refusal is raised as the domain error."""
        self.model.check(item)
        (outcome,) = await self.apply(uow, principal.organisation_id, [item])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def apply(
        self,
        uow: UowT,
        organisation_id: str,
        items: Sequence[ItemT],
        all_or_nothing: bool = False,
        doomed: bool = False,
    ) -> list[WriteResult | Exception]:
        """Steps 2 to 4 for items that are valid and authorised already (a Kafka consumer's,
        mapped from the events it reads; the partners' come through :meth:`batch` and
        :meth:`one`): one answer or refusal per item. An item whose id is its event's id is
        idempotent like a partner's write: a redelivered event replays."""
        if not items:
            return []
        try:
            # The unit of work fits its transaction to the write: a single write whose load
            # takes no lock needs none beyond its one statement (two round trips less).
            async with uow.writing(len(items), self.model.locks_nothing(items)):
                state = await self.model.load(uow, organisation_id, items)
                decided = self._decide(organisation_id, items, state)
                if _stands(decided.outcomes, all_or_nothing, doomed):
                    await uow.save(state, decided.events)
                    await uow.commit()
                return decided.outcomes  # leaving without a commit writes nothing
        except ConcurrentWrite:
            return await self._one_by_one(uow, organisation_id, items, all_or_nothing, doomed)

    def _decide(self, organisation_id: str, items: Sequence[ItemT], state: StateT) -> _Decided:
        decided = _Decided([], [])
        for item in items:
            context = Context(organisation_id, self.clock(), self.pseudonymiser)
            try:
                decision = decide_and_apply(self.model, item, state, context)
            except DOMAIN_ERRORS as exc:
                decided.outcomes.append(exc)
                continue
            except ValidationError as exc:  # a value the event refuses: still the input's fault
                decided.outcomes.append(FieldError(validation_details(exc)))
                continue
            decided.events.extend(decision.events)
            decided.outcomes.append(WriteResult(decision.status_code, decision.body))
        return decided

    async def _one_by_one(
        self,
        uow: UowT,
        organisation_id: str,
        items: Sequence[ItemT],
        all_or_nothing: bool,
        doomed: bool,
    ) -> list[WriteResult | Exception]:
        outcomes: list[WriteResult | Exception] = []
        async with uow:
            for item in items:
                for _ in range(ATTEMPTS):
                    try:
                        async with uow.savepoint():
                            state = await self.model.load(uow, organisation_id, [item])
                            decided = self._decide(organisation_id, [item], state)
                            if not decided.refused:
                                await uow.save(state, decided.events)
                        break
                    except ConcurrentWrite:
                        continue
                else:
                    raise WriteContention(
                        "the same records were written concurrently on every attempt"
                    )
                outcomes.extend(decided.outcomes)
            if _stands(outcomes, all_or_nothing, doomed):
                await uow.commit()
        return outcomes


def _stands(
    outcomes: Sequence[WriteResult | Exception], all_or_nothing: bool, doomed: bool
) -> bool:
    """Whether a batch's writes are committed: with all-or-nothing, not when an item was refused
    (``doomed``: one was refused before any was decided)."""
    refused = any(isinstance(o, Exception) for o in outcomes)
    return not (doomed or (all_or_nothing and refused))
