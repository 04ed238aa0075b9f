-- A referral's receiving side (domain.md §6): the organisation it was sent to, or the provider of
-- the service it names, fixed when the referral is made. It accepts, declines, marks contacted and
-- closes; the referrer withdraws. NULL only on referrals to a service made before this column:
-- their provider is looked up in the service list (reference data) when they are read.
ALTER TABLE referrals ADD COLUMN receiving_organisation_id text;
UPDATE referrals SET receiving_organisation_id = referred_to_organisation_id
    WHERE referred_to_organisation_id IS NOT NULL;

DROP INDEX referrals_referred_to;
-- The receiving side finds the referrals sent to it by their id.
CREATE INDEX referrals_received ON referrals (receiving_organisation_id, referral_id);
CREATE INDEX referrals_legacy_service ON referrals (referred_to_service, referral_id)
    WHERE receiving_organisation_id IS NULL AND referred_to_service IS NOT NULL;
