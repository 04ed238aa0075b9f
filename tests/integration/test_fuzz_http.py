"""Property-based fuzzing of every HTTP endpoint of the three services from their OpenAPI
documents (schemathesis): valid and invalid requests alike never get a 5xx, every 4xx has
the contract's error shape ``{"error": str, "details": [{"field": str, "message": str}]}``, and
every 2xx answer fits the schema the document gives it.

The services run as real HTTP servers (``verbinding serve``) on the session's test database;
the fuzzer authenticates with a key that has every scope, so that it reaches validation and the
handlers instead of stopping at 401/403.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import response_schema_conformance

from services.metrics.bootstrap import build_app as metrics_app
from services.referrals.bootstrap import build_app as referrals_app
from services.referrals.settings import ReferralsSettings
from services.registrations.bootstrap import build_app as registrations_app
from services.registrations.settings import RegistrationsSettings
from shared.auth import Scope
from tests.conftest import SECRET
from tests.live import LiveServices, live_services

pytestmark = pytest.mark.integration

# The documents the services serve at /openapi.json (and that docs/openapi/ commits). Building an
# app reads settings and reference data only; nothing connects at import time. (The session's
# random secret is exported only once the session starts: hand it over here.)
REGISTRATIONS_DOC = registrations_app(RegistrationsSettings(pseudonym_secret=SECRET)).openapi()
REFERRALS_DOC = referrals_app(ReferralsSettings(pseudonym_secret=SECRET)).openapi()
REGISTRATIONS = schemathesis.openapi.from_dict(REGISTRATIONS_DOC)
REFERRALS = schemathesis.openapi.from_dict(REFERRALS_DOC)
METRICS = schemathesis.openapi.from_dict(metrics_app().openapi())
# Batches: the coverage phase (every boundary case of the schema, whatever max_examples says)
# walks the whole item union, ~430 requests per service; random examples are enough here, the
# item bodies are the single endpoints' bodies, which get the coverage phase.
REGISTRATIONS_BATCH = schemathesis.openapi.from_dict(REGISTRATIONS_DOC)
REFERRALS_BATCH = schemathesis.openapi.from_dict(REFERRALS_DOC)
for _schema in (REGISTRATIONS_BATCH, REFERRALS_BATCH):
    _schema.config.phases.update(phases=["examples", "fuzzing"])


def bounded(examples: int) -> Any:
    """Positive and negative examples per operation, reproducible, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


# 36 operations: ~20 random examples each besides the coverage phase's boundary cases.
FUZZ = bounded(20)
FUZZ_BATCH = bounded(25)
# The metrics service's two operations take only query parameters, whose documented patterns
# (periods, months) let the fuzzer make well-formed labels at the edges of the calendar (years
# 0000 to 9999 with any number of months); more examples cost little there.
FUZZ_METRICS = bounded(150)


@dataclass(frozen=True)
class Target:
    live: LiveServices
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
async def target(
    test_env: dict[str, str], database: str, kafka: str, make_partner: Any, tmp_path_factory: Any
) -> AsyncIterator[Target]:
    partner = await make_partner(scopes=",".join(s.value for s in Scope))
    env = {**test_env, "VERBINDING_CONSUME": "false", "VERBINDING_LOG_LEVEL": "WARNING"}
    log_dir = Path(tmp_path_factory.mktemp("fuzz-logs"))
    async with live_services(("registrations", "referrals", "metrics"), env, log_dir) as live:
        yield Target(live, partner.key)


def assert_contract(case: Any, response: Any) -> None:
    # A template download is a binary spreadsheet: shown, not decoded.
    preview = response.content[:500].decode("utf-8", errors="replace")
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {preview}"
    assert response.status_code < 500, where
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), where
        assert isinstance(body.get("error"), str), where
        assert body["error"], where
        details = body.get("details")
        assert isinstance(details, list), where
        for detail in details:
            assert isinstance(detail, dict), where
            assert isinstance(detail.get("field"), str), where
            assert isinstance(detail.get("message"), str), where
        if response.status_code == 422:
            assert details, f"a 422 names at least one field: {where}"


def fuzz(case: Any, target: Target, service: str) -> None:
    # A fresh id in the path of writes now and then would not help the fuzzer; ids it generates
    # are already random. The key is the one thing it cannot invent.
    response = case.call(base_url=target.live.url(service), headers=target.headers(), timeout=30)
    assert_contract(case, response)
    if 200 <= response.status_code < 300:
        # A 2xx answer is what the document says: the routes never validate their answers (a
        # read's model is documentation only), so the fuzzer's real answers check the models.
        case.validate_response(response, checks=[response_schema_conformance])


@REGISTRATIONS.exclude(path="/v1/batch").parametrize()
@FUZZ
def test_registrations_endpoints(case: Any, target: Target) -> None:
    fuzz(case, target, "registrations")


@REGISTRATIONS_BATCH.include(path="/v1/batch").parametrize()
@FUZZ_BATCH
def test_registrations_batch(case: Any, target: Target) -> None:
    fuzz(case, target, "registrations")


@REFERRALS.exclude(path="/v1/batch").parametrize()
@FUZZ
def test_referrals_endpoints(case: Any, target: Target) -> None:
    fuzz(case, target, "referrals")


@REFERRALS_BATCH.include(path="/v1/batch").parametrize()
@FUZZ_BATCH
def test_referrals_batch(case: Any, target: Target) -> None:
    fuzz(case, target, "referrals")


@METRICS.parametrize()
@FUZZ_METRICS
def test_metrics_endpoints(case: Any, target: Target) -> None:
    fuzz(case, target, "metrics")


async def test_routes_that_do_not_exist_answer_with_the_error_shape(target: Target) -> None:
    """Not in the OpenAPI document, so the fuzzer never asks: unknown paths, wrong methods and
    bodies that are not JSON."""
    import httpx

    base = target.live.url("registrations")
    async with httpx.AsyncClient(base_url=base, headers=target.headers(), timeout=10) as client:
        answers = [
            await client.get(f"/v1/does-not-exist/{uuid.uuid4().hex}"),
            await client.delete("/v1/batch"),
            await client.post(
                "/v1/batch", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
            await client.post(
                "/v1/batch", content=b"\xff\xfe", headers={"Content-Type": "text/plain"}
            ),
            await client.post("/v1/batch", content=b"x" * 3_000_000),
        ]
    for response in answers:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert isinstance(body["error"], str), body
        assert isinstance(body["details"], list), body
    assert [r.status_code for r in answers] == [404, 405, 422, 422, 413]
