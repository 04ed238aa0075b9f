-- Deduplication without a random index insert per event (issue 14; docs/scale.md): a batch Kafka
-- delivers again is recognised by the offsets of its partitions, kept here in the transaction
-- that applies it (one row per partition); an event that reaches a topic twice has new offsets
-- and changes nothing, because every fact is keyed by its natural key. processed_events stays
-- as the log of the events that changed the facts, without its uuid index: the B-tree of random
-- event ids was the single largest cost of applying an event.
CREATE TABLE consumer_offsets (
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    next_offset      bigint NOT NULL,
    PRIMARY KEY (topic, kafka_partition)
);
INSERT INTO consumer_offsets
    SELECT topic, kafka_partition, max(kafka_offset) + 1 FROM processed_events GROUP BY 1, 2;
ALTER TABLE processed_events DROP CONSTRAINT processed_events_pkey;
