-- Webhooks (issue 15): an organisation's endpoints for the events of the referrals it sent or
-- received, and the deliveries to them (Standard Webhooks; docs/privacy.md says what travels).
CREATE TABLE webhook_endpoints (
    organisation_id      text NOT NULL,
    webhook_id           text NOT NULL,
    url                  text NOT NULL,
    description          text,
    -- The signing secret, encrypted (AES-GCM under a key derived from the master secret), and
    -- the one it replaced, valid until previous_expires_at (rotation with overlap).
    secret               bytea NOT NULL,
    previous_secret      bytea,
    previous_expires_at  timestamptz,
    created_at           timestamptz NOT NULL,
    disabled_at          timestamptz,  -- the receiver answered 410 Gone
    deleted_at           timestamptz,  -- by its organisation; kept so that its id is never reused
    PRIMARY KEY (organisation_id, webhook_id)
);

-- One row per (endpoint, event). Pending rows are delivered in order per endpoint and referral:
-- a row waits while an earlier pending row for the same referral exists. A delivered row is
-- kept for a while (redeliveries from Kafka are recognised by it); a dead one stays until its
-- organisation redelivers it or deletes the endpoint.
CREATE TABLE webhook_deliveries (
    id                  bigserial PRIMARY KEY,
    organisation_id     text NOT NULL,
    webhook_id          text NOT NULL,
    event_id            uuid NOT NULL,  -- also the webhook-id (the idempotency key)
    event_type          text NOT NULL,
    referring_organisation_id text NOT NULL,
    referral_id         text NOT NULL,
    body                bytea NOT NULL,  -- exactly the bytes signed and sent
    state               text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL,
    leased_until        timestamptz,
    last_error          text,
    created_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    UNIQUE (organisation_id, webhook_id, event_id),
    FOREIGN KEY (organisation_id, webhook_id)
        REFERENCES webhook_endpoints (organisation_id, webhook_id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order
    ON webhook_deliveries (organisation_id, webhook_id, referring_organisation_id, referral_id, id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (organisation_id, webhook_id, id)
    WHERE state = 'dead';
