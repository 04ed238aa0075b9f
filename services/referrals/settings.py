"""Settings of the referrals service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.scale import ScaleSettings
from shared.settings import ServiceSettings

__all__ = ["ReferralsSettings"]


class ReferralsSettings(ServiceSettings, ScaleSettings):
    """The De Jong Gierveld cut-offs (``ScaleSettings``) are shared with the metrics service."""

    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    port: int = 8002
