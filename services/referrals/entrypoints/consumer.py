"""Kafka entrypoint of the referrals service: two FastStream batch subscribers, each in a
consumer group of its own.

- **first attendance** reads `registrations` and `referrals` and records, through the write
  pipeline, the first attended session of each referred resident
  (service_layer/first_attendance.py);
- **webhooks** reads `referrals` and queues a delivery of each referral event to the webhook
  endpoints of the organisations that sent or received the referral
  (service_layer/webhooks.py). The deliveries themselves are sent by a worker of their own, so
  that a slow receiver never holds up this subscriber, let alone a write.

Subscribers are thin: they decode, hand the events to one service function and dead-letter what
cannot be decoded or applied (with the reason and the original bytes, as the metrics service
does). Offsets are committed only after the handler returned (AckPolicy.NACK_ON_ERROR: on an
exception, e.g. the database is down, the batch is delivered again; both handlers recognise a
redelivered event).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import Counter

from shared.consumer import DeadLetter, KafkaDeadLetterSink, RawRecord
from shared.db import DatabaseUnavailable
from shared.events import (
    CloudEvent,
    EventDecodeError,
    Topic,
    decode_document,
    parse_document,
    topic_name,
)
from shared.kafka import KafkaConnection, KafkaTarget

__all__ = ["CONSUMED_TOPICS", "CONSUMERS", "Handler", "ReferralsConsumer"]

log = logging.getLogger(__name__)

# (name, topics, the setting that names its consumer group): docs, ACLs and compose read these.
CONSUMERS: tuple[tuple[str, tuple[Topic, ...], str], ...] = (
    # `erasures`: an erased person's matching data goes, and their events are skipped.
    (
        "first-attendance",
        (Topic.REGISTRATIONS, Topic.REFERRALS, Topic.ERASURES),
        "attendance_consumer_group",
    ),
    ("webhooks", (Topic.REFERRALS,), "webhook_consumer_group"),
)
CONSUMED_TOPICS = (Topic.REGISTRATIONS, Topic.REFERRALS, Topic.ERASURES)

CONSUMED = Counter(
    "verbinding_referrals_events_consumed_total",
    "Events handed to a consumer of the referrals service.",
    ["consumer", "topic"],
)
DEADLETTERED = Counter(
    "verbinding_referrals_events_deadlettered_total",
    "Events a consumer of the referrals service sent to the deadletter topic.",
    ["consumer", "topic"],
)

Handler = Callable[[Sequence[CloudEvent[Any]]], Awaitable[None]]
# Whether a consumer needs an event, from its parsed, not yet validated document: the events it
# does not need are passed over undecoded (service_layer/first_attendance.py, may_matter).
Needed = Callable[[Any], bool]


async def _records_undecoded(msg: StreamMessage[Any]) -> Any:
    """The subscriber reads the raw records itself (see the metrics consumer)."""
    return msg.body


class ReferralsConsumer:
    """``handlers``: consumer name -> what applies a batch of its events; ``groups``: consumer
    name -> its consumer group; ``needed``: consumer name -> which events it needs (by
    default every one)."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        groups: dict[str, str],
        *,
        bootstrap: KafkaTarget,
        prefix: str = "",
        max_records: int = 500,
        needed: dict[str, Needed] | None = None,
    ) -> None:
        self.kafka = KafkaConnection.of(bootstrap)
        self.prefix = prefix
        self.handlers = handlers
        self.needed = needed or {}
        self.broker = KafkaBroker(
            self.kafka.bootstrap, security=self.kafka.faststream_security(), log_level=logging.DEBUG
        )
        self._producer: AIOKafkaProducer | None = None
        self._sinks: dict[str, KafkaDeadLetterSink] = {}
        self.groups = groups
        for name, topics, _ in CONSUMERS:
            if name in handlers:
                self._subscribe(name, topics, groups[name], max_records)

    def _subscribe(
        self, name: str, topics: tuple[Topic, ...], group: str, max_records: int
    ) -> None:
        @self.broker.subscriber(
            *(topic_name(t, self.prefix) for t in topics),
            batch=True,
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_records=max_records,
            batch_timeout_ms=100,
            decoder=_records_undecoded,
            title=f"referrals-{name}",
        )
        async def on_batch(msg: KafkaMessage) -> None:
            await self.handle(name, msg.raw_message)

    async def handle(self, name: str, records: Sequence[Any]) -> None:
        letters: list[DeadLetter] = []
        decoded: dict[Any, tuple[RawRecord, CloudEvent[Any]]] = {}
        consumed: collections.Counter[str] = collections.Counter()
        needed = self.needed.get(name)
        for r in records:
            try:
                doc = parse_document(r.value or b"")
                if needed is not None and not needed(doc):
                    consumed[r.topic] += 1  # consumed: it takes no part in the handler's work
                    continue
                event = decode_document(doc)
            except EventDecodeError as exc:
                record = RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
                letters.append(DeadLetter(record, exc.reason))
                continue
            record = RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
            decoded.setdefault(event.id, (record, event))
        handler = self.handlers[name]
        try:
            await handler([e for _, e in decoded.values()])
        except DatabaseUnavailable:
            raise
        except Exception:
            # One event the handler cannot apply must not stop the partition: apply one by one
            # and dead-letter the ones that fail (each handler recognises what it applied).
            log.info("batch failed; isolating the failing events", extra={"consumer": name})
            for record, event in decoded.values():
                try:
                    await handler([event])
                except DatabaseUnavailable:
                    raise
                except Exception as exc:
                    letters.append(DeadLetter(record, f"could not apply {event.type}: {exc!r}"))
        if letters:
            await self._sinks[name].send(letters)
            for letter in letters:
                DEADLETTERED.labels(name, letter.record.topic.removeprefix(self.prefix)).inc()
            log.warning(
                "dead-lettered",
                extra={"consumer": name, "reasons": [x.reason[:200] for x in letters[:5]]},
            )
        for record, _ in decoded.values():
            consumed[record.topic] += 1
        for topic, count in consumed.items():
            CONSUMED.labels(name, topic.removeprefix(self.prefix)).inc(count)

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **self.kafka.client_options(), acks="all", enable_idempotence=True
        )
        await self._producer.start()
        self._sinks = {
            name: KafkaDeadLetterSink(self._producer, self.groups[name], self.prefix)
            for name in self.handlers
        }
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()
        if self._producer is not None:
            await self._producer.stop()
