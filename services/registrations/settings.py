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
    upload_max_bytes: int = Field(
        1_000_000,
        ge=1,
        le=2_000_000,  # within max_body_bytes' default: the body must reach the upload check
        description="Largest spreadsheet accepted by POST /v1/uploads/* (413 above it).",
    )
    upload_max_unpacked_bytes: int = Field(
        20_000_000,
        ge=1,
        description="Largest unpacked size of an XLSX upload (its parts together): a zip bomb "
        "is refused before anything is unpacked.",
    )
    upload_max_rows: int = Field(
        2000, ge=1, description="Most data rows in one uploaded spreadsheet."
    )
