"""Use cases of the registrations service. Each runs inside the caller's transaction, checks
the rules, changes the state and returns the events to publish (through the outbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.registrations.adapters.repository import ActivityRow, RegistrationRow, Repository
from services.registrations.domain import rules
from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from shared import outbox
from shared.errors import ConflictError, FieldError
from shared.events import (
    ActivityUpserted,
    AttendanceRecorded,
    RegistrationCancelled,
    RegistrationCreated,
    new_event,
)
from shared.pseudonym import participant_of
from shared.reference import ReferenceData
from shared.timerules import check_moment, local_date
from shared.writes import Outcome, WriteContext, WriteResult, idempotent_write

__all__ = ["RegistrationHandlers", "activity_body"]


class RegistrationHandlers:
    def __init__(self, ctx: WriteContext, reference: ReferenceData) -> None:
        self.ctx = ctx
        self.reference = reference

    async def put_activity(
        self, conn: asyncpg.Connection, org: str, activity_id: str, cmd: ActivityCommand
    ) -> WriteResult:
        """Create or change an activity. The same state again is a no-op (200, no event)."""
        FieldError.raise_if(rules.check_activity(cmd, self.reference))
        if not activity_id or len(activity_id) > 128:
            raise FieldError([("activity_id", "must be 1 to 128 characters")])
        repo = Repository(conn)
        current = await repo.activity(org, activity_id, lock=True)
        wanted: dict[str, Any] = {
            "title": cmd.title,
            "category": cmd.category,
            "aimed_at_connection": cmd.aimed_at_connection,
            "neighbourhood": cmd.neighbourhood,
            "capacity": cmd.capacity,
            "target_age_bands": tuple(cmd.target_age_bands),
            "active": cmd.active,
        }
        if current is not None and all(getattr(current, k) == v for k, v in wanted.items()):
            return WriteResult(200, activity_body(current))
        row = ActivityRow(
            organisation_id=org,
            activity_id=activity_id,
            version=(current.version + 1) if current else 1,
            updated_at=datetime.now(UTC),
            **wanted,
        )
        await repo.save_activity(row)
        event = new_event(
            ActivityUpserted(
                organisation_id=org,
                activity_id=activity_id,
                version=row.version,
                title=row.title,
                category=row.category,
                aimed_at_connection=row.aimed_at_connection,
                neighbourhood=row.neighbourhood,
                capacity=row.capacity,
                target_age_bands=row.target_age_bands,
                active=row.active,
                updated_at=row.updated_at,
            ),
            org,
        )
        await outbox.enqueue(conn, self.ctx.schema, [event], self.ctx.topic_prefix)
        return WriteResult(201 if current is None else 200, activity_body(row))

    async def register(
        self, conn: asyncpg.Connection, org: str, cmd: RegistrationCommand
    ) -> WriteResult:
        FieldError.raise_if(rules.check_registration(cmd, self.reference))

        async def perform() -> Outcome:
            repo = Repository(conn)
            if await repo.activity(org, cmd.activity_id) is None:
                raise FieldError([("activity_id", _unknown_activity(cmd.activity_id))])
            participant = participant_of(cmd.participant, org, self.ctx.pseudonymiser)
            await repo.add_registration(
                RegistrationRow(
                    organisation_id=org,
                    registration_id=cmd.registration_id,
                    activity_id=cmd.activity_id,
                    participant_id=participant.id,
                    registered_at=cmd.registered_at,
                    referral_id=cmd.referral_id,
                    referring_organisation_id=cmd.referring_organisation_id,
                    cancelled_at=None,
                )
            )
            event = new_event(
                RegistrationCreated(
                    organisation_id=org,
                    registration_id=cmd.registration_id,
                    activity_id=cmd.activity_id,
                    participant=participant,
                    registered_at=cmd.registered_at,
                    referral_id=cmd.referral_id,
                    referring_organisation_id=cmd.referring_organisation_id,
                ),
                org,
            )
            body = {
                "registration_id": cmd.registration_id,
                "activity_id": cmd.activity_id,
                "status": "registered",
                "event_id": str(event.id),
            }
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "registration",
            cmd.registration_id,
            cmd.model_dump(mode="json"),
            perform,
        )

    async def cancel(
        self, conn: asyncpg.Connection, org: str, registration_id: str, cmd: CancellationCommand
    ) -> WriteResult:
        FieldError.raise_if(check_moment("cancelled_at", cmd.cancelled_at))

        async def perform() -> Outcome:
            repo = Repository(conn)
            registration = await repo.registration(org, registration_id)
            if registration is None:
                raise FieldError(
                    [
                        (
                            "registration_id",
                            f"no registration {registration_id!r} of your organisation",
                        )
                    ]
                )
            if registration.cancelled_at is not None:
                raise ConflictError(f"registration {registration_id!r} is already cancelled")
            if cmd.cancelled_at < registration.registered_at:
                raise FieldError([("cancelled_at", "lies before the registration itself")])
            await repo.cancel_registration(org, registration_id, cmd.cancelled_at)
            event = new_event(
                RegistrationCancelled(
                    organisation_id=org,
                    registration_id=registration_id,
                    activity_id=registration.activity_id,
                    participant_id=registration.participant_id,
                    cancelled_at=cmd.cancelled_at,
                    reason=cmd.reason,
                ),
                org,
            )
            body = {
                "registration_id": registration_id,
                "status": "cancelled",
                "event_id": str(event.id),
            }
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "cancellation",
            registration_id,
            cmd.model_dump(mode="json"),
            perform,
        )

    async def record_attendance(
        self, conn: asyncpg.Connection, org: str, cmd: AttendanceCommand
    ) -> WriteResult:
        FieldError.raise_if(rules.check_attendance(cmd, self.reference))

        async def perform() -> Outcome:
            repo = Repository(conn)
            if await repo.activity(org, cmd.activity_id) is None:
                raise FieldError([("activity_id", _unknown_activity(cmd.activity_id))])
            participant = participant_of(cmd.participant, org, self.ctx.pseudonymiser)
            await repo.add_attendance(
                org,
                cmd.attendance_id,
                cmd.activity_id,
                participant.id,
                cmd.session_start,
                cmd.status,
            )
            event = new_event(
                AttendanceRecorded(
                    organisation_id=org,
                    attendance_id=cmd.attendance_id,
                    activity_id=cmd.activity_id,
                    participant=participant,
                    session_start=cmd.session_start,
                    session_date=local_date(cmd.session_start),
                    status=cmd.status,
                ),
                org,
            )
            body = {
                "attendance_id": cmd.attendance_id,
                "activity_id": cmd.activity_id,
                "status": cmd.status,
                "event_id": str(event.id),
            }
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "attendance",
            cmd.attendance_id,
            cmd.model_dump(mode="json"),
            perform,
        )


def _unknown_activity(activity_id: str) -> str:
    return f"no activity {activity_id!r} of your organisation; PUT /v1/activities/{{id}} first"


def activity_body(a: ActivityRow) -> dict[str, Any]:
    return {
        "activity_id": a.activity_id,
        "version": a.version,
        "title": a.title,
        "category": a.category,
        "aimed_at_connection": a.aimed_at_connection,
        "neighbourhood": a.neighbourhood,
        "capacity": a.capacity,
        "target_age_bands": list(a.target_age_bands),
        "active": a.active,
        "updated_at": a.updated_at.isoformat(),
    }
