-- The change marker (issue 14, docs/scale.md "Reads"): the live totals and the /metrics snapshot
-- are recomputed only when the facts changed, and a reader learns whether they did from these
-- few rows instead of from the facts.
--
-- Every transaction that changes the facts bumps `changes` of one slot (the consumer's, through
-- the fact writer; retention's prune): slots rather than one row, so that two consumer instances
-- do not wait on each other's row lock until commit. `events` counts the events logged in
-- processed_events (the freshness figure "events applied"), so that figure no longer counts the
-- log. A rebuild migrates a fresh schema, which gets a generation of its own: after the swap the
-- marker differs even where the rebuilt counters happen to equal the old ones.
CREATE TABLE fact_changes (
    slot     integer PRIMARY KEY,
    changes  bigint NOT NULL,
    events   bigint NOT NULL
);
INSERT INTO fact_changes SELECT 0, 1, count(*) FROM processed_events;

CREATE TABLE fact_generation (
    generation  uuid PRIMARY KEY DEFAULT gen_random_uuid()
);
INSERT INTO fact_generation DEFAULT VALUES;
