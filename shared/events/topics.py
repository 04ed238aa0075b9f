"""Topic names and partition-key rules, in one place (contract.md "Events on Kafka")."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Topic", "topic_name"]


class Topic(StrEnum):
    """Logical topics. The physical name may carry a prefix (``VERBINDING_TOPIC_PREFIX``)."""

    ACTIVITIES = "activities"  # key: organisation_id:activity_id
    REGISTRATIONS = "registrations"  # key: participant pseudonym
    REFERRALS = "referrals"  # key: participant pseudonym
    TRAININGS = "trainings"  # key: organisation_id
    MEASUREMENTS = "measurements"  # key: participant pseudonym, or org:measurement_id if anonymous
    DEADLETTER = "deadletter"  # key: origin topic:partition
    REGISTRATIONS_INGRESS = "registrations-ingress"  # partner systems may produce here directly


def topic_name(topic: Topic, prefix: str = "") -> str:
    return f"{prefix}{topic.value}"
