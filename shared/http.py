"""What every HTTP service shares: the error shape, auth, body limit, health and metrics.

Error shape (contract.md): ``{"error": "<code>", "message": "...", "details": [{"field", "message"}]}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Principal, authenticate
from shared.auth import Scope as KeyScope
from shared.db import DatabaseUnavailable
from shared.errors import ConflictError, FieldError, ForbiddenError, NotFoundError
from shared.kafka import kafka_reachable

__all__ = [
    "COMMON_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "create_app",
    "document_schema",
    "field_errors_from_validation",
    "path_id",
    "require_any_scope",
    "require_key",
    "require_scope",
]

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "verbinding_http_requests_total",
    "HTTP requests by route template and status code.",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "verbinding_http_request_duration_seconds",
    "HTTP request duration by route template.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class ErrorDetail(BaseModel):
    field: str = Field(
        description="Dotted path of the offending field, e.g. `participant.age_band`."
    )
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable code, e.g. `validation_failed`.")
    message: str | None = None
    details: list[ErrorDetail] = Field(default_factory=list)
    allowed: list[str] | None = Field(None, description="Allowed next states (409 on a referral).")


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key."},
    403: {
        "model": ErrorBody,
        "description": "The key lacks the scope, or the record is not yours.",
    },
    409: {"model": ErrorBody, "description": "The id was used before with a different body."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    422: {"model": ErrorBody, "description": "Validation failed; `details` names every field."},
    503: {
        "model": ErrorBody,
        "description": "Database unavailable; retry later (safe: idempotent).",
    },
}


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        *,
        allowed: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message
        self.allowed = allowed
        self.headers = headers


def field_errors_from_validation(
    errors: Sequence[Any], *, drop_prefix: int = 0
) -> list[tuple[str, str]]:
    """Pydantic/FastAPI errors as (dotted field, message) pairs a partner can act on."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())][drop_prefix:]
        if loc and loc[0] == "body":
            loc = loc[1:]
        field = ".".join(loc) or "body"
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = str(err.get("msg", "invalid"))
        out.append((field, message))
    return out


def _error(status: int, error: str, message: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message, "details": extra.pop("details", [])}
    if extra.get("allowed") is not None:
        body["allowed"] = extra["allowed"]
    return JSONResponse(body, status_code=status, headers=extra.get("headers"))


