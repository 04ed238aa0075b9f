-- The first attendance of a referred resident (issue 15): the referrals service consumes the
-- registrations topic and keeps the least the matching rule (shared/referral_matching.py) needs,
-- until the facts still missing arrive or the hold ends (VERBINDING_FIRST_ATTENDANCE_HOLD_DAYS;
-- docs/privacy.md). No attributes of the resident, no free text.
ALTER TABLE referrals ADD COLUMN first_attended_on date;

-- Registrations at the receiving side that name a referral (registrations without one are not
-- kept). Deleted once the referral they name has its first attendance, or after the hold.
CREATE TABLE named_registrations (
    organisation_id           text NOT NULL,  -- the registering (receiving) organisation
    registration_id           text NOT NULL,
    activity_id               text NOT NULL,
    participant_id            text NOT NULL,  -- the registering organisation's pseudonym
    registered_on             date NOT NULL,  -- Europe/Amsterdam
    referral_id               text NOT NULL,
    referring_organisation_id text,           -- NULL: named by the id alone
    PRIMARY KEY (organisation_id, registration_id)
);
CREATE INDEX named_registrations_attendee
    ON named_registrations (organisation_id, activity_id, participant_id);
CREATE INDEX named_registrations_referral ON named_registrations (organisation_id, referral_id);
CREATE INDEX named_registrations_day ON named_registrations (registered_on);

-- Attended sessions (no-shows are not kept), for a registration that arrives after them.
-- Deleted after the hold.
CREATE TABLE attended_sessions (
    organisation_id text NOT NULL,
    activity_id     text NOT NULL,
    participant_id  text NOT NULL,
    session_start   timestamptz NOT NULL,
    session_on      date NOT NULL,  -- Europe/Amsterdam
    PRIMARY KEY (organisation_id, activity_id, participant_id, session_start)
);
CREATE INDEX attended_sessions_day ON attended_sessions (session_on);
