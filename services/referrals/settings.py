"""Settings of the referrals service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import PseudonymSettings, ServiceSettings

__all__ = ["ReferralsSettings"]


class ReferralsSettings(ServiceSettings, PseudonymSettings):
    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    service: ClassVar[str | None] = "referrals"

    port: int = 8002
    referrals_database_url: str | None = Field(
        None,
        description="This service's own PostgreSQL DSN (role `verbinding_referrals`); default: "
        "the server and database of VERBINDING_DATABASE_URL as that role, without password.",
    )
    djg_emotional_threshold: int = Field(
        3,
        ge=1,
        description="Emotional subscale score from which a resident counts as emotionally lonely "
        "(domain.md §5 uses 3; some sources use 2).",
    )
    djg_social_threshold: int = Field(
        3,
        ge=1,
        description="Social subscale score from which a resident counts as socially lonely.",
    )
