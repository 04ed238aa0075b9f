"""The answers of the referrals service's reads, as documentation: the routes attach them with
``responses={200: {"model": ...}}`` and keep answering the plain dicts of the views, so that no
request pays for validating its answer (tests/integration check real answers against them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FeedItem",
    "MeasurementRecord",
    "RedeliveryAnswer",
    "ReferralFeed",
    "ReferralRecord",
    "RegisteredWebhook",
    "TrainingRecord",
    "Webhook",
    "WebhookFailure",
    "WebhookFailures",
    "WebhookList",
    "WebhookSecret",
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferredTo(_Closed):
    """What the referral points at: an organisation, and an activity of it or a service."""

    organisation_id: str | None = Field(None, description="The organisation referred to.")
    activity_id: str | None = Field(None, description="Its activity, if one.")
    service: str | None = Field(None, description="A service of the coalition's list, if one.")


class HistoryEntry(_Closed):
    status: str = Field(description="The status set, or the milestone `first_attendance`.")
    previous_status: str | None
    at: datetime
    changed_by: str = Field(description="The organisation that made the change.")
    outcome: str | None = Field(
        description="The outcome code; null when none, or when the code is no longer on the "
        "configured list and you did not write it."
    )
    event_id: str = Field(description="The id of the event that recorded the change.")


class ReferralRecord(_Closed):
    """A referral as its referring or receiving organisation sees it (never the resident)."""

    referral_id: str
    organisation_id: str = Field(description="The referring organisation.")
    referrer_role: str
    signals: list[str]
    referred_to: ReferredTo
    receiving_organisation_id: str | None = Field(
        description="The side that accepts, declines, marks contacted and closes; null while a "
        "referral to a service has no provider."
    )
    created_at: datetime
    status: str
    status_changed_at: datetime
    allowed_next: list[str] = Field(description="The statuses it may move to.")
    first_attendance_on: date | None = Field(
        description="The day of the resident's first attended session after the referral; "
        "null until then."
    )
    history: list[HistoryEntry] = Field(description="Status changes and milestones, in order.")


class FeedItem(_Closed):
    """A referral as it is now, without the resident or free text."""

    referring_organisation_id: str
    referral_id: str
    receiving_organisation_id: str | None
    role: Literal["sent", "received", "both"] = Field(description="Your side of the referral.")
    status: str
    created_at: datetime
    status_changed_at: datetime
    outcome: str | None = Field(description="The outcome code of the current status, if any.")
    first_attendance_on: date | None
    milestones: dict[str, str] = Field(
        description="When each status of its history was first reached (status: timestamp)."
    )


class ReferralFeed(_Closed):
    items: list[FeedItem] = Field(description="Oldest change first.")
    next: str = Field(description="The cursor to ask with next time (`changed_since`).")
    has_more: bool = Field(description="Whether to ask again at once.")


class Webhook(_Closed):
    """An endpoint as its organisation reads it (never a secret)."""

    webhook_id: str
    url: str
    description: str | None
    created_at: datetime
    disabled_at: datetime | None = Field(
        description="Set when deliveries stopped (a 410 Gone); a redelivery enables it again."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret replaced by the last rotation still signs."
    )


class WebhookSecret(Webhook):
    secret: str = Field(description="The signing secret (`whsec_...`), shown this once.")


class RegisteredWebhook(Webhook):
    secret: str | None = Field(
        description="The signing secret (`whsec_...`), shown once: null on a replay."
    )
    message: str | None = Field(None, description="On a replay: why there is no secret.")


class WebhookList(_Closed):
    webhooks: list[Webhook]


class WebhookFailure(_Closed):
    """A delivery given up after its last attempt."""

    delivery_id: int = Field(description="Redeliver it with `?delivery_id=`.")
    webhook_message_id: str = Field(description="The `webhook-id` of its deliveries.")
    type: str = Field(description="The event type.")
    referring_organisation_id: str
    referral_id: str
    attempts: int
    last_error: str | None
    queued_at: datetime
    failed_at: datetime | None


class WebhookFailures(_Closed):
    failures: list[WebhookFailure]


class RedeliveryAnswer(_Closed):
    webhook_id: str
    queued: int = Field(description="How many deliveries were queued again.")


class TrainingRecord(_Closed):
    """A training, without the person."""

    training_id: str
    role: str
    training: str
    completed_at: datetime


class MeasurementRecord(_Closed):
    """A measurement: its scores, never the person."""

    measurement_id: str
    instrument: str
    context: str
    anonymous: bool = Field(description="True when no participant was named.")
    neighbourhood: str
    age_band: str
    measured_at: datetime
    score: int | None
    emotional: int | None
    social: int | None
    category: str | None
