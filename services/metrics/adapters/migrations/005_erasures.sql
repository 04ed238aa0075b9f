-- Erasure (issue 17, docs/privacy.md "Erasure"): the subject ids of people erased on request.
-- Their facts are deleted when the `person.erased` event arrives; every later event about them
-- (a late one, or any in a rebuild's replay) is skipped. A subject id is a random id that its
-- writing service no longer links to anybody: this table holds no personal reference.
CREATE TABLE erased_subjects (
    subject_id  text PRIMARY KEY,
    erased_at   timestamptz NOT NULL
);
