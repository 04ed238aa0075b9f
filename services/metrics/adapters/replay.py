"""Reading topics from their beginning for a rebuild, with a consumer outside any group (it
commits nothing: the live consumer's group and offsets are left alone). A replay may own only
some of the topics' partitions (a rebuild worker's share), and may start where an earlier phase
stopped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.consumer import RawRecord
from shared.kafka import KafkaConnection, KafkaTarget, topic_partitions

__all__ = ["Offsets", "Partition", "TopicReplay"]

# A partition as (topic, partition): the service layer's rebuild plans with these, and only this
# adapter speaks aiokafka's types.
Partition = tuple[str, int]
# Where each partition stands or should get to.
Offsets = dict[Partition, int]


class TopicReplay:
    """Role: every record of ``topics`` (physical names) from the beginning, in batches; with
    ``partitions``, of those partitions only."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topics: Sequence[str],
        batch_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.batch_size = batch_size
        self.owned = [TopicPartition(*p) for p in partitions] if partitions is not None else None
        self.consumer = AIOKafkaConsumer(
            **KafkaConnection.of(bootstrap).client_options(),
            enable_auto_commit=False,
            max_poll_records=batch_size,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._assigned: list[TopicPartition] = []

    @property
    def partitions(self) -> list[Partition]:
        """The partitions replayed (after :meth:`start`)."""
        return [(tp.topic, tp.partition) for tp in self._assigned]

    async def start(self) -> int:
        """Assigned to every partition at its beginning; the records there are now."""
        await self.consumer.start()
        if self.owned is None:
            self._assigned = await topic_partitions(self.bootstrap, self.topics)
        else:
            self._assigned = self.owned
        if not self._assigned:
            return 0
        self.consumer.assign(self._assigned)
        await self.consumer.seek_to_beginning(*self._assigned)
        begin = await self.consumer.beginning_offsets(self._assigned)
        end = await self.consumer.end_offsets(self._assigned)
        return sum(end[tp] - begin[tp] for tp in self._assigned)

    def pause(self) -> None:
        """Fetch nothing until :meth:`resume` (while other processes replay these partitions,
        records prefetched here would only take memory)."""
        if self._assigned:
            self.consumer.pause(*self._assigned)

    def resume(self) -> None:
        if self._assigned:
            self.consumer.resume(*self._assigned)

    async def skip_to(self, positions: Mapping[Partition, int]) -> None:
        """Carry on from ``positions`` (where an earlier phase stopped) in those partitions."""
        for (topic, partition), offset in positions.items():
            self.consumer.seek(TopicPartition(topic, partition), offset)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def ends(self) -> Offsets:
        ends = await self.consumer.end_offsets(self._assigned)
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    async def behind(self, targets: Offsets) -> bool:
        for (topic, partition), offset in targets.items():
            if await self.consumer.position(TopicPartition(topic, partition)) < offset:
                return True
        return False

    async def next_batch(self) -> list[RawRecord]:
        batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
        return [
            RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for msgs in batch.values()
            for r in msgs
        ]
