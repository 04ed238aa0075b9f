"""No free text reaches Kafka (issue 17, domain.md §3; docs/privacy.md "Minimisation").

Every string field of every published event type must be an id, a code, a moment or an
enumeration: the walk below fails on a string field of an event schema that has no pattern, no
closed set of values and no format. Adding a free-text field to an event makes it fail; the few
strings that are not about a person are listed in ALLOWED, each with its reason.

And the old events that did carry free text (a cancellation's `reason`, a status change's
`outcome`, `lives_alone`) decode without it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.events import EVENT_TYPES, Topic, decode_event

# (event type, field path) -> why a string without pattern or enumeration is acceptable there.
ALLOWED: dict[tuple[str, str], str] = {
    ("activity.upserted", "title"): "an organisation's public name of its activity, no person",
    # The dead-letter topic is for operators: it holds the original bytes of a record that could
    # not be decoded (base64) and why. Its origin is one of our own topics, whose events pass
    # this test; what arrives there malformed was never accepted as an event.
    ("deadletter", "consumer"): "the consumer group's name",
    ("deadletter", "reason"): "the decoder's message",
    ("deadletter", "origin_topic"): "a topic name",
    ("deadletter", "original_key"): "base64 of a record key",
    ("deadletter", "original_value"): "base64 of a record",
}

CLOSED = ("pattern", "enum", "const", "format")


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _open_strings(schema: dict[str, Any], root: dict[str, Any], path: str) -> list[str]:
    """Paths of string values in ``schema`` that are not closed by a pattern, enumeration or
    format."""
    schema = _resolve(schema, root)
    found: list[str] = []
    for variant in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found += _open_strings(variant, root, path)
    kind = schema.get("type")
    if kind == "string" and not any(k in schema for k in CLOSED):
        found.append(path)
    if kind == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            found += _open_strings(sub, root, f"{path}.{name}" if path else name)
    if kind == "array" or "items" in schema or "prefixItems" in schema:
        for sub in [schema.get("items", {}), *schema.get("prefixItems", [])]:
            if sub:
                found += _open_strings(sub, root, path)
    return found


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_string_of_every_event_is_an_id_a_code_a_moment_or_an_enumeration(
    event_type: str,
) -> None:
    model = EVENT_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    open_strings = sorted(set(_open_strings(schema, schema, "")))
    unexplained = [p for p in open_strings if (model.event_name, p) not in ALLOWED]
    assert unexplained == [], (
        f"{event_type} has string fields that could carry free text: {unexplained}. Give each a "
        "pattern or a closed set of values (a code of a reference list), or argue it in ALLOWED."
    )


def test_the_walk_finds_a_free_text_field() -> None:
    """The test above can fail: a string field with only a length limit is found."""
    schema = {
        "type": "object",
        "properties": {
            "note": {"anyOf": [{"type": "string", "maxLength": 500}, {"type": "null"}]},
            "code": {"type": "string", "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "inner": {"$ref": "#/$defs/Inner"},
        },
        "$defs": {"Inner": {"type": "object", "properties": {"text": {"type": "string"}}}},
    }
    assert sorted(_open_strings(schema, schema, "")) == ["inner.text", "note", "tags"]


def test_the_allowed_exceptions_name_fields_that_exist() -> None:
    names = {m.event_name: m for m in EVENT_TYPES.values()}
    for event_name, field in ALLOWED:
        assert field in names[event_name].model_fields, (event_name, field)


def _old(event_type: str, data: dict[str, Any], subject: str | None = None) -> bytes:
    doc = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/organisations/org-a",
        "type": f"nl.verbinding.{event_type}",
        "time": datetime(2025, 3, 1, tzinfo=UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        doc["subject"] = subject
    return orjson.dumps(doc)


P = "a" * 64
AT = "2025-03-01T10:00:00+01:00"


def test_an_old_cancellation_with_a_free_text_reason_decodes_without_the_text() -> None:
    raw = _old(
        "registration.cancelled.v1",
        {"organisation_id": "org-a", "registration_id": "r-1", "activity_id": "a-1",
         "participant_id": P, "cancelled_at": AT, "reason": "Mevr. Jansen ligt in het ziekenhuis"},
        P,
    )  # fmt: skip
    event = decode_event(raw)
    assert event.type == "nl.verbinding.registration.cancelled.v2"
    assert event.data.reason == "other"
    assert "Jansen" not in str(event.model_dump())
    assert event.data.topic is Topic.REGISTRATIONS


@pytest.mark.parametrize("major", [1, 2])
def test_an_old_status_change_with_a_free_text_outcome_decodes_without_the_text(
    major: int,
) -> None:
    data = {"organisation_id": "org-a", "referral_id": "r-1", "participant_id": P,
            "changed_by": "org-a", "previous_status": "created", "status": "withdrawn", "at": AT,
            "outcome": "dhr. de Vries wil niet meer"}  # fmt: skip
    if major == 2:
        data["sequence"] = 1
    event = decode_event(_old(f"referral.status_changed.v{major}", data, P))
    assert event.type == "nl.verbinding.referral.status_changed.v3"
    assert event.data.outcome == "other"
    assert "Vries" not in str(event.model_dump())


def test_an_old_event_without_a_note_stays_without_one() -> None:
    data = {"organisation_id": "org-a", "referral_id": "r-1", "participant_id": P,
            "changed_by": "org-a", "previous_status": "created", "status": "withdrawn", "at": AT,
            "sequence": 1, "outcome": None}  # fmt: skip
    assert decode_event(_old("referral.status_changed.v2", data, P)).data.outcome is None


def test_an_old_participant_with_lives_alone_decodes_without_it() -> None:
    raw = _old(
        "attendance.recorded.v1",
        {"organisation_id": "org-a", "attendance_id": "t-1", "activity_id": "a-1",
         "participant": {"id": P, "scope": "organisation", "neighbourhood": "delfgauw",
                         "age_band": "75+", "lives_alone": True},
         "session_start": AT, "session_date": "2025-03-01", "status": "attended"},
        P,
    )  # fmt: skip
    event = decode_event(raw)
    assert "lives_alone" not in event.data.participant.model_dump()
    assert "lives_alone" not in orjson.loads(event.model_dump_json())["data"]["participant"]


def test_an_old_referral_to_a_free_text_service_keeps_no_text() -> None:
    raw = _old(
        "referral.created.v1",
        {"organisation_id": "org-a", "referral_id": "r-1",
         "participant": {"id": P, "scope": "organisation", "neighbourhood": "delfgauw",
                         "age_band": "75+"},
         "referrer_role": "gp", "signals": ["social"],
         "referred_to": {"service": "Buddy voor mevrouw Jansen"}, "created_at": AT},
        P,
    )  # fmt: skip
    event = decode_event(raw)
    assert event.data.referred_to.service == "other"
