"""HTTP entrypoint: translates requests into the service's writes and views, and their answers
back. No SQL, no connections and no business rules here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.referrals.domain.commands import (
    MeasurementCommand,
    ReferralCommand,
    StatusCommand,
    TrainingCommand,
)
from services.referrals.domain.decide import State
from services.referrals.domain.feed import DEFAULT_LIMIT, MAX_LIMIT
from services.referrals.domain.items import (
    BATCH_ITEM_SCHEMA,
    BatchItem,
    MeasurementItem,
    ReferralItem,
    ReferralStatusItem,
    TrainingItem,
)
from services.referrals.entrypoints.answers import (
    MeasurementRecord,
    RedeliveryAnswer,
    ReferralFeed,
    ReferralRecord,
    RegisteredWebhook,
    TrainingRecord,
    WebhookFailures,
    WebhookList,
    WebhookSecret,
)
from services.referrals.service_layer.unit_of_work import ReferralsUnitOfWork
from services.referrals.service_layer.views import ReferralViews
from services.referrals.service_layer.webhooks import WebhookEndpoints
from shared.auth import Scope
from shared.http import (
    COMMON_RESPONSES,
    BatchResponse,
    Caller,
    ErrorBody,
    answer,
    caller,
    documented,
    path_id,
    write_batch,
)
from shared.identifiers import ORGANISATION_ID_PATTERN
from shared.pipeline.pipeline import Pipeline

__all__ = ["build_router"]

Writes = Pipeline[BatchItem, State, ReferralsUnitOfWork]
Uow = Caller[ReferralsUnitOfWork]
ReferralWriter = Annotated[Uow, Depends(caller(Scope.REFERRALS), scope="function")]
TrainingWriter = Annotated[Uow, Depends(caller(Scope.TRAININGS), scope="function")]
MeasurementWriter = Annotated[Uow, Depends(caller(Scope.MEASUREMENTS), scope="function")]
BatchWriter = Annotated[
    Uow,
    Depends(caller(Scope.REFERRALS, Scope.TRAININGS, Scope.MEASUREMENTS), scope="function"),
]


REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"description": "Replay of an earlier identical request"}
}
NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such record of your organisation."}
}
NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorBody,
        "description": "No such referral made by or sent to your organisation (another "
        "organisation's referrals are reported the same way).",
    },
    409: {
        "model": ErrorBody,
        "description": "Several organisations sent you a referral with this id: name the one "
        "you mean with `?referring_organisation_id=`.",
    },
}
# Referral ids are unique per referring organisation only: (referrer, id) is the identity.
Referrer = Annotated[
    str | None,
    Query(
        pattern=ORGANISATION_ID_PATTERN,
        description="The organisation that made the referral. Without it the id means your own "
        "referral if you made one with this id, else the one sent to you; when several "
        "organisations sent you one with this id, it is required (409 without it).",
    ),
]


class BatchRequest(BaseModel):
    """Up to 1,000 items. Each item is `{"kind": ..., "body": {...}}` with the body of the
    single endpoint; kinds are `referral`, `referral_status` (also names `referral_id`, and
    `referring_organisation_id` where the id alone is ambiguous),
    `training` and `measurement`. Each item needs the scope of its single endpoint. Items are
    validated one by one: a bad item does not sink the others."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"items": {"$ref": f"#/components/schemas/{BATCH_ITEM_SCHEMA}"}},
    )


class WebhookRequest(BaseModel):
    """An endpoint for the events of the referrals your organisation sent or received."""

    model_config = ConfigDict(extra="forbid")
    webhook_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Your id for the endpoint (idempotency: the same id and body answer 200).",
    )
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="https (http only on loopback in development); never a private, loopback or "
        "link-local address in production, checked now and before every delivery.",
    )
    description: str | None = Field(None, max_length=200, description="Your own note.")


WEBHOOK_NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such webhook of your organisation."}
}


