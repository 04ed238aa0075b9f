"""A deterministic data set for the dashboard test, written through the partner APIs.

Fourteen partner organisations, eleven activities, a resident population that grows over the
twelve complete months before the current one, referrals from GPs, nurses, welfare coaches and
others (accepted, declined or left open; contacted or not; converted into attendance or not,
and some of them retained), trainings,
anonymous population surveys and intake/follow-up questionnaires. The same twelve months of the
baseline year get a smaller population, so that "growth against the baseline" shows.

Sizes are chosen so that, with k = 10, the big neighbourhoods and roles of the latest month
are shown and the small ones are suppressed. Every date lies before the first day of the
current month, so the newest month with publishable figures is the previous one. The same
current month always gives the same data (one seeded random generator, no clock elsewhere).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.timerules import AMSTERDAM

SEED = 20240101

# (organisation id, name) of the partners. The ids carry a prefix so that they cannot clash
# with organisations other tests of the same session create.
ORGANISATIONS = {
    "huisartsen-centrum": "Huisartsenpraktijk Centrum",
    "huisartsen-nootdorp": "Huisartsen Nootdorp",
    "thuiszorg": "Thuiszorg Pijnacker-Nootdorp",
    "wijkteam": "Wijkteam",
    "welzijn": "Welzijnsorganisatie (coordinator)",
    "apotheek": "Apotheek De Parel",
    "politie": "Wijkagenten",
    "vrijwilligerscentrale": "Vrijwilligerscentrale",
    "kerk": "Kerkelijke diaconie",
    "sportclub": "Sportvereniging",
    "bibliotheek": "Bibliotheek",
    "ggd": "GGD Haaglanden",
    "gemeente": "Gemeente",
    "jongerenwerk": "Jongerenwerk",
}


@dataclass(frozen=True)
class Activity:
    org: str
    activity_id: str
    title: str
    category: str
    neighbourhood: str
    weekday: int  # Monday = 0
    connection: bool = True
    weight: float = 1.0


ACTIVITIES = [
    Activity(
        "welzijn",
        "koffie-ochtend",
        "Koffie-ochtend in de wijk",
        "meeting",
        "pijnacker-centrum",
        1,
        weight=3,
    ),
    Activity("welzijn", "samen-eten", "Samen eten", "meeting", "nootdorp-centrum", 3, weight=2.5),
    Activity("welzijn", "maatjes", "Maatjesproject", "help", "pijnacker-noord", 2, weight=1),
    Activity(
        "welzijn", "rouwgroep", "Lotgenotengroep rouw", "support-group", "delfgauw", 0, weight=0.6
    ),
    Activity("bibliotheek", "digicafe", "Digicafé", "digital", "pijnacker-centrum", 4, weight=1.5),
    Activity("bibliotheek", "taalcafe", "Taalcafé", "learning", "nootdorp-centrum", 2, weight=1),
    Activity(
        "sportclub", "wandelgroep", "Wandelgroep", "sport", "keijzershof-eilanden", 0, weight=1.8
    ),
    Activity(
        "sportclub", "bewegen-65", "Bewegen voor ouderen", "sport", "pijnacker-zuid", 3, weight=1.2
    ),
    Activity(
        "sportclub",
        "fitness",
        "Fitness",
        "sport",
        "pijnacker-zuid",
        1,
        connection=False,
        weight=0.8,
    ),
    Activity("kerk", "open-huis", "Open huis", "meeting", "nootdorp-oost", 5, weight=0.8),
    Activity(
        "jongerenwerk", "jongerenavond", "Jongerenavond", "meeting", "koningshof", 4, weight=0.7
    ),
]

NEIGHBOURHOODS = {
    "pijnacker-centrum": 0.20,
    "nootdorp-centrum": 0.16,
    "pijnacker-noord": 0.13,
    "delfgauw": 0.10,
    "keijzershof-eilanden": 0.09,
    "koningshof": 0.06,
    "nootdorp-oost": 0.05,
    "pijnacker-zuid": 0.05,
    "ackerswoude": 0.03,
    "emerald": 0.03,
    "oude-leede": 0.02,
    "klapwijk": 0.02,
    "nootdorp-west": 0.02,
    "de-venen": 0.015,
    "s-gravenhout": 0.01,
    "buitengebied": 0.01,
    "outside-municipality": 0.01,
    "unknown": 0.005,
}
AGE_BANDS = {"16-25": 0.12, "26-64": 0.38, "65-74": 0.25, "75+": 0.22, "unknown": 0.03}

# Referrer role: (weight among referrals, organisations whose staff have that role)
ROLES = {
    "gp": (0.30, ("huisartsen-centrum", "huisartsen-nootdorp")),
    "welfare-coach": (0.26, ("welzijn",)),
    "poh-ggz": (0.14, ("huisartsen-centrum", "huisartsen-nootdorp")),
    "district-nurse": (0.10, ("thuiszorg",)),
    "social-worker": (0.09, ("wijkteam",)),
    "volunteer": (0.05, ("vrijwilligerscentrale", "kerk")),
    "informal-care-consultant": (0.02, ("welzijn",)),
    "pharmacist": (0.02, ("apotheek",)),
    "police": (0.02, ("politie",)),
}
# Trained people per role over the whole data set, and where they work.
TRAINED = {
    "volunteer": (28, ("vrijwilligerscentrale", "kerk", "sportclub", "bibliotheek")),
    "welfare-coach": (15, ("welzijn",)),
    "district-nurse": (13, ("thuiszorg",)),
    "social-worker": (9, ("wijkteam",)),
    "gp": (8, ("huisartsen-centrum", "huisartsen-nootdorp")),
    "poh-ggz": (6, ("huisartsen-centrum", "huisartsen-nootdorp")),
    "pharmacist": (4, ("apotheek",)),
    "police": (3, ("politie",)),
    "other": (5, ("gemeente", "jongerenwerk")),
}
SIGNALS = ("emotional", "social", "practical", "health", "other")

# De Jong Gierveld item polarity in item order: True = positive item (scores on "no").
DJG11_POSITIVE = (True, False, False, True, False, False, True, True, False, False, True)
DJG6_POSITIVE = (False, True, True, True, False, False)  # items 3, 4, 7, 8, 9, 10


@dataclass
class Resident:
    ref: str
    token: str | None
    neighbourhood: str
    age_band: str
    lives_alone: bool | None

    def participant(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": self.ref,
            "neighbourhood": self.neighbourhood,
            "age_band": self.age_band,
            "lives_alone": self.lives_alone,
        }
        if self.token:
            out["resident_token"] = self.token
        return out


@dataclass
class DataSet:
    """Writes per organisation, in the shape of the contract's batch items."""

    prefix: str
    months: list[tuple[int, int]]
    registrations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    referrals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    others: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def org(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def add(self, bucket: dict[str, list[dict[str, Any]]], org: str, item: dict[str, Any]) -> None:
        bucket.setdefault(self.org(org), []).append(item)

    @property
    def latest_month(self) -> str:
        y, m = self.months[-1]
        return f"{y:04d}-{m:02d}"

    def count(self) -> int:
        return sum(
            len(items)
            for bucket in (self.registrations, self.referrals, self.statuses, self.others)
            for items in bucket.values()
        )


def _moment(day: date, hour: int = 10, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=AMSTERDAM).isoformat()


def _month_days(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _answers(rng: random.Random, instrument: str, total: int) -> list[str]:
    positive = DJG11_POSITIVE if instrument == "djg11" else DJG6_POSITIVE
    lonely_items = set(rng.sample(range(len(positive)), total))
    out = []
    for i, pos in enumerate(positive):
        if i in lonely_items:
            out.append("more_or_less" if rng.random() < 0.2 else ("no" if pos else "yes"))
        else:
            out.append("yes" if pos else "no")
    return out


def _survey_total(rng: random.Random, instrument: str, level: int) -> int:
    """A total score in the band of ``level``: 0 not lonely, 1 moderately, 2 severely or worse."""
    bands = {"djg11": ((0, 2), (3, 8), (9, 11)), "djg6": ((0, 1), (2, 4), (5, 6))}
    low, high = bands[instrument][level]
    return rng.randint(low, high)


def _levels(rng: random.Random, n: int, lonely_share: float, severe: int) -> list[int]:
    """Exactly round(n * lonely_share) lonely answers, ``severe`` of them severely; shuffled."""
    lonely = round(n * lonely_share)
    levels = [2] * severe + [1] * (lonely - severe) + [0] * (n - lonely)
    rng.shuffle(levels)
    return levels


def months_before(today: date, n: int = 12) -> list[tuple[int, int]]:
    index = today.year * 12 + today.month - 1
    return [(i // 12, i % 12 + 1) for i in range(index - n, index)]


def build(prefix: str, baseline_year: int, today: date | None = None) -> DataSet:
    today = today or datetime.now(AMSTERDAM).date()
    rng = random.Random(f"{SEED}:{today.year}-{today.month}")
    months = months_before(today)
    ds = DataSet(prefix=prefix, months=months)
    this_month = date(today.year, today.month, 1)

    for a in ACTIVITIES:
        ds.add(
            ds.registrations,
            a.org,
            {
                "kind": "activity",
                "activity_id": a.activity_id,
                "body": {
                    "title": a.title,
                    "category": a.category,
                    "aimed_at_connection": a.connection,
                    "neighbourhood": a.neighbourhood,
                    "capacity": 30,
                    "active": True,
                },
            },
        )

    registered: dict[tuple[str, str], date] = {}

    def attend(
        who: Resident,
        act: Activity,
        days: list[date],
        tag: str,
        referral: tuple[str, str] | None = None,
        no_show_chance: float = 0.1,
    ) -> None:
        """Register once (two days before the first session), then attend the given days."""
        if not days:
            return
        key = (who.ref, act.activity_id)
        if key not in registered:
            registered[key] = days[0] - timedelta(days=2)
            reg_id = f"r-{who.ref}-{act.activity_id}"
            body: dict[str, Any] = {
                "registration_id": reg_id,
                "activity_id": act.activity_id,
                "participant": who.participant(),
                "registered_at": _moment(registered[key], 14),
            }
            if referral:  # named by its referrer and its id
                body["referring_organisation_id"], body["referral_id"] = referral
            ds.add(ds.registrations, act.org, {"kind": "registration", "body": body})
        for day in days:
            status = "no_show" if rng.random() < no_show_chance else "attended"
            ds.add(
                ds.registrations,
                act.org,
                {
                    "kind": "attendance",
                    "body": {
                        "attendance_id": f"a-{tag}-{who.ref}-{act.activity_id}-{day.isoformat()}",
                        "activity_id": act.activity_id,
                        "session_start": _moment(day, 10),
                        "participant": who.participant(),
                        "status": status,
                    },
                },
            )

    def sessions(act: Activity, year: int, month: int) -> list[date]:
        return [d for d in _month_days(year, month) if d.weekday() == act.weekday]

    def resident(tag: str, i: int, token_share: float = 0.7) -> Resident:
        return Resident(
            ref=f"{tag}{i:04d}",
            token=f"tok-{tag}{i:04d}" if rng.random() < token_share else None,
            neighbourhood=_pick(rng, NEIGHBOURHOODS),
            age_band=_pick(rng, AGE_BANDS),
            lives_alone=rng.choice([True, False, None]),
        )

    weights = {a.activity_id: a.weight for a in ACTIVITIES}
    by_id = {a.activity_id: a for a in ACTIVITIES}

    # S2: a population that grows month by month; each resident has one or two activities.
    population: list[tuple[int, Resident, list[Activity]]] = []
    n = 0
    for m_index in range(len(months)):
        joining = 40 if m_index == 0 else 11 + m_index
        for _ in range(joining):
            who = resident("p", n)
            n += 1
            acts = [by_id[_pick(rng, weights)]]
            if rng.random() < 0.25:
                second = by_id[_pick(rng, weights)]
                if second != acts[0]:
                    acts.append(second)
            population.append((m_index, who, acts))
    for m_index, (year, month) in enumerate(months):
        for joined, who, acts in population:
            if joined > m_index or (joined < m_index and rng.random() > 0.7):
                continue
            for act in acts:
                days = sessions(act, year, month)
                chosen = sorted(rng.sample(days, rng.randint(1, 2)))
                attend(who, act, chosen, "s")

    # Every seventeenth registration is cancelled the day after it was made.
    for (ref, activity_id), registered_on in sorted(registered.items())[::17]:
        ds.add(
            ds.registrations,
            by_id[activity_id].org,
            {
                "kind": "cancellation",
                "registration_id": f"r-{ref}-{activity_id}",
                "body": {"cancelled_at": _moment(registered_on + timedelta(days=1), 9)},
            },
        )

    # The same months of the baseline year: a smaller population, other residents.
    base_people = [(resident("b", i), by_id[_pick(rng, weights)]) for i in range(120)]
    for year, month in months:
        if year == baseline_year:
            continue
        for who, act in base_people:
            if rng.random() > 0.55:
                continue
            days = sessions(act, baseline_year, month)
            attend(who, act, [rng.choice(days)], "b")

    def add_status(
        receiver: str, referrer: str, referral_id: str, name: str, day: date, hour: int
    ) -> None:
        """The receiving side moves the referral along, naming its referrer."""
        ds.add(
            ds.statuses,
            receiver,
            {
                "kind": "referral_status",
                "referral_id": referral_id,
                "referring_organisation_id": ds.org(referrer),
                "body": {"status": name, "at": _moment(day, hour)},
            },
        )

    # S3 and S1: referrals, their outcome, questionnaires at intake and follow-up.
    role_weights = {role: w for role, (w, _) in ROLES.items()}
    connection = [a for a in ACTIVITIES if a.connection]
    v = 0
    for year, month in months:
        for _ in range(48):
            role = _pick(rng, role_weights)
            org = rng.choice(ROLES[role][1])
            who = resident("v", v, token_share=1.0)
            v += 1
            act = rng.choice(connection)
            created = date(year, month, rng.randint(1, 14))
            referral_id = f"ref-{who.ref}"
            signals = sorted(
                set(rng.sample(SIGNALS[:2], rng.randint(1, 2)))
                | ({rng.choice(SIGNALS[2:])} if rng.random() < 0.3 else set())
            )
            ds.add(
                ds.referrals,
                org,
                {
                    "kind": "referral",
                    "body": {
                        "referral_id": referral_id,
                        "participant": who.participant(),
                        "referrer_role": role,
                        "signals": signals,
                        "referred_to": {
                            "activity_id": act.activity_id,
                            "organisation_id": ds.org(act.org),
                        },
                        "consent": True,
                        "created_at": _moment(created, 11),
                    },
                },
            )

            outcome = rng.random()
            accepted = outcome < 0.8
            if outcome < 0.96:
                decision = "accepted" if accepted else "declined"
                when = created + timedelta(rng.randint(1, 4))
                add_status(act.org, org, referral_id, decision, when, 15)
                # Three in four accepted referrals record a contact the next day (from the
                # counter, not the generator, so that every other draw stays as it was): the
                # funnel's contacted stage then holds converted referrals without one too.
                if accepted and v % 4:
                    add_status(act.org, org, referral_id, "contacted", when + timedelta(1), 16)
            converted = accepted and rng.random() < 0.65
            if converted:
                first = created + timedelta(days=rng.randint(5, 9))
                days = [first + timedelta(days=7 * w) for w in range(rng.randint(1, 3))]
                days = [d for d in days if d.month == month]
                attend(who, act, days, "v", (ds.org(org), referral_id), no_show_chance=0.0)
                add_status(act.org, org, referral_id, "closed", days[-1], 20)
            elif accepted and rng.random() < 0.9 and created + timedelta(21) < this_month:
                # Most referrals that did not lead to an activity are closed after a while;
                # the rest stay open and show up as "without follow-up".
                add_status(act.org, org, referral_id, "closed", created + timedelta(21), 15)
            if rng.random() < 0.55:
                instrument = "djg11"
                intake = _survey_total(rng, instrument, 2 if rng.random() < 0.2 else 1)
                mid = who.participant()
                ds.add(
                    ds.others,
                    org,
                    {
                        "kind": "measurement",
                        "body": {
                            "measurement_id": f"m-in-{who.ref}",
                            "instrument": instrument,
                            "context": "intake",
                            "participant": mid,
                            "answers": _answers(rng, instrument, intake),
                            "measured_at": _moment(created, 11, 30),
                        },
                    },
                )
                follow_day = created + timedelta(days=56)
                if follow_day < this_month:
                    change = rng.randint(1, 4) if converted else rng.randint(-1, 2)
                    follow = max(0, min(11, intake - change))
                    ds.add(
                        ds.others,
                        org,
                        {
                            "kind": "measurement",
                            "body": {
                                "measurement_id": f"m-fu-{who.ref}",
                                "instrument": instrument,
                                "context": "follow_up",
                                "participant": mid,
                                "answers": _answers(rng, instrument, follow),
                                "measured_at": _moment(follow_day, 11, 30),
                            },
                        },
                    )

    # S1: anonymous population surveys by the GGD, loneliness slowly falling over the year.
    for m_index, (year, month) in enumerate(months):
        for i, level in enumerate(_levels(rng, 50, 0.46 - 0.007 * m_index, 4)):
            instrument = "djg6" if rng.random() < 0.15 else "djg11"
            total = _survey_total(rng, instrument, level)
            ds.add(
                ds.others,
                "ggd",
                {
                    "kind": "measurement",
                    "body": {
                        "measurement_id": f"survey-{year}{month:02d}-{i:03d}",
                        "instrument": instrument,
                        "context": "survey",
                        "participant": {
                            "neighbourhood": _pick(rng, NEIGHBOURHOODS),
                            "age_band": _pick(rng, AGE_BANDS),
                        },
                        "answers": _answers(rng, instrument, total),
                        "measured_at": _moment(date(year, month, rng.randint(1, 28)), 19),
                    },
                },
            )

    # S3: trainings, spread over the months and a little before.
    t = 0
    for role, (count, orgs) in TRAINED.items():
        for i in range(count):
            org = orgs[i % len(orgs)]
            y, mo = months[rng.randrange(-2, len(months)) % len(months)]
            day = date(y, mo, rng.randint(1, 28)) - timedelta(days=30 if i % 5 == 0 else 0)
            ds.add(
                ds.others,
                org,
                {
                    "kind": "training",
                    "body": {
                        "training_id": f"tr-{t:04d}",
                        "person_ref": f"staff-{role}-{i:03d}",
                        "role": role,
                        "training": "signaling-loneliness",
                        "completed_at": _moment(day, 16),
                    },
                },
            )
            t += 1
    return ds
