-- Minimisation (issue 17): a cancellation's reason is a code of the reference list
-- `cancellation_reasons`, never free text. The service never stored the reason; events not yet
-- relayed carry it, and it must not reach Kafka. (They keep their type, v1, which consumers
-- upcast; `other` is what the upcast would make of any reason.)
UPDATE outbox
   SET value = convert_to(
           jsonb_set(convert_from(value, 'UTF8')::jsonb, '{data,reason}', '"other"')::text,
           'UTF8')
 WHERE convert_from(value, 'UTF8')::jsonb #>> '{data,reason}' IS NOT NULL
   AND convert_from(value, 'UTF8')::jsonb ->> 'type' LIKE 'nl.verbinding.registration.cancelled.%';