def build_router(
    writes: Writes, views: ReferralViews, hooks: WebhookEndpoints, batch_max_items: int
) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=COMMON_RESPONSES)  # type: ignore[arg-type]

    @router.get(
        "/referrals",
        tags=["referrals"],
        summary="The feed: the referrals your organisation sent or received, changed since a "
        "cursor",
        description="Oldest change first; each item is the referral as it is now (its key, your "
        "side, status, dates, outcome code, day of the first attendance) and never the resident "
        "or free text. Start without `changed_since`, then ask with `next` of the last answer; "
        "`has_more` says whether to ask again at once. A referral that changes again moves to "
        "the end of the feed. The light polling mode for partners without a server.",
        responses={
            **documented(ReferralFeed),
            422: {"model": ErrorBody, "description": "Not a cursor of this feed."},
        },
    )
    async def referral_feed(
        c: ReferralWriter,
        changed_since: Annotated[
            str | None,
            Query(max_length=200, description="`next` of an earlier answer; none: from the start."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> Any:
        return await views.feed(c.uow, c.principal.organisation_id, changed_since, limit)

    @router.post(
        "/webhooks",
        tags=["webhooks"],
        status_code=201,
        summary="Register an endpoint for your referrals' events; the answer holds its signing "
        "secret, shown this once",
        description="Deliveries follow Standard Webhooks: `webhook-id` (the idempotency key), "
        "`webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of "
        "id.timestamp.body>` with the secret `whsec_...`). At least once, in order per "
        "referral, retried with backoff, dead after the last attempt (`/failures`).",
        responses={
            **documented(RegisteredWebhook, 201, "Registered; the answer holds its secret"),
            200: {
                "model": RegisteredWebhook,
                "description": "Registered before with this body (no secret: rotate for one)",
            },
            409: {"model": ErrorBody, "description": "This id was used with another body."},
        },
    )
    async def register_webhook(c: ReferralWriter, body: WebhookRequest) -> JSONResponse:
        status, answer_body = await hooks.register(
            c.uow.webhooks, c.principal.organisation_id, body.webhook_id, body.url, body.description
        )
        return JSONResponse(answer_body, status_code=status)

    @router.get(
        "/webhooks",
        tags=["webhooks"],
        summary="Your organisation's endpoints",
        responses=documented(WebhookList),
    )
    async def list_webhooks(c: ReferralWriter) -> Any:
        return {"webhooks": await hooks.listed(c.uow.webhooks, c.principal.organisation_id)}

    @router.delete(
        "/webhooks/{webhook_id}",
        tags=["webhooks"],
        status_code=204,
        summary="Remove an endpoint and whatever waits for it",
        responses=WEBHOOK_NOT_YOURS,
    )
    async def delete_webhook(c: ReferralWriter, webhook_id: str = path_id()) -> Response:
        await hooks.delete(c.uow.webhooks, c.principal.organisation_id, webhook_id)
        return Response(status_code=204)

    @router.post(
        "/webhooks/{webhook_id}/rotate",
        tags=["webhooks"],
        summary="A new signing secret, shown this once; the old one keeps signing beside it "
        "until `previous_secret_expires_at`",
        responses={**documented(WebhookSecret), **WEBHOOK_NOT_YOURS},
    )
    async def rotate_webhook_secret(c: ReferralWriter, webhook_id: str = path_id()) -> Any:
        return await hooks.rotate(c.uow.webhooks, c.principal.organisation_id, webhook_id)

    @router.get(
        "/webhooks/{webhook_id}/failures",
        tags=["webhooks"],
        summary="Deliveries given up after the last attempt (dead letters), oldest first",
        responses={**documented(WebhookFailures), **WEBHOOK_NOT_YOURS},
    )
    async def webhook_failures(c: ReferralWriter, webhook_id: str = path_id()) -> Any:
        failures = await hooks.failures(c.uow.webhooks, c.principal.organisation_id, webhook_id)
        return {"failures": failures}

    @router.post(
        "/webhooks/{webhook_id}/redeliver",
        tags=["webhooks"],
        summary="Queue failed deliveries again (one with `?delivery_id=`, else all)",
        responses={**documented(RedeliveryAnswer), **WEBHOOK_NOT_YOURS},
    )
    async def redeliver_webhook(
        c: ReferralWriter,
        webhook_id: str = path_id(),
        delivery_id: Annotated[int | None, Query(ge=1)] = None,
    ) -> Any:
        return await hooks.redeliver(
            c.uow.webhooks, c.principal.organisation_id, webhook_id, delivery_id
        )

    @router.post(
        "/referrals",
        tags=["referrals"],
        status_code=201,
        summary="Refer a resident (with consent) to an activity or a service",
        responses=REPLAY,
    )
    async def create_referral(c: ReferralWriter, cmd: ReferralCommand) -> JSONResponse:
        item = ReferralItem(kind="referral", body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.get(
        "/referrals/{referral_id}",
        tags=["referrals"],
        summary="A referral you made or that was sent to you, with its status history",
        description="Its key (`organisation_id`: the referring organisation, `referral_id`), "
        "`referrer_role`, `signals`, `referred_to`, `receiving_organisation_id` (the side that "
        "accepts, declines, marks contacted and closes), `created_at`, `status`, "
        "`status_changed_at`, `allowed_next` (the statuses it may move to), "
        "`first_attendance_on` (the day of the resident's first attended session on or after a "
        "registration naming the referral and the referral itself; null until then) and `history` (each status change with "
        "`changed_by` and its `outcome` code; the first attendance as a milestone). Never the "
        "resident. A receiver holding the same id from several referrers names the one it means "
        "with `referring_organisation_id` (409 without it).",
        responses={**documented(ReferralRecord), **NOT_VISIBLE},
    )
    async def get_referral(
        c: ReferralWriter,
        referring_organisation_id: Referrer = None,
        referral_id: str = path_id(),
    ) -> Any:
        return await views.referral(
            c.uow, c.principal.organisation_id, referral_id, referring_organisation_id
        )

    @router.post(
        "/referrals/{referral_id}/status",
        tags=["referrals"],
        status_code=201,
        summary="Move a referral in its lifecycle: the receiving side accepts, declines, marks "
        "contacted and closes; the referrer withdraws",
        description="The receiving side is the organisation the referral was sent to, or the "
        "provider of its service (the coalition's service list); an organisation that referred "
        "to its own activity is both sides. The other side gets 403, naming who may.",
        responses={
            **REPLAY,
            **NOT_VISIBLE,
            403: {
                "model": ErrorBody,
                "description": "The key lacks the scope, or this change is the other side's "
                "(the message names who may).",
            },
            409: {
                "model": ErrorBody,
                "description": "Not allowed from the current status (`allowed` lists what is), "
                "the same status was posted before with a different body, or several "
                "organisations sent you a referral with this id (name one with "
                "`?referring_organisation_id=`).",
            },
        },
    )
    async def change_status(
        c: ReferralWriter,
        cmd: StatusCommand,
        referring_organisation_id: Referrer = None,
        referral_id: str = path_id(),
    ) -> JSONResponse:
        item = ReferralStatusItem(
            kind="referral_status",
            referral_id=referral_id,
            referring_organisation_id=referring_organisation_id,
            body=cmd,
        )
        return answer(await writes.one(c.uow, c.principal, item))

    @router.post(
        "/trainings",
        tags=["trainings"],
        status_code=201,
        summary="Record that a professional or volunteer completed a training",
        responses=REPLAY,
    )
    async def record_training(c: TrainingWriter, cmd: TrainingCommand) -> JSONResponse:
        item = TrainingItem(kind="training", body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.get(
        "/trainings/{training_id}",
        tags=["trainings"],
        summary="One of your trainings (without the person)",
        responses={**documented(TrainingRecord), **NOT_YOURS},
    )
    async def get_training(c: TrainingWriter, training_id: str = path_id()) -> Any:
        return await views.training(c.uow, c.principal.organisation_id, training_id)

    @router.post(
        "/measurements",
        tags=["measurements"],
        status_code=201,
        summary="Score a De Jong Gierveld questionnaire; the answer holds the scores",
        responses=REPLAY,
    )
    async def record_measurement(c: MeasurementWriter, cmd: MeasurementCommand) -> JSONResponse:
        item = MeasurementItem(kind="measurement", body=cmd)
        return answer(await writes.one(c.uow, c.principal, item))

    @router.get(
        "/measurements/{measurement_id}",
        tags=["measurements"],
        summary="One of your measurements (scores only)",
        responses={**documented(MeasurementRecord), **NOT_YOURS},
    )
    async def get_measurement(c: MeasurementWriter, measurement_id: str = path_id()) -> Any:
        return await views.measurement(c.uow, c.principal.organisation_id, measurement_id)

    @router.post("/batch", tags=["batch"], summary="Up to 1,000 mixed writes, one result per item")
    async def batch(c: BatchWriter, body: BatchRequest) -> BatchResponse:
        return await write_batch(writes, c, body.items, batch_max_items)

    return router
