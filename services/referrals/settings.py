"""Settings of the referrals service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.scale import ScaleSettings
from shared.settings import PseudonymSettings, ServiceSettings

__all__ = ["ReferralsSettings"]


class ReferralsSettings(ServiceSettings, PseudonymSettings, ScaleSettings):
    """The De Jong Gierveld cut-offs (``ScaleSettings``) are shared with the metrics service."""

    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    service: ClassVar[str | None] = "referrals"

    port: int = 8002
    referrals_database_url: str | None = Field(
        None,
        description="This service's own PostgreSQL DSN (role `verbinding_referrals`); default: "
        "the server and database of VERBINDING_DATABASE_URL as that role, without password.",
    )
