"""The answers of the registrations service's reads, as documentation: the routes attach them
with ``responses={200: {"model": ...}}`` (shared.http.documented) and keep answering the plain
dicts of the views, unvalidated; tests/integration check real answers against them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ActivityList", "ActivityRecord", "RegistrationRecord"]


class ActivityRecord(BaseModel):
    """An activity as it is now (also the answer of its PUT)."""

    model_config = ConfigDict(extra="forbid")
    activity_id: str
    version: int = Field(description="Grows with every change.")
    title: str
    category: str
    aimed_at_connection: bool
    neighbourhood: str
    capacity: int | None
    target_age_bands: list[str]
    active: bool
    updated_at: datetime


class ActivityList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activities: list[ActivityRecord] = Field(description="Active ones first, then by title.")


class RegistrationRecord(BaseModel):
    """A registration, without the participant."""

    model_config = ConfigDict(extra="forbid")
    registration_id: str
    activity_id: str
    registered_at: datetime
    referral_id: str | None = Field(description="The referral it follows, if any.")
    referring_organisation_id: str | None = Field(description="That referral's organisation.")
    cancelled_at: datetime | None
