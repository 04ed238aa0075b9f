-- The log of the events that changed the facts, one row per batch and partition instead of one
-- per event (issue 14, docs/benchmarks.md "The applied-events log by batch"). Nothing reads it
-- on the write path (the offsets in consumer_offsets recognise what was applied, migration
-- 004); tests and the fault suite read it to see which events were applied, through the view
-- below, which gives the rows the table had. A row per event cost PostgreSQL a heap insert and
-- the decoding of its id (about 6% of its CPU per event applied) and the consumer the topic's
-- name and two numbers per event to send.
CREATE TABLE processed_batches (
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    -- The events' ids, 16 bytes each, in the order of kafka_offsets.
    event_ids        bytea NOT NULL,
    kafka_offsets    bigint[] NOT NULL,
    processed_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (length(event_ids) = 16 * cardinality(kafka_offsets))
);
-- Stored out of line as they are, without trying to compress them: random ids do not
-- compress, and compressing the offsets cost more CPU than the space is worth (migration 017).
ALTER TABLE processed_batches ALTER COLUMN event_ids SET STORAGE EXTERNAL,
                              ALTER COLUMN kafka_offsets SET STORAGE EXTERNAL;

INSERT INTO processed_batches (topic, kafka_partition, event_ids, kafka_offsets, processed_at)
SELECT topic, kafka_partition, string_agg(uuid_send(event_id), ''::bytea ORDER BY kafka_offset),
       array_agg(kafka_offset ORDER BY kafka_offset), processed_at
FROM processed_events
GROUP BY topic, kafka_partition, processed_at;
DROP TABLE processed_events;

CREATE VIEW processed_events AS
SELECT encode(substr(b.event_ids, 16 * u.n::integer - 15, 16), 'hex')::uuid AS event_id,
       b.topic, b.kafka_partition, u.kafka_offset, b.processed_at
FROM processed_batches b, unnest(b.kafka_offsets) WITH ORDINALITY AS u (kafka_offset, n);
