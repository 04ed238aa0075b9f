"""Event contracts (contract.md "Events on Kafka"): what a consumer of our topics relies on.

Every event type round-trips through its wire form unchanged; anything that is not exactly a
known Verbinding event is refused with a reason a person can act on (it ends up in the
dead-letter topic); events cannot be changed after creation; partition keys keep each
participant's history in one partition.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, get_args

import orjson
import pytest
from pydantic import AwareDatetime, ValidationError

from shared.events import (
    EVENT_TYPES,
    KAFKA_HEADERS,
    ActivityUpserted,
    AttendanceRecorded,
    CloudEvent,
    DeadLettered,
    EventData,
    EventDecodeError,
    MeasurementRecorded,
    Participant,
    PersonErased,
    ReferralCreated,
    ReferralFirstAttended,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCancelled,
    RegistrationCreated,
    Topic,
    TrainingCompleted,
    UnknownEventType,
    UnknownEventVersion,
    decode_event,
    encode_event,
    new_event,
)

ORG = "org-zorg.1"
CEST = timezone(timedelta(hours=2))
WHEN = datetime(2025, 3, 14, 9, 30, 15, 123456, tzinfo=CEST)


def _pseudonym(label: str) -> str:
    return hmac.new(b"unit-test-key", label.encode(), hashlib.sha256).hexdigest()


PARTICIPANT_ID = _pseudonym("participant")
RESIDENT = Participant(
    id=_pseudonym("resident"),
    scope="resident",
    neighbourhood="delfgauw",
    age_band="75+",
    lives_alone=True,
)


def _activity() -> ActivityUpserted:
    return ActivityUpserted(
        organisation_id=ORG,
        activity_id="koffie-ochtend",
        version=3,
        title="Koffieochtend in De Boog",
        category="meeting",
        aimed_at_connection=True,
        neighbourhood="koningshof",
        capacity=25,
        target_age_bands=("65-74", "75+"),
        active=True,
        updated_at=WHEN,
    )


def _registration() -> RegistrationCreated:
    return RegistrationCreated(
        organisation_id=ORG,
        registration_id="reg-1",
        activity_id="koffie-ochtend",
        participant=RESIDENT,
        registered_at=WHEN,
        referral_id="ref-7",
        referring_organisation_id="huisarts-1",
    )


def _cancellation() -> RegistrationCancelled:
    return RegistrationCancelled(
        organisation_id=ORG,
        registration_id="reg-1",
        activity_id="koffie-ochtend",
        participant_id=PARTICIPANT_ID,
        cancelled_at=WHEN,
        reason="ziek",
    )


def _attendance() -> AttendanceRecorded:
    return AttendanceRecorded(
        organisation_id=ORG,
        attendance_id="att-1",
        activity_id="koffie-ochtend",
        participant=RESIDENT.model_copy(update={"scope": "organisation", "lives_alone": None}),
        session_start=WHEN,
        session_date=date(2025, 3, 14),
        status="no_show",
    )


def _referral() -> ReferralCreated:
    return ReferralCreated(
        organisation_id=ORG,
        referral_id="ref-7",
        participant=RESIDENT,
        referrer_role="gp",
        signals=("emotional", "social"),
        referred_to=ReferredTo(organisation_id="buurtwerk", activity_id="koffie-ochtend"),
        receiving_organisation_id="buurtwerk",
        created_at=WHEN,
    )


def _referral_status() -> ReferralStatusChanged:
    return ReferralStatusChanged(
        organisation_id=ORG,
        referral_id="ref-7",
        participant_id=PARTICIPANT_ID,
        changed_by="buurtwerk",
        previous_status="created",
        status="accepted",
        at=WHEN,
        sequence=41,
        outcome="joined-activity",
    )


def _erased() -> PersonErased:
    return PersonErased(subject_id=PARTICIPANT_ID, erased_at=WHEN)


def _first_attendance() -> ReferralFirstAttended:
    return ReferralFirstAttended(
        organisation_id=ORG,
        referral_id="ref-7",
        participant_id=PARTICIPANT_ID,
        receiving_organisation_id="buurtwerk",
        registration_id="reg-7",
        activity_id="koffie-ochtend",
        session_start=WHEN,
        referred_on=date(2025, 3, 1),
        attended_on=date(2025, 3, 14),
        days_after_referral=13,
        within_window=True,
        sequence=3,
    )


def _training() -> TrainingCompleted:
    return TrainingCompleted(
        organisation_id=ORG,
        training_id="tr-1",
        person_id=_pseudonym("person"),
        role="volunteer",
        training="signaling-loneliness",
        completed_at=WHEN,
    )


def _measurement() -> MeasurementRecorded:
    return MeasurementRecorded(
        organisation_id=ORG,
        measurement_id="m-1",
        instrument="djg11",
        context="intake",
        participant_id=PARTICIPANT_ID,
        neighbourhood="delfgauw",
        age_band="75+",
        measured_at=WHEN,
        total=7,
        emotional=4,
        social=3,
        category="severely_lonely",
    )


def _anonymous_measurement() -> MeasurementRecorded:
    return _measurement().model_copy(
        update={"context": "survey", "participant_id": None, "measurement_id": "m-anon"}
    )


def _deadletter() -> DeadLettered:
    return DeadLettered(
        consumer="metrics",
        reason="not JSON",
        origin_topic="registrations",
        origin_partition=2,
        origin_offset=41,
        original_key="a2V5",
        original_value="bm90IGpzb24=",
        failed_at=WHEN,
    )


FACTORIES: dict[type[EventData], Callable[[], EventData]] = {
    ActivityUpserted: _activity,
    RegistrationCreated: _registration,
    RegistrationCancelled: _cancellation,
    AttendanceRecorded: _attendance,
    ReferralCreated: _referral,
    ReferralStatusChanged: _referral_status,
    ReferralFirstAttended: _first_attendance,
    TrainingCompleted: _training,
    MeasurementRecorded: _measurement,
    DeadLettered: _deadletter,
    PersonErased: _erased,
}
ALL = pytest.mark.parametrize("make", list(FACTORIES.values()), ids=[c.__name__ for c in FACTORIES])


def test_every_registered_event_type_has_a_sample_here() -> None:
    """A new event type must be added to these tests, or this fails."""
    assert {cls.event_type() for cls in FACTORIES} == set(EVENT_TYPES)


@ALL
def test_round_trip_through_the_wire_form_is_lossless(make: Callable[[], EventData]) -> None:
    event = new_event(make(), ORG)
    raw = encode_event(event)

    decoded = decode_event(raw)

    assert decoded == event
    assert type(decoded.data) is type(event.data)
    assert encode_event(decoded) == raw
    assert decode_event(raw.decode()) == event  # str input too


@ALL
def test_envelope_is_cloudevents_structured_json(make: Callable[[], EventData]) -> None:
    data = make()
    event = new_event(data, ORG)

    doc = orjson.loads(encode_event(event))

    # An optional attribute without a value is absent, never null (CloudEvents 1.0).
    optional = {"subject"} if data.subject() is not None else set()
    assert (
        set(doc)
        == {
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype",
            "data",
        }
        | optional
    )
    assert None not in [doc[name] for name in doc if name != "data"]
    assert doc["specversion"] == "1.0"
    assert uuid.UUID(doc["id"]) == event.id
    assert doc["source"] == f"/organisations/{ORG}"
    assert doc["type"] == f"nl.verbinding.{type(data).event_name}.v{type(data).major}"
    assert datetime.fromisoformat(doc["time"]).tzinfo is not None
    assert doc["datacontenttype"] == "application/json"
    assert doc.get("subject") == data.subject()


@ALL
def test_the_official_cloudevents_sdk_reads_every_event_type(make: Callable[[], EventData]) -> None:
    """The CloudEvents SDK for Python (2.x) as a partner would use it on a Kafka record; it used
    to reject every event without a participant (`"subject": null`)."""
    from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

    event = new_event(make(), ORG)
    message = KafkaMessage(headers=dict(KAFKA_HEADERS), key=event.key, value=encode_event(event))

    read = from_kafka_event(message)

    assert read.get_id() == str(event.id)
    assert read.get_type() == event.type
    assert read.get_subject() == event.subject
    assert read.get_data() == orjson.loads(encode_event(event))["data"]
    assert dict(KAFKA_HEADERS) == {"content-type": b"application/cloudevents+json"}


def test_two_events_never_share_an_id() -> None:
    ids = {new_event(_training(), ORG).id for _ in range(200)}
    assert len(ids) == 200


# ------------------------------------------------------------------------- strict decoding


def _wire(make: Callable[[], EventData] = _registration) -> dict[str, Any]:
    return orjson.loads(encode_event(new_event(make(), ORG)))


def _reason(raw: bytes, expected: type[EventDecodeError] = EventDecodeError) -> str:
    with pytest.raises(expected) as caught:
        decode_event(raw)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


def test_unknown_field_in_data_is_rejected_and_named() -> None:
    doc = _wire()
    doc["data"]["participant_name"] = "Jan Jansen"

    reason = _reason(orjson.dumps(doc))

    assert "data.participant_name" in reason
    assert "Extra inputs are not permitted" in reason
    assert "nl.verbinding.registration.created.v2" in reason


def test_unknown_field_in_nested_participant_is_rejected() -> None:
    doc = _wire()
    doc["data"]["participant"]["bsn"] = "123456782"

    assert "data.participant.bsn" in _reason(orjson.dumps(doc))


def test_unknown_envelope_field_is_rejected_and_named() -> None:
    doc = _wire()
    doc["traceparent"] = "00-abc"

    reason = _reason(orjson.dumps(doc))

    assert "traceparent: Extra inputs are not permitted" in reason


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("time", "2025-03-14T09:30:00", "time: Input should have timezone info"),
        ("time", "gisteren", "time: Input should be a valid datetime"),
        ("time", "2025-02-30T09:30:00+01:00", "time: Input should be a valid datetime"),
        ("registered_at", "2025-03-14T09:30:00", "data.registered_at: Input should have timezone"),
        ("registered_at", "14-03-2025 09:30", "data.registered_at: Input should be a valid"),
    ],
)
def test_naive_or_malformed_timestamp_is_rejected(where: str, value: str, message: str) -> None:
    doc = _wire()
    if where == "time":
        doc["time"] = value
    else:
        doc["data"][where] = value

    assert message in _reason(orjson.dumps(doc))


def _datetime_fields(cls: type[EventData]) -> list[str]:
    return [
        name
        for name, info in cls.model_fields.items()
        if any(
            isinstance(t, type) and issubclass(t, (datetime, AwareDatetime))
            for t in (info.annotation, *get_args(info.annotation))
        )
    ]


@ALL
def test_every_timestamp_in_every_event_must_carry_an_offset(
    make: Callable[[], EventData],
) -> None:
    """A naive moment cannot be placed in a period (domain rule); no event may carry one."""
    data = make()
    fields = _datetime_fields(type(data))
    assert fields, f"{type(data).__name__} has no timestamp?"
    for name in fields:
        doc = _wire(make)
        doc["data"][name] = "2025-03-14T09:30:00"
        assert f"data.{name}: Input should have timezone info" in _reason(orjson.dumps(doc))


@pytest.mark.parametrize("specversion", ["0.3", "1", 1.0, None])
def test_wrong_specversion_is_rejected(specversion: Any) -> None:
    doc = _wire()
    if specversion is None:
        del doc["specversion"]
    else:
        doc["specversion"] = specversion

    reason = _reason(orjson.dumps(doc))

    assert "not a CloudEvents 1.0 event" in reason
    assert f"specversion={specversion!r}" in reason


def test_unknown_major_version_is_refused_not_guessed() -> None:
    doc = _wire()
    doc["type"] = "nl.verbinding.registration.created.v3"

    reason = _reason(orjson.dumps(doc), UnknownEventVersion)

    assert reason == "unknown major version v3 of registration.created"


def test_unknown_major_version_is_refused_even_if_the_data_would_fit() -> None:
    doc = _wire(_training)
    doc["type"] = "nl.verbinding.training.completed.v0"

    with pytest.raises(
        UnknownEventVersion, match=r"unknown major version v0 of training\.completed"
    ):
        decode_event(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        (
            "nl.verbinding.registration.exploded.v1",
            "unknown event type 'nl.verbinding.registration.exploded.v1'",
        ),
        ("com.example.order.placed", "type 'com.example.order.placed' is not nl.verbinding."),
        ("nl.verbinding.registration.created", "is not nl.verbinding.<name>.v<major>"),
        (None, "type None is not nl.verbinding.<name>.v<major>"),
    ],
)
def test_unknown_type_is_refused(event_type: str | None, message: str) -> None:
    doc = _wire()
    doc["type"] = event_type

    reason = _reason(orjson.dumps(doc), UnknownEventType)

    assert message in reason
    assert not isinstance(UnknownEventType(reason), UnknownEventVersion)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b'["a", "list"]', "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
    ],
)
def test_bytes_that_are_not_a_json_object_are_refused(raw: bytes, message: str) -> None:
    assert _reason(raw).startswith(message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("id", "not-a-uuid", "id: Input should be a valid UUID"),
        ("source", "https://example.org", "source: String should match pattern"),
        ("datacontenttype", "text/plain", "datacontenttype: String should match pattern"),
    ],
)
def test_malformed_envelope_attributes_are_refused(field: str, value: str, message: str) -> None:
    doc = _wire()
    doc[field] = value

    assert message in _reason(orjson.dumps(doc))


def test_data_of_another_type_is_refused() -> None:
    """A registration's data under the attendance type must not slip through as attendance."""
    doc = _wire()
    doc["type"] = AttendanceRecorded.event_type()

    reason = _reason(orjson.dumps(doc))

    assert "data.attendance_id" in reason
    assert "Field required" in reason


