-- The metrics service keeps FACTS, one row per thing that happened, keyed by its natural id.
-- Indicators are computed from the facts at read time. Facts are insert-only (or "newest
-- version wins"/"greatest wins" upserts), so the state is the same whatever the order in which
-- events arrive and however partitions are split between instances: horizontal scale and late
-- events are correct by construction, and a redelivered event changes nothing.

CREATE TABLE activities (
    organisation_id     text NOT NULL,
    activity_id         text NOT NULL,
    version             integer NOT NULL,
    category            text NOT NULL,
    aimed_at_connection boolean NOT NULL,
    neighbourhood       text NOT NULL,
    active              boolean NOT NULL,
    PRIMARY KEY (organisation_id, activity_id)
);

CREATE TABLE registrations (
    organisation_id  text NOT NULL,
    registration_id  text NOT NULL,
    activity_id      text NOT NULL,
    participant_id   text NOT NULL,
    neighbourhood    text NOT NULL,
    age_band         text NOT NULL,
    registered_date  date NOT NULL,
    referral_id      text,
    PRIMARY KEY (organisation_id, registration_id)
);
CREATE INDEX registrations_referral ON registrations (referral_id) WHERE referral_id IS NOT NULL;

CREATE TABLE cancellations (
    organisation_id  text NOT NULL,
    registration_id  text NOT NULL,
    activity_id      text NOT NULL,
    cancelled_date   date NOT NULL,
    PRIMARY KEY (organisation_id, registration_id)
);

CREATE TABLE attendance (
    organisation_id  text NOT NULL,
    attendance_id    text NOT NULL,
    activity_id      text NOT NULL,
    participant_id   text NOT NULL,
    neighbourhood    text NOT NULL,
    age_band         text NOT NULL,
    session_date     date NOT NULL,
    attended         boolean NOT NULL,
    PRIMARY KEY (organisation_id, attendance_id)
);
CREATE INDEX attendance_date ON attendance (session_date);
CREATE INDEX attendance_participant ON attendance (participant_id, session_date) WHERE attended;

CREATE TABLE referrals (
    organisation_id   text NOT NULL,
    referral_id       text NOT NULL,
    participant_id    text NOT NULL,
    referrer_role     text NOT NULL,
    signals           text[] NOT NULL,
    referred_to_organisation_id text,
    created_at        timestamptz NOT NULL,
    created_date      date NOT NULL,
    PRIMARY KEY (organisation_id, referral_id)
);
CREATE INDEX referrals_created ON referrals (created_date);

CREATE TABLE referral_status (
    event_id         uuid PRIMARY KEY,
    organisation_id  text NOT NULL,
    referral_id      text NOT NULL,
    status           text NOT NULL,
    at               timestamptz NOT NULL
);
CREATE INDEX referral_status_referral ON referral_status (organisation_id, referral_id);

CREATE TABLE trainings (
    organisation_id  text NOT NULL,
    training_id      text NOT NULL,
    person_id        text NOT NULL,
    role             text NOT NULL,
    completed_date   date NOT NULL,
    PRIMARY KEY (organisation_id, training_id)
);

CREATE TABLE measurements (
    organisation_id  text NOT NULL,
    measurement_id   text NOT NULL,
    instrument       text NOT NULL,
    context          text NOT NULL,
    participant_id   text,
    neighbourhood    text NOT NULL,
    age_band         text NOT NULL,
    measured_at      timestamptz NOT NULL,
    measured_date    date NOT NULL,
    total            integer,
    emotional        integer,
    social           integer,
    category         text,
    PRIMARY KEY (organisation_id, measurement_id)
);
CREATE INDEX measurements_date ON measurements (context, measured_date);

-- Last event time per organisation ("partner went silent" alert): greatest wins.
CREATE TABLE organisation_activity (
    organisation_id  text PRIMARY KEY,
    last_event_at    timestamptz NOT NULL
);

