"""Settings of the metrics service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.scale import ScaleSettings
from shared.settings import ServiceSettings

__all__ = ["MetricsSettings"]


class MetricsSettings(ServiceSettings, ScaleSettings):
    """The De Jong Gierveld cut-offs (``ScaleSettings``) are the referrals service's."""

    model_config = SettingsConfigDict(env_prefix="VERBINDING_", extra="ignore")

    service: ClassVar[str | None] = "metrics"

    port: int = 8003
    metrics_database_url: str | None = Field(
        None,
        description="This service's own PostgreSQL DSN (role `verbinding_metrics`); default: "
        "the server and database of VERBINDING_DATABASE_URL as that role, without password.",
    )
    suppression_k: int = Field(10, ge=1, description="Small-cell suppression threshold k.")
    baseline_file: str | None = Field(
        None, description="Baselines and targets (JSON); default built in."
    )
    consumer_group: str = Field("verbinding-metrics", description="Kafka consumer group.")
    consume: bool = Field(True, description="Consume events in this process (False: API only).")
    consumer_max_records: int = Field(2000, ge=1, description="Records per applied batch.")
    snapshot_interval_seconds: float = Field(
        15.0, gt=0, description="Refresh of the /metrics gauges."
    )
    indicator_cache_seconds: float = Field(
        2.0, ge=0, description="How long an API answer is reused."
    )
    signal_training_codes: list[str] = Field(
        ["signaling-loneliness"],
        min_length=1,
        description="Training codes that count as training in recognising signals of "
        "loneliness (`people_trained`, organisations with trained staff); other trainings are "
        'recorded but not counted. JSON list, e.g. `["signaling-loneliness"]`.',
    )
