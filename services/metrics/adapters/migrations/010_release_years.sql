-- A release's decisions per year, with the fingerprint of what they were decided from
-- (services/metrics/domain/disclosure/fingerprint.py: the year's grid with its baselines, k,
-- the control, the engine's code). The next cut reuses the decisions of every year whose
-- fingerprint is unchanged instead of running the exact check again: a daily release
-- recomputes only the years whose facts changed.
CREATE TABLE release_years (
    release_id   bigint NOT NULL REFERENCES releases ON DELETE CASCADE,
    year         integer NOT NULL,
    fingerprint  text NOT NULL,
    decisions    bytea NOT NULL,  -- zlib-compressed JSON (fingerprint.decisions_document)
    PRIMARY KEY (release_id, year)
);
