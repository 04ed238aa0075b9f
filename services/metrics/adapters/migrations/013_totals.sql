-- The municipality totals of each year, kept as sums of people's shares (issue 14, item 1;
-- services/metrics/adapters/totals.py). A live refresh brings the sums up to date with the
-- people whose facts changed since the last one, instead of reading the year's every row.

-- Each person's (or, where no person is known, each record's) share in a year's totals:
-- {"<period>|<key>": value} of the non-zero values. `person` is the subject id the share
-- belongs to (NULL for a record of its own: a cancellation of an unknown registration, an
-- anonymous measurement), so an erased person's shares are found when their facts are gone.
CREATE TABLE totals_shares (
    year    integer NOT NULL,
    who     text NOT NULL,
    person  text,
    share   jsonb NOT NULL,
    PRIMARY KEY (year, who)
);
CREATE INDEX totals_shares_person ON totals_shares (person);

-- The sums of the shares of a year: per period and key, the total and how many shares hold it.
CREATE TABLE totals_sums (
    year     integer NOT NULL,
    period   text NOT NULL,
    key      text NOT NULL,
    total    bigint NOT NULL,
    holders  bigint NOT NULL,
    PRIMARY KEY (year, period, key)
);

-- The years whose sums are complete, and what they were computed under (the code's version and
-- the settings the figures depend on): another fingerprint computes the year again.
CREATE TABLE totals_years (
    year         integer PRIMARY KEY,
    fingerprint  text NOT NULL,
    built_at     timestamptz NOT NULL
);

-- Each organisation's first signal training (organisations with trained staff, by month).
CREATE TABLE totals_first_training (
    organisation_id  text PRIMARY KEY,
    first_date       date NOT NULL
);

-- Who changed: one row per consumer transaction that changed the facts, appended without an
-- index (a heap append, not a random index insert per event); a refresh takes the rows it sees
-- and deletes them.
CREATE TABLE totals_changes (
    people  text[] NOT NULL
);

-- The shares are read by person: their facts, by participant or trained person.
CREATE INDEX registrations_participant ON registrations (participant_id);
CREATE INDEX referrals_participant ON referrals (participant_id);
CREATE INDEX measurements_participant ON measurements (participant_id, measured_date);
CREATE INDEX trainings_person ON trainings (person_id);
