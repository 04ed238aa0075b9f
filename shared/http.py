"""What every HTTP service shares: the error shape, auth, body limit, health and metrics.

Error shape (contract.md): ``{"error": "<code>", "message": "...", "details": [{"field", "message"}]}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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
from shared.db import DatabaseUnavailable, session_kept
from shared.errors import ConflictError, FieldError, ForbiddenError, NotFoundError
from shared.kafka import kafka_reachable
from shared.pipeline.items import BatchItemResult, WriteResult
from shared.pipeline.pipeline import Pipeline, WriteContention

__all__ = [
    "COMMON_RESPONSES",
    "ApiError",
    "BatchResponse",
    "Caller",
    "ErrorBody",
    "ErrorDetail",
    "answer",
    "caller",
    "create_app",
    "document_schema",
    "documented",
    "field_errors_from_validation",
    "path_id",
    "require_any_scope",
    "require_key",
    "require_scope",
    "write_batch",
]

log = logging.getLogger(__name__)

UowT = TypeVar("UowT")

# Answered 503 with Retry-After: the database is away, or a write kept meeting concurrent writes
# of the same records; a retry is safe because every write is idempotent.
_RETRY_LATER: tuple[type[Exception], ...] = (
    *(e for e in DatabaseUnavailable if issubclass(e, Exception)),
    asyncpg.PostgresConnectionError,
    WriteContention,
)

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


class ObserveMiddleware:
    """Counts requests and times them by route template and status, as pure ASGI: a
    ``@app.middleware("http")`` wraps every request and answer in objects of its own, which
    cost about as much CPU as a whole single write's decisions."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        # The router has put the matched route into the scope by now.
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        REQUESTS.labels(self.service, method, template, str(status)).inc()
        LATENCY.labels(self.service, method, template).observe(time.perf_counter() - started)


def path_id() -> Any:
    """A fresh ``Path()`` for an id in a route: FastAPI binds a Path object to the first
    parameter it is used for, so one shared instance would break every later route."""
    return Path(min_length=1, max_length=128, pattern=r"^[^\s/\x00]+$")


def require_scope(scope: KeyScope) -> Callable[..., Any]:
    """Dependency: the caller's principal, if its key is valid and carries ``scope``."""
    return require_any_scope(scope)


async def _principal(request: Request) -> Principal:
    """The principal of the request's bearer key, whatever its scopes; 401 without a key or
    with an unknown one."""
    key = _bearer(request)
    async with session_kept(request.app.state.pool) as conn:
        principal = await authenticate(conn, key)
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
    check = _key_check(scopes)

    async def dependency(request: Request) -> Principal:
        key = _bearer(request)
        async with session_kept(request.app.state.pool) as conn:
            return await check(conn, key)

    return dependency


@dataclass(frozen=True)
class Caller(Generic[UowT]):
    """Who calls (the key's principal) and the unit of work of the request, on the connection
    its key was checked on."""

    principal: Principal
    uow: UowT


def caller(*scopes: KeyScope) -> Callable[..., Any]:
    """Dependency of a writing service's routes: the principal, if its key is valid and carries
    one of ``scopes``, with the request's unit of work (``app.state.unit_of_work(connection)``).

    One connection serves the whole request: the key is looked up on it, so that a revoked key
    is refused at once, without a second trip to the pool. Use with ``scope="function"``: the
    connection goes back to the pool when the route returns, before the answer is sent.
    """
    check = _key_check(scopes)

    async def dependency(request: Request) -> AsyncIterator[Caller[Any]]:
        key = _bearer(request)
        # A request's unit of work, views and keys set nothing session-wide on the connection.
        async with session_kept(request.app.state.pool) as conn:
            principal = await check(conn, key)
            yield Caller(principal, request.app.state.unit_of_work(conn))

    return dependency


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send `Authorization: Bearer <api key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key.strip()


def _key_check(
    scopes: Sequence[KeyScope],
) -> Callable[[asyncpg.Connection, str], Awaitable[Principal]]:
    if not scopes:
        raise ValueError("name at least one scope")
    names = ", ".join(f"`{s.value}`" for s in scopes)
    lacking = (
        f"this key lacks the scope {names}"
        if len(scopes) == 1
        else f"this key needs at least one of the scopes {names}"
    )

    async def check(conn: asyncpg.Connection, key: str) -> Principal:
        principal = await authenticate(conn, key)
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not any(principal.has(scope) for scope in scopes):
            raise ApiError(403, "forbidden", lacking)
        return principal

    return check


def documented(
    model: type[BaseModel], status: int = 200, description: str = "Successful Response"
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a read, documented by ``model`` without validating a single answer.

    A read returns the plain dict of its view and is annotated ``-> Any``: FastAPI then puts the
    model's ``$ref`` alone into the document (with ``dict[str, Any]`` it would merge it with an
    open object), and serialises the dict as before, without validating it against the model
    (no CPU per request, and an answer the model does not fit never becomes a 500). The
    integration tests validate real answers against the models instead."""
    return {status: {"model": model, "description": description}}


def answer(result: WriteResult) -> JSONResponse:
    """A single write's answer: 201 the first time, 200 for a replay or a no-op."""
    return JSONResponse(result.body, status_code=result.status_code)


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItemResult]


async def write_batch(
    writes: Pipeline[Any, Any, Any], caller: Caller[Any], items: list[Any], max_items: int
) -> BatchResponse:
    """``POST /v1/batch``: one result per item. The route's key needs one of the batch's
    scopes; each item needs the scope of its kind as well (checked per item)."""
    if len(items) > max_items:
        raise FieldError([("items", f"at most {max_items} items per batch")])
    results = await writes.batch(caller.uow, caller.principal, items)
    accepted = sum(1 for r in results if r.status < 300)
    return BatchResponse(accepted=accepted, rejected=len(results) - accepted, results=results)


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
        if isinstance(exc, _RETRY_LATER):
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
    for unavailable in _RETRY_LATER:
        app.add_exception_handler(unavailable, _unexpected)

    app.add_middleware(ObserveMiddleware, service=service)
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
