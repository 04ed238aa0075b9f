"""A year full of deliberately small cells, as partner writes for the public APIs.

For the disclosure audit in CI (test_disclosure_audit_ci.py): every kind of cell that a reader
could try to work back, beside large ones, in every breakdown and period:

- a neighbourhood of three people with many events each (rule 1: people, not events);
- a month with a handful of participants inside a quarter of large months;
- a small age band (16-25) beside large ones, and a small organisation (the church);
- a small referrer role (the pharmacist: 3 referrals) beside the GPs and welfare coaches;
- a small trained role (2 community police officers) beside large ones;
- survey groups of 16, 12 and 5 answers with 7, 2 and 1 lonely among them;
- a few intake/follow-up pairs, declined and converted referrals, cancellations, no-shows;
- the S3 funnel (created → accepted → contacted → first attendance → retained) per referrer
  role with small stages beside large ones: a small role whose every stage is one referral, a
  last stage (retained) below k in the total, converted referrals without a recorded contact
  (they count as contacted), and recorded contacts that never led to an attendance;
- the same activities in the baseline year (growth), and a little in the current month, so
  that ``/metrics`` (current month, quarter and year) has figures to audit as well.

Deterministic: ids and choices depend on the year only (one seeded generator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.timerules import AMSTERDAM

# The organisations (ids get the test's prefix), with the scopes their keys need.
ORGANISATIONS = ("welzijn", "bibliotheek", "sportclub", "kerk", "huisarts", "apotheek")
ACTIVITIES = {
    # activity id: (organisation, category, neighbourhood)
    "koffie": ("welzijn", "meeting", "delfgauw"),
    "eten": ("welzijn", "meeting", "emerald"),
    "taalcafe": ("bibliotheek", "learning", "emerald"),
    "wandelen": ("sportclub", "sport", "koningshof"),
    "gebed": ("kerk", "support-group", "emerald"),
}
NEGATIVE = (False, True, True, False, True, True, False, False, True, True, False)  # djg11 items


@dataclass
class Writes:
    """Batch items per organisation, per service, in the order they must be sent."""

    prefix: str
    registrations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    referrals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    others: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def org(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def add(self, bucket: dict[str, list[dict[str, Any]]], org: str, item: dict[str, Any]) -> None:
        bucket.setdefault(self.org(org), []).append(item)

    def count(self) -> int:
        return sum(
            len(items)
            for bucket in (self.registrations, self.referrals, self.statuses, self.others)
            for items in bucket.values()
        )


def moment(day: date, hour: int = 10, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=AMSTERDAM).isoformat()


def answers(lonely: bool) -> list[str]:
    """A djg11 questionnaire: 4 lonely answers (moderately lonely) or none."""
    out = []
    for i, negative in enumerate(NEGATIVE):
        lonely_item = lonely and i in (1, 2, 4, 5)
        out.append(
            ("yes" if lonely_item else "no") if negative else ("no" if lonely_item else "yes")
        )
    return out


def build(prefix: str, year: int, baseline_year: int, now: datetime) -> Writes:
    rng = random.Random(f"audit-year-{year}")
    w = Writes(prefix)
    for activity_id, (org, category, hood) in ACTIVITIES.items():
        w.add(
            w.registrations,
            org,
            {
                "kind": "activity",
                "activity_id": activity_id,
                "body": {
                    "title": activity_id,
                    "category": category,
                    "aimed_at_connection": True,
                    "neighbourhood": hood,
                    "active": True,
                },
            },
        )
    registered: set[tuple[str, str]] = set()

    def attend(
        ref: str,
        hood: str,
        band: str,
        activity_id: str,
        days: list[date],
        *,
        no_show: float = 0.08,
        referral: tuple[str, str] | None = None,
    ) -> None:
        org = ACTIVITIES[activity_id][0]
        who = {"ref": ref, "neighbourhood": hood, "age_band": band}
        if (ref, activity_id) not in registered:
            registered.add((ref, activity_id))
            body: dict[str, Any] = {
                "registration_id": f"g-{ref}-{activity_id}",
                "activity_id": activity_id,
                "participant": who,
                "registered_at": moment(days[0] - timedelta(days=1), 9),
            }
            if referral:
                body["referring_organisation_id"], body["referral_id"] = referral
            w.add(w.registrations, org, {"kind": "registration", "body": body})
        for day in days:
            w.add(
                w.registrations,
                org,
                {
                    "kind": "attendance",
                    "body": {
                        "attendance_id": f"x-{ref}-{activity_id}-{day.isoformat()}",
                        "activity_id": activity_id,
                        "participant": who,
                        "session_start": moment(day, 10),
                        "status": "no_show" if rng.random() < no_show else "attended",
                    },
                },
            )

    def monthly(y: int, month: int, weekday_offset: int) -> date:
        return date(y, month, 3 + weekday_offset)

    # S2. Large groups every month but March, which only the small ones attend.
    groups = [
        # (tag, people, neighbourhood, age band, activities)
        ("a", 30, "delfgauw", "75+", ("koffie",)),
        ("b", 25, "emerald", "65-74", ("taalcafe", "eten")),
        ("c", 15, "koningshof", "26-64", ("wandelen",)),
    ]
    for tag, n, hood, band, acts in groups:
        for i in range(n):
            ref = f"{tag}{i:03d}"
            for activity_id in acts:
                days = [
                    monthly(year, m, (i + j) % 20)
                    for m in range(1, 13)
                    if m != 3
                    for j in range(rng.randint(0, 2))
                ]
                if days:
                    attend(ref, hood, band, activity_id, sorted(set(days)))
    # Few people, many events: three in Klapwijk, twenty sessions each (March too).
    for i in range(3):
        days = [date(year, 1, 5) + timedelta(days=7 * d) for d in range(20)]
        attend(f"k{i}", "klapwijk", "65-74", "koffie", days, no_show=0.0)
    # A small age band beside large ones.
    for i in range(3):
        attend(f"y{i}", "delfgauw", "16-25", "wandelen", [date(year, 5, 4 + i), date(year, 9, 7)])
    # A small organisation (the church), in March as well.
    for i in range(4):
        attend(f"r{i}", "emerald", "75+", "gebed", [date(year, 3, 10), date(year, 6, 16 + i)])
    # Cancellations: five, in June.
    for ref, activity_id in sorted(r for r in registered if r[1] == "koffie")[:5]:
        w.add(
            w.registrations,
            "welzijn",
            {
                "kind": "cancellation",
                "registration_id": f"g-{ref}-{activity_id}",
                "body": {"cancelled_at": moment(date(year, 6, 20), 9)},
            },
        )
    # The baseline year: the same activities, a smaller population (growth).
    for i in range(20):
        for m in (1, 2, 4, 5, 6, 9, 10, 11):
            attend(f"base{i}", "delfgauw", "75+", "koffie", [date(baseline_year, m, 8 + i % 15)])

    # S3. Referrals: GPs (15) and welfare coaches (12) large, the pharmacist (3) small.
    def refer(
        referrer: str,
        role: str,
        n: int,
        activity_id: str,
        *,
        accept: int,
        contact: int,
        convert: int,
        retain: int,
    ) -> None:
        """Referral i is accepted when i < accept, marked contacted when i < contact (contact
        <= accept), has its first attendance when i < convert and a third session within 90
        days when i < retain."""
        receiver = ACTIVITIES[activity_id][0]

        def status(referral_id: str, value: str, day: date) -> None:
            w.add(
                w.statuses,
                receiver,
                {
                    "kind": "referral_status",
                    "referral_id": referral_id,
                    "referring_organisation_id": w.org(referrer),
                    "body": {"status": value, "at": moment(day, 15)},
                },
            )

        for i in range(n):
            ref = f"v-{role}-{i}"
            created = date(year, 2 + (i * 7) % 9, 1 + i % 20)
            referral_id = f"ref-{role}-{i}"
            signals = ["social"] if i % 3 else ["social", "emotional"]
            if role == "pharmacist":
                signals = ["health"]
            w.add(
                w.referrals,
                referrer,
                {
                    "kind": "referral",
                    "body": {
                        "referral_id": referral_id,
                        "participant": {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+"},
                        "referrer_role": role,
                        "signals": signals,
                        "referred_to": {
                            "activity_id": activity_id,
                            "organisation_id": w.org(receiver),
                        },
                        "consent": True,
                        "created_at": moment(created, 11),
                    },
                },
            )
            if i < accept or i >= n - 2:
                status(
                    referral_id,
                    "accepted" if i < accept else "declined",
                    created + timedelta(days=2),
                )
            if i < contact:
                status(referral_id, "contacted", created + timedelta(days=4 + i % 5))
            if i < convert:
                days = [created + timedelta(days=9), created + timedelta(days=16)]
                if i < retain:
                    days.append(created + timedelta(days=40))
                attend(ref, "delfgauw", "75+", activity_id, days, no_show=0.0, referral=(w.org(referrer), referral_id))  # fmt: skip

    refer("huisarts", "gp", 15, "koffie", accept=11, contact=9, convert=7, retain=4)
    refer("welzijn", "welfare-coach", 12, "taalcafe", accept=8, contact=3, convert=4, retain=2)
    refer("apotheek", "pharmacist", 3, "wandelen", accept=1, contact=1, convert=1, retain=1)

    # S3. Trainings: GPs (12) and volunteers (15) large, police officers (2) small.
    trained = [("huisarts", "gp", 12), ("welzijn", "volunteer", 15), ("sportclub", "police", 2)]
    for org, role, n in trained:
        for i in range(n):
            w.add(
                w.others,
                org,
                {
                    "kind": "training",
                    "body": {
                        "training_id": f"tr-{role}-{i}",
                        "person_ref": f"staff-{role}-{i}",
                        "role": role,
                        "training": "signaling-loneliness",
                        "completed_at": moment(date(year, 1 + (i * 5) % 12, 10), 16),
                    },
                },
            )

    # S1. Survey groups: 16 answers with 7 lonely, 12 with 2, 5 with 1, over three months.
    surveys = [("delfgauw", "75+", 16, 7), ("emerald", "65-74", 12, 2), ("koningshof", "26-64", 5, 1)]  # fmt: skip
    for hood, band, n, lonely in surveys:
        for i in range(n):
            w.add(
                w.others,
                "welzijn",
                {
                    "kind": "measurement",
                    "body": {
                        "measurement_id": f"s-{hood}-{i}",
                        "instrument": "djg11",
                        "context": "survey",
                        "participant": {"neighbourhood": hood, "age_band": band},
                        "answers": answers(i < lonely),
                        "measured_at": moment(date(year, 4 + i % 3, 5 + i), 19),
                    },
                },
            )
    # Four intake/follow-up pairs (a small group of its own).
    for i in range(4):
        who = {"ref": f"v-gp-{i}", "neighbourhood": "delfgauw", "age_band": "75+"}
        for context, day, lonely in (("intake", 2, True), ("follow_up", 60, i % 2 == 0)):
            w.add(
                w.others,
                "huisarts",
                {
                    "kind": "measurement",
                    "body": {
                        "measurement_id": f"p-{context}-{i}",
                        "instrument": "djg11",
                        "context": context,
                        "participant": who,
                        "answers": answers(lonely),
                        "measured_at": moment(date(year, 2, 1) + timedelta(days=day + i), 12),
                    },
                },
            )

    # The current month, for /metrics: 12 people in Delfgauw and 2 in Klapwijk, just now.
    today = now.astimezone(AMSTERDAM)
    recent = today - timedelta(hours=1)
    for i, hood in enumerate(["delfgauw"] * 12 + ["klapwijk"] * 2):
        ref = f"now{i:02d}"
        w.add(
            w.registrations,
            "welzijn",
            {
                "kind": "attendance",
                "body": {
                    "attendance_id": f"now-{ref}-{recent:%Y%m%d}",
                    "activity_id": "koffie",
                    "participant": {"ref": ref, "neighbourhood": hood, "age_band": "75+"},
                    "session_start": recent.isoformat(),
                    "status": "attended",
                },
            },
        )
    return w
