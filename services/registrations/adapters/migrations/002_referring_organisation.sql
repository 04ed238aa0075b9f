-- A registration names a referral by (referring organisation, referral id): referral ids are
-- unique per referring organisation only (domain.md §6).
ALTER TABLE registrations ADD COLUMN referring_organisation_id text;
ALTER TABLE registrations ADD CONSTRAINT referrer_names_a_referral
    CHECK (referring_organisation_id IS NULL OR referral_id IS NOT NULL);
