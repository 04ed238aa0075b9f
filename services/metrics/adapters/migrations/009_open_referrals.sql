-- The open referrals (status created, accepted or contacted) and the moment of their last change,
-- kept in the consumer's transaction (services/metrics/adapters/rollups.py, which holds the SQL
-- that recomputes and refills the table; this fill is that SQL as of this migration, with the
-- statuses each side may set of shared/referral_parties.py): the count
-- of overdue referrals reads these rows instead of every referral of history.
CREATE TABLE open_referrals (
    organisation_id  text NOT NULL,
    referral_id      text NOT NULL,
    since            timestamptz NOT NULL,   -- the last change, else the referral's creation
    PRIMARY KEY (organisation_id, referral_id)
);
CREATE INDEX open_referrals_since ON open_referrals (since);

INSERT INTO open_referrals
SELECT r.organisation_id, r.referral_id, coalesce(last.at, r.created_at)
FROM referrals r
LEFT JOIN LATERAL (
    SELECT status, at FROM referral_status x
    WHERE x.organisation_id = r.organisation_id AND x.referral_id = r.referral_id
      AND ((x.status IN ('accepted', 'closed', 'contacted', 'declined')
            AND x.changed_by = r.receiving_organisation_id)
           OR (x.status = 'withdrawn' AND x.changed_by = r.organisation_id))
    ORDER BY at DESC, sequence DESC LIMIT 1
) last ON true
WHERE coalesce(last.status, 'created') IN ('created', 'accepted', 'contacted');
