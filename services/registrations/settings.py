"""Settings of the registrations service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import PseudonymSettings, ServiceSettings

__all__ = ["RegistrationsSettings"]


class RegistrationsSettings(ServiceSettings, PseudonymSettings):
    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    service: ClassVar[str | None] = "registrations"

    port: int = 8001
    registrations_database_url: str | None = Field(
        None,
        description="This service's own PostgreSQL DSN (role `verbinding_registrations`); default: "
        "the server and database of VERBINDING_DATABASE_URL as that role, without password.",
    )
