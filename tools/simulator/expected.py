"""What the indicators must say, computed from the accepted writes alone.

Independent of the metrics service on purpose: plain Python over the writes a partner got a 2xx
for, following domain.md §6 to the letter, so that a fault test can compare ``/v1/indicators``
with it. A participant is counted by the pseudonym rule of domain.md §3 (the resident token if
there is one, else organisation and reference); no secret is needed to tell people apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from services.referrals.domain.scoring import Score, score
from shared.reference import load_reference
from shared.timerules import local_date
from tools.simulator.generate import Write

__all__ = [
    "LedgerKey",
    "accepted_writes",
    "expected_figures",
    "ledger_key",
    "period_bounds",
    "published",
    "read_ledger",
]

LedgerKey = tuple[str, str, str]  # (organisation, kind, id)


def ledger_key(w: Write) -> LedgerKey:
    return (w.organisation, w.kind, w.id)


def read_ledger(path: str | Path) -> dict[LedgerKey, int]:
    """The last status per write in a ledger (a retried write may appear more than once)."""
    statuses: dict[LedgerKey, int] = {}
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                statuses[(row["organisation"], row["kind"], row["id"])] = int(row["status"])
    return statuses


def accepted_writes(writes: Iterable[Write], statuses: Mapping[LedgerKey, int]) -> list[Write]:
    """The writes the services answered with 2xx, in their original order."""
    return [w for w in writes if 200 <= statuses.get(ledger_key(w), 0) < 300]


def period_bounds(label: str) -> tuple[date, date]:
    """``YYYY``, ``YYYY-Qn`` or ``YYYY-MM`` as inclusive local dates."""
    from services.metrics.domain.periods import parse_period

    p = parse_period(label)
    return p.start, p.end


def _pseudonym(organisation: str, participant: Mapping[str, Any]) -> tuple[str, ...]:
    token = participant.get("resident_token")
    if token:
        return ("resident", token)
    return ("org", organisation, participant["ref"])


def _day(value: str) -> date:
    return local_date(datetime.fromisoformat(value))


@dataclass
class _Attendance:
    organisation: str
    activity_id: str
    who: tuple[str, ...]
    day: date
    attended: bool


def expected_figures(writes_accepted: Iterable[Write], period: str) -> dict[str, Any]:
    """Unsuppressed S1/S2/S3 figures of ``period`` (``YYYY``, ``YYYY-Qn``, ``YYYY-MM``).

    S2 counts connection activities only, classified by the version in force at the moment of
    the session (registration, cancellation), the first version before the first one. Every
    version is in force from its acceptance, and a simulated run's writes are accepted after all
    of its simulated moments (they lie before today): the first accepted version classifies
    everything. A session is (activity, session start): one person at one session counts once.
    S3 follows §6: a referral is (referrer, id); accepted and declined are the receiving side's;
    ``converted`` needs a registration at the receiving side that names the referral (by
    referrer and id, or by the id alone where the receiver holds one referral with it), then an
    attended session of that registrant on that activity, on or after the registration date and
    within 60 days of the referral.
    """
    start, end = period_bounds(period)
    writes = list(writes_accepted)
    aimed: dict[tuple[str, str], bool] = {}
    for w in writes:
        if w.kind == "activity":
            aimed.setdefault(
                (w.organisation, w.item["activity_id"]), bool(w.item["body"]["aimed_at_connection"])
            )

    def connecting(org: str, activity_id: str) -> bool:
        return aimed.get((org, activity_id), False)

    sessions: dict[tuple[str, str, datetime, tuple[str, ...]], _Attendance] = {}
    registrations: dict[tuple[str, str], dict[str, Any]] = {}
    cancellations: list[tuple[str, str, date]] = []
    referrals: list[tuple[str, dict[str, Any]]] = []
    statuses: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (referrer, id) -> (status, by)
    surveys: list[tuple[str, dict[str, Any]]] = []
    for w in writes:
        body = w.item["body"]
        if w.kind == "attendance":
            who = _pseudonym(w.organisation, body["participant"])
            started = datetime.fromisoformat(body["session_start"])
            session = (w.organisation, body["activity_id"], started, who)
            seen = sessions.get(session)
            attended = body["status"] == "attended" or (seen is not None and seen.attended)
            sessions[session] = _Attendance(
                w.organisation, body["activity_id"], who, local_date(started), attended
            )
        elif w.kind == "registration":
            registrations[(w.organisation, body["registration_id"])] = body
        elif w.kind == "cancellation":
            cancellations.append(
                (w.organisation, w.item["registration_id"], _day(body["cancelled_at"]))
            )
        elif w.kind == "referral":
            referrals.append((w.organisation, body))
        elif w.kind == "referral_status":
            referrer = w.item.get("referring_organisation_id") or w.organisation
            statuses.setdefault((referrer, w.item["referral_id"]), set()).add(
                (body["status"], w.organisation)
            )
        elif w.kind == "measurement" and body["context"] == "survey":
            surveys.append((w.organisation, body))

    def inside(day: date) -> bool:
        return start <= day <= end

    attendance = list(sessions.values())
    conn_att = [a for a in attendance if connecting(a.organisation, a.activity_id)]
    first_ever: dict[tuple[str, ...], date] = {}
    for a in conn_att:
        if a.attended and (a.who not in first_ever or a.day < first_ever[a.who]):
            first_ever[a.who] = a.day
    in_period = [a for a in conn_att if inside(a.day)]
    s2 = {
        "participants_unique": len({a.who for a in in_period if a.attended}),
        "participants_new": sum(1 for d in first_ever.values() if inside(d)),
        "attendances": sum(1 for a in in_period if a.attended),
        "no_shows": sum(1 for a in in_period if not a.attended),
        "registrations": sum(
            1
            for (org, _), body in registrations.items()
            if connecting(org, body["activity_id"]) and inside(_day(body["registered_at"]))
        ),
        "cancellations": sum(
            1
            for org, registration_id, day in cancellations
            if (org, registration_id) in registrations
            and connecting(org, registrations[(org, registration_id)]["activity_id"])
            and inside(day)
        ),
    }

    attended_at: dict[tuple[str, str, tuple[str, ...]], list[date]] = {}
    for a in attendance:
        if a.attended:
            attended_at.setdefault((a.organisation, a.activity_id, a.who), []).append(a.day)
    services = load_reference().services

    def receiver(body: Mapping[str, Any]) -> str | None:
        to = body["referred_to"]
        return to.get("organisation_id") or services.get(to.get("service", ""))

    received: dict[tuple[str | None, str], int] = {}  # (receiver, id) -> referrals it holds
    for _, body in referrals:
        pair = (receiver(body), body["referral_id"])
        received[pair] = received.get(pair, 0) + 1

    def names(reg_org: str, reg: Mapping[str, Any], org: str, body: Mapping[str, Any]) -> bool:
        """Whether the registration names the referral ``body`` of ``org``."""
        if reg_org != receiver(body) or reg.get("referral_id") != body["referral_id"]:
            return False
        referrer = reg.get("referring_organisation_id")
        if referrer is not None:
            return bool(referrer == org)
        return received.get((reg_org, body["referral_id"]), 0) == 1

    created = [(org, body) for org, body in referrals if inside(_day(body["created_at"]))]
    days_to_first: list[int] = []
    converted: set[tuple[str, str]] = set()
    for org, body in created:
        made = _day(body["created_at"])
        firsts = [
            d
            for (reg_org, _), reg in registrations.items()
            if names(reg_org, reg, org, body)
            for d in attended_at.get(
                (reg_org, reg["activity_id"], _pseudonym(reg_org, reg["participant"])), []
            )
            if d >= _day(reg["registered_at"]) and made <= d and (d - made).days <= 60
        ]
        if firsts:
            days_to_first.append((min(firsts) - made).days)
            converted.add((org, body["referral_id"]))

    def has(org: str, b: Mapping[str, Any], status: str) -> bool:
        return (status, receiver(b)) in statuses.get((org, b["referral_id"]), ())

    def reached_acceptance(org: str, b: Mapping[str, Any]) -> bool:
        # The funnel's stages are cumulative (docs/disclosure.md): a referral contacted or
        # converted counts as accepted too.
        return (
            has(org, b, "accepted")
            or has(org, b, "contacted")
            or (org, b["referral_id"]) in converted
        )

    def decided(status: str) -> int:
        if status == "accepted":
            return sum(1 for org, b in created if reached_acceptance(org, b))
        return sum(
            1 for org, b in created if has(org, b, status) and not reached_acceptance(org, b)
        )

    s3 = {
        "referrals": len(created),
        "accepted": decided("accepted"),
        "declined": decided("declined"),
        "converted": len(days_to_first),
        "days_to_first_attendance": statistics.median(days_to_first) if days_to_first else None,
    }

    # The latest scorable survey per known participant, every anonymous one (as §6 says).
    latest: dict[tuple[str, ...], tuple[datetime, str, Score]] = {}
    anonymous: list[Score] = []
    for org, body in surveys:
        if not inside(_day(body["measured_at"])):
            continue
        scored = score(body["instrument"], body["answers"])
        if scored.total is None:
            continue
        if body["participant"].get("ref") is None:
            anonymous.append(scored)
            continue
        who = _pseudonym(org, body["participant"])
        moment = (datetime.fromisoformat(body["measured_at"]), body["measurement_id"])
        held = latest.get(who)
        if held is None or moment > held[:2]:
            latest[who] = (*moment, scored)
    counted = [held[2] for held in latest.values()] + anonymous
    s1 = {
        "measurements": len(counted),
        "lonely": sum(1 for s in counted if s.lonely),
        "severe": sum(1 for s in counted if s.severe),
    }
    return {"period": period, "s1": s1, "s2": s2, "s3": s3}


def published(figures: Mapping[str, Any], k: int = 10) -> dict[str, Any]:
    """The counts as /v1/indicators publishes them: ``None`` below k (small-cell suppression);
    the median days rests on the converted referrals, so it is hidden with them."""
    out: dict[str, Any] = {"period": figures["period"]}
    for subgoal in ("s1", "s2", "s3"):
        out[subgoal] = {
            name: (None if value is None or value < k else value)
            for name, value in figures[subgoal].items()
            if name != "days_to_first_attendance"
        }
    s3 = figures["s3"]
    out["s3"]["days_to_first_attendance"] = (
        None
        if s3["converted"] < k or s3["days_to_first_attendance"] is None
        else round(float(s3["days_to_first_attendance"]), 1)
    )
    return out
