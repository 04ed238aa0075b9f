"""Settings refuse, at start-up, to pseudonymise in production with a key that is in the source
code or too short to be a real key; development keeps working with no configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.registrations.settings import RegistrationsSettings
from shared.settings import DEV_SECRET, CommonSettings, ServiceSettings

REFUSAL = (
    "VERBINDING_PSEUDONYM_SECRET must be set to a random value of at least 32 characters "
    "in production"
)
GOOD_SECRET = "b7f3c2a9e1d84f60a5c3e9b1d7f2a4c6"  # 32 characters


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tests in the session export VERBINDING_*; these tests set what they need."""
    import os

    for name in list(os.environ):
        if name.startswith("VERBINDING_"):
            monkeypatch.delenv(name)


SETTINGS_CLASSES = pytest.mark.parametrize(
    "settings_class", [CommonSettings, ServiceSettings, RegistrationsSettings]
)


@SETTINGS_CLASSES
def test_production_refuses_the_placeholder_secret(settings_class: type[CommonSettings]) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_class(environment="production")

    assert REFUSAL in str(caught.value)


@SETTINGS_CLASSES
def test_production_refuses_the_placeholder_even_when_given_explicitly(
    settings_class: type[CommonSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "production")
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", DEV_SECRET)

    with pytest.raises(ValidationError, match=REFUSAL):
        settings_class()


@pytest.mark.parametrize("secret", ["x", "short-but-not-empty", "a" * 31])
def test_production_refuses_short_secrets(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "production")
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", secret)

    with pytest.raises(ValidationError, match=REFUSAL):
        RegistrationsSettings()


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "production")
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", GOOD_SECRET)

    settings = RegistrationsSettings()

    assert settings.environment == "production"
    assert settings.pseudonym_secret.get_secret_value() == GOOD_SECRET


@SETTINGS_CLASSES
@pytest.mark.parametrize("secret", ["short-secret-XYZ", "a-secret-that-is-long-enough-but-0"])
def test_the_refusal_never_echoes_the_secret(
    secret: str, settings_class: type[CommonSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up error is logged; the key must not end up in the logs (domain.md §3)."""
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "production")
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", secret[:31])

    with pytest.raises(ValidationError) as caught:
        settings_class()

    text = f"{caught.value}\n{caught.value!r}"
    assert REFUSAL in text
    assert secret[:31] not in text
    assert secret[-12:-1] not in text


def test_development_accepts_the_placeholder() -> None:
    settings = RegistrationsSettings()

    assert settings.environment == "development"
    assert settings.pseudonym_secret.get_secret_value() == DEV_SECRET


@pytest.mark.parametrize("environment", ["development", "test"])
def test_non_production_accepts_short_secrets(environment: str) -> None:
    settings = CommonSettings(environment=environment, pseudonym_secret="dev")

    assert settings.pseudonym_secret.get_secret_value() == "dev"


def test_the_secret_is_hidden_when_settings_are_printed() -> None:
    settings = CommonSettings(environment="production", pseudonym_secret=GOOD_SECRET)

    assert GOOD_SECRET not in repr(settings)
    assert GOOD_SECRET not in str(settings)
    assert GOOD_SECRET not in str(settings.model_dump())


def test_an_unknown_environment_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBINDING_ENVIRONMENT", "prod")

    with pytest.raises(ValidationError) as caught:
        CommonSettings()

    assert "environment" in str(caught.value)
    assert "'development', 'test' or 'production'" in str(caught.value)
