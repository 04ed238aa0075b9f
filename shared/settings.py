"""Settings, one class per service, read from ``VERBINDING_*`` environment variables.

Validated at start-up, in every environment: a process that pseudonymises refuses to start
without a secret, or with one that is too short or public (:data:`KNOWN_PLACEHOLDERS`), instead of
pseudonymising with a key anybody could know.

Which database role a process uses (docs/privacy.md): ``VERBINDING_DATABASE_URL`` is the admin's
DSN (migrations, partner keys, rebuild). A service connects to the same server and database as
its own role (``verbinding_<service>``, no password: the local stack trusts 127.0.0.1), unless
``VERBINDING_<SERVICE>_DATABASE_URL`` gives it a DSN of its own (docker-compose, production).
"""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db_roles import SERVICE_ROLES, service_dsn
from shared.kafka import KafkaConnection, SaslMechanism, SecurityProtocol

__all__ = [
    "KNOWN_PLACEHOLDERS",
    "MIN_SECRET_LENGTH",
    "AdminSettings",
    "CommonSettings",
    "PseudonymSettings",
    "ServiceSettings",
]

MIN_SECRET_LENGTH = 32
# Secrets that were ever public (in this repository's source or history, or in examples): a key
# anybody can read pseudonymises nothing.
KNOWN_PLACEHOLDERS = frozenset(
    {
        "development-only-secret-change-me",
        "test-secret-of-sufficient-length-0123456789",
        "fault-suite-secret-of-sufficient-length-0123456789",
        "change-me-to-a-random-value-of-32-characters-or-more",
    }
)


class CommonSettings(BaseSettings):
    """What every process of the platform reads."""

    # hide_input_in_errors: a refused secret must not be echoed into the start-up log.
    model_config = SettingsConfigDict(
        env_prefix="VERBINDING_", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = Field(
        "development", description="Where this runs (logged); secrets are checked in all three."
    )
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/verbinding",
        description="PostgreSQL DSN of the admin role (migrations, partner keys, rebuild). The "
        "local default is the cluster `make up` starts. A service connects as its own role.",
    )
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="`PLAINTEXT` (the local broker on 127.0.0.1), `SASL_PLAINTEXT` or `SASL_SSL`.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_username: str | None = Field(None, description="SASL user (one per service).")
    kafka_password: SecretStr | None = Field(None, description="SASL password of that user.")
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle for SASL_SSL; default: the system's trust store."
    )
    topic_prefix: str = Field("", description="Prefix for every topic name, e.g. `acc.`.")
    topic_partitions: int = Field(4, ge=1, description="Partitions of topics the platform creates.")
    topic_replication: int = Field(1, ge=1, description="Replication factor of created topics.")
    reference_file: str | None = Field(
        None, description="JSON file with the municipality's reference lists; default built in."
    )
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> CommonSettings:
        if self.kafka_security_protocol != "PLAINTEXT" and not (
            self.kafka_username and self.kafka_password
        ):
            raise ValueError(
                f"VERBINDING_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "VERBINDING_KAFKA_USERNAME and VERBINDING_KAFKA_PASSWORD"
            )
        return self

    def kafka(self) -> KafkaConnection:
        """How this process connects to Kafka (every client takes its options from this)."""
        return KafkaConnection(
            bootstrap=self.kafka_bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_username,
            password=self.kafka_password.get_secret_value() if self.kafka_password else None,
            ssl_cafile=self.kafka_ssl_cafile,
        )


class AdminSettings(CommonSettings):
    """What the operator's commands read (``verbinding migrate``, ``relay``): the admin DSN and
    each service's own DSN, whose password ``migrate`` gives the service's role."""

    registrations_database_url: str | None = None
    referrals_database_url: str | None = None
    metrics_database_url: str | None = None

    def service_database_url(self, service: str) -> str:
        own: str | None = getattr(self, f"{service}_database_url")
        return own or service_dsn(self.database_url, service)

    def role_passwords(self) -> dict[str, str | None]:
        """The password in each service's own DSN (None where there is none); refuses a DSN
        that would connect as another role than the service's."""
        passwords: dict[str, str | None] = {}
        for service, role in SERVICE_ROLES.items():
            parts = urlsplit(self.service_database_url(service))
            if unquote(parts.username or "") != role:
                raise ValueError(
                    f"VERBINDING_{service.upper()}_DATABASE_URL must connect as {role}, "
                    f"not {parts.username!r}"
                )
            passwords[service] = unquote(parts.password) if parts.password else None
        return passwords


class PseudonymSettings(BaseSettings):
    """The master secret, for processes that pseudonymise (the writing services, and tools that
    must produce the same pseudonyms). Required in every environment; there is no default."""

    model_config = SettingsConfigDict(
        env_prefix="VERBINDING_", extra="ignore", hide_input_in_errors=True
    )

    pseudonym_secret: SecretStr = Field(
        description="Master secret of the pseudonyms and digests (domain.md §3); a key per "
        "purpose is derived from it with HKDF. 32+ random characters, e.g. "
        "`openssl rand -hex 32`; the local stack generates one in its state directory."
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> PseudonymSettings:
        secret = self.pseudonym_secret.get_secret_value()
        if secret in KNOWN_PLACEHOLDERS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"VERBINDING_PSEUDONYM_SECRET must be a random value of at least "
                f"{MIN_SECRET_LENGTH} characters that was never published"
            )
        return self


class ServiceSettings(CommonSettings):
    """What an HTTP service adds."""

    # The service's name; its database role and own-DSN variable follow from it.
    service: ClassVar[str | None] = None

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(2_000_000, description="Larger request bodies get 413.")
    batch_max_items: int = Field(1000, ge=1, description="Items allowed in one POST /v1/batch.")
    relay_in_process: bool = Field(
        True, description="Run the outbox relay inside the service (else `verbinding relay`)."
    )
    db_pool_max: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _connect_as_the_service_role(self) -> ServiceSettings:
        """From here on ``database_url`` is what this service connects with: its own DSN if
        given, else the admin's server and database as the service's role (no password)."""
        if self.service is not None:
            own = getattr(self, f"{self.service}_database_url", None)
            self.database_url = own or service_dsn(self.database_url, self.service)
        return self
