"""Webhooks of referral events, the rules (pure): who hears of an event, what the delivery says,
where it may go, how it is signed and when a failed one is tried again.

What travels is the referral's key, the reader's side, statuses, dates, sequence numbers and
outcome codes of the configured list: never the resident (no pseudonym, no attribute), never
free text. Deliveries follow Standard Webhooks (standardwebhooks.com): ``webhook-id`` (the
event id, the receiver's idempotency key), ``webhook-timestamp`` (the attempt, in Unix seconds)
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per valid
secret: two while a rotated secret overlaps its successor).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from standardwebhooks.webhooks import Webhook

from shared.events import CloudEvent, ReferralCreated, ReferralFirstAttended, ReferralStatusChanged

__all__ = [
    "WEBHOOK_TYPES",
    "Delivery",
    "Endpoint",
    "Environment",
    "address_problem",
    "backoff",
    "body_of",
    "recipients",
    "role_of",
    "signature",
    "url_problem",
]

Environment = Literal["development", "test", "production"]

# The events that are delivered, by the `type` their deliveries carry.
WEBHOOK_TYPES: dict[type, str] = {
    ReferralCreated: "referral.created",
    ReferralStatusChanged: "referral.status_changed",
    ReferralFirstAttended: "referral.first_attendance",
}
MAX_URL_LENGTH = 2000
_LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class Delivery:
    """One event for one endpoint: what is signed and sent, byte for byte, on every attempt."""

    organisation_id: str
    event_id: str
    event_type: str
    referrer: str
    referral_id: str
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    """An organisation's endpoint, its secrets in the clear (they live encrypted at rest)."""

    organisation_id: str
    webhook_id: str
    url: str
    description: str | None
    secret: str
    previous_secret: str | None
    previous_expires_at: datetime | None
    created_at: datetime
    disabled_at: datetime | None = None

    def secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the one it replaced
        while their overlap lasts."""
        overlapping = (
            self.previous_secret is not None
            and self.previous_expires_at is not None
            and now < self.previous_expires_at
        )
        return [self.secret, *((self.previous_secret,) if overlapping else ())]  # type: ignore[arg-type]

    def view(self) -> dict[str, Any]:
        """What its organisation reads (never a secret)."""
        return {
            "webhook_id": self.webhook_id,
            "url": self.url,
            "description": self.description,
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "previous_secret_expires_at": (
                self.previous_expires_at.isoformat() if self.previous_expires_at else None
            ),
        }


def role_of(organisation_id: str, referrer: str, receiver: str | None) -> str:
    """The reader's side of a referral: `sent`, `received`, or `both` (its own activity)."""
    sent, received = organisation_id == referrer, organisation_id == receiver
    return "both" if sent and received else "sent" if sent else "received"


def recipients(event: CloudEvent[Any], receiver: str | None) -> list[str]:
    """The organisations that hear of ``event``: the sides of the referral, except the one that
    made the change (it knows). A first attendance is the platform's finding: both sides."""
    e = event.data
    sides = {e.organisation_id, *((receiver,) if receiver else ())}
    if isinstance(e, ReferralCreated):
        sides.discard(e.organisation_id)
    elif isinstance(e, ReferralStatusChanged):
        sides.discard(e.changed_by)
    return sorted(sides)


def body_of(
    event: CloudEvent[Any], organisation_id: str, receiver: str | None, outcomes: Collection[str]
) -> bytes:
    """The delivery's body for ``organisation_id`` (Standard Webhooks' ``type``, ``timestamp``,
    ``data``). ``outcomes``: the configured outcome codes; any other outcome is left out."""
    e = event.data
    data: dict[str, Any] = {
        "referring_organisation_id": e.organisation_id,
        "referral_id": e.referral_id,
        "receiving_organisation_id": receiver,
        "role": role_of(organisation_id, e.organisation_id, receiver),
    }
    if isinstance(e, ReferralCreated):
        data |= {"status": "created", "at": e.created_at.isoformat(), "sequence": 1}
    elif isinstance(e, ReferralStatusChanged):
        data |= {
            "status": e.status,
            "previous_status": e.previous_status,
            "at": e.at.isoformat(),
            "sequence": e.sequence,
            "changed_by": e.changed_by,
            "outcome": e.outcome if e.outcome in outcomes else None,
        }
    elif isinstance(e, ReferralFirstAttended):
        data |= {
            "attended_on": e.attended_on.isoformat(),
            "referred_on": e.referred_on.isoformat(),
            "days_after_referral": e.days_after_referral,
            "within_window": e.within_window,
            "sequence": e.sequence,
        }
    else:
        raise ValueError(f"{type(e).__name__} is not delivered by webhook")
    return orjson.dumps(
        {"type": WEBHOOK_TYPES[type(e)], "timestamp": event.time.isoformat(), "data": data}
    )


def url_problem(url: str, environment: Environment) -> str | None:
    """What is wrong with an endpoint's URL on its face (before any name is resolved)."""
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL, e.g. https://example.org/hooks/verbinding"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password (deliveries are signed instead)"
    if parts.fragment:
        return "must not have a #fragment"
    if port == 0:
        return "port 0 is not a port"
    host = parts.hostname
    if re.search(r"\s", url):
        return "must not contain white space"
    if environment == "production" and parts.scheme != "https":
        return "must be https"
    if environment == "test" and not _is_loopback_name(host):
        return "in the test environment only loopback addresses (127.0.0.1, ::1, localhost)"
    if environment == "development" and parts.scheme == "http" and not _is_loopback_name(host):
        return "http only on loopback (127.0.0.1, ::1, localhost); use https"
    literal = _literal(host)
    if literal is not None and environment == "production":
        return address_problem([str(literal)], environment)
    return None


def address_problem(addresses: Iterable[str], environment: Environment) -> str | None:
    """Why a resolved endpoint may not be called (SSRF): in production every address must be
    a public one (never private, loopback, link-local, multicast or reserved); in test every
    address must be loopback. ``addresses``: all of them, as resolved just now."""
    found = [ipaddress.ip_address(a) for a in addresses]
    if not found:
        return "the host name does not resolve"
    for address in found:
        mapped = getattr(address, "ipv4_mapped", None) or address
        if environment == "production" and not mapped.is_global:
            return f"resolves to {address}, which is not a public address"
        if environment == "test" and not mapped.is_loopback:
            return f"resolves to {address}; the test environment delivers to loopback only"
    return None


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback_name(host: str) -> bool:
    literal = _literal(host)
    return literal.is_loopback if literal is not None else host.lower() in _LOOPBACK_NAMES


def signature(secrets: Iterable[str], message_id: str, at: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<signature>`` per secret, space-delimited."""
    text = body.decode()
    return " ".join(Webhook(s).sign(msg_id=message_id, timestamp=at, data=text) for s in secrets)


def backoff(failures: int, base: float, cap: float, jitter: float) -> float:
    """Seconds until the next attempt after ``failures`` failed ones: exponential from
    ``base``, at most ``cap``, times ``jitter`` (a random number in [0.75, 1), drawn by the
    caller) so that endpoints that failed together are not retried together."""
    return min(cap, base * 2 ** max(failures - 1, 0)) * jitter
