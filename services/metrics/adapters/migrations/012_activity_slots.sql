-- Each organisation's last event time, one row per organisation and writer slot (the slot of
-- fact_changes, migration 006: the writing process's id modulo 16). With one row per
-- organisation, two consumer instances in one group upserted the same rows in every batch, and
-- the second waited for the first's commit (the row lock of its upsert): measured as lock waits
-- on `organisation_activity` with two instances (docs/benchmarks.md, issue 14). Readers take the
-- greatest per organisation.
ALTER TABLE organisation_activity ADD COLUMN slot smallint NOT NULL DEFAULT 0;
ALTER TABLE organisation_activity DROP CONSTRAINT organisation_activity_pkey;
ALTER TABLE organisation_activity ADD PRIMARY KEY (organisation_id, slot);
