-- Keys for volunteers (issue 16): an organisation issues and revokes them itself, over the
-- registrations service's API, so that one volunteer leaving does not mean rotating the
-- organisation's own key. A volunteer key carries exactly the scope `attendance` (keep the
-- organisation's activities, record attendance; shared/auth.py Scope.ATTENDANCE).
ALTER TABLE api_keys ADD COLUMN label text CHECK (char_length(label) <= 80);
ALTER TABLE api_keys ADD COLUMN created_by text;  -- the key id that issued it; NULL: the CLI

-- The registrations service may not write `platform` (docs/privacy.md). It gets these two
-- functions instead, which can do nothing but issue or revoke an attendance-only key: a
-- compromised service could not mint a key with any other scope, nor revoke a partner's own
-- key. SECURITY DEFINER runs them as their owner (the admin); the search path is fixed so
-- that a caller's objects cannot stand in for the platform's.
CREATE FUNCTION issue_volunteer_key(
    p_organisation_id text, p_key_id text, p_key_hash bytea, p_label text, p_created_by text
) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO platform.api_keys (id, organisation_id, key_hash, scopes, label, created_by)
    VALUES (p_key_id, p_organisation_id, p_key_hash, ARRAY['attendance'], p_label, p_created_by)
$$;

CREATE FUNCTION revoke_volunteer_key(p_organisation_id text, p_key_id text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH revoked AS (
        UPDATE platform.api_keys SET revoked_at = now()
        WHERE id = p_key_id AND organisation_id = p_organisation_id
          AND scopes = ARRAY['attendance'] AND revoked_at IS NULL
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM revoked)
$$;

-- Functions are executable by PUBLIC by default; only the roles shared/db_roles.py names may.
REVOKE ALL ON FUNCTION issue_volunteer_key(text, text, bytea, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION revoke_volunteer_key(text, text) FROM PUBLIC;
