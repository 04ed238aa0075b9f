"""The simulation as a pure function: seed and size in, the partners' writes out, in time order.

Nothing here talks to a service, so tests and the benchmark can reuse the same writes. One seeded
``random.Random`` is drawn from in a fixed order and nothing iterates over a set of strings, so
the same arguments give the same writes, byte for byte.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from shared.reference import load_reference
from shared.timerules import AMSTERDAM
from tools.simulator.population import (
    Resident,
    build_population,
    djg6_answers,
    djg11_answers,
    state_of,
)
from tools.simulator.scenario import ActivitySpec, Organisation, Scenario, default_scenario

__all__ = ["SERVICE_OF", "Write", "default_run_id", "generate", "span"]

SERVICE_OF = {
    "activity": "registrations",
    "registration": "registrations",
    "cancellation": "registrations",
    "attendance": "registrations",
    "referral": "referrals",
    "referral_status": "referrals",
    "training": "referrals",
    "measurement": "referrals",
}
SIGNALS = ("emotional", "social", "practical", "health", "other")
ROLE_WEIGHTS = {
    "gp": 0.20,
    "poh-ggz": 0.12,
    "district-nurse": 0.12,
    "social-worker": 0.15,
    "welfare-coach": 0.14,
    "volunteer": 0.10,
    "informal-care-consultant": 0.06,
    "pharmacist": 0.04,
    "police": 0.03,
    "other": 0.04,
}
MEDICAL_ROLES = ("gp", "poh-ggz", "district-nurse", "pharmacist")
SURVEY_ORG = {"djg11": "ggd-haaglanden", "djg6": "gemeente-pn"}


@dataclass(frozen=True, slots=True)
class Write:
    """One write of one partner: the batch item it sends and what the ledger calls it."""

    service: str  # "registrations" or "referrals"
    organisation: str  # whose key sends it
    kind: str  # the batch item's kind
    id: str  # the write's own id (referral_status: "<referral_id>:<status>")
    at: datetime  # the simulated moment it happens
    item: dict[str, Any]  # {"kind": ..., "body": {...}, + activity_id / registration_id / ...}


def default_run_id(seed: int, residents: int, months: int, today: date) -> str:
    """Prefix of every id and reference. It names everything the writes depend on: a run with
    other options writes new ids rather than other bodies under old ids (which the services
    refuse with 409), and the same run again is a harmless replay."""
    return f"s{seed}-n{residents}-m{months}-{today:%Y%m%d}"


def span(months: int, today: date) -> tuple[datetime, datetime]:
    """[start, end): ``months`` calendar months back from today, up to today's midnight, so
    that no moment lies in the future."""
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    day = min(today.day, 28)
    start = datetime.combine(date(year, month + 1, day), time(0), AMSTERDAM)
    return start, datetime.combine(today, time(0), AMSTERDAM)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class _Activity:
    org: Organisation
    spec: ActivitySpec
    id: str
    launch: datetime
    sessions: list[datetime]


class _Generator:
    def __init__(
        self, seed: int, residents: int, months: int, today: date, scenario: Scenario, tag: str
    ) -> None:
        self.rng = random.Random(seed)
        self.n = residents
        self.months = months
        self.years = months / 12
        self.scenario = scenario
        self.tag = tag
        self.start, self.end = span(months, today)
        self.writes: list[Write] = []
        self.counters: dict[str, int] = {}
        self.participants: dict[tuple[int, str], dict[str, Any]] = {}
        # A resident's 11-item total changes after help (follow-up); surveys after that see it.
        self.improved: dict[int, tuple[datetime, int]] = {}
        # The coalition's service list: the provider of a service receives referrals to it.
        self.services = load_reference().services

    # ------------------------------------------------------------------------------ helpers

    def next_id(self, letter: str) -> str:
        n = self.counters.get(letter, 0) + 1
        self.counters[letter] = n
        return f"{self.tag}-{letter}{n:06d}"

    def emit(self, org: str, kind: str, write_id: str, at: datetime, item: dict[str, Any]) -> None:
        self.writes.append(Write(SERVICE_OF[kind], org, kind, write_id, at, item))

    def chance(self, per_year: float) -> float:
        """A yearly chance over the simulated span."""
        return 1 - (1 - min(per_year, 0.999)) ** self.years

    def moment_between(
        self, lo: datetime, hi: datetime, hours: tuple[int, int] = (9, 17)
    ) -> datetime:
        """A moment on a day in [lo, hi), in office hours (local time)."""
        days = max(1, (hi.date() - lo.date()).days)
        day = lo.date() + timedelta(days=self.rng.randrange(days))
        hour = self.rng.randrange(*hours)
        moment = datetime.combine(day, time(hour, self.rng.randrange(0, 60, 5)), AMSTERDAM)
        return max(moment, lo)

    def after(self, moment: datetime, lo_days: float, hi_days: float) -> datetime:
        later = moment + timedelta(days=self.rng.uniform(lo_days, hi_days))
        return later.replace(second=0, microsecond=0)

    def participant(self, r: Resident, org: str, *, token: bool = True) -> dict[str, Any]:
        """The participant as ``org`` knows the resident. Partners do not always know the
        neighbourhood; what they know stays the same."""
        key = (r.no, org if token else f"{org}#no-token")
        found = self.participants.get(key)
        if found is None:
            found = {"ref": f"{self.tag}-p{r.no:06d}"}
            if token and r.token:
                found["resident_token"] = r.token
            found["neighbourhood"] = "unknown" if self.rng.random() < 0.03 else r.neighbourhood
            found["age_band"] = r.age_band
            # `lives_alone` is no longer collected (docs/privacy.md); the draw stays so that a
            # seed gives the same population and requests as before.
            self.rng.random()
            self.participants[key] = found
        return found

    # --------------------------------------------------------------------------- activities

    def activities(self) -> list[_Activity]:
        out: list[_Activity] = []
        span_days = (self.end - self.start).days
        for org in self.scenario.organisations:
            for spec in org.activities:
                launch_day = self.start.date() + timedelta(days=int(spec.launch * span_days))
                launch = datetime.combine(launch_day, time(9), AMSTERDAM)
                activity_id = f"{self.tag}-{spec.slug}"
                body: dict[str, Any] = {
                    "title": spec.title,
                    "category": spec.category,
                    "aimed_at_connection": spec.aimed_at_connection,
                    "neighbourhood": spec.neighbourhood,
                }
                if spec.capacity is not None:
                    body["capacity"] = spec.capacity
                if spec.target_age_bands:
                    body["target_age_bands"] = list(spec.target_age_bands)
                body["active"] = True
                item = {"kind": "activity", "activity_id": activity_id, "body": body}
                self.emit(org.id, "activity", activity_id, launch, item)
                out.append(_Activity(org, spec, activity_id, launch, self.sessions(spec, launch)))
        return out

    def sessions(self, spec: ActivitySpec, launch: datetime) -> list[datetime]:
        day = launch.date() + timedelta(days=1)
        day += timedelta(days=(spec.weekday - day.weekday()) % 7)
        out: list[datetime] = []
        while True:
            moment = datetime.combine(day, time(spec.hour, spec.minute), AMSTERDAM)
            if moment >= self.end:
                return out
            summer = (day.month == 7 and day.day >= 15) or day.month == 8
            if not (spec.summer_break and summer):
                out.append(moment)
            day += timedelta(days=7)

    def activity_weights(
        self, r: Resident, options: list[_Activity], at: datetime | None = None
    ) -> list[float]:
        weights = []
        for a in options:
            w = 1.0
            if at is not None and a.launch > at:
                w = 0.0
            if a.spec.neighbourhood == r.neighbourhood:
                w *= 4
            if a.spec.target_age_bands and r.age_band not in a.spec.target_age_bands:
                w *= 0.03
            if r.age_band in ("65-74", "75+") and a.spec.category in ("meeting", "help"):
                w *= 2
            if r.age_band in ("0-15", "16-25") and a.spec.category in ("sport", "digital"):
                w *= 2
            weights.append(w)
        return weights

    def enrol(
        self,
        r: Resident,
        a: _Activity,
        registered_at: datetime,
        *,
        referral: tuple[str, str] | None = None,
        keen: bool = False,
    ) -> date | None:
        """Register, maybe cancel, and attend weekly; returns the first attended session date.
        ``referral``: (referring organisation, referral id) of the referral that led here."""
        rng = self.rng
        org = a.org.id
        participant = self.participant(r, org)
        registration_id = self.next_id("r")
        body: dict[str, Any] = {
            "registration_id": registration_id,
            "activity_id": a.id,
            "participant": participant,
            "registered_at": _iso(registered_at),
        }
        if referral is not None:
            # A referral is named by its referrer and its id (ids are unique per referrer).
            body["referring_organisation_id"], body["referral_id"] = referral
        self.emit(
            org,
            "registration",
            registration_id,
            registered_at,
            {"kind": "registration", "body": body},
        )
        upcoming = [s for s in a.sessions if s.date() > registered_at.date()]
        # How long someone keeps coming: some stay, most drift off after a few months.
        if rng.random() < (0.4 if keen else 0.25):
            weeks = len(upcoming)
        else:
            weeks = 1 + int(rng.expovariate(1 / (16 if keen else 11)))
        cancelled_after: int | None = None
        if rng.random() < self.scenario.cancellation_share:
            cancelled_after = 0 if rng.random() < 0.5 else rng.randrange(1, 6)
            weeks = min(weeks, cancelled_after)
        attend = self.scenario.attended_share
        if r.lonely and referral is None:
            attend -= 0.04
        first: date | None = None
        last = registered_at
        for session in upcoming[:weeks]:
            if rng.random() < 0.15:  # away, with notice: nothing to record
                continue
            status = "attended" if rng.random() < attend else "no_show"
            attendance_id = self.next_id("t")
            self.emit(
                org,
                "attendance",
                attendance_id,
                session,
                {
                    "kind": "attendance",
                    "body": {
                        "attendance_id": attendance_id,
                        "activity_id": a.id,
                        "session_start": _iso(session),
                        "participant": participant,
                        "status": status,
                    },
                },
            )
            last = session
            if status == "attended" and first is None:
                first = session.date()
        if cancelled_after is not None:
            cancelled_at = self.after(last, 0.1, 6)
            if cancelled_at < self.end:
                body = {"cancelled_at": _iso(cancelled_at)}
                if rng.random() < 0.6:
                    body["reason"] = rng.choice(
                        ("illness", "other-commitment", "not-interested", "moved-away", "other")
                    )
                self.emit(
                    org,
                    "cancellation",
                    registration_id,
                    cancelled_at,
                    {"kind": "cancellation", "registration_id": registration_id, "body": body},
                )
        return first

    # ------------------------------------------------------------------------------- phases

    def participation(self, residents: list[Resident], activities: list[_Activity]) -> None:
        rng = self.rng
        for r in residents:
            p = self.scenario.participation[r.age_band]
            if r.lonely:
                p *= self.scenario.lonely_participation_factor
            if rng.random() >= self.chance(p):
                continue
            count = rng.choices((1, 2, 3), (0.7, 0.25, 0.05))[0]
            weights = self.activity_weights(r, activities)
            chosen: list[_Activity] = []
            for _ in range(count):
                a = rng.choices(activities, weights)[0]
                if a not in chosen:
                    chosen.append(a)
            for a in chosen:
                lo = max(self.start, a.launch + timedelta(days=1))
                hi = self.end - timedelta(days=7)
                if lo >= hi:
                    continue
                if a.spec.launch == 0 and rng.random() < 0.35:
                    # Members from before the span: their partner registers them when it
                    # starts sending, in the first weeks.
                    hi = min(hi, lo + timedelta(days=14))
                self.enrol(r, a, self.moment_between(lo, hi, (8, 21)))

    def referrals(self, residents: list[Resident], activities: list[_Activity]) -> None:
        rng = self.rng
        by_role: dict[str, list[Organisation]] = {}
        for org in self.scenario.organisations:
            for role in org.roles:
                by_role.setdefault(role, []).append(org)
        roles = [r for r in ROLE_WEIGHTS if r in by_role]
        role_weights = [ROLE_WEIGHTS[r] for r in roles]
        connecting = [a for a in activities if a.spec.aimed_at_connection]
        for r in residents:
            if not r.surveyed:
                continue
            rate = (
                self.scenario.referral_rate_lonely
                if r.lonely
                else self.scenario.referral_rate_other
            )
            if rng.random() >= self.chance(rate):
                continue
            role = rng.choices(roles, role_weights)[0]
            candidates = by_role[role]
            org = rng.choices(
                candidates,
                [3.0 if r.neighbourhood in o.neighbourhoods else 1.0 for o in candidates],
            )[0]
            created = self.moment_between(self.start, self.end)
            self.referral(r, org.id, role, created, connecting)

    def referral(
        self,
        r: Resident,
        org: str,
        role: str,
        created: datetime,
        connecting: list[_Activity],
    ) -> None:
        rng = self.rng
        referral_id = self.next_id("v")
        state = r.state
        emotional = state != "not" and rng.random() < 0.7
        wanted = {
            "emotional": emotional,
            "social": state != "not" and (not emotional or rng.random() < 0.6),
            "practical": rng.random() < 0.25,
            "health": rng.random() < (0.35 if role in MEDICAL_ROLES else 0.1),
            "other": rng.random() < 0.05,
        }
        signals = [s for s in SIGNALS if wanted[s]] or ["social"]
        target: _Activity | None = None
        if rng.random() < 0.85:
            weights = self.activity_weights(r, connecting, created)
            if sum(weights) > 0:
                target = rng.choices(connecting, weights)[0]
        referred_to: dict[str, Any] = (
            {"activity_id": target.id, "organisation_id": target.org.id}
            if target is not None
            else {"service": rng.choice(tuple(self.services))}
        )
        # The receiving side moves the referral along; the referrer only withdraws it.
        receiver = target.org.id if target is not None else self.services[referred_to["service"]]
        self.emit(
            org,
            "referral",
            referral_id,
            created,
            {
                "kind": "referral",
                "body": {
                    "referral_id": referral_id,
                    "participant": self.participant(r, org),
                    "referrer_role": role,
                    "signals": signals,
                    "referred_to": referred_to,
                    "consent": True,
                    "created_at": _iso(created),
                },
            },
        )
        u = rng.random()
        ref = (org, referral_id)
        if u < 0.70:
            accepted = self.status(receiver, ref, "accepted", self.after(created, 0.5, 10))
            if accepted is None:
                return
            last = accepted
            if rng.random() < 0.8:
                last = self.status(receiver, ref, "contacted", self.after(accepted, 1, 10)) or last
            converted = False
            if target is not None and rng.random() < 0.78:
                late = rng.random() < 0.15
                registered = self.after(accepted, 45, 100) if late else self.after(accepted, 0, 21)
                if registered < self.end - timedelta(days=1):
                    first = self.enrol(r, target, registered, referral=ref, keen=True)
                    converted = first is not None and (first - created.date()).days <= 60
            if rng.random() < 0.9:
                outcome = (
                    "joined-activity"
                    if converted
                    else rng.choice(
                        ("support-in-place", "declined-by-resident", "referred-elsewhere")
                    )
                )
                self.status(receiver, ref, "closed", self.after(last, 20, 90), outcome)
            if rng.random() < 0.8 and r.total is not None:
                self.measurements(r, org, accepted, converted)
        elif u < 0.85:
            self.status(receiver, ref, "declined", self.after(created, 1, 14), "not-eligible")
        elif u < 0.90:
            self.status(org, ref, "withdrawn", self.after(created, 2, 21))

    def status(
        self,
        org: str,
        referral: tuple[str, str],
        status: str,
        at: datetime,
        outcome: str | None = None,
    ) -> datetime | None:
        """``org`` records a step of ``referral`` (referrer, id): the receiving side accepts,
        declines, contacts and closes, the referrer withdraws. Each side keeps its own stream."""
        if at >= self.end:
            return None
        referrer, referral_id = referral
        body: dict[str, Any] = {"status": status, "at": _iso(at)}
        if outcome is not None:
            body["outcome"] = outcome
        item: dict[str, Any] = {"kind": "referral_status", "referral_id": referral_id}
        if org != referrer:  # the receiving side names the referrer (ids are unique per referrer)
            item["referring_organisation_id"] = referrer
        item["body"] = body
        self.emit(org, "referral_status", f"{referral_id}:{status}", at, item)
        return at

    def measurements(self, r: Resident, org: str, accepted: datetime, converted: bool) -> None:
        assert r.total is not None
        rng = self.rng
        intake_at = self.after(accepted, 0, 7)
        if intake_at >= self.end:
            return
        self.measurement(org, r, "intake", "djg11", intake_at, djg11_answers(rng, r.total))
        if rng.random() >= 0.7:
            return
        follow_at = self.after(intake_at, 90, 180)
        if follow_at >= self.end:
            return
        # Help works on average, joining an activity more so; some get lonelier all the same.
        change = round(rng.gauss(2.2, 1.8) if converted else rng.gauss(0.6, 1.5))
        after = max(0, min(11, r.total - change))
        self.measurement(org, r, "follow_up", "djg11", follow_at, djg11_answers(rng, after))
        self.improved[r.no] = (follow_at, after)

    def measurement(
        self,
        org: str,
        r: Resident | None,
        context: str,
        instrument: str,
        at: datetime,
        answers: list[str | None],
        *,
        anonymous: Resident | None = None,
    ) -> None:
        measurement_id = self.next_id("m")
        if r is not None:
            # The survey office does not know the coalition's resident token.
            participant = self.participant(r, org, token=context != "survey")
        else:
            assert anonymous is not None
            participant = {
                "neighbourhood": anonymous.neighbourhood,
                "age_band": anonymous.age_band,
            }
        body = {
            "measurement_id": measurement_id,
            "instrument": instrument,
            "context": context,
            "participant": participant,
            "answers": answers,
            "measured_at": _iso(at),
        }
        self.emit(org, "measurement", measurement_id, at, {"kind": "measurement", "body": body})

    def surveys(self, residents: list[Resident]) -> None:
        """A continuous population survey: each month a share of adults answers."""
        rng = self.rng
        s = self.scenario
        month_starts = []
        cursor = self.start
        while cursor < self.end:
            month_starts.append(cursor)
            nxt = (cursor.date().replace(day=1) + timedelta(days=32)).replace(day=1)
            cursor = datetime.combine(nxt, time(0), AMSTERDAM)
        for r in residents:
            if not r.surveyed or r.total is None:
                continue
            for i, lo in enumerate(month_starts):
                if rng.random() >= s.survey_rate:
                    continue
                hi = month_starts[i + 1] if i + 1 < len(month_starts) else self.end
                at = self.moment_between(lo, hi, (8, 22))
                total = r.total
                improved = self.improved.get(r.no)
                if improved is not None and improved[0] <= at:
                    total = improved[1]
                instrument = "djg6" if rng.random() < s.survey_djg6_share else "djg11"
                answers = (
                    djg6_answers(rng, state_of(total))
                    if instrument == "djg6"
                    else djg11_answers(rng, total)
                )
                org = SURVEY_ORG[instrument]
                if rng.random() < s.survey_anonymous_share:
                    self.measurement(org, None, "survey", instrument, at, answers, anonymous=r)
                else:
                    self.measurement(org, r, "survey", instrument, at, answers)

    def trainings(self) -> None:
        rng = self.rng
        for org in self.scenario.organisations:
            for i in range(org.staff):
                if rng.random() >= self.chance(self.scenario.trained_share):
                    continue
                role = org.roles[0] if rng.random() < 0.7 else rng.choice(org.roles)
                person_ref = f"{self.tag}-{org.id}-staff{i:03d}"
                completed = self.moment_between(self.start, self.end)
                self.training(org.id, person_ref, role, "signaling-loneliness", completed)
                if rng.random() < 0.12:
                    refresher = self.after(completed, 60, 240)
                    if refresher < self.end:
                        self.training(
                            org.id, person_ref, role, "signaling-loneliness-refresher", refresher
                        )

    def training(self, org: str, person_ref: str, role: str, training: str, at: datetime) -> None:
        training_id = self.next_id("o")
        body = {
            "training_id": training_id,
            "person_ref": person_ref,
            "role": role,
            "training": training,
            "completed_at": _iso(at),
        }
        self.emit(org, "training", training_id, at, {"kind": "training", "body": body})

    def run(self) -> list[Write]:
        residents = build_population(self.rng, self.n, self.scenario, self.tag)
        activities = self.activities()
        self.trainings()
        self.participation(residents, activities)
        self.referrals(residents, activities)
        self.surveys(residents)
        # Stable: writes at the same moment keep the order in which they were made.
        self.writes.sort(key=_moment)
        return self.writes


def _moment(w: Write) -> datetime:
    return w.at


def generate(
    seed: int,
    residents: int,
    months: int,
    today: date,
    *,
    scenario: Scenario | None = None,
    run_id: str | None = None,
) -> list[Write]:
    """Every write the partners make over ``months`` months up to ``today``, in time order.

    Deterministic: the same arguments give equal writes in the same order.
    """
    if residents < 0 or months < 1:
        raise ValueError("residents must be >= 0 and months >= 1")
    return _Generator(
        seed,
        residents,
        months,
        today,
        scenario or default_scenario(),
        run_id or default_run_id(seed, residents, months, today),
    ).run()
