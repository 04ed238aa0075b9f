-- Minimisation (issue 17): a status change's outcome is a code of the reference list
-- `referral_outcomes`, never free text. Notes recorded before become `other`; the text is gone.
UPDATE referral_status_history SET outcome = 'other' WHERE outcome IS NOT NULL;

-- Events not yet relayed carry the note too: it must not reach Kafka. (They keep their type, v2,
-- which consumers upcast; `other` is what the upcast would make of any note.)
UPDATE outbox
   SET value = convert_to(
           jsonb_set(convert_from(value, 'UTF8')::jsonb, '{data,outcome}', '"other"')::text,
           'UTF8')
 WHERE convert_from(value, 'UTF8')::jsonb #>> '{data,outcome}' IS NOT NULL
   AND convert_from(value, 'UTF8')::jsonb ->> 'type' LIKE 'nl.verbinding.referral.status_changed.%';

-- Only a code fits from now on (shared/events/models.py CODE_PATTERN).
ALTER TABLE referral_status_history
    ADD CONSTRAINT outcome_is_a_code CHECK (outcome ~ '^[a-z0-9][a-z0-9+._-]*$');
