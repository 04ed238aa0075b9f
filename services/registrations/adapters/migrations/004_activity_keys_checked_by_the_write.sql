-- Registrations and attendance name their activity without a foreign key (issue 13).
--
-- The key's check was a trigger per inserted row (a query of activities, FOR KEY SHARE): about
-- 20 µs of PostgreSQL's CPU per row, four times the insert itself (EXPLAIN ANALYZE of 500
-- attendance rows: 10.2 ms in the trigger, 2.3 ms inserting), under batch ingestion about a
-- fifth of PostgreSQL's CPU per event. The rule it kept holds without it:
-- - every registration and attendance is written by the write pipeline after its decision found
--   the activity in the same transaction (services/registrations/domain/decide.py,
--   _require_activity: 422 otherwise), and
-- - an activity is never deleted (a PUT changes it, `active: false` retires it; erasure and
--   retention delete people's rows, never activities), so an activity that was found stays.
ALTER TABLE registrations DROP CONSTRAINT registrations_organisation_id_activity_id_fkey;
ALTER TABLE attendance DROP CONSTRAINT attendance_organisation_id_activity_id_fkey;
