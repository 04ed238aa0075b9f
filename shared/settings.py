"""Settings, one class per service, read from ``VERBINDING_*`` environment variables.

Validated at start-up: a service that would run in production with a placeholder secret
refuses to start instead of pseudonymising with a key that is in the source code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_SECRET", "CommonSettings", "ServiceSettings"]

DEV_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused outside development


class CommonSettings(BaseSettings):
    """What every process of the platform reads."""

    # hide_input_in_errors: a refused secret must not be echoed into the start-up log.
    model_config = SettingsConfigDict(
        env_prefix="VERBINDING_", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="`production` refuses placeholder secrets."
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/verbinding",
        description="PostgreSQL DSN. The local default is the cluster `make up` starts.",
    )
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field("", description="Prefix for every topic name, e.g. `acc.`.")
    topic_partitions: int = Field(4, ge=1, description="Partitions of topics the platform creates.")
    topic_replication: int = Field(1, ge=1, description="Replication factor of created topics.")
    pseudonym_secret: SecretStr = Field(
        SecretStr(DEV_SECRET), description="Key of the HMAC pseudonyms (domain.md §3)."
    )
    reference_file: str | None = Field(
        None, description="JSON file with the municipality's reference lists; default built in."
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> CommonSettings:
        secret = self.pseudonym_secret.get_secret_value()
        if self.environment == "production" and (secret == DEV_SECRET or len(secret) < 32):
            raise ValueError(
                "VERBINDING_PSEUDONYM_SECRET must be set to a random value of at least 32 "
                "characters in production"
            )
        return self


class ServiceSettings(CommonSettings):
    """What an HTTP service adds."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(2_000_000, description="Larger request bodies get 413.")
    batch_max_items: int = Field(1000, ge=1, description="Items allowed in one POST /v1/batch.")
    relay_in_process: bool = Field(
        True, description="Run the outbox relay inside the service (else `verbinding relay`)."
    )
    db_pool_max: int = Field(10, ge=1)
