"""The outbox encodes events with their people's subject ids without copying the models: the
rows must be byte for byte those of the models' way (``with_subject_ids`` then
``encode_event``), for every event type."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from shared.events import EventData, encode_event, new_event
from shared.subjects import encoded_with_subject_ids, person_pseudonyms, with_subject_ids
from tests.unit.test_events import ALL, ORG, _anonymous_measurement


@ALL
def test_the_same_rows_as_copying_the_models(make: Callable[[], EventData]) -> None:
    events = [new_event(make(), ORG), new_event(make(), ORG)]
    subjects = {p: secrets.token_hex(32) for p in person_pseudonyms(events)}
    expected = [(e.key, encode_event(e)) for e in with_subject_ids(events, subjects)]
    assert encoded_with_subject_ids(events, subjects) == expected


def test_an_event_about_nobody_is_encoded_as_it_is() -> None:
    event = new_event(_anonymous_measurement(), ORG)
    assert encoded_with_subject_ids([event], {}) == [(event.key, encode_event(event))]