def test_every_problem_is_named_at_once() -> None:
    doc = _wire()
    doc["time"] = "2025-03-14T09:30:00"
    doc["data"]["colour"] = "blue"
    del doc["data"]["activity_id"]

    reason = _reason(orjson.dumps(doc))

    assert "time: Input should have timezone info" in reason
    assert "data.colour: Extra inputs are not permitted" in reason
    assert "data.activity_id: Field required" in reason


def test_decoding_does_not_depend_on_key_order() -> None:
    doc = _wire()
    reordered = dict(reversed(list(copy.deepcopy(doc).items())))

    assert decode_event(orjson.dumps(reordered)) == decode_event(orjson.dumps(doc))


# ------------------------------------------------------------------------------ immutability


@ALL
def test_event_data_is_frozen(make: Callable[[], EventData]) -> None:
    data = make()
    name = next(iter(type(data).model_fields))
    before = getattr(data, name)

    with pytest.raises(ValidationError, match="Instance is frozen"):
        setattr(data, name, "changed")

    assert getattr(data, name) == before


def test_envelope_and_participant_are_frozen() -> None:
    event = new_event(_registration(), ORG)

    with pytest.raises(ValidationError, match="Instance is frozen"):
        event.subject = "someone-else"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Instance is frozen"):
        event.data.participant.neighbourhood = "elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Instance is frozen"):
        RESIDENT.id = "0" * 64  # type: ignore[misc]


