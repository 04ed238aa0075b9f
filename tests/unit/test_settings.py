"""Settings refuse, at start-up and in every environment, to pseudonymise without a secret or
with one that is short or public; each service connects to PostgreSQL as its own role and to
Kafka with the credentials of its settings."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from services.metrics.settings import MetricsSettings
from services.referrals.settings import ReferralsSettings
from services.registrations.settings import RegistrationsSettings
from shared.settings import (
    KNOWN_PLACEHOLDERS,
    AdminSettings,
    CommonSettings,
    PseudonymSettings,
    ServiceSettings,
)

REFUSAL = (
    "VERBINDING_PSEUDONYM_SECRET must be a random value of at least 32 characters that was "
    "never published"
)
ADMIN_DSN = "postgresql://admin:admin-pw@db.example:5432/verbinding?sslmode=require"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tests in the session export VERBINDING_*; these tests set what they need."""
    import os

    for name in list(os.environ):
        if name.startswith("VERBINDING_"):
            monkeypatch.delenv(name)


SECRET_READERS = pytest.mark.parametrize(
    "settings_class", [PseudonymSettings, RegistrationsSettings, ReferralsSettings]
)
ENVIRONMENTS = pytest.mark.parametrize("environment", ["development", "test", "production"])


@SECRET_READERS
@ENVIRONMENTS
def test_a_missing_secret_is_refused_in_every_environment(
    settings_class: type[PseudonymSettings], environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", environment)

    with pytest.raises(ValidationError) as caught:
        settings_class()

    assert "pseudonym_secret" in str(caught.value)
    assert "Field required" in str(caught.value)


@SECRET_READERS
@ENVIRONMENTS
@pytest.mark.parametrize("placeholder", sorted(KNOWN_PLACEHOLDERS))
def test_a_known_placeholder_is_refused_in_every_environment(
    settings_class: type[PseudonymSettings],
    environment: str,
    placeholder: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert len(placeholder) >= 32, "refused for being public, not only for being short"
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", environment)
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", placeholder)

    with pytest.raises(ValidationError, match=REFUSAL):
        settings_class()


@ENVIRONMENTS
@pytest.mark.parametrize("secret", ["x", "short-but-not-empty", "a" * 31])
def test_short_secrets_are_refused_in_every_environment(
    secret: str, environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", environment)
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", secret)

    with pytest.raises(ValidationError, match=REFUSAL):
        RegistrationsSettings()


@SECRET_READERS
def test_a_random_secret_is_accepted(
    settings_class: type[PseudonymSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = secrets.token_hex(32)
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", good)

    assert settings_class().pseudonym_secret.get_secret_value() == good


@SECRET_READERS
@pytest.mark.parametrize("secret", ["short-secret-XYZ", "a-secret-that-is-long-enough-but-0"])
def test_the_refusal_never_echoes_the_secret(
    secret: str, settings_class: type[PseudonymSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up error is logged; the key must not end up in the logs (domain.md §3)."""
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", secret[:31])

    with pytest.raises(ValidationError) as caught:
        settings_class()

    text = f"{caught.value}\n{caught.value!r}"
    assert REFUSAL in text
    assert secret[:31] not in text
    assert secret[-12:-1] not in text


def test_the_secret_is_hidden_when_settings_are_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    good = secrets.token_hex(32)
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", good)
    settings = RegistrationsSettings()

    assert good not in repr(settings)
    assert good not in str(settings)
    assert good not in str(settings.model_dump())


def test_services_that_do_not_pseudonymise_never_read_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Least privilege for secrets too: the metrics service and the operator's commands start
    without it (docker-compose does not give it to them)."""
    for settings_class in (MetricsSettings, CommonSettings, AdminSettings, ServiceSettings):
        settings = settings_class()
        assert not hasattr(settings, "pseudonym_secret"), settings_class


def test_an_unknown_environment_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "prod")

    with pytest.raises(ValidationError) as caught:
        CommonSettings()

    assert "environment" in str(caught.value)
    assert "'development', 'test' or 'production'" in str(caught.value)


# ------------------------------------------------------------------------ database roles


def test_a_service_connects_as_its_own_role_without_the_admins_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VERBINDING_DATABASE_URL", ADMIN_DSN)

    metrics = MetricsSettings()

    assert metrics.database_url == (
        "postgresql://verbinding_metrics@db.example:5432/verbinding?sslmode=require"
    )
    assert "admin-pw" not in metrics.database_url
    assert CommonSettings().database_url == ADMIN_DSN, "the operator's commands stay admin"


def test_a_services_own_dsn_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    own = "postgresql://verbinding_registrations:pw@postgres:5432/verbinding"
    monkeypatch.setenv("VERBINDING_DATABASE_URL", ADMIN_DSN)
    monkeypatch.setenv("VERBINDING_REGISTRATIONS_DATABASE_URL", own)
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", secrets.token_hex(32))

    assert RegistrationsSettings().database_url == own
    assert MetricsSettings().database_url.startswith("postgresql://verbinding_metrics@")


def test_migrate_reads_each_roles_password_from_the_services_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "VERBINDING_REFERRALS_DATABASE_URL",
        "postgresql://verbinding_referrals:p%40ss%2Fword@postgres:5432/verbinding",
    )

    assert AdminSettings().role_passwords() == {
        "registrations": None,
        "referrals": "p@ss/word",
        "metrics": None,
    }


def test_a_service_dsn_with_another_role_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VERBINDING_METRICS_DATABASE_URL", "postgresql://verbinding:pw@postgres:5432/verbinding"
    )

    with pytest.raises(ValueError, match="must connect as verbinding_metrics"):
        AdminSettings().role_passwords()


# ----------------------------------------------------------------------------------- kafka


def test_kafka_is_plaintext_unless_configured() -> None:
    assert CommonSettings().kafka().client_options() == {"bootstrap_servers": "127.0.0.1:9092"}
    assert CommonSettings().kafka().faststream_security() is None


def test_sasl_settings_reach_every_kind_of_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_KAFKA_BOOTSTRAP", "kafka:19092")
    monkeypatch.setenv("VERBINDING_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("VERBINDING_KAFKA_USERNAME", "verbinding-metrics")
    monkeypatch.setenv("VERBINDING_KAFKA_PASSWORD", "kafka-pw")

    kafka = MetricsSettings().kafka()

    assert kafka.client_options() == {
        "bootstrap_servers": "kafka:19092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "verbinding-metrics",
        "sasl_plain_password": "kafka-pw",
    }
    from faststream.kafka.security import parse_security

    security = parse_security(kafka.faststream_security())
    assert {k: security[k] for k in kafka.client_options() if k != "bootstrap_servers"} == {
        k: v for k, v in kafka.client_options().items() if k != "bootstrap_servers"
    }
    assert "kafka-pw" not in repr(kafka)


def test_sasl_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("VERBINDING_KAFKA_USERNAME", "verbinding-metrics")

    with pytest.raises(ValidationError, match="needs VERBINDING_KAFKA_USERNAME and"):
        MetricsSettings()
