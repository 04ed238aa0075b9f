"""Settings of the metrics service (``VERBINDING_*``; see README)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, model_validator
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
    suppression_k: int = Field(
        10, ge=1, description="Disclosure control: the fewest people a figure may be about (k)."
    )
    disclosure_control: Literal["full", "primary", "off"] = Field(
        "full",
        description="`full`: every rule of domain.md §7 (the only value allowed in "
        "production). `primary`: rules 1-3 only, no secondary suppression (the disclosure "
        "audit's own test shows what that leaves open). `off`: every figure as it is (tests "
        "and benchmarks that compare with unsuppressed figures).",
    )
    release_interval: timedelta = Field(
        timedelta(days=1),
        gt=timedelta(0),
        description="How often the breakdowns are released (domain.md §7 rule 6): seconds or "
        "an ISO 8601 duration, e.g. `P1D`, `PT6H`. `verbinding metrics release` cuts one by "
        "hand.",
    )
    release_timeout_seconds: float = Field(
        1800.0,
        gt=0,
        description="How long each query of a release cut may take. A cut reads every figure "
        "of every year in the background, which at a million events in one year on a busy "
        "machine took longer than the 30 s an answer's query may take.",
    )
    baseline_file: str | None = Field(
        None, description="Baselines and targets (JSON); default built in."
    )
    consumer_group: str = Field("verbinding-metrics", description="Kafka consumer group.")
    consume: bool = Field(True, description="Consume events in this process (False: API only).")
    consumer_max_records: int = Field(
        3000,
        ge=1,
        description="The most records one applied batch (one transaction) takes. A catch-up "
        "fills every batch: 3,000 applied 4-6% more events per second than 2,000 (each "
        "transaction's fixed costs, and the first-attendance upkeep of a person touched twice, "
        "spread over more events), at about 25 MiB more memory per instance; 8,000 was slower "
        "and went past the service's memory target (docs/benchmarks.md). Live traffic makes "
        "smaller batches: a batch takes what has arrived.",
    )
    consumer_synchronous_commit: bool = Field(
        False,
        description="Whether the consumer's transactions wait for their WAL to reach the disk. "
        "Off: a PostgreSQL crash may take back the last commits (some hundreds of "
        "milliseconds), and the consumer reads those events again from Kafka, which keeps them "
        "(it refuses a batch that starts past the database's offsets); about 5% more events "
        "per second (docs/benchmarks.md).",
    )
    consumer_partition_fetch_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="The most bytes of one partition a Kafka fetch brings (aiokafka's "
        "`max_partition_fetch_bytes`). Fetched records wait in the process until a batch takes "
        "them: the larger, the higher the service's memory (docs/benchmarks.md).",
    )
    consumer_fetch_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="The most bytes one Kafka fetch brings over all partitions (aiokafka's "
        "`fetch_max_bytes`, whose default of 50 MB the first fetch after an assignment fills).",
    )
    snapshot_interval_seconds: float = Field(
        15.0, gt=0, description="Refresh of the /metrics gauges."
    )
    indicator_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long the live municipality totals (and which release is the latest) "
        "are reused without asking the database whether the facts changed, unless the metrics "
        "consumer told of a change meanwhile (one NOTIFY after each commit that changed the "
        "facts: then at the next answer); after that one query of a few rows (the change "
        "marker) decides whether they are computed again.",
    )
    indicator_max_stale_seconds: float = Field(
        60.0,
        ge=0,
        description="How old the live municipality totals may be, once the facts changed, "
        "while their one refresh runs in the background: until then a reader gets the "
        "previous figures at once, marked `stale` in `freshness`; after it a reader waits for "
        "the refresh. 0: every reader after a change waits for it. A year's first computation "
        "always waits.",
    )
    signal_training_codes: list[str] = Field(
        ["signaling-loneliness"],
        min_length=1,
        description="Training codes that count as training in recognising signals of "
        "loneliness (`people_trained`, organisations with trained staff); other trainings are "
        'recorded but not counted. JSON list, e.g. `["signaling-loneliness"]`.',
    )

    @model_validator(mode="after")
    def _full_control_in_production(self) -> MetricsSettings:
        if self.environment == "production" and self.disclosure_control != "full":
            raise ValueError(
                "VERBINDING_DISCLOSURE_CONTROL must be `full` in production: anything else "
                "publishes small groups"
            )
        return self
