-- Subject ids (issue 17, docs/privacy.md "Erasure"): a writing service publishes a person under a
-- random id of its own, never under the keyed pseudonym, and keeps which pseudonym it stands for
-- here. Erasing the person deletes the row: the events on Kafka then carry an id that nothing
-- links to a reference any more, and a new write about the same reference gets a new id. The
-- metrics service never has rows here (it only ever sees subject ids).
CREATE TABLE subjects (
    pseudonym   text PRIMARY KEY,
    subject_id  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Erasures carried out, without personal data: who asked, when, and how many records of each
-- kind were deleted. The partner's erasure id makes a repeated request answer as the first did.
CREATE TABLE erasures (
    organisation_id text NOT NULL,
    erasure_id      text NOT NULL,
    requested_by    text NOT NULL,  -- `organisation:<id>` or `admin:<operator>`
    requested_at    timestamptz NOT NULL DEFAULT now(),
    scope           text NOT NULL CHECK (scope IN ('organisation', 'resident')),
    deleted         jsonb NOT NULL,  -- {"registrations": 2, "attendance": 5, ...}
    PRIMARY KEY (organisation_id, erasure_id)
);
