-- Erasure (issue 17, docs/privacy.md "Erasure"): the subject ids of the registrations service
-- that the `erasures` topic named. The first-attendance consumer deletes what it keeps about
-- them (named registrations, attended sessions) and skips their later events. A subject id is a
-- random id its service no longer links to anybody.
CREATE TABLE erased_subjects (
    subject_id  text PRIMARY KEY,
    erased_at   timestamptz NOT NULL
);