def _details(pairs: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"field": f, "message": m} for f, m in pairs]


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, "payload_too_large", f"request body exceeds {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await too_large(scope, receive, send)
                return
        # Without a (trustworthy) Content-Length, read the body up to the limit before the app
        # runs. Raising from inside the app's receive() cannot work: FastAPI turns an error
        # while it reads the body into a 400, and the "http" middleware wraps it in a group.
        seen = 0
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the app sees that
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await too_large(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return message

        await self.app(scope, replay, send)


def path_id() -> Any:
    """A fresh ``Path()`` for an id in a route: FastAPI binds a Path object to the first
    parameter it is used for, so one shared instance would break every later route."""
    return Path(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")


def require_scope(scope: KeyScope) -> Callable[..., Any]:
    """Dependency: the caller's principal, if its key is valid and carries ``scope``."""
    return require_any_scope(scope)


async def _principal(request: Request) -> Principal:
    """The principal of the request's bearer key; 401 without a key or with an unknown one."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send `Authorization: Bearer <api key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(request.app.state.pool, key.strip())
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require_key() -> Callable[..., Any]:
    """Dependency: the caller's principal, whatever its scopes, if its key is valid.

    For reads that are restricted by the key's organisation rather than by a scope (a partner
    reading its own figures)."""
    return _principal


def require_any_scope(*scopes: KeyScope) -> Callable[..., Any]:
    """Dependency: the caller's principal, if its key is valid and carries one of ``scopes``.

    For endpoints that serve several kinds of write (a batch): the handler then checks per item
    that the key carries that item's scope.
    """
    if not scopes:
        raise ValueError("name at least one scope")
    names = ", ".join(f"`{s.value}`" for s in scopes)
    lacking = (
        f"this key lacks the scope {names}"
        if len(scopes) == 1
        else f"this key needs at least one of the scopes {names}"
    )

    async def dependency(request: Request) -> Principal:
        principal = await _principal(request)
        if not any(principal.has(scope) for scope in scopes):
            raise ApiError(403, "forbidden", lacking)
        return principal

    return dependency


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    version: str,
    max_body_bytes: int,
    kafka_bootstrap: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        responses={},
    )

    @app.exception_handler(StarletteHTTPException)
    async def _routing(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown path (404) and wrong method (405) come from the router, not from a handler:
        # they get the contract's error shape too, so that a partner parses every 4xx alike.
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        pairs = field_errors_from_validation(exc.errors())
        return _error(
            422, "validation_failed", "the request has invalid fields", details=_details(pairs)
        )

    @app.exception_handler(FieldError)
    async def _fields(_: Request, exc: FieldError) -> JSONResponse:
        return _error(
            422,
            "validation_failed",
            "the request has invalid fields",
            details=_details(exc.details),
        )

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(
            exc.status_code, exc.error, exc.message, allowed=exc.allowed, headers=exc.headers
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return _error(409, "conflict", exc.message, allowed=exc.allowed)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_: Request, exc: ForbiddenError) -> JSONResponse:
        return _error(403, "forbidden", exc.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (*DatabaseUnavailable, asyncpg.PostgresConnectionError)):
            log.warning(
                "database unavailable", extra={"path": request.url.path, "error": repr(exc)}
            )
            return _error(
                503,
                "unavailable",
                "the database is unavailable; retry later",
                headers={"Retry-After": "5"},
            )
        log.exception("unexpected error", extra={"path": request.url.path})
        return _error(500, "internal_error", "unexpected error; it has been logged")

    # The handler of `Exception` runs in Starlette's outermost middleware, which re-raises after
    # answering: uvicorn then logs every 503 of a database outage as an "Exception in ASGI
    # application" traceback and may drop the keep-alive connection. Registered for the classes
    # themselves, the 503 is an ordinary answer.
    for unavailable in (*DatabaseUnavailable, asyncpg.PostgresConnectionError):
        app.add_exception_handler(unavailable, _unexpected)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Any]) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        REQUESTS.labels(service, request.method, template, str(response.status_code)).inc()
        LATENCY.labels(service, request.method, template).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @ops.get("/readyz", summary="Database and Kafka reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks = {"database": False, "kafka": False}
        try:
            async with asyncio.timeout(2):
                checks["database"] = await request.app.state.pool.fetchval("SELECT 1") == 1
        except Exception:  # any failure means "not ready"; the body says which part
            checks["database"] = False
        checks["kafka"] = await kafka_reachable(kafka_bootstrap)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    # Not public (domain.md §7): the exposition carries figures of the programme, and the
    # platform's own health is nobody else's business. Prometheus sends a `metrics` key.
    @ops.get(
        "/metrics",
        summary="Prometheus exposition (needs a key with scope `metrics`)",
        response_class=Response,
        responses={code: COMMON_RESPONSES[code] for code in (401, 403)},  # type: ignore[misc]
        dependencies=[Depends(require_scope(KeyScope.METRICS))],
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(ops)
    for router in routers:
        app.include_router(router)
    return app


def document_schema(app: FastAPI, name: str, adapter: TypeAdapter[Any]) -> None:
    """Add a schema the routes do not declare to the OpenAPI components.

    A batch validates its items one by one (a bad item must not sink the others), so its body is
    declared loosely; this puts the precise item schema into the document, so that a partner can
    integrate from the OpenAPI document alone.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for key, value in schema.pop("$defs", {}).items():
            components.setdefault(key, value)
        components[name] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
