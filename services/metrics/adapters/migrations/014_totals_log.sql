-- The live totals bring a year up to date when it is asked, not at every refresh of any year
-- (services/metrics/adapters/totals.py): at every refresh each computed year computed the
-- changed people's shares again, so a deployment (or the freshness bench) that had asked for
-- twenty years paid twenty times for every change (docs/benchmarks.md, freshness p99 1.8 s).

-- The changed people (widened as the refresh found them: the people, and the records of their
-- own), one row per refresh that saw changes; each computed year has applied the rows up to
-- its `applied_through`. Rows every computed year has applied are deleted, and a year left
-- too far behind is forgotten (computed whole when it is asked again), so the log stays
-- bounded. An erased person's keys are taken out of it at the refresh that sees the erasure.
CREATE TABLE totals_log (
    id      bigserial PRIMARY KEY,
    people  text[] NOT NULL,
    pseudo  text[] NOT NULL
);

ALTER TABLE totals_years ADD COLUMN applied_through bigint NOT NULL DEFAULT 0;
