"""Kafka helpers shared by the services: how to connect (address and SASL credentials), topic
creation and a cheap reachability check.

Every Kafka client of the platform (the outbox relay's producer, the metrics consumer, its
dead-letter producer and lag probe, the admin client that creates topics, the rebuild) takes
its connection options from :class:`KafkaConnection`, so that SASL is configured in one place.
:func:`partitions_of` is the one way to learn a topic's partitions, through the admin client's
public metadata call.
The local stack's broker listens on 127.0.0.1 with PLAINTEXT; docker-compose's requires
SASL/SCRAM with a user per service (docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.events import Topic, topic_name
from shared.events.topics import TOPIC_CONFIGS

__all__ = [
    "KafkaConnection",
    "KafkaTarget",
    "SaslMechanism",
    "SecurityProtocol",
    "ensure_topics",
    "kafka_reachable",
    "partitions_of",
    "topic_partitions",
]

log = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where the broker is and who we are to it (settings: ``VERBINDING_KAFKA_*``)."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def of(cls, target: KafkaTarget) -> KafkaConnection:
        """A bare bootstrap string means PLAINTEXT (the local stack, tests)."""
        return target if isinstance(target, KafkaConnection) else cls(target)

    @property
    def sasl(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.security_protocol != "SASL_SSL":
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap}
        if self.sasl:
            options.update(
                security_protocol=self.security_protocol,
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
            context = self._ssl_context()
            if context is not None:
                options["ssl_context"] = context
        return options

    def faststream_security(self) -> BaseSecurity | None:
        """The same credentials in FastStream's terms (its KafkaBroker takes no raw options)."""
        if not self.sasl:
            return None
        kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        return kinds[self.sasl_mechanism](
            self.username or "",
            self.password or "",
            ssl_context=self._ssl_context(),
            use_ssl=self.security_protocol == "SASL_SSL",
        )


KafkaTarget = str | KafkaConnection


async def ensure_topics(
    bootstrap: KafkaTarget,
    prefix: str = "",
    *,
    partitions: int = 4,
    replication: int = 1,
    topics: Iterable[Topic] = tuple(Topic),
) -> None:
    """Create the platform's topics if missing. Events are kept forever: rebuilds replay them."""
    admin = AIOKafkaAdminClient(
        **KafkaConnection.of(bootstrap).client_options(), request_timeout_ms=10_000
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=topic_name(t, prefix),
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=TOPIC_CONFIGS[t],
            )
            for t in topics
            if topic_name(t, prefix) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("topics created", extra={"topics": [t.name for t in wanted]})
    finally:
        await admin.close()


async def partitions_of(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> list[TopicPartition]:
    """The partitions of those of ``topics`` that exist, in the given topic order.

    Asks for the metadata of every topic: a request that named the topics would let a broker
    with ``auto.create.topics.enable`` create the missing ones."""
    described = {t["topic"]: t for t in await admin.describe_topics()}
    return [
        TopicPartition(name, partition)
        for name in topics
        if name in described and not described[name]["error_code"]
        for partition in sorted(p["partition"] for p in described[name]["partitions"])
    ]


async def topic_partitions(kafka: KafkaTarget, topics: Iterable[str]) -> list[TopicPartition]:
    """:func:`partitions_of` with an admin client of its own."""
    admin = AIOKafkaAdminClient(
        **KafkaConnection.of(kafka).client_options(), request_timeout_ms=10_000
    )
    await admin.start()
    try:
        return await partitions_of(admin, topics)
    finally:
        await admin.close()


async def kafka_reachable(bootstrap: KafkaTarget, wait: float = 1.0) -> bool:
    """True if any bootstrap server accepts a TCP connection (the broker opens its port only
    once it is ready)."""
    for server in KafkaConnection.of(bootstrap).bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), wait)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True
    return False
