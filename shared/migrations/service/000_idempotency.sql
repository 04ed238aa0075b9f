-- Partner retries are safe: the first answer to each (organisation, kind, id) is kept, with a
-- keyed digest of the request so that the same id with another body is told apart (409).
CREATE TABLE idempotency (
    organisation_id text NOT NULL,
    kind            text NOT NULL,
    item_id         text NOT NULL,
    request_digest  text NOT NULL,
    status_code     integer NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, kind, item_id)
);
