"""Reading topics from their beginning for a rebuild, with a consumer outside any group (it
commits nothing: the live consumer's group and offsets are left alone). A replay may own only
some of the topics' partitions (a rebuild worker's share), and may start where an earlier phase
stopped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.consumer import RawRecord
from shared.kafka import KafkaConnection, KafkaTarget, topic_partitions

__all__ = ["Offsets", "TopicReplay"]

# Where each partition stands or should get to.
Offsets = dict[TopicPartition, int]


class TopicReplay:
    """Role: every record of ``topics`` (physical names) from the beginning, in batches; with
    ``partitions``, of those partitions only."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topics: Sequence[str],
        batch_size: int,
        partitions: Sequence[TopicPartition] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.batch_size = batch_size
        self.owned = list(partitions) if partitions is not None else None
        self.consumer = AIOKafkaConsumer(
            **KafkaConnection.of(bootstrap).client_options(),
            enable_auto_commit=False,
            max_poll_records=batch_size,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.partitions: list[TopicPartition] = []

    async def start(self) -> int:
        """Assigned to every partition at its beginning; the records there are now."""
        await self.consumer.start()
        if self.owned is None:
            self.partitions = await topic_partitions(self.bootstrap, self.topics)
        else:
            self.partitions = self.owned
        if not self.partitions:
            return 0
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)
        begin = await self.consumer.beginning_offsets(self.partitions)
        end = await self.consumer.end_offsets(self.partitions)
        return sum(end[tp] - begin[tp] for tp in self.partitions)

    def pause(self) -> None:
        """Fetch nothing until :meth:`resume` (while other processes replay these partitions,
        records prefetched here would only take memory)."""
        if self.partitions:
            self.consumer.pause(*self.partitions)

    def resume(self) -> None:
        if self.partitions:
            self.consumer.resume(*self.partitions)

    async def skip_to(self, positions: Mapping[TopicPartition, int]) -> None:
        """Carry on from ``positions`` (where an earlier phase stopped) in those partitions."""
        for tp, offset in positions.items():
            self.consumer.seek(tp, offset)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def ends(self) -> Offsets:
        return dict(await self.consumer.end_offsets(self.partitions))

    async def behind(self, targets: Offsets) -> bool:
        for tp, offset in targets.items():
            if await self.consumer.position(tp) < offset:
                return True
        return False

    async def next_batch(self) -> list[RawRecord]:
        batch = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
        return [
            RawRecord(r.topic, r.partition, r.offset, r.key, r.value)
            for msgs in batch.values()
            for r in msgs
        ]