def test_models_reject_unknown_fields_at_construction_too() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainingCompleted.model_validate({**_training().model_dump(), "name": "Jan"})


# ----------------------------------------------------------------------- keys and subjects


@pytest.mark.parametrize(
    ("make", "topic", "key", "subject"),
    [
        (_activity, Topic.ACTIVITIES, f"{ORG}:koffie-ochtend", None),
        (_registration, Topic.REGISTRATIONS, RESIDENT.id, RESIDENT.id),
        (_cancellation, Topic.REGISTRATIONS, PARTICIPANT_ID, PARTICIPANT_ID),
        (_attendance, Topic.REGISTRATIONS, RESIDENT.id, RESIDENT.id),
        (_referral, Topic.REFERRALS, RESIDENT.id, RESIDENT.id),
        (_referral_status, Topic.REFERRALS, PARTICIPANT_ID, PARTICIPANT_ID),
        (_training, Topic.TRAININGS, ORG, None),
        (_measurement, Topic.MEASUREMENTS, PARTICIPANT_ID, PARTICIPANT_ID),
        (_anonymous_measurement, Topic.MEASUREMENTS, f"{ORG}:m-anon", None),
    ],
    ids=[
        "activity",
        "registration",
        "cancellation",
        "attendance",
        "referral",
        "referral-status",
        "training",
        "measurement",
        "anonymous-measurement",
    ],
)
def test_topic_key_and_subject_follow_the_contract(
    make: Callable[[], EventData], topic: Topic, key: str, subject: str | None
) -> None:
    data = make()
    event = new_event(data, ORG)

    assert data.topic is topic
    assert event.key == key.encode()
    assert event.subject == subject


