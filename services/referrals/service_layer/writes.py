"""The referrals service's writes: what the one write pipeline (shared/pipeline) needs to know
about this service, for ``POST /v1/batch`` and every single endpoint alike."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from services.referrals.domain.decide import Key, Referrals, State
from services.referrals.domain.items import (
    KINDS,
    BatchItem,
    ReferralItem,
    ReferralStatusItem,
    batch_item_adapter,
)
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from shared.auth import Principal, Scope
from shared.errors import DOMAIN_ERRORS
from shared.events import CloudEvent
from shared.pipeline.decisions import Context, Decision, Records
from shared.pipeline.items import parse_batch_item

__all__ = ["KIND_SCOPES", "ReferralWrites"]

# The scope each kind of item needs; the batch itself needs any one of them.
KIND_SCOPES: dict[str, Scope] = {
    "referral": Scope.REFERRALS,
    "referral_status": Scope.REFERRALS,
    "training": Scope.TRAININGS,
    "measurement": Scope.MEASUREMENTS,
}


class ReferralWrites:
    """The service's side of the write pipeline."""

    def __init__(self, decisions: Referrals) -> None:
        self.decisions = decisions

    def parse(self, raw: Any) -> BatchItem:
        item: BatchItem = parse_batch_item(batch_item_adapter(), raw, KINDS)
        return item

    def scope_problem(self, principal: Principal, item: BatchItem) -> str | None:
        needed = KIND_SCOPES[item.kind]
        return None if principal.has(needed) else f"this key lacks the scope `{needed.value}`"

    def own_fields(self, item: BatchItem) -> Collection[str]:
        return ()

    def check(self, item: BatchItem) -> None:
        self.decisions.check(item)

    def locks_nothing(self, items: Sequence[Any]) -> bool:
        # A status change locks the referrals it may mean; the other kinds were not examined
        # for this (docs/benchmarks.md): every write keeps its transaction.
        return False

    async def load(
        self, uow: ReferralsUnitOfWork, organisation_id: str, items: Sequence[BatchItem]
    ) -> State:
        org = organisation_id
        changes = [i for i in items if isinstance(i, ReferralStatusItem)]
        named: set[Key] = {
            (i.referring_organisation_id, i.referral_id)
            for i in changes
            if i.referring_organisation_id is not None
        }
        unnamed = {i.referral_id for i in changes if i.referring_organisation_id is None}
        # The referrals a status change may mean are locked, and loaded before the remembered
        # answers: a concurrent change of the same referral has then committed or not begun.
        referrals = await uow.referrals.load(named | {(org, r) for r in unnamed}, lock=True)
        received: dict[Key, list[Key]] = {}
        if unnamed:
            for r in await uow.referrals.received(
                org, unnamed, self.decisions.provided_by(org), lock=True
            ):
                referrals[(r.organisation_id, r.referral_id)] = r
                received.setdefault((org, r.referral_id), []).append(
                    (r.organisation_id, r.referral_id)
                )
        targets = {
            i.body.referred_to.organisation_id
            for i in items
            if isinstance(i, ReferralItem) and i.body.referred_to.organisation_id is not None
        }
        registered = await uow.organisations.registered(targets) if targets else set()
        state = State(
            referrals=Records(referrals),
            received=received,
            organisations={o: o in registered for o in targets},
        )
        keys = []
        for item in items:
            try:
                keys.append(self.decisions.answer_key(org, item, state))
            except DOMAIN_ERRORS:
                continue  # a referral the caller cannot name: decided (refused) later
        state.remembered = Records(await uow.remembered.load(keys))
        return state

    def decide(self, item: BatchItem, state: State, context: Context) -> Decision:
        return self.decisions.decide(item, state, context)

    def evolve(self, state: State, event: CloudEvent[Any]) -> None:
        self.decisions.evolve(state, event)
