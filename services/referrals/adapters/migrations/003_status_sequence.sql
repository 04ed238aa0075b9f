-- The order of a referral's changes is decided with the change itself (the sequence of the
-- referral's last change, plus one), so that a batch numbers its changes without a round trip
-- per change. The referral keeps the sequence of its last change; the history keeps the number
-- each change was published with. Of two changes of one referral the later one has the higher
-- number, as before; numbers of changes made before this migration stay as they were.
ALTER TABLE referrals ADD COLUMN status_sequence bigint;
UPDATE referrals r SET status_sequence = coalesce(
    (SELECT max(h.seq) FROM referral_status_history h
     WHERE h.organisation_id = r.organisation_id AND h.referral_id = r.referral_id), 1);
ALTER TABLE referrals ALTER COLUMN status_sequence SET NOT NULL;
ALTER TABLE referral_status_history ALTER COLUMN seq DROP IDENTITY;
ALTER TABLE referral_status_history ALTER COLUMN seq SET NOT NULL;
