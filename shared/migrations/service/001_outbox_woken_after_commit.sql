-- The relay is woken after a writing transaction commits, by the service itself (its own relay
-- directly, another process's with one NOTIFY of its own): never from inside the transaction.
-- PostgreSQL serialises the commits of transactions that sent a NOTIFY, fsync included, which
-- capped how many writes a second a service could commit (shared/outbox.py).
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
