"""Settings of the registrations service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

__all__ = ["RegistrationsSettings"]


class RegistrationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    port: int = 8001
