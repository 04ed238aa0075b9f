"""Event contracts: CloudEvents envelope, every event type, topics and keys."""

from shared.events.envelope import (
    EVENT_TYPES,
    KAFKA_HEADERS,
    CloudEvent,
    EventData,
    EventDecodeError,
    UnknownEventType,
    UnknownEventVersion,
    decode_document,
    decode_event,
    encode_event,
    event_document,
    event_name_of,
    new_event,
    parse_document,
)
from shared.events.models import (
    ActivityUpserted,
    AttendanceRecorded,
    DeadLettered,
    MeasurementRecorded,
    Participant,
    PersonErased,
    ReferralCreated,
    ReferralFirstAttended,
    ReferralStatusChanged,
    ReferredTo,
    RegistrationCancelled,
    RegistrationCreated,
    TrainingCompleted,
)
from shared.events.topics import Topic, topic_name

# Earlier major versions still on the topics: importing registers their decoders and upcasters.
from shared.events import legacy  # noqa: F401  isort: skip

__all__ = [
    "EVENT_TYPES",
    "KAFKA_HEADERS",
    "ActivityUpserted",
    "AttendanceRecorded",
    "CloudEvent",
    "DeadLettered",
    "EventData",
    "EventDecodeError",
    "MeasurementRecorded",
    "Participant",
    "PersonErased",
    "ReferralCreated",
    "ReferralFirstAttended",
    "ReferralStatusChanged",
    "ReferredTo",
    "RegistrationCancelled",
    "RegistrationCreated",
    "Topic",
    "TrainingCompleted",
    "UnknownEventType",
    "UnknownEventVersion",
    "decode_document",
    "decode_event",
    "encode_event",
    "event_document",
    "event_name_of",
    "new_event",
    "parse_document",
    "topic_name",
]
