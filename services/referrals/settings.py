"""Settings of the referrals service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

__all__ = ["ReferralsSettings"]


class ReferralsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    port: int = 8002
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
