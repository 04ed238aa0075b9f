"""The simulator's writes as the events the services would publish, without going through HTTP.

Used to pre-fill a topic with a million events in a minute instead of an hour. Each write is
parsed with the services' own batch item models and decided by the services' own decisions
(``domain/decide.py``: the same rules, pseudonyms, scores and events as the services), against a
state that holds what the services' databases would (the registration a cancellation refers to,
the referral a status change moves). A write the service would refuse publishes nothing. The
event's ``time`` is the simulated moment of the write, not the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from services.referrals.domain import decide as referrals
from services.referrals.domain.items import batch_item_adapter as referral_items
from services.registrations.domain import decide as registrations
from services.registrations.domain.items import batch_item_adapter as registration_items
from shared.errors import DOMAIN_ERRORS
from shared.events import CloudEvent, encode_event, topic_name
from shared.pipeline.decisions import Context, decide_and_apply
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from tools.simulator.generate import Write

__all__ = ["EncodedEvent", "EventFactory", "encoded"]


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    topic: str
    key: bytes
    value: bytes


class EventFactory:
    """Stateful, like the services' databases: feed it one simulation's writes in time order.
    ``organisations``: the registered partners (referrals name them as the receiving side)."""

    def __init__(self, pseudonymiser: Pseudonymiser, organisations: Iterable[str] = ()) -> None:
        self.p = pseudonymiser
        reference = load_reference()
        self.services: dict[str, tuple[Any, Any, Any]] = {
            "registrations": (
                registration_items(),
                registrations.Registrations(reference),
                registrations.State(),
            ),
            "referrals": (
                referral_items(),
                referrals.Referrals(reference, {}),
                referrals.State(organisations=dict.fromkeys(organisations, True)),
            ),
        }

    def decided(self, w: Write) -> tuple[CloudEvent[Any], ...]:
        """The events the service publishes for ``w``: none where it refuses it or it changes
        nothing."""
        adapter, decisions, state = self.services[w.service]
        item = adapter.validate_python(w.item)
        try:
            decisions.check(item)
            decision = decide_and_apply(
                decisions, item, state, Context(w.organisation, w.at, self.p)
            )
        except DOMAIN_ERRORS:
            return ()
        return decision.events

    def events(self, writes: Iterable[Write]) -> Iterator[CloudEvent[Any]]:
        for w in writes:
            yield from self.decided(w)


def encoded(events: Iterable[CloudEvent[Any]], prefix: str) -> Iterator[EncodedEvent]:
    for e in events:
        yield EncodedEvent(topic_name(e.data.topic, prefix), e.key, encode_event(e))
