-- A person's survey answers found by the person alone (issue 14, docs/benchmarks.md "Stored
-- validity intervals, answers indexed by person"). Two indexes led with the pseudonym (a hash,
-- so each consumer transaction inserted into them at random): the person's answers by date, and
-- the person's intakes by instrument and moment. By the person alone, PostgreSQL's B-tree
-- deduplication keeps one key per person with the list of its rows: one random insert per
-- answer instead of two, into an index a fraction of the size. The look-up of a follow-up's
-- intake (year_grid.s1_pairs) reads the person's few answers through it (a release's grid of
-- the busiest year at 1M events: 22.2 s, as before).
--
-- Not done for attendance: its person index keeps the session date, because a referral's
-- conversion and retention look up a person's sessions within a window; without the date the
-- same grid took 46 s.
DROP INDEX measurements_participant;
CREATE INDEX measurements_participant ON measurements (participant_id);
DROP INDEX measurements_intake;
