"""HTTP entrypoint of the metrics service: the indicators API and the coalition dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.metrics.domain.periods import (
    MONTH_PATTERN,
    PERIOD_PATTERN,
    month_range,
    parse_period,
)
from services.metrics.entrypoints.answers import (
    IndicatorsAnswer,
    OwnIndicatorsAnswer,
    TrendAnswer,
)
from services.metrics.service_layer.indicators import IndicatorService, NoRelease
from shared.auth import Principal, Scope
from shared.errors import FieldError
from shared.http import (
    COMMON_RESPONSES,
    ApiError,
    ErrorBody,
    documented,
    require_any_scope,
    require_key,
)
from shared.timerules import AMSTERDAM

__all__ = ["build_router"]

# The coalition (`indicators`) and the programme's analysts (`indicators:organisations`) read
# the indicators; only the analysts see them by organisation (domain.md §7, "Audiences").
Reader = Annotated[
    Principal, Depends(require_any_scope(Scope.INDICATORS, Scope.INDICATORS_ORGANISATIONS))
]
# A partner reads its own organisation's figures with any valid key of that organisation.
AnyKey = Annotated[Principal, Depends(require_key())]
Breakdown = Literal["neighbourhood", "age_band", "category", "organisation", "referrer_role"]


# Breakdowns before the first release: a clear answer, not an empty table (docs/disclosure.md).
def no_release() -> ApiError:
    return ApiError(
        503,
        "no_release",
        "breakdowns and own figures are published from a release, and none has been cut yet; "
        "the metrics service cuts one at start-up and then on its interval (or an operator "
        "with `verbinding metrics release`): try again in a minute",
        headers={"Retry-After": "60"},
    )


RELEASE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "No release has been cut yet (`no_release`)."}
}
DISCLOSURE = (
    " Disclosure control (domain.md §7, docs/disclosure.md): every figure is the disclosure "
    "engine's decision for its cell, the same on every channel; a hidden figure is "
    '`{"value": null, "suppressed": true, "reason": ...}` with `reason` `primary` (fewer than '
    "`k` people, or fewer than `k` on one side of a rate), `secondary` (hidden so that another "
    "hidden figure cannot be worked out from the visible ones) or `linked` (a figure it rests on "
    "is hidden); `reasons` explains them in Dutch and English."
)

STATIC = resources.files("services.metrics.entrypoints").joinpath("static")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def build_router() -> APIRouter:
    """The indicator service is made at start-up (it needs the pool): ``app.state.indicators``."""
    router = APIRouter()
    api = APIRouter(prefix="/v1", responses=COMMON_RESPONSES, tags=["indicators"])  # type: ignore[arg-type]

    @api.get(
        "/indicators",
        summary="The indicators of domain.md §6 for a period",
        description="Per subgoal (`s1`, `s2`, `s3`), every figure is `{value, suppressed}` (with "
        "`baseline` where there is one). Without `by` the municipality totals are live (cached "
        "for a moment); the lists `people_trained_by_role` and `referrals_by_signal` are "
        "breakdowns and come from the latest release (`released_at`; empty before the first). "
        "With `by` the whole answer (totals and `breakdown`) is the latest release's: "
        "breakdowns are released once per interval (default daily), never live, so that two "
        "answers a minute apart cannot isolate one person's event; `released_at` says from "
        "when they are. Before the first release an answer with `by` is a 503 `no_release`. "
        "A year closed by retention (its person-level facts past the horizon, deleted) answers "
        "with and without `by` from the answers the release it closed with published "
        "(`released_at`): its published figures stay. "
        "S3 carries the referral funnel `referrals` → `accepted` → `contacted` → `converted` "
        "→ `referrals_retained` (a referral counts in every stage up to the furthest it "
        "reached) and `days_to_first_contact`. "
        "Figures that look ahead of their period (`retained`: 90 days; `converted`, "
        "`referral_conversion`, `days_to_first_attendance`: 60 days; `referrals_retained`: "
        "60 + 90 days) also carry "
        "`provisional`: true while that window has not closed for the period. Sessions, "
        "registrations and cancellations count with the activity version in force at their "
        "moment; the share of partners with trained staff divides by the partner registry at "
        "the period's end." + DISCLOSURE,
        responses={**documented(IndicatorsAnswer), **RELEASE_RESPONSES},
    )
    async def indicators(
        request: Request,
        reader: Reader,
        period: Annotated[
            str,
            Query(
                description="`YYYY-MM`, `YYYY-Qn` or `YYYY` (years 2000 to 2100)",
                pattern=PERIOD_PATTERN,
                examples=["2025-03"],
            ),
        ],
        by: Annotated[Breakdown | None, Query(description="Optional breakdown")] = None,
    ) -> Any:
        try:
            parse_period(period)
        except ValueError as exc:
            raise FieldError([("query.period", str(exc))]) from None
        if by == "organisation" and not reader.has(Scope.INDICATORS_ORGANISATIONS):
            raise ApiError(
                403,
                "forbidden",
                "`by=organisation` needs the scope `indicators:organisations` (the programme's "
                "analysts); partners read their own figures at `/v1/own/indicators`",
            )
        service: IndicatorService = request.app.state.indicators
        try:
            return await service.indicators(period, by)
        except NoRelease:
            raise no_release() from None

    @api.get(
        "/own/indicators",
        summary="The calling organisation's own indicators for a period",
        description=(
            "The S2 and S3 indicators restricted to the organisation of the key (any valid key "
            "of that organisation): exactly the organisation's cell of the breakdown by "
            "organisation of the latest release (`released_at`), with the same decisions the "
            "programme's analysts see. S1 (loneliness measurements) has no breakdown by "
            "organisation. Before the first release: 503 `no_release`." + DISCLOSURE
        ),
        responses={**documented(OwnIndicatorsAnswer), **RELEASE_RESPONSES},
    )
    async def own_indicators(
        request: Request,
        caller: AnyKey,
        period: Annotated[
            str, Query(description="`YYYY-MM`, `YYYY-Qn` or `YYYY`", examples=["2025-03"])
        ],
    ) -> Any:
        try:
            parse_period(period)
        except ValueError as exc:
            raise FieldError([("period", str(exc))]) from None
        service: IndicatorService = request.app.state.indicators
        try:
            return await service.own_indicators(period, caller.organisation_id)
        except NoRelease:
            raise no_release() from None

    @api.get(
        "/trend",
        summary="Monthly unique and new participants",
        description="Municipality totals per month, live: the same decisions as the months' "
        "answers of `/v1/indicators`." + DISCLOSURE,
        responses=documented(TrendAnswer),
    )
    async def trend(
        request: Request,
        _: Reader,
        months: Annotated[
            int,
            Query(ge=1, le=60, description="How many months, ending with `until`", examples=[12]),
        ] = 12,
        until: Annotated[
            str | None,
            Query(
                description="`YYYY-MM` (2000-01 to 2100-12); default the current month",
                pattern=MONTH_PATTERN,
                examples=["2025-03", "2000-01"],
            ),
        ] = None,
    ) -> Any:
        today = datetime.now(UTC).astimezone(AMSTERDAM).date()
        label = until or f"{today.year:04d}-{today.month:02d}"
        try:
            last = parse_period(label)
        except ValueError as exc:
            raise FieldError([("query.until", str(exc))]) from None
        try:
            wanted = month_range(last, months)
        except ValueError as exc:  # e.g. 2 months up to 2000-01: the first would be 1999-12
            raise FieldError([("query.months", str(exc)), ("query.until", str(exc))]) from None
        service: IndicatorService = request.app.state.indicators
        return {"months": await service.trend(wanted), "k": service.k}

    @router.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(STATIC.joinpath("index.html").read_text(encoding="utf-8"))

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        suffix = "." + name.rpartition(".")[2]
        file = STATIC.joinpath(name)
        if "/" in name or suffix not in CONTENT_TYPES or not file.is_file():
            return Response(status_code=404)
        return Response(
            file.read_bytes(),
            media_type=CONTENT_TYPES[suffix],
            headers={"Cache-Control": "no-cache"},
        )

    router.include_router(api)
    return router
