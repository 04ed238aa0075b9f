-- Years closed by retention (issue 17, docs/privacy.md "Retention"): when the person-level facts
-- of a year pass the retention horizon, the answers the latest release published for that year
-- (every period, every breakdown, the municipality answer with its lists: anonymous figures
-- under disclosure control) are kept here, and the facts are deleted. From then on every
-- channel answers that year from these rows: the published figures stay what they were, and no
-- later release decides the year again (a rebuild may replay its events into facts until the
-- next retention run; they are not used for a closed year).
CREATE TABLE closed_years (
    year         integer PRIMARY KEY,
    closed_at    timestamptz NOT NULL,
    -- the release whose answers were kept (no reference: releases rotate)
    release_id   bigint NOT NULL,
    released_at  timestamptz NOT NULL
);

CREATE TABLE closed_answers (
    period      text NOT NULL,
    breakdown   text NOT NULL,  -- '' for the municipality answer, as in release_answers
    answer      jsonb NOT NULL,
    PRIMARY KEY (period, breakdown)
);