def test_same_participant_same_key_across_event_types() -> None:
    """One person's registration, attendance and cancellation land in one partition, in order."""
    pid = RESIDENT.id
    cancelled = _cancellation().model_copy(update={"participant_id": pid})
    keys = {new_event(d, ORG).key for d in (_registration(), _attendance(), cancelled)}
    assert keys == {pid.encode()}


@pytest.mark.parametrize("bad", ["ABC", "g" * 64, "a" * 63, "jan.jansen@example.org"])
def test_participant_fields_only_accept_pseudonyms(bad: str) -> None:
    """A raw reference or e-mail address can never travel where a pseudonym belongs."""
    with pytest.raises(ValidationError, match="String should match pattern"):
        Participant(id=bad, scope="organisation", neighbourhood="delfgauw", age_band="75+")
    with pytest.raises(ValidationError, match="String should match pattern"):
        _cancellation().model_validate({**_cancellation().model_dump(), "participant_id": bad})


def test_cloudevent_generic_decodes_to_the_declared_type() -> None:
    event = new_event(_measurement(), ORG)

    decoded = decode_event(encode_event(event))

    assert isinstance(decoded, CloudEvent)
    assert isinstance(decoded.data, MeasurementRecorded)
    assert decoded.data.category == "severely_lonely"
    assert decoded.time.tzinfo is not None
    assert decoded.time.astimezone(UTC) == event.time.astimezone(UTC)


