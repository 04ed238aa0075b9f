"""The relay's partitioner puts every key where Kafka's default partitioner does: consumers
rely on a person's events sharing a partition, whichever producer wrote them."""

from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner

from shared.outbox import KeyHashingPartitioner


def test_same_partition_as_the_default_partitioner_for_every_key_and_count() -> None:
    ours = KeyHashingPartitioner(remembered=64)  # small: the bound is crossed many times
    default = DefaultPartitioner()
    keys = [os.urandom(1 + i % 80) for i in range(2_000)] + [b"org-a", b"a" * 64]
    for key in keys * 2:  # the second time from the remembered hashes
        for partitions in ([0], [0, 1, 2, 3], list(range(7)), [3, 5, 9]):
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)
    assert len(ours._hashes) <= 64
