-- Releases (domain.md §7 rule 6): breakdowns are published from a release, cut on an interval
-- (and by hand), never from the live facts, so that two snapshots a minute apart cannot
-- isolate one person's event. A release holds every answer a reader can ask for with `by` (and
-- the lists of the municipality answer), decided by the disclosure engine over whole years,
-- written in one transaction: readers see the previous release or the new one, never a mix.
CREATE TABLE releases (
    release_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    released_at     timestamptz NOT NULL,
    k               integer NOT NULL,
    control         text NOT NULL,
    newest_event_at timestamptz,
    events_applied  bigint NOT NULL,
    -- per year covered: how long its grid and the engine took (seconds)
    years           jsonb NOT NULL
);

CREATE TABLE release_answers (
    release_id  bigint NOT NULL REFERENCES releases ON DELETE CASCADE,
    period      text NOT NULL,
    breakdown   text NOT NULL,  -- '' for the municipality answer (its totals and lists)
    answer      jsonb NOT NULL,
    PRIMARY KEY (release_id, period, breakdown)
);
