"""Webhooks of referral events: the endpoints an organisation manages over the API, the queue
the `referrals` topic fills (:class:`WebhookDispatch`, a consumer of its own) and the worker
that sends (:class:`WebhookSender`, a task of its own with its own connections): a slow or dead
receiver holds up its own deliveries only, never a write, nor another organisation's deliveries.

At least once, in order per referral (a later event of a referral waits while an earlier one is
pending for the same endpoint), retried with exponential backoff and jitter, dead after
``max_attempts`` into a list the organisation reads and redelivers from. The address of an
endpoint is checked when it is registered and again, after resolving its name, before every
attempt; the request goes to the address that was checked (no second lookup to rebind).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import Counter, Gauge

from services.referrals.domain.decide import Key, Referral, receiver_of
from services.referrals.domain.webhooks import (
    WEBHOOK_TYPES,
    Delivery,
    Endpoint,
    Environment,
    address_problem,
    backoff,
    body_of,
    recipients,
    signature,
    url_problem,
)
from shared.errors import ConflictError, FieldError, NotFoundError
from shared.events import CloudEvent

__all__ = [
    "Answer",
    "PostFailed",
    "Poster",
    "Resolver",
    "WebhookDispatch",
    "WebhookEndpoints",
    "WebhookRecords",
    "WebhookSender",
    "WebhookSettings",
    "new_secret",
]

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "verbinding_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, failed (tried again later), dead "
    "(given up after the last attempt), gone (the receiver answered 410: endpoint disabled), "
    "refused (the address is not allowed).",
    ["outcome"],
)
PENDING = Gauge("verbinding_webhook_pending_deliveries", "Webhook deliveries waiting to be sent.")
OLDEST = Gauge(
    "verbinding_webhook_oldest_pending_age_seconds",
    "Age of the oldest webhook delivery still waiting (0 when none waits).",
)

# Name -> its addresses, as resolved now.
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class Answer:
    """A receiver's answer to one attempt: its status and its Retry-After header, if any."""

    status: int
    retry_after: str | None = None


class PostFailed(Exception):
    """No answer: the connection failed or timed out (the message says how)."""


class Poster(Protocol):
    """One POST of a delivery (services/referrals/adapters/webhook_http.py): no redirects
    followed, no proxy; ``url`` names the checked address, ``headers`` carry the Host."""

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, sni_hostname: str | None
    ) -> Answer: ...

    async def close(self) -> None: ...


