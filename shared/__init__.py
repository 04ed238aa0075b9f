"""Code the Verbinding services share: event contracts, outbox, consumption, auth, settings."""
