-- The registrations service's own state. Participants appear only as pseudonyms.
CREATE TABLE activities (
    organisation_id     text NOT NULL,
    activity_id         text NOT NULL,
    version             integer NOT NULL,
    title               text NOT NULL,
    category            text NOT NULL,
    aimed_at_connection boolean NOT NULL,
    neighbourhood       text NOT NULL,
    capacity            integer,
    target_age_bands    text[] NOT NULL,
    active              boolean NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (organisation_id, activity_id)
);

CREATE TABLE registrations (
    organisation_id  text NOT NULL,
    registration_id  text NOT NULL,
    activity_id      text NOT NULL,
    participant_id   text NOT NULL,
    registered_at    timestamptz NOT NULL,
    referral_id      text,
    cancelled_at     timestamptz,
    PRIMARY KEY (organisation_id, registration_id),
    FOREIGN KEY (organisation_id, activity_id) REFERENCES activities (organisation_id, activity_id)
);

CREATE TABLE attendance (
    organisation_id  text NOT NULL,
    attendance_id    text NOT NULL,
    activity_id      text NOT NULL,
    participant_id   text NOT NULL,
    session_start    timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('attended', 'no_show')),
    PRIMARY KEY (organisation_id, attendance_id),
    FOREIGN KEY (organisation_id, activity_id) REFERENCES activities (organisation_id, activity_id)
);
