"""The metrics consumer refuses an event type it has no handler for (a dead letter and an
alert): every type a service publishes must have one, even if it is ignored on purpose."""

from __future__ import annotations

from services.metrics.adapters.facts import FactWriter
from shared.events.envelope import EVENT_TYPES


def test_every_published_event_type_has_a_handler_in_the_metrics_service() -> None:
    missing = sorted(name for name, cls in EVENT_TYPES.items() if cls not in FactWriter._handlers)
    assert missing == []
