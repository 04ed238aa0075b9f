-- Values written in every consumer transaction (or refresh) and read back only once, stored out
-- of line without compression (issue 14, docs/benchmarks.md "Uncompressed change lists"). A
-- batch's changed people (about 1,200 pseudonyms of 64 digits, 78 kB) went through pglz, about
-- 5% of PostgreSQL's CPU while applying (perf on its backends); the rows are deleted at the next
-- refresh, so their size on disk does not matter (the applied-events log's columns are made
-- so in migration 016).
ALTER TABLE totals_changes ALTER COLUMN people SET STORAGE EXTERNAL;
ALTER TABLE totals_log ALTER COLUMN people SET STORAGE EXTERNAL,
                       ALTER COLUMN pseudo SET STORAGE EXTERNAL;
