"""The registrations service's writes: what the one write pipeline (shared/pipeline) needs to
know about this service, for ``POST /v1/batch``, spreadsheet uploads, a volunteer's ticked list
and every single endpoint alike: one validation, one set of scope rules, one set of decisions,
the same events."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from services.registrations.domain.decide import (
    Registrations,
    State,
    answer_key,
)
from services.registrations.domain.items import (
    KINDS,
    OWN_FIELDS,
    ActivityItem,
    AttendanceItem,
    BatchItem,
    CancellationItem,
    RegistrationItem,
    batch_item_adapter,
)
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.auth import Principal, Scope
from shared.events import CloudEvent
from shared.pipeline.decisions import Context, Decision, Records
from shared.pipeline.items import parse_batch_item

__all__ = ["KIND_SCOPES", "RegistrationWrites"]

# Which scopes let a key write an item of each kind (any one of them; admin opens all). A
# volunteer's key (`attendance`) keeps activities and records attendance, nothing else.
KIND_SCOPES: dict[str, tuple[Scope, ...]] = {
    "activity": (Scope.ACTIVITIES, Scope.ATTENDANCE),
    "registration": (Scope.REGISTRATIONS,),
    "cancellation": (Scope.REGISTRATIONS,),
    "attendance": (Scope.REGISTRATIONS, Scope.ATTENDANCE),
}

# The scope values that let a key write each kind, admin among them: what Principal.has says of
# each of KIND_SCOPES, as one set test per item (asking per scope, through the enum's `value`
# property, took 2 µs an item under batch ingestion).
_GRANTING: dict[str, frozenset[str]] = {
    kind: frozenset({s.value for s in scopes} | {Scope.ADMIN.value})
    for kind, scopes in KIND_SCOPES.items()
}


class RegistrationWrites:
    """The service's side of the write pipeline."""

    def __init__(self, decisions: Registrations) -> None:
        self.decisions = decisions

    def parse(self, raw: Any) -> BatchItem:
        item: BatchItem = parse_batch_item(batch_item_adapter(), raw, KINDS)
        return item

    def scope_problem(self, principal: Principal, item: BatchItem) -> str | None:
        if not principal.scopes.isdisjoint(_GRANTING[item.kind]):
            return None
        scopes = KIND_SCOPES[item.kind]
        return f"this key lacks the scope {' or '.join(f'`{s.value}`' for s in scopes)}"

    def own_fields(self, item: BatchItem) -> Collection[str]:
        return OWN_FIELDS.get(item.kind, ())

    def check(self, item: BatchItem) -> None:
        self.decisions.check(item)

    def locks_nothing(self, items: Sequence[BatchItem]) -> bool:
        # Registrations and attendance only read (load's first branch); activities and
        # cancellations lock what they change.
        return not any(isinstance(i, ActivityItem | CancellationItem) for i in items)

    async def load(
        self, uow: RegistrationsUnitOfWork, organisation_id: str, items: Sequence[BatchItem]
    ) -> State:
        org = organisation_id
        changed = {(org, i.activity_id) for i in items if isinstance(i, ActivityItem)}
        used = {
            (org, i.body.activity_id)
            for i in items
            if isinstance(i, RegistrationItem | AttendanceItem)
        } - changed
        cancelled = {(org, i.registration_id) for i in items if isinstance(i, CancellationItem)}
        keys = [k for k in (answer_key(org, i) for i in items) if k is not None]
        if not changed and not cancelled:
            # Registrations and attendance change no record they load: no lock to wait for, so
            # the activities and the remembered answers are read together, in one round trip.
            # (A concurrent write of the same id that commits after this read meets this one's
            # at the unique key: the pipeline then decides the item again, see ConcurrentWrite.)
            activities, remembered = await uow.activities_and_answers(used, keys)
            return State(
                remembered=Records(remembered),
                activities=Records(activities),
                registrations=Records({}),
            )
        # The records that decisions change are locked, and loaded before the remembered
        # answers: a concurrent write of the same id has then committed or not begun.
        activities = await uow.activities.load(changed, lock=True) if changed else {}
        registrations = await uow.registrations.load(cancelled, lock=True) if cancelled else {}
        if used:
            activities |= await uow.activities.load(used)
        return State(
            remembered=Records(await uow.remembered.load(keys)),
            activities=Records(activities),
            registrations=Records(registrations),
        )

    def decide(self, item: BatchItem, state: State, context: Context) -> Decision:
        return self.decisions.decide(item, state, context)

    def evolve(self, state: State, event: CloudEvent[Any]) -> None:
        self.decisions.evolve(state, event)
