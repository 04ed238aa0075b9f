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
    consume: bool = Field(
        True,
        description="Run the consumers (first attendance, webhook queue) and the webhook sender "
        "in this process (False: API only).",
    )
    attendance_consumer_group: str = Field(
        "verbinding-referrals-attendance",
        description="Consumer group of the first-attendance consumer (`registrations`, `referrals`).",
    )
    webhook_consumer_group: str = Field(
        "verbinding-referrals-webhooks",
        description="Consumer group of the webhook queue (`referrals`).",
    )
    first_attendance_hold_days: int = Field(
        120,
        ge=61,
        description="How long a registration that names a referral, and an attended session, are "
        "kept for matching (days after their date); a registration goes as soon as its referral "
        "has its first attendance.",
    )
    webhook_max_attempts: int = Field(15, ge=1, description="Attempts before a delivery is dead.")
    webhook_retry_base_seconds: float = Field(
        30.0, gt=0, description="Wait after the first failed attempt; doubles with each failure."
    )
    webhook_retry_max_seconds: float = Field(
        6 * 3600.0, gt=0, description="Longest wait between two attempts."
    )
    webhook_timeout_seconds: float = Field(15.0, gt=0, description="Time a receiver has to answer.")
    webhook_secret_overlap_hours: float = Field(
        24.0, ge=0, description="How long a rotated secret keeps signing beside its successor."
    )
    webhook_concurrency: int = Field(
        8, ge=1, description="Deliveries in flight at once (all endpoints)."
    )
    webhook_delivered_kept_days: int = Field(
        7,
        ge=1,
        description="How long a delivered delivery is kept (recognises redelivered events).",
    )
    referrals_database_url: str | None = Field(
        None,
        description="This service's own PostgreSQL DSN (role `verbinding_referrals`); default: "
        "the server and database of VERBINDING_DATABASE_URL as that role, without password.",
    )
