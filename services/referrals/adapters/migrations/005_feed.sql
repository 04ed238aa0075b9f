-- The feed (GET /v1/referrals?changed_since=...): every change of a referral row, whatever wrote
-- it (a status change, a first attendance), moves the row to the end of the feed. A cursor is
-- (transaction id, change number) of the last row read. Change numbers are taken before commit,
-- so they do not follow the commit order; transaction ids do not either, but a reader only takes
-- rows written by transactions older than every transaction still running
-- (pg_snapshot_xmin), and no transaction can commit behind those any more: a cursor never skips
-- a change that commits later.
CREATE SEQUENCE referral_changes;
ALTER TABLE referrals
    ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN changed_seq bigint NOT NULL DEFAULT nextval('referral_changes');

-- SET search_path FROM CURRENT: the function finds the sequence of this schema, whatever the
-- search path of the role that writes.
CREATE FUNCTION referral_changed() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    NEW.changed_seq := nextval('referral_changes');
    RETURN NEW;
END
$$;

CREATE TRIGGER referral_changed BEFORE UPDATE ON referrals
    FOR EACH ROW EXECUTE FUNCTION referral_changed();

-- The feed of each side, in change order.
CREATE INDEX referrals_feed_sent ON referrals (organisation_id, changed_xid, changed_seq);
CREATE INDEX referrals_feed_received
    ON referrals (receiving_organisation_id, changed_xid, changed_seq);
