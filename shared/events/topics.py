"""Topic names and partition-key rules, in one place (contract.md "Events on Kafka")."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TOPIC_CONFIGS", "Topic", "topic_name"]


class Topic(StrEnum):
    """Logical topics. The physical name may carry a prefix (``VERBINDING_TOPIC_PREFIX``)."""

    ACTIVITIES = "activities"  # key: organisation_id:activity_id
    REGISTRATIONS = "registrations"  # key: participant pseudonym
    REFERRALS = "referrals"  # key: participant pseudonym
    TRAININGS = "trainings"  # key: organisation_id
    MEASUREMENTS = "measurements"  # key: participant pseudonym, or org:measurement_id if anonymous
    DEADLETTER = "deadletter"  # key: origin topic:partition
    ERASURES = "erasures"  # key: the erased person's subject id; compacted
    REGISTRATIONS_INGRESS = "registrations-ingress"  # partner systems may produce here directly


def topic_name(topic: Topic, prefix: str = "") -> str:
    return f"{prefix}{topic.value}"


# Every topic keeps its events (rebuilds replay them); `erasures` is compacted besides: one record
# per erased person, kept for good, so that every consumer and every rebuild skips the person.
# The dead-letter topic's retention is set by `verbinding retention run` (docs/privacy.md).
TOPIC_CONFIGS: dict[Topic, dict[str, str]] = {
    **{t: {"retention.ms": "-1"} for t in Topic},
    Topic.ERASURES: {"cleanup.policy": "compact", "retention.ms": "-1"},
}
