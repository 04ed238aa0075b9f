-- Rollups kept in the consumer's transaction (issue 14; services/metrics/adapters/rollups.py,
-- which holds the SQL that recomputes and refills them; this fill is that SQL as of this
-- migration): per participant, the first session attended ever and whether they were retained,
-- so that a year's S2 figures read that year's sessions and not every session of history.
CREATE TABLE first_attendance (
    participant_id   text PRIMARY KEY,
    first_date       date NOT NULL,
    organisation_id  text NOT NULL,
    activity_id      text NOT NULL,      -- the first session: (organisation, activity, start)
    session_start    timestamptz NOT NULL,
    neighbourhood    text NOT NULL,
    age_band         text NOT NULL,
    category         text NOT NULL,
    retained         boolean NOT NULL
);
CREATE INDEX first_attendance_date ON first_attendance (first_date);

INSERT INTO first_attendance
WITH sessions AS MATERIALIZED (
    SELECT t.organisation_id, t.activity_id, t.session_start, t.participant_id,
           min(t.session_date) AS session_date, min(t.neighbourhood) AS neighbourhood,
           min(t.age_band) AS age_band, bool_or(t.attended) AS attended, v.category
    FROM attendance t
    JOIN activity_validity v ON v.organisation_id = t.organisation_id
         AND v.activity_id = t.activity_id
         AND t.session_start >= v.valid_from AND t.session_start < v.valid_to
    WHERE v.aimed_at_connection
    GROUP BY t.organisation_id, t.activity_id, t.session_start, t.participant_id, v.category
),
firsts AS (
    SELECT DISTINCT ON (participant_id) participant_id, session_date AS first_date,
           organisation_id, activity_id, session_start, neighbourhood, age_band, category
    FROM sessions WHERE attended
    ORDER BY participant_id, session_date, session_start, organisation_id, activity_id
)
SELECT f.participant_id, f.first_date, f.organisation_id, f.activity_id, f.session_start,
       f.neighbourhood, f.age_band, f.category, count(*) >= 3 AS retained
FROM firsts f
JOIN sessions c ON c.participant_id = f.participant_id AND c.attended
     AND c.session_date >= f.first_date AND c.session_date < f.first_date + 90
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

-- The rollup's upkeep reads a participant's sessions, no-shows included (a session counts as
-- attended if any of its rows is): the participant index covers every row now.
DROP INDEX attendance_participant;
CREATE INDEX attendance_participant ON attendance (participant_id, session_date);

-- The outcome pairs look up each follow-up's intake by participant.
CREATE INDEX measurements_intake ON measurements (participant_id, instrument, measured_at)
    WHERE context = 'intake';
