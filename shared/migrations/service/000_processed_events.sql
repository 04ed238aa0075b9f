-- Tracking records: the ids of events a consumer has applied, written in the same transaction
-- as the state they produced, so that a redelivered event is recognised and skipped.
CREATE TABLE processed_events (
    event_id     uuid PRIMARY KEY,
    topic        text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
