-- A session's date is its start's date in Europe/Amsterdam (domain.md §6), now enforced: the
-- first-attendance rollup's upkeep (adapters/rollups.py, TOUCHES) relies on every
-- row of a session having the same date, and the fact writer derives the date from the start
-- (the event's session_date is that same date by the contract). Rows that disagree (none are
-- expected: the registrations service always sent the local date, migration 002 set the start
-- from the date) are put right first, and their people's rollup rows recomputed.
CREATE TEMPORARY TABLE session_date_fixed ON COMMIT DROP AS
WITH fixed AS (
    UPDATE attendance SET session_date = (session_start AT TIME ZONE 'Europe/Amsterdam')::date
    WHERE session_date <> (session_start AT TIME ZONE 'Europe/Amsterdam')::date
    RETURNING participant_id
)
SELECT DISTINCT participant_id FROM fixed;

ALTER TABLE attendance ADD CONSTRAINT attendance_session_date_local
    CHECK (session_date = (session_start AT TIME ZONE 'Europe/Amsterdam')::date);

DELETE FROM first_attendance WHERE participant_id IN (SELECT participant_id FROM session_date_fixed);
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
      AND t.participant_id IN (SELECT participant_id FROM session_date_fixed)
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

-- The years with data (a release covers each) are found by skipping through a date index, a
-- probe per year, instead of reading every row of history (year_grid.years_with_data): the
-- tables that had no index on their date get one.
CREATE INDEX registrations_date ON registrations (registered_date);
CREATE INDEX cancellations_date ON cancellations (cancelled_date);
CREATE INDEX trainings_date ON trainings (completed_date);