# ------------------------------------------------------------- earlier versions on the topics


def _v1(make: Callable[[], EventData], drop: str, **data: Any) -> dict[str, Any]:
    """An event as its v1 was published: v1 type, the field v2 added absent, null subject."""
    doc = _wire(make)
    doc["type"] = doc["type"].rsplit(".v", 1)[0] + ".v1"
    del doc["data"][drop]
    doc["data"].update(data)
    doc.setdefault("subject", None)
    return doc


def test_a_v1_registration_decodes_as_v2_without_a_referrer() -> None:
    doc = _v1(_registration, "referring_organisation_id")

    event = decode_event(orjson.dumps(doc))

    assert event.type == "nl.verbinding.registration.created.v2"
    assert str(event.id) == doc["id"]  # deduplication still works across the versions
    assert isinstance(event.data, RegistrationCreated)
    assert event.data.referral_id == "ref-7"
    assert event.data.referring_organisation_id is None


def test_a_v1_referral_decodes_with_its_activity_organisation_as_receiver() -> None:
    to_activity = _v1(_referral, "receiving_organisation_id")
    to_service = _v1(_referral, "receiving_organisation_id", referred_to={"service": "buddy"})

    assert decode_event(orjson.dumps(to_activity)).data.receiving_organisation_id == "buurtwerk"
    # A service's provider is configuration (the service list); the consumer resolves it.
    assert decode_event(orjson.dumps(to_service)).data.receiving_organisation_id is None


@pytest.mark.parametrize(
    ("previous", "status"),
    [("created", "accepted"), ("accepted", "contacted"), ("contacted", "closed")],
)
def test_v1_status_changes_get_a_sequence_in_lifecycle_order(previous: str, status: str) -> None:
    """v1 carried no arrival order; changes with equal `at` are ordered by the lifecycle, which
    only moves forward."""
    earlier = decode_event(
        orjson.dumps(
            _v1(_referral_status, "sequence", previous_status="created", status="accepted")
        )
    )
    this = decode_event(
        orjson.dumps(_v1(_referral_status, "sequence", previous_status=previous, status=status))
    )

    assert this.type == "nl.verbinding.referral.status_changed.v3"
    if previous != "created":
        assert this.data.sequence > earlier.data.sequence


def test_a_v1_event_with_a_v2_field_is_refused() -> None:
    doc = _v1(_referral_status, "outcome")
    doc["data"]["sequence"] = 3

    assert "data.sequence: Extra inputs are not permitted" in _reason(orjson.dumps(doc))


def test_a_null_subject_of_an_old_event_still_decodes() -> None:
    doc = _wire(_training)
    doc["subject"] = None

    assert decode_event(orjson.dumps(doc)).subject is None