def new_secret() -> str:
    """A signing secret as Standard Webhooks serialises it: `whsec_` + base64 of 32 random
    bytes (the specification asks for 24 to 64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class WebhookSettings:
    environment: Environment
    max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    timeout_seconds: float
    secret_overlap: timedelta
    concurrency: int
    delivered_kept: timedelta


class WebhookRecords(Protocol):
    async def endpoint(
        self, organisation_id: str, webhook_id: str
    ) -> tuple[Endpoint, bool] | None: ...
    async def add(self, e: Endpoint) -> bool: ...
    async def listed(self, organisation_id: str) -> list[Endpoint]: ...
    async def delete(self, organisation_id: str, webhook_id: str, now: datetime) -> bool: ...
    async def rotate(
        self, organisation_id: str, webhook_id: str, secret: str, previous_until: datetime
    ) -> bool: ...
    async def active(self, organisation_ids: Collection[str]) -> list[Endpoint]: ...
    async def enqueue(self, queued: Sequence[tuple[str, Delivery]], now: datetime) -> int: ...
    async def claim(
        self, limit: int, lease_seconds: float
    ) -> list[tuple[int, int, Delivery, Endpoint]]: ...
    async def delivered(self, delivery_id: int) -> None: ...
    async def failed(self, delivery_id: int, error: str, retry_in: float | None) -> None: ...
    async def gone(self, organisation_id: str, webhook_id: str, error: str) -> None: ...
    async def failures(self, organisation_id: str, webhook_id: str) -> list[dict[str, Any]]: ...
    async def redeliver(
        self, organisation_id: str, webhook_id: str, delivery_id: int | None
    ) -> int: ...
    async def backlog(self) -> tuple[int, float]: ...
    async def forget_delivered(self, before: datetime) -> int: ...


Records = Callable[[], AbstractAsyncContextManager[WebhookRecords]]
# The referrals of these keys (for their receiving side), on a connection of the caller's.
ReferralLookup = Callable[[Collection[Key]], Awaitable[dict[Key, Referral]]]


async def _resolve_problem(url: str, settings: WebhookSettings, resolve: Resolver) -> str | None:
    """The address check of an endpoint: its URL, then (outside the test environment, where
    only loopback literals are allowed and nothing is looked up) every address it resolves to."""
    problem = url_problem(url, settings.environment)
    if problem or settings.environment == "test":
        return problem
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(parts.hostname or "", port)
    except OSError as exc:
        return f"the host name does not resolve ({exc.strerror or exc})"
    if settings.environment == "development":
        return None if addresses else "the host name does not resolve"
    return address_problem(addresses, settings.environment)


class WebhookEndpoints:
    """What an organisation does with its endpoints over the API."""

    def __init__(self, settings: WebhookSettings, resolve: Resolver) -> None:
        self.settings = settings
        self.resolve = resolve

    async def register(
        self,
        records: WebhookRecords,
        organisation_id: str,
        webhook_id: str,
        url: str,
        description: str | None,
    ) -> tuple[int, dict[str, Any]]:
        """201 with the secret (shown this once); 200 for a replay (the same id and body),
        without it; 409 for the same id with another body, or an id used before."""
        problem = await _resolve_problem(url, self.settings, self.resolve)
        if problem:
            raise FieldError([("url", problem)])
        found = await records.endpoint(organisation_id, webhook_id)
        if found is None:
            endpoint = Endpoint(
                organisation_id=organisation_id,
                webhook_id=webhook_id,
                url=url,
                description=description,
                secret=new_secret(),
                previous_secret=None,
                previous_expires_at=None,
                created_at=datetime.now(UTC),
            )
            if await records.add(endpoint):
                return 201, {**endpoint.view(), "secret": endpoint.secret}
            found = await records.endpoint(organisation_id, webhook_id)
            assert found is not None
        existing, deleted = found
        if deleted:
            raise ConflictError(f"webhook {webhook_id!r} was deleted; use a new id")
        if (existing.url, existing.description) != (url, description):
            raise ConflictError(
                f"webhook {webhook_id!r} was already registered with a different body; "
                "use a new id for a new endpoint"
            )
        return 200, {
            **existing.view(),
            "secret": None,
            "message": "registered before; its secret was shown then (rotate to get a new one)",
        }

    async def listed(self, records: WebhookRecords, organisation_id: str) -> list[dict[str, Any]]:
        return [e.view() for e in await records.listed(organisation_id)]

    async def _own(
        self, records: WebhookRecords, organisation_id: str, webhook_id: str
    ) -> Endpoint:
        found = await records.endpoint(organisation_id, webhook_id)
        if found is None or found[1]:
            raise NotFoundError(f"no webhook {webhook_id!r} of your organisation")
        return found[0]

    async def delete(self, records: WebhookRecords, organisation_id: str, webhook_id: str) -> None:
        await self._own(records, organisation_id, webhook_id)
        await records.delete(organisation_id, webhook_id, datetime.now(UTC))

    async def rotate(
        self, records: WebhookRecords, organisation_id: str, webhook_id: str
    ) -> dict[str, Any]:
        """A new secret, shown once; the one it replaces keeps signing (beside it) until the
        overlap ends, so that the receiver can switch without missing a delivery."""
        secret = new_secret()
        until = datetime.now(UTC) + self.settings.secret_overlap
        await self._own(records, organisation_id, webhook_id)
        await records.rotate(organisation_id, webhook_id, secret, until)
        endpoint = await self._own(records, organisation_id, webhook_id)
        return {**endpoint.view(), "secret": secret}

    async def failures(
        self, records: WebhookRecords, organisation_id: str, webhook_id: str
    ) -> list[dict[str, Any]]:
        await self._own(records, organisation_id, webhook_id)
        return await records.failures(organisation_id, webhook_id)

    async def redeliver(
        self,
        records: WebhookRecords,
        organisation_id: str,
        webhook_id: str,
        delivery_id: int | None,
    ) -> dict[str, Any]:
        await self._own(records, organisation_id, webhook_id)
        count = await records.redeliver(organisation_id, webhook_id, delivery_id)
        if delivery_id is not None and not count:
            raise NotFoundError(f"no failed delivery {delivery_id} of webhook {webhook_id!r}")
        return {"webhook_id": webhook_id, "queued": count}


class WebhookDispatch:
    """The webhooks consumer: every referral event becomes a delivery to each active endpoint of
    each organisation that hears of it. Queuing the same event again changes nothing."""

    def __init__(
        self,
        records: Records,
        referrals: Callable[[], AbstractAsyncContextManager[ReferralLookup]],
        services: Mapping[str, str],
        outcomes: Collection[str],
    ) -> None:
        self.records = records
        self.referrals = referrals
        self.services = services
        self.outcomes = outcomes
        self.wake = asyncio.Event()

    async def apply(self, events: Sequence[CloudEvent[Any]]) -> None:
        delivered = [e for e in events if type(e.data) in WEBHOOK_TYPES]
        if not delivered:
            return
        keys = {(e.data.organisation_id, e.data.referral_id) for e in delivered}
        async with self.referrals() as lookup:
            known = await lookup(keys)
        heard: list[tuple[CloudEvent[Any], str | None, list[str]]] = []
        for event in delivered:
            e = event.data
            referral = known.get((e.organisation_id, e.referral_id))
            receiver = (
                receiver_of(referral, self.services)
                if referral is not None
                else getattr(e, "receiving_organisation_id", None)
            )
            heard.append((event, receiver, recipients(event, receiver)))
        async with self.records() as records:
            endpoints: dict[str, list[Endpoint]] = {}
            for endpoint in await records.active({o for _, _, orgs in heard for o in orgs}):
                endpoints.setdefault(endpoint.organisation_id, []).append(endpoint)
            queued = [
                (
                    endpoint.webhook_id,
                    Delivery(
                        organisation_id=org,
                        event_id=str(event.id),
                        event_type=WEBHOOK_TYPES[type(event.data)],
                        referrer=event.data.organisation_id,
                        referral_id=event.data.referral_id,
                        body=body_of(event, org, receiver, self.outcomes),
                    ),
                )
                for event, receiver, orgs in heard
                for org in orgs
                for endpoint in endpoints.get(org, [])
            ]
            if await records.enqueue(queued, datetime.now(UTC)):
                self.wake.set()


class WebhookSender:
    """Sends queued deliveries until stopped: at most one request in flight per endpoint, at
    most ``concurrency`` in all; each attempt is signed anew (its own timestamp)."""

    def __init__(
        self,
        records: Records,
        settings: WebhookSettings,
        resolve: Resolver,
        poster: Poster,
        *,
        wake: asyncio.Event | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.records = records
        self.settings = settings
        self.resolve = resolve
        self.poster = poster
        self.wake = wake or asyncio.Event()
        self.poll_interval = poll_interval
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        last_observed = 0.0
        try:
            while not stop.is_set():
                free = self.settings.concurrency - len(self._in_flight)
                claimed = []
                if free > 0:
                    try:
                        async with self.records() as records:
                            claimed = await records.claim(free, self.settings.timeout_seconds + 10)
                            if time.monotonic() - last_observed > 2:
                                pending, age = await records.backlog()
                                PENDING.set(pending)
                                OLDEST.set(age)
                                last_observed = time.monotonic()
                    except Exception as exc:  # the database is away: try again shortly
                        log.warning("webhooks: cannot claim", extra={"error": repr(exc)})
                for row in claimed:
                    task = asyncio.create_task(self._deliver(*row))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                if not claimed:
                    await self._idle(stop)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self.poster.close()

    async def _idle(self, stop: asyncio.Event) -> None:
        self.wake.clear()
        waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(
        self, delivery_id: int, attempts: int, delivery: Delivery, endpoint: Endpoint
    ) -> None:
        outcome, error, retry_after = await self._attempt(delivery, endpoint)
        DELIVERIES.labels(outcome).inc()
        try:
            async with self.records() as records:
                if outcome == "delivered":
                    await records.delivered(delivery_id)
                elif outcome == "gone":
                    await records.gone(endpoint.organisation_id, endpoint.webhook_id, error)
                else:
                    failures = attempts + 1
                    retry: float | None = None
                    if failures < self.settings.max_attempts:
                        retry = backoff(
                            failures,
                            self.settings.retry_base_seconds,
                            self.settings.retry_max_seconds,
                            random.uniform(0.75, 1.0),  # noqa: S311 - jitter, not a secret
                        )
                        if retry_after is not None:
                            retry = max(retry, min(retry_after, self.settings.retry_max_seconds))
                    else:
                        DELIVERIES.labels("dead").inc()
                    await records.failed(delivery_id, error, retry)
        except Exception as exc:  # the lease runs out and the delivery is claimed again
            log.warning("webhooks: outcome not recorded", extra={"error": repr(exc)})
        self.wake.set()

    async def _attempt(
        self, delivery: Delivery, endpoint: Endpoint
    ) -> tuple[str, str, float | None]:
        """(outcome, error, seconds the receiver asked to wait)."""
        parts = urlsplit(endpoint.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        problem = url_problem(endpoint.url, self.settings.environment)
        address = host
        if problem is None and self.settings.environment != "test":
            try:
                addresses = await self.resolve(host, port)
            except OSError as exc:
                addresses, problem = [], f"cannot resolve {host}: {exc}"
            if problem is None and self.settings.environment == "production":
                problem = address_problem(addresses, "production")
            if problem is None:
                if not addresses:
                    problem = f"{host} does not resolve"
                else:
                    address = addresses[0]
        if problem is not None:
            return "refused", f"address not allowed: {problem}", None
        # Connect to the address that was checked; the name goes in Host and in TLS (SNI and
        # the certificate check), so that a second lookup cannot lead elsewhere.
        literal = f"[{address}]" if ":" in address else address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        now = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Verbinding-Webhooks/1",
            "host": parts.netloc,
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(now),
            "webhook-signature": signature(
                endpoint.secrets(datetime.now(UTC)),
                delivery.event_id,
                datetime.fromtimestamp(now, UTC),
                delivery.body,
            ),
        }
        try:
            answer = await self.poster.post(
                target,
                delivery.body,
                headers,
                sni_hostname=host if parts.scheme == "https" else None,
            )
        except PostFailed as exc:
            return "failed", str(exc), None
        if 200 <= answer.status < 300:
            return "delivered", "", None
        if answer.status == 410:
            return "gone", "the receiver answered 410 Gone: endpoint disabled", None
        retry_after = None
        with contextlib.suppress(ValueError):
            retry_after = float(answer.retry_after or "")
        return "failed", f"HTTP {answer.status}", retry_after
