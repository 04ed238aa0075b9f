-- Equality look-ups by hash (issue 14, docs/benchmarks.md "Hash indexes for the attendance's
-- look-ups"). The fact writer inserts every attendance row into the index of its natural key
-- and looks up the participant's first attendance. A B-tree insert lands on a random leaf (ids
-- in no order) of an index far larger than the CPU's caches: about 6 µs of PostgreSQL's CPU per
-- row on this machine, against about 3 for a hash index, which goes straight to one bucket
-- page. What these two serve are equalities only (a key seen before, a person's rollup row), so
-- nothing needs a B-tree's order.

-- The natural key stays unique, enforced by an exclusion constraint over a hash index (a hash
-- index cannot be UNIQUE). INSERT ... ON CONFLICT DO NOTHING honours it as it does a unique
-- index; a plain insert that meets a key seen before fails with exclusion_violation, and the
-- fact writer then writes the batch again with DO NOTHING (services/metrics/adapters/facts.py).
-- The key is one value of a composite type: equal exactly when both ids are, whatever they hold.
CREATE TYPE attendance_key AS (organisation_id text, attendance_id text);
ALTER TABLE attendance DROP CONSTRAINT attendance_pkey;
ALTER TABLE attendance ADD CONSTRAINT attendance_unique_key
    EXCLUDE USING hash ((ROW(organisation_id, attendance_id)::attendance_key) WITH =);

-- The participant index stays a B-tree on (participant_id, session_date): the year grid's
-- look-ups of a person's sessions within a window (a referral's conversion and retention)
-- need its order; as a hash index the release of a 1M-event year took 36 s instead of 16.

-- The fact writer's look-up of each new row's rollup row (rollups.TOUCHES); the primary key
-- stays for the upkeep's ON CONFLICT (participant_id) DO UPDATE.
CREATE INDEX first_attendance_participant ON first_attendance USING hash (participant_id);
