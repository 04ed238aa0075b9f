-- Attendance keeps one B-tree instead of two (issue 14, docs/benchmarks.md "Attendance's one
-- B-tree"): its primary key leads with the person and the session's date, which is what the
-- person index (participant_id, session_date) was for (a person's sessions, within a window:
-- first attendance, retention, a referral's conversion, the totals' shares, an erasure), and
-- ends with the natural key. Each new row was a random insert into both B-trees, about 6 µs of
-- PostgreSQL's CPU each; the writer now inserts in the order of this key.
--
-- The uniqueness that makes an event delivered twice count once is unchanged in effect: the
-- natural key (organisation_id, attendance_id) determines the person and the session. The
-- registrations service records an attendance id once (the same id again with another body is
-- a conflict, 409, also after an erasure: shared/pipeline/decisions.py), so every event with
-- that natural key carries the same person and session start, and a relay's duplicate is the
-- same event. A key that leads with the person also finds nothing of an organisation's
-- attendance by itself: the attendees of an activity that got a new version are found through
-- the session-date index from the moment the version moves sessions
-- (services/metrics/adapters/rollups.py touched_by_activities).
ALTER TABLE attendance DROP CONSTRAINT attendance_pkey;
DROP INDEX attendance_participant;
ALTER TABLE attendance ADD CONSTRAINT attendance_pkey
    PRIMARY KEY (participant_id, session_date, organisation_id, attendance_id);
