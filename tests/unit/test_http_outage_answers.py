"""A database outage answers 503 with Retry-After, never 500, however asyncpg reports it: also
when the error comes from giving the request's connection back (a dependency's teardown), which
is where the fault suite's PostgreSQL stop met asyncpg's "another operation is in progress"."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from shared.http import create_app

OUTAGE_ERRORS = [
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    asyncpg.exceptions.InterfaceError(
        "cannot call Transaction.rollback(): the underlying connection is closed"
    ),
    asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    ConnectionRefusedError(111, "Connection refused"),
]


def _app(error: Exception, *, in_teardown: bool) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    async def connection() -> AsyncIterator[None]:
        if not in_teardown:
            raise error
        yield
        raise error  # the pool's reset on release

    router = APIRouter()

    @router.post("/v1/thing", dependencies=[Depends(connection, scope="function")])
    async def thing() -> dict[str, str]:
        return {"ok": "yes"}

    return create_app(
        service="test",
        title="t",
        description="t",
        version="0",
        max_body_bytes=1024,
        kafka_bootstrap="127.0.0.1:1",
        lifespan=lifespan,
        routers=[router],
    )


@pytest.mark.parametrize("in_teardown", [False, True], ids=["query", "release"])
@pytest.mark.parametrize("error", OUTAGE_ERRORS, ids=lambda e: type(e).__name__)
def test_a_database_outage_answers_503_with_retry_after(
    error: Exception, in_teardown: bool
) -> None:
    with TestClient(_app(error, in_teardown=in_teardown), raise_server_exceptions=False) as client:
        answer = client.post("/v1/thing")
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"] == "unavailable"


def test_an_unexpected_error_is_still_a_500() -> None:
    app = _app(RuntimeError("bug"), in_teardown=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        answer = c.post("/v1/thing")
    assert answer.status_code == 500
