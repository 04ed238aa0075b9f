-- Indicator integrity (issue 12; domain.md §6). The facts keep what the definitions need:
-- every version of an activity with the moment it came into force, the moments of sessions,
-- registrations and cancellations, who referred and who received, who changed a referral's
-- status and in which order, which training was followed.
--
-- Facts recorded before this migration did not keep all of that. They are carried over as well
-- as they can be (a session's start as noon on its date, an activity's newest version for all
-- times, a status change as made by the side allowed to make it, a training's code unknown and
-- therefore not counted); `verbinding metrics rebuild` replays the topics into exact facts.

-- Every version of an activity, in force from the moment the platform accepted it until the
-- next version; before the first version, the first applies. So a change never rewrites the
-- classification of earlier sessions.
CREATE TABLE activity_versions (
    organisation_id     text NOT NULL,
    activity_id         text NOT NULL,
    version             integer NOT NULL,
    valid_from          timestamptz NOT NULL,
    category            text NOT NULL,
    aimed_at_connection boolean NOT NULL,
    neighbourhood       text NOT NULL,
    active              boolean NOT NULL,
    PRIMARY KEY (organisation_id, activity_id, version)
);
INSERT INTO activity_versions
    SELECT organisation_id, activity_id, version, '-infinity', category, aimed_at_connection,
           neighbourhood, active
    FROM activities;
DROP TABLE activities;

-- Each version with the interval [valid_from, valid_to) in which it is in force. Versions are
-- ordered by their number (the registrations service's order), and the first reaches back to
-- -infinity. A version's start is never before an earlier version's (a clock that went back
-- would otherwise make two versions overlap and a session count twice): the intervals tile time.
CREATE VIEW activity_validity AS
    SELECT organisation_id, activity_id, version, category, aimed_at_connection, neighbourhood,
           CASE WHEN row_number() OVER w = 1 THEN '-infinity'::timestamptz ELSE starts END
               AS valid_from,
           coalesce(lead(starts) OVER w, 'infinity'::timestamptz) AS valid_to
    FROM (
        SELECT *, max(valid_from) OVER (PARTITION BY organisation_id, activity_id ORDER BY version
                                        ROWS UNBOUNDED PRECEDING) AS starts
        FROM activity_versions
    ) v
    WINDOW w AS (PARTITION BY organisation_id, activity_id ORDER BY version);

-- Moments, to find the version in force.
ALTER TABLE attendance ADD COLUMN session_start timestamptz;
UPDATE attendance SET session_start = (session_date + time '12:00') AT TIME ZONE 'Europe/Amsterdam';
ALTER TABLE attendance ALTER COLUMN session_start SET NOT NULL;

ALTER TABLE registrations ADD COLUMN registered_at timestamptz;
UPDATE registrations
    SET registered_at = (registered_date + time '12:00') AT TIME ZONE 'Europe/Amsterdam';
ALTER TABLE registrations ALTER COLUMN registered_at SET NOT NULL;
-- A referral is (referring organisation, referral id); NULL: the registering organisation left
-- the referrer out (only valid where it received exactly one referral with that id).
ALTER TABLE registrations ADD COLUMN referring_organisation_id text;
DROP INDEX registrations_referral;
CREATE INDEX registrations_referral ON registrations (organisation_id, referral_id)
    WHERE referral_id IS NOT NULL;

ALTER TABLE cancellations ADD COLUMN cancelled_at timestamptz;
UPDATE cancellations
    SET cancelled_at = (cancelled_date + time '12:00') AT TIME ZONE 'Europe/Amsterdam';
ALTER TABLE cancellations ALTER COLUMN cancelled_at SET NOT NULL;

-- The receiving side: it accepts, declines, contacts and closes, and only a registration there
-- converts the referral. NULL: a service whose provider is not on the service list.
ALTER TABLE referrals ADD COLUMN receiving_organisation_id text;
UPDATE referrals SET receiving_organisation_id = referred_to_organisation_id;
CREATE INDEX referrals_received ON referrals (receiving_organisation_id, referral_id);

-- Who made a change, and the arrival order of a referral's changes (equal `at` happen).
ALTER TABLE referral_status ADD COLUMN changed_by text;
ALTER TABLE referral_status ADD COLUMN sequence bigint;
UPDATE referral_status x SET
    changed_by = CASE WHEN x.status = 'withdrawn' THEN x.organisation_id
                      ELSE coalesce(r.receiving_organisation_id, x.organisation_id) END,
    sequence = CASE x.status WHEN 'accepted' THEN 1 WHEN 'declined' THEN 1
                             WHEN 'contacted' THEN 2 ELSE 3 END
    FROM referrals r
    WHERE r.organisation_id = x.organisation_id AND r.referral_id = x.referral_id;
UPDATE referral_status SET changed_by = organisation_id, sequence = 3 WHERE changed_by IS NULL;
ALTER TABLE referral_status ALTER COLUMN changed_by SET NOT NULL;
ALTER TABLE referral_status ALTER COLUMN sequence SET NOT NULL;

-- Every training is recorded; the indicators count the configured signal-training codes.
ALTER TABLE trainings ADD COLUMN training text;
