"""Use cases of the referrals service. Each runs inside the caller's transaction, checks the
rules, changes the state and returns the events to publish (through the outbox)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.referrals.adapters.repository import (
    MeasurementRow,
    ReferralRow,
    Repository,
    StatusRow,
    TrainingRow,
)
from services.referrals.domain import lifecycle, rules
from services.referrals.domain.commands import (
    MeasurementCommand,
    ParticipantIn,
    ReferralCommand,
    StatusCommand,
    TrainingCommand,
)
from services.referrals.domain.scoring import Score, ScoringError, Thresholds, score
from shared.auth import organisation_exists
from shared.errors import FieldError, NotFoundError
from shared.events import (
    MeasurementRecorded,
    ReferralCreated,
    ReferralStatusChanged,
    ReferredTo,
    TrainingCompleted,
    new_event,
)
from shared.pseudonym import participant_of
from shared.reference import ReferenceData
from shared.writes import Outcome, WriteContext, WriteResult, idempotent_write

__all__ = ["ReferralHandlers"]


def _dotted(field: str) -> str:
    # The scorer names items like Python (`answers[3]`); every other field in an answer is a
    # dotted path (`signals.1`), and a partner's client should meet one style only.
    return re.sub(r"\[(\d+)\]", r".\1", field)


class ReferralHandlers:
    def __init__(
        self, ctx: WriteContext, reference: ReferenceData, thresholds: Mapping[str, Thresholds]
    ) -> None:
        self.ctx = ctx
        self.reference = reference
        self.thresholds = thresholds

    # ------------------------------------------------------------------------------ referrals

    async def create_referral(
        self, conn: asyncpg.Connection, org: str, cmd: ReferralCommand
    ) -> WriteResult:
        """Record a referral (status `created`) made by ``org``, with the resident's consent."""
        FieldError.raise_if(rules.check_referral(cmd, self.reference))

        async def perform() -> Outcome:
            to = cmd.referred_to
            receiver = rules.receiving_organisation(org, to, self.reference.services)
            if to.organisation_id is not None and not await organisation_exists(
                conn, to.organisation_id
            ):
                raise FieldError(
                    [
                        (
                            "referred_to.organisation_id",
                            f"no registered partner organisation {to.organisation_id!r}; "
                            "use the organisation id the platform gave that partner",
                        )
                    ]
                )
            participant = participant_of(cmd.participant, org, self.ctx.pseudonymiser)
            row = ReferralRow(
                organisation_id=org,
                referral_id=cmd.referral_id,
                participant_id=participant.id,
                referrer_role=cmd.referrer_role,
                signals=tuple(cmd.signals),
                referred_to_organisation_id=to.organisation_id,
                referred_to_activity_id=to.activity_id,
                referred_to_service=to.service,
                receiving_organisation_id=receiver,
                created_at=cmd.created_at,
                status="created",
                status_changed_at=cmd.created_at,
            )
            event = new_event(
                ReferralCreated(
                    organisation_id=org,
                    referral_id=cmd.referral_id,
                    participant=participant,
                    referrer_role=cmd.referrer_role,
                    signals=row.signals,
                    referred_to=ReferredTo(
                        organisation_id=to.organisation_id,
                        activity_id=to.activity_id,
                        service=to.service,
                    ),
                    receiving_organisation_id=receiver,
                    created_at=cmd.created_at,
                ),
                org,
            )
            repo = Repository(conn)
            await repo.add_referral(row)
            await repo.add_history(
                StatusRow(
                    organisation_id=org,
                    referral_id=cmd.referral_id,
                    status="created",
                    previous_status=None,
                    at=cmd.created_at,
                    changed_by=org,
                    outcome=None,
                    event_id=event.id,
                )
            )
            body = {"referral_id": cmd.referral_id, "status": "created", "event_id": str(event.id)}
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "referral",
            cmd.referral_id,
            cmd.model_dump(mode="json"),
            perform,
        )

    async def change_status(
        self,
        conn: asyncpg.Connection,
        org: str,
        referral_id: str,
        cmd: StatusCommand,
        referring_organisation_id: str | None = None,
    ) -> WriteResult:
        """Move a referral in its lifecycle. The receiving side accepts, declines, marks
        contacted and closes; the referring organisation withdraws (403 for the other side).
        To anyone else the referral does not exist (404). ``referring_organisation_id`` names
        the referrer where the id alone is ambiguous (409 without it)."""
        FieldError.raise_if(rules.check_status(cmd))
        repo = Repository(conn)
        found = await self._visible_referral(repo, org, referral_id, referring_organisation_id)
        referrer = found.organisation_id

        async def perform() -> Outcome:
            referral = await repo.referral(referrer, referral_id, lock=True)
            assert referral is not None  # referrals are never deleted
            receiver = self._receiver(referral)
            rules.check_may_change(cmd.status, org, referrer, receiver)
            lifecycle.check_transition(referral.status, cmd.status)
            # The last change is never before the creation, so one comparison covers both.
            if cmd.at < referral.status_changed_at:
                last = (
                    "the referral was made"
                    if referral.status == "created"
                    else f"the referral's last change, to {referral.status!r}"
                )
                raise FieldError(
                    [("at", f"lies before {last} ({referral.status_changed_at.isoformat()})")]
                )
            # The history row names its event and the event carries the row's arrival order.
            event_id = uuid.uuid4()
            sequence = await repo.change_status(
                StatusRow(
                    organisation_id=referrer,
                    referral_id=referral_id,
                    status=cmd.status,
                    previous_status=referral.status,
                    at=cmd.at,
                    changed_by=org,
                    outcome=cmd.outcome,
                    event_id=event_id,
                )
            )
            event = new_event(
                ReferralStatusChanged(
                    organisation_id=referrer,
                    referral_id=referral_id,
                    participant_id=referral.participant_id,
                    changed_by=org,
                    previous_status=referral.status,  # type: ignore[arg-type]
                    status=cmd.status,
                    at=cmd.at,
                    sequence=sequence,
                    outcome=cmd.outcome,
                ),
                org,
                event_id=event_id,
            )
            body = {
                "referral_id": referral_id,
                "organisation_id": referrer,
                "status": cmd.status,
                "previous_status": referral.status,
                "event_id": str(event.id),
            }
            return Outcome(201, body, [event])

        # Keyed by the caller and the referral (referrer and id): each side retries its own
        # changes. One status per key is enough because no status is reached twice.
        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "referral_status",
            f"{referrer}/{referral_id}:{cmd.status}",
            cmd.model_dump(mode="json"),
            perform,
        )

    async def referral(
        self,
        conn: asyncpg.Connection,
        org: str,
        referral_id: str,
        referring_organisation_id: str | None = None,
    ) -> dict[str, Any]:
        """A referral as its referring or receiving organisation sees it: no participant."""
        repo = Repository(conn)
        row = await self._visible_referral(repo, org, referral_id, referring_organisation_id)
        history = await repo.history(row.organisation_id, row.referral_id)
        return {
            "referral_id": row.referral_id,
            "organisation_id": row.organisation_id,
            "referrer_role": row.referrer_role,
            "signals": list(row.signals),
            "referred_to": {
                k: v
                for k, v in (
                    ("organisation_id", row.referred_to_organisation_id),
                    ("activity_id", row.referred_to_activity_id),
                    ("service", row.referred_to_service),
                )
                if v is not None
            },
            "receiving_organisation_id": self._receiver(row),
            "created_at": row.created_at.isoformat(),
            "status": row.status,
            "status_changed_at": row.status_changed_at.isoformat(),
            "allowed_next": list(lifecycle.allowed_next(row.status)),
            "history": [
                {
                    "status": h.status,
                    "previous_status": h.previous_status,
                    "at": h.at.isoformat(),
                    "changed_by": h.changed_by,
                    "outcome": h.outcome,
                    "event_id": str(h.event_id),
                }
                for h in history
            ],
        }

    def _receiver(self, row: ReferralRow) -> str | None:
        """The receiving side; a service referral made before it was recorded takes the
        service's current provider."""
        if row.receiving_organisation_id is not None:
            return row.receiving_organisation_id
        return self.reference.services.get(row.referred_to_service or "")

    async def _visible_referral(
        self, repo: Repository, org: str, referral_id: str, referrer: str | None
    ) -> ReferralRow:
        """The referral ``org`` means: the one of ``referrer`` if named, else see
        :func:`rules.choose_referral`. Only its two sides see it; to anyone else it is reported
        as not existing (404), worded as for an id nobody used."""
        if referrer is not None:
            row = await repo.referral(referrer, referral_id)
            if row is not None and org in (row.organisation_id, self._receiver(row)):
                return row
            raise NotFoundError(
                f"no referral {referral_id!r} of {referrer!r} made by or sent to your organisation"
            )
        own = await repo.referral(org, referral_id)
        provided = [name for name, provider in self.reference.services.items() if provider == org]
        received = [] if own else await repo.referrals_received(org, referral_id, provided)
        return rules.choose_referral(org, referral_id, own, received)

    # ------------------------------------------------------------------------------ trainings

    async def record_training(
        self, conn: asyncpg.Connection, org: str, cmd: TrainingCommand
    ) -> WriteResult:
        """Record that a person of ``org`` completed a training; the person becomes a pseudonym."""
        FieldError.raise_if(rules.check_training(cmd, self.reference))

        async def perform() -> Outcome:
            row = TrainingRow(
                organisation_id=org,
                training_id=cmd.training_id,
                person_id=self.ctx.pseudonymiser.person(org, cmd.person_ref),
                role=cmd.role,
                training=cmd.training,
                completed_at=cmd.completed_at,
            )
            await Repository(conn).add_training(row)
            event = new_event(
                TrainingCompleted(
                    organisation_id=org,
                    training_id=row.training_id,
                    person_id=row.person_id,
                    role=row.role,
                    training=row.training,
                    completed_at=row.completed_at,
                ),
                org,
            )
            body = {"training_id": cmd.training_id, "status": "recorded", "event_id": str(event.id)}
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "training",
            cmd.training_id,
            cmd.model_dump(mode="json"),
            perform,
        )

    async def training(
        self, conn: asyncpg.Connection, org: str, training_id: str
    ) -> dict[str, Any]:
        row = await Repository(conn).training(org, training_id)
        if row is None:
            raise NotFoundError(f"no training {training_id!r} of your organisation")
        return {
            "training_id": row.training_id,
            "role": row.role,
            "training": row.training,
            "completed_at": row.completed_at.isoformat(),
        }

    # --------------------------------------------------------------------------- measurements

    async def record_measurement(
        self, conn: asyncpg.Connection, org: str, cmd: MeasurementCommand
    ) -> WriteResult:
        """Score a De Jong Gierveld questionnaire and keep the scores (never the answers)."""
        problems = rules.check_measurement(cmd, self.reference)
        scored: Score | None = None
        try:
            scored = score(cmd.instrument, cmd.answers, self.thresholds.get(cmd.instrument))
        except ScoringError as exc:
            problems.append((_dotted(exc.field), exc.message))
        if scored is None or problems:
            raise FieldError(problems)

        async def perform() -> Outcome:
            p = cmd.participant
            participant_id = (
                None
                if p.ref is None
                else participant_of(
                    ParticipantIn.model_validate(p.model_dump()), org, self.ctx.pseudonymiser
                ).id
            )
            category = scored.category.value if scored.category is not None else None
            row = MeasurementRow(
                organisation_id=org,
                measurement_id=cmd.measurement_id,
                instrument=cmd.instrument,
                context=cmd.context,
                participant_id=participant_id,
                neighbourhood=p.neighbourhood,
                age_band=p.age_band,
                measured_at=cmd.measured_at,
                total=scored.total,
                emotional=scored.emotional,
                social=scored.social,
                category=category,
            )
            await Repository(conn).add_measurement(row)
            event = new_event(
                MeasurementRecorded(
                    organisation_id=org,
                    measurement_id=cmd.measurement_id,
                    instrument=cmd.instrument,
                    context=cmd.context,
                    participant_id=participant_id,
                    neighbourhood=p.neighbourhood,
                    age_band=p.age_band,
                    measured_at=cmd.measured_at,
                    total=scored.total,
                    emotional=scored.emotional,
                    social=scored.social,
                    category=category,  # type: ignore[arg-type]
                ),
                org,
            )
            body = {
                "measurement_id": cmd.measurement_id,
                "status": "recorded",
                **_scores(scored),
                "event_id": str(event.id),
            }
            return Outcome(201, body, [event])

        return await idempotent_write(
            conn,
            self.ctx,
            org,
            "measurement",
            cmd.measurement_id,
            cmd.model_dump(mode="json"),
            perform,
        )

    async def measurement(
        self, conn: asyncpg.Connection, org: str, measurement_id: str
    ) -> dict[str, Any]:
        row = await Repository(conn).measurement(org, measurement_id)
        if row is None:
            raise NotFoundError(f"no measurement {measurement_id!r} of your organisation")
        return {
            "measurement_id": row.measurement_id,
            "instrument": row.instrument,
            "context": row.context,
            "anonymous": row.participant_id is None,
            "neighbourhood": row.neighbourhood,
            "age_band": row.age_band,
            "measured_at": row.measured_at.isoformat(),
            "score": row.total,
            "emotional": row.emotional,
            "social": row.social,
            "category": row.category,
        }


def _scores(s: Score) -> dict[str, Any]:
    return {
        "score": s.total,
        "emotional": s.emotional,
        "social": s.social,
        "category": s.category.value if s.category is not None else None,
        "emotionally_lonely": s.emotionally_lonely,
        "socially_lonely": s.socially_lonely,
    }
