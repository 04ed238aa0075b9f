-- Platform-wide: partner organisations and their API keys. Every service authenticates
-- against these; only the `verbinding partner` command writes them.
CREATE TABLE organisations (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id              text PRIMARY KEY,            -- the public part of the key, shown in lists
    organisation_id text NOT NULL REFERENCES organisations (id),
    key_hash        bytea NOT NULL UNIQUE,       -- SHA-256 of the whole key; the key is never stored
    scopes          text[] NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
