-- The referrals service's own state. Residents and trained people appear only as pseudonyms.
CREATE TABLE referrals (
    organisation_id             text NOT NULL,  -- the referring organisation
    referral_id                 text NOT NULL,
    participant_id              text NOT NULL,
    referrer_role               text NOT NULL,
    signals                     text[] NOT NULL CHECK (cardinality(signals) > 0),
    referred_to_organisation_id text,
    referred_to_activity_id     text,
    referred_to_service         text,
    created_at                  timestamptz NOT NULL,
    status                      text NOT NULL CHECK (
        status IN ('created', 'accepted', 'declined', 'withdrawn', 'contacted', 'closed')
    ),
    status_changed_at           timestamptz NOT NULL,
    PRIMARY KEY (organisation_id, referral_id),
    -- Exactly one form: an activity of an organisation, or a service.
    CHECK (
        (referred_to_service IS NULL)
        = (referred_to_organisation_id IS NOT NULL AND referred_to_activity_id IS NOT NULL)
    )
);

-- The referred-to organisation finds the referrals sent to it by their id.
CREATE INDEX referrals_referred_to ON referrals (referred_to_organisation_id, referral_id)
    WHERE referred_to_organisation_id IS NOT NULL;

-- Every status a referral had, its creation included. The lifecycle has no cycles, so each
-- status occurs at most once per referral.
CREATE TABLE referral_status_history (
    organisation_id  text NOT NULL,
    referral_id      text NOT NULL,
    status           text NOT NULL,
    previous_status  text,
    at               timestamptz NOT NULL,
    changed_by       text NOT NULL,  -- the organisation that made the change
    outcome          text,
    event_id         uuid NOT NULL,
    seq              bigint GENERATED ALWAYS AS IDENTITY,  -- order of recording; `at` can tie
    PRIMARY KEY (organisation_id, referral_id, status),
    FOREIGN KEY (organisation_id, referral_id) REFERENCES referrals (organisation_id, referral_id)
);

CREATE TABLE trainings (
    organisation_id  text NOT NULL,
    training_id      text NOT NULL,
    person_id        text NOT NULL,  -- pseudonym of the partner's person reference
    role             text NOT NULL,
    training         text NOT NULL,
    completed_at     timestamptz NOT NULL,
    PRIMARY KEY (organisation_id, training_id)
);

-- Scores only. The item answers are not kept: the indicators need the scores, and a resident's
-- answers about emptiness or rejection are more sensitive than the score they add up to
-- (data minimisation, GDPR art. 5(1)(c)).
CREATE TABLE measurements (
    organisation_id  text NOT NULL,
    measurement_id   text NOT NULL,
    instrument       text NOT NULL CHECK (instrument IN ('djg11', 'djg6')),
    context          text NOT NULL CHECK (context IN ('intake', 'follow_up', 'survey')),
    participant_id   text,  -- NULL for an anonymous survey answer
    neighbourhood    text NOT NULL,
    age_band         text NOT NULL,
    measured_at      timestamptz NOT NULL,
    total            integer,
    emotional        integer,
    social           integer,
    category         text,
    PRIMARY KEY (organisation_id, measurement_id),
    CHECK (participant_id IS NOT NULL OR context = 'survey')
);
