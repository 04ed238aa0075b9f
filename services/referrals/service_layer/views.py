"""What the referrals service shows of its records: a referral to its two sides (never its
participant), trainings and measurements to their organisation; to anyone else a record is
reported as not existing."""

from __future__ import annotations

from typing import Any

from services.referrals.domain import lifecycle
from services.referrals.domain.decide import (
    Referrals,
    State,
    measurement_view,
    receiver_of,
    training_view,
)
from services.referrals.domain.feed import decode_cursor, encode_cursor, feed_item
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from shared.errors import FieldError, NotFoundError
from shared.pipeline.decisions import Records

__all__ = ["ReferralViews"]


class ReferralViews:
    def __init__(self, decisions: Referrals) -> None:
        self.decisions = decisions

    async def referral(
        self,
        uow: ReferralsUnitOfWork,
        organisation_id: str,
        referral_id: str,
        referrer: str | None = None,
    ) -> dict[str, Any]:
        """A referral as its referring or receiving organisation sees it, with its history."""
        org = organisation_id
        candidates = {(referrer or org, referral_id)}
        referrals = await uow.referrals.load(candidates)
        received: dict[tuple[str, str], list[tuple[str, str]]] = {}
        if referrer is None and (org, referral_id) not in referrals:
            for r in await uow.referrals.received(
                org, [referral_id], self.decisions.provided_by(org)
            ):
                referrals[(r.organisation_id, r.referral_id)] = r
                received.setdefault((org, referral_id), []).append(
                    (r.organisation_id, r.referral_id)
                )
        state = State(referrals=Records(referrals), received=received)
        row = self.decisions.visible(org, referral_id, referrer, state)
        history = await uow.referrals.history(row.organisation_id, row.referral_id)
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
            "receiving_organisation_id": receiver_of(row, self.decisions.reference.services),
            "created_at": row.created_at.isoformat(),
            "status": row.status,
            "status_changed_at": row.status_changed_at.isoformat(),
            "allowed_next": list(lifecycle.allowed_next(row.status)),
            "first_attendance_on": (
                row.first_attended_on.isoformat() if row.first_attended_on else None
            ),
            "history": [
                {
                    "status": h.status,
                    "previous_status": h.previous_status,
                    "at": h.at.isoformat(),
                    "changed_by": h.changed_by,
                    # Outcomes are codes (minimisation); one no longer on the configured list
                    # (or a note from before the codes, now `other`) is shown to its writer only.
                    "outcome": (
                        h.outcome
                        if h.changed_by == org
                        or h.outcome in self.decisions.reference.referral_outcomes
                        else None
                    ),
                    "event_id": str(h.event_id),
                }
                for h in history
            ],
        }

    async def feed(
        self,
        uow: ReferralsUnitOfWork,
        organisation_id: str,
        changed_since: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """The referrals the organisation sent or received, changed since the cursor, oldest
        change first (domain/feed.py says what an item holds). ``next`` is the cursor to ask
        with next time; it is the same cursor when nothing changed."""
        try:
            after = decode_cursor(changed_since) if changed_since else (0, 0)
        except ValueError as exc:
            raise FieldError(
                [("changed_since", f"{exc}; use `next` of an earlier answer")]
            ) from None
        org = organisation_id
        rows = await uow.referrals.feed(org, self.decisions.provided_by(org), after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        services = self.decisions.reference.services
        outcomes = self.decisions.reference.referral_outcomes
        items = [
            feed_item(
                org,
                r.organisation_id,
                r.referral_id,
                receiver_of(r, services),
                r.status,
                r.created_at,
                r.status_changed_at,
                r.first_attended_on,
                milestones,
                outcome,
                outcomes,
            )
            for r, _, milestones, outcome in rows
        ]
        position = rows[-1][1] if rows else after
        return {
            "items": items,
            "next": encode_cursor(position),
            "has_more": more,
        }

    async def training(
        self, uow: ReferralsUnitOfWork, organisation_id: str, training_id: str
    ) -> dict[str, Any]:
        key = (organisation_id, training_id)
        found = (await uow.trainings.load([key])).get(key)
        if found is None:
            raise NotFoundError(f"no training {training_id!r} of your organisation")
        return training_view(found)

    async def measurement(
        self, uow: ReferralsUnitOfWork, organisation_id: str, measurement_id: str
    ) -> dict[str, Any]:
        key = (organisation_id, measurement_id)
        found = (await uow.measurements.load([key])).get(key)
        if found is None:
            raise NotFoundError(f"no measurement {measurement_id!r} of your organisation")
        return measurement_view(found)
