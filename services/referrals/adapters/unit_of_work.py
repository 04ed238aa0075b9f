"""The referrals service's unit of work on PostgreSQL (the one the bootstrap injects)."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.referrals.adapters.first_attendance import PostgresAttendance
from services.referrals.adapters.repository import (
    SCHEMA,
    PostgresMeasurements,
    PostgresOrganisations,
    PostgresReferrals,
    PostgresTrainings,
)
from services.referrals.adapters.webhooks import PostgresWebhooks
from services.referrals.domain.decide import State
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from shared.pipeline.decisions import BatchState
from shared.pipeline.postgres import PostgresUnitOfWork
from shared.pipeline.statements import Write
from shared.secretbox import SecretBox

__all__ = ["PostgresReferralsUnitOfWork"]


class PostgresReferralsUnitOfWork(PostgresUnitOfWork, ReferralsUnitOfWork):
    referrals: PostgresReferrals
    organisations: PostgresOrganisations
    trainings: PostgresTrainings
    measurements: PostgresMeasurements
    attendance: PostgresAttendance
    webhooks: PostgresWebhooks

    def __init__(self, conn: asyncpg.Connection, box: SecretBox, **options: Any) -> None:
        """``box`` seals the webhooks' signing secrets; ``options``: those of
        :class:`PostgresUnitOfWork` (topic prefix, after commit)."""
        super().__init__(conn, SCHEMA, **options)
        self.webhooks = PostgresWebhooks(conn, box)
        self.referrals = PostgresReferrals(conn)
        self.organisations = PostgresOrganisations(conn)
        self.trainings = PostgresTrainings(conn)
        self.measurements = PostgresMeasurements(conn)
        self.attendance = PostgresAttendance(conn)

    def record_writes(self, state: BatchState) -> list[Write]:
        assert isinstance(state, State)
        return [
            *self.referrals.writes(
                state.referrals.added(), state.referrals.changed(), state.history.added()
            ),
            *self.trainings.writes(state.trainings.added()),
            *self.measurements.writes(state.measurements.added()),
            *self.attendance.writes(state.named.added(), state.sessions.added()),
        ]
