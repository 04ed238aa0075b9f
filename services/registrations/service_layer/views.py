"""What the registrations service shows of its records: an organisation's own, never another's
(another organisation's record is reported as not existing)."""

from __future__ import annotations

from typing import Any

from services.registrations.domain.decide import activity_view, registration_view
from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.errors import NotFoundError

__all__ = ["activities", "activity", "registration"]


async def activity(
    uow: RegistrationsUnitOfWork, organisation_id: str, activity_id: str
) -> dict[str, Any]:
    found = (await uow.activities.load([(organisation_id, activity_id)])).get(
        (organisation_id, activity_id)
    )
    if found is None:
        raise NotFoundError(f"no activity {activity_id!r} of your organisation")
    return activity_view(found)


async def activities(uow: RegistrationsUnitOfWork, organisation_id: str) -> list[dict[str, Any]]:
    return [activity_view(a) for a in await uow.activities.of_organisation(organisation_id)]


async def registration(
    uow: RegistrationsUnitOfWork, organisation_id: str, registration_id: str
) -> dict[str, Any]:
    key = (organisation_id, registration_id)
    found = (await uow.registrations.load([key])).get(key)
    if found is None:
        raise NotFoundError(f"no registration {registration_id!r} of your organisation")
    return registration_view(found)
