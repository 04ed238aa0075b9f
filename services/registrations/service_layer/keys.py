"""An organisation's keys for its volunteers (scope `attendance` only): issued, listed and
revoked by a key with the scope `keys`."""

from __future__ import annotations

from services.registrations.service_layer.unit_of_work import RegistrationsUnitOfWork
from shared.auth import ApiKey, KeyInfo
from shared.errors import NotFoundError

__all__ = ["issue", "listed", "revoke"]


async def issue(
    uow: RegistrationsUnitOfWork, organisation_id: str, label: str | None, issued_by: str
) -> tuple[ApiKey, KeyInfo]:
    return await uow.keys.issue(organisation_id, label, issued_by)


async def listed(uow: RegistrationsUnitOfWork, organisation_id: str) -> list[KeyInfo]:
    return await uow.keys.of_organisation(organisation_id)


async def revoke(uow: RegistrationsUnitOfWork, organisation_id: str, key_id: str) -> None:
    if not await uow.keys.revoke(organisation_id, key_id):
        # Another organisation's key, a partner key and an unknown id answer alike.
        raise NotFoundError(f"no active volunteer key {key_id!r} of your organisation")
