"""The simulator's model: reproducible, valid for the services, true to the baseline, and an
independent computation of the figures the indicators must show."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import pytest
from pydantic import BaseModel

from services.referrals.domain import rules as referral_rules
from services.referrals.domain.commands import (
    MeasurementCommand,
    ReferralCommand,
    StatusCommand,
    TrainingCommand,
)
from services.referrals.domain.scoring import Category, score
from services.registrations.domain import rules as registration_rules
from services.registrations.domain.commands import (
    ActivityCommand,
    AttendanceCommand,
    CancellationCommand,
    RegistrationCommand,
)
from shared.reference import load_reference
from shared.timerules import check_moment
from tools.simulator import Write, expected_figures, generate, plan_batches, published
from tools.simulator.population import (
    build_population,
    djg6_answers,
    djg11_answers,
    lonely_probability,
)
from tools.simulator.scenario import default_scenario

TODAY = date(2026, 11, 28)


@cache
def small() -> list[Write]:
    return generate(11, 400, 6, TODAY)


@cache
def large() -> list[Write]:
    # More survey answers than the default, so that sampling noise stays well inside the
    # tolerances below (about 0.006 on the overall share).
    scenario = dataclasses.replace(default_scenario(), survey_rate=0.25)
    return generate(21, 10_000, 12, TODAY, scenario=scenario)


def bodies(writes: list[Write], batch_size: int = 100) -> list[bytes]:
    return [b.body() for b in plan_batches(writes, batch_size)]


# ----------------------------------------------------------------------------- reproducibility


def test_same_seed_and_options_give_byte_identical_bodies_in_the_same_order():
    first = bodies(generate(11, 400, 6, TODAY))
    again = bodies(generate(11, 400, 6, TODAY))
    assert first == again
    assert sum(len(b) for b in first) > 100_000  # a real amount of data, not an empty run


def test_another_seed_gives_other_bodies():
    one = generate(11, 400, 6, TODAY)
    other = generate(12, 400, 6, TODAY)
    assert bodies(one) != bodies(other)
    # Not just other ids: the simulated people and moments differ too.
    moments = {w.item["body"].get("session_start") for w in one if w.kind == "attendance"}
    moments_other = {w.item["body"].get("session_start") for w in other if w.kind == "attendance"}
    assert moments != moments_other


def test_ids_are_unique_per_organisation_and_kind():
    keys = Counter((w.organisation, w.kind, w.id) for w in small())
    assert keys.most_common(1)[0][1] == 1


def test_writes_are_in_time_order_and_inside_the_span():
    writes = small()
    assert [w.at for w in writes] == sorted(w.at for w in writes)
    end = datetime(2026, 11, 28, tzinfo=UTC)
    assert all(w.at < end for w in writes)


def test_thirty_three_organisations_of_the_programmes_kinds():
    orgs = default_scenario().organisations
    assert len(orgs) == 33 == len({o.id for o in orgs})
    kinds = {o.kind for o in orgs}
    assert {
        "welfare",
        "social-work",
        "library",
        "sports-club",
        "culture-club",
        "church",
        "gp",
    } <= kinds
    assert {"home-care", "volunteer-centre", "youth-work", "public-health", "municipality"} <= kinds
    activities = [a for o in orgs for a in o.activities]
    assert sum(a.aimed_at_connection for a in activities) / len(activities) > 0.8


# -------------------------------------------------------------------- valid for the services

REGISTRATIONS: dict[str, tuple[type[BaseModel], set[str]]] = {
    "activity": (ActivityCommand, {"kind", "activity_id", "body"}),
    "registration": (RegistrationCommand, {"kind", "body"}),
    "cancellation": (CancellationCommand, {"kind", "registration_id", "body"}),
    "attendance": (AttendanceCommand, {"kind", "body"}),
}
REFERRALS: dict[str, tuple[type[BaseModel], set[str]]] = {
    "referral": (ReferralCommand, {"kind", "body"}),
    "referral_status": (StatusCommand, {"kind", "referral_id", "body"}),
    "training": (TrainingCommand, {"kind", "body"}),
    "measurement": (MeasurementCommand, {"kind", "body"}),
}


def _problems(kind: str, cmd: Any) -> list[tuple[str, str]]:
    ref = load_reference()
    checks = {
        "activity": lambda: registration_rules.check_activity(cmd, ref),
        "registration": lambda: registration_rules.check_registration(cmd, ref),
        "cancellation": lambda: check_moment("cancelled_at", cmd.cancelled_at),
        "attendance": lambda: registration_rules.check_attendance(cmd, ref),
        "referral": lambda: referral_rules.check_referral(cmd, ref),
        "referral_status": lambda: referral_rules.check_status(cmd, ref),
        "training": lambda: referral_rules.check_training(cmd, ref),
        "measurement": lambda: referral_rules.check_measurement(cmd, ref),
    }
    return checks[kind]()


def test_every_body_validates_against_the_services_request_models_and_rules():
    from services.referrals.domain.items import batch_item_adapter as referral_items
    from services.registrations.domain.items import batch_item_adapter as registration_items

    adapters = {"registrations": registration_items(), "referrals": referral_items()}
    seen = Counter()
    for w in small():
        adapters[w.service].validate_python(w.item)  # the batch item as the service reads it
        models = REGISTRATIONS if w.service == "registrations" else REFERRALS
        model, envelope = models[w.kind]
        # The receiving side names the referrer of the referral it moves along.
        assert set(w.item) - {"referring_organisation_id"} == envelope, w.item
        assert w.item["kind"] == w.kind
        cmd = model.model_validate(w.item["body"])
        assert _problems(w.kind, cmd) == [], (w.kind, w.item)
        if w.kind == "measurement":
            score(cmd.instrument, cmd.answers)  # raises if it cannot be scored
        seen[w.kind] += 1
    assert set(seen) == set(REGISTRATIONS) | set(REFERRALS)


def test_referral_lifecycles_follow_the_state_machine_in_time_order():
    from services.referrals.domain.lifecycle import check_transition

    current: dict[str, tuple[str, str]] = {}
    created = {w.id: w.item["body"]["created_at"] for w in small() if w.kind == "referral"}
    for w in small():
        if w.kind == "referral_status":
            referral_id = w.item["referral_id"]
            status, at = current.get(referral_id, ("created", created[referral_id]))
            body = w.item["body"]
            check_transition(status, body["status"])
            assert datetime.fromisoformat(body["at"]) >= datetime.fromisoformat(at)
            current[referral_id] = (body["status"], body["at"])
    assert Counter(s for s, _ in current.values())["closed"] > 0


def test_registrations_quoting_a_referral_are_at_the_referred_to_organisation():
    referrals = {w.id: w for w in small() if w.kind == "referral"}
    quoting = [w for w in small() if w.kind == "registration" and "referral_id" in w.item["body"]]
    assert quoting
    for w in quoting:
        referral = referrals[w.item["body"]["referral_id"]]
        to = referral.item["body"]["referred_to"]
        assert (to["organisation_id"], to["activity_id"]) == (
            w.organisation,
            w.item["body"]["activity_id"],
        )
        assert w.item["body"]["referring_organisation_id"] == referral.organisation


def test_status_changes_come_from_the_side_that_may_make_them():
    """The receiving side (the organisation referred to, or the service's provider) accepts,
    declines, contacts and closes; the referrer withdraws (shared/referral_parties.py)."""
    from shared.referral_parties import may_change

    services = load_reference().services
    referrals = {w.id: w for w in small() if w.kind == "referral"}
    changes = [w for w in small() if w.kind == "referral_status"]
    assert {w.item["body"]["status"] for w in changes} >= {"accepted", "declined", "withdrawn"}
    for w in changes:
        referral = referrals[w.item["referral_id"]]
        to = referral.item["body"]["referred_to"]
        receiver = to.get("organisation_id") or services[to["service"]]
        assert may_change(w.item["body"]["status"], w.organisation, referral.organisation, receiver)
        if w.organisation != referral.organisation:
            assert w.item["referring_organisation_id"] == referral.organisation


# ------------------------------------------------------------------------- true to the baseline


def test_answers_score_to_the_intended_total_and_category():
    rng = random.Random(3)
    for total in range(12):
        for _ in range(40):
            assert score("djg11", djg11_answers(rng, total)).total == total
    wanted = {
        "not": Category.NOT_LONELY,
        "moderate": Category.MODERATELY_LONELY,
        "severe": Category.SEVERELY_LONELY,
    }
    for state, category in wanted.items():
        for _ in range(200):
            assert score("djg6", djg6_answers(rng, state)).category == category


def _share(rows: list[bool]) -> float:
    return sum(rows) / len(rows)


def test_population_is_lonely_as_the_baseline_says():
    scenario = default_scenario()
    people = [r for r in build_population(random.Random(5), 80_000, scenario, "t") if r.surveyed]
    assert _share([r.lonely for r in people]) == pytest.approx(0.44, abs=0.01)
    assert _share([r.state == "severe" for r in people]) == pytest.approx(0.09, abs=0.01)
    by_nbh: dict[str, list[bool]] = defaultdict(list)
    by_age: dict[str, list[bool]] = defaultdict(list)
    for r in people:
        by_nbh[r.neighbourhood].append(r.lonely)
        by_age[r.age_band].append(r.lonely)
    assert _share(by_nbh["pijnacker-noord"]) == pytest.approx(0.50, abs=0.02)
    assert _share(by_nbh["keijzershof-eilanden"]) == pytest.approx(0.53, abs=0.02)
    assert _share(by_age["16-25"]) == pytest.approx(0.65, abs=0.02)
    assert _share(by_age["65-74"] + by_age["75+"]) == pytest.approx(0.47, abs=0.02)
    # The rest of the municipality is less lonely, so that the whole stays at 44%.
    assert _share(by_nbh["delfgauw"]) < 0.44
    assert lonely_probability(scenario, "delfgauw", "26-64") < lonely_probability(
        scenario, "pijnacker-noord", "26-64"
    )


def test_population_surveys_measure_the_baseline_prevalence():
    """Through the whole chain: latent loneliness, generated answers, the service's scoring."""
    scored: dict[str, list[bool]] = defaultdict(list)
    for w in large():
        body = w.item["body"]
        if w.kind == "measurement" and body["context"] == "survey":
            lonely = bool(score(body["instrument"], body["answers"]).lonely)
            scored["all"].append(lonely)
            scored[body["participant"]["age_band"]].append(lonely)
    assert len(scored["all"]) > 20_000
    assert _share(scored["all"]) == pytest.approx(0.44, abs=0.025)
    assert _share(scored["16-25"]) == pytest.approx(0.65, abs=0.05)
    assert _share(scored["26-64"]) < _share(scored["65-74"] + scored["75+"])


def test_lonely_residents_take_part_less_unless_referred():
    # The generator draws its population first, from the same seed: the same people.
    scenario = default_scenario()
    population = build_population(random.Random(21), 10_000, scenario, "x")
    people = {f"p{r.no:06d}": r for r in population}
    joined: dict[bool, set[str]] = {True: set(), False: set()}
    for w in large():
        if w.kind == "registration" and "referral_id" not in w.item["body"]:
            ref = w.item["body"]["participant"]["ref"].rsplit("-", 1)[1]
            joined[people[ref].lonely].add(ref)
    lonely = sum(r.lonely for r in people.values())
    rate_lonely = len(joined[True]) / lonely
    rate_other = len(joined[False]) / (len(people) - lonely)
    assert rate_lonely < 0.75 * rate_other


def test_referrals_are_accepted_declined_and_convert_at_realistic_rates():
    # Quarters that are over: at the end of the span, the last referrals await an answer.
    figures = Counter()
    for quarter in ("2026-Q1", "2026-Q2", "2026-Q3"):
        s3 = expected_figures(large(), quarter)["s3"]
        figures.update({k: s3[k] for k in ("referrals", "accepted", "declined", "converted")})
    decided = figures["accepted"] + figures["declined"]
    assert figures["accepted"] / figures["referrals"] == pytest.approx(0.70, abs=0.06)
    assert figures["declined"] / figures["referrals"] == pytest.approx(0.15, abs=0.05)
    assert 0.75 < figures["accepted"] / decided < 0.9
    assert 0.35 < figures["converted"] / figures["accepted"] < 0.6


# ------------------------------------------------------------------- expected figures by hand


def _w(org: str, kind: str, id_: str, item: dict[str, Any]) -> Write:
    service = "referrals" if kind in REFERRALS else "registrations"
    return Write(service, org, kind, id_, datetime(2026, 1, 1, tzinfo=UTC), {"kind": kind, **item})


def _activity(org: str, activity_id: str, aimed: bool) -> Write:
    body = {
        "title": "x",
        "category": "meeting",
        "aimed_at_connection": aimed,
        "neighbourhood": "emerald",
    }
    return _w(org, "activity", activity_id, {"activity_id": activity_id, "body": body})


def _p(ref: str, token: str | None = None) -> dict[str, Any]:
    p = {"ref": ref, "neighbourhood": "emerald", "age_band": "75+"}
    return p | ({"resident_token": token} if token else {})


def _att(
    org: str, id_: str, activity: str, p: dict[str, Any], at: str, status: str = "attended"
) -> Write:
    body = {
        "attendance_id": id_,
        "activity_id": activity,
        "session_start": at,
        "participant": p,
        "status": status,
    }
    return _w(org, "attendance", id_, {"body": body})


def _reg(
    org: str,
    id_: str,
    activity: str,
    p: dict[str, Any],
    at: str,
    referral: str | None = None,
    referrer: str | None = None,
) -> Write:
    body = {"registration_id": id_, "activity_id": activity, "participant": p, "registered_at": at}
    if referral:
        body["referral_id"] = referral
    if referrer:
        body["referring_organisation_id"] = referrer
    return _w(org, "registration", id_, {"body": body})


def _cancel(org: str, id_: str, at: str) -> Write:
    return _w(org, "cancellation", id_, {"registration_id": id_, "body": {"cancelled_at": at}})


def _referral(id_: str, at: str, by: str = "gp") -> Write:
    body = {
        "referral_id": id_,
        "participant": _p("r" + id_),
        "referrer_role": "gp",
        "signals": ["social"],
        "referred_to": {"activity_id": "conn", "organisation_id": "a"},
        "consent": True,
        "created_at": at,
    }
    return _w(by, "referral", id_, {"body": body})


def _status(id_: str, status: str, at: str, by: str = "a") -> Write:
    """By the receiving side ``a`` (the referrals go to its activity), naming the referrer."""
    item = {"referral_id": id_, "referring_organisation_id": "gp"} if by != "gp" else {"referral_id": id_}  # fmt: skip
    return _w(by, "referral_status", f"{id_}:{status}", {**item, "body": {"status": status, "at": at}})  # fmt: skip


def _survey(id_: str, instrument: str, answers: list[str], at: str, ref: str | None) -> Write:
    participant = {"neighbourhood": "emerald", "age_band": "75+"} | ({"ref": ref} if ref else {})
    body = {
        "measurement_id": id_,
        "instrument": instrument,
        "context": "survey",
        "participant": participant,
        "answers": answers,
        "measured_at": at,
    }
    return _w("ggd", "measurement", id_, {"body": body})


def test_expected_figures_of_a_hand_made_month():
    t1 = _p("1", token="T1")  # the same resident at two organisations, one pseudonym
    t1_at_b = _p("9", token="T1")
    p2, p3, p3_at_b, p5, p6 = _p("2"), _p("3"), _p("3"), _p("5"), _p("6")
    lonely11 = ["no"] * 11  # positive items score on "no": 5 of 11, moderately lonely
    fine11 = ["yes", "no", "no", "yes", "no", "no", "yes", "yes", "no", "no", "yes"]
    writes = [
        _activity("a", "conn", True),
        _activity("a", "other", False),
        _activity("b", "conn-b", True),
        _att("a", "t1", "conn", t1, "2026-02-10T10:00:00+01:00"),  # T1's first: February
        _att("a", "t2", "conn", t1, "2026-03-03T10:00:00+01:00"),
        _att("a", "t3", "conn", p2, "2026-03-03T10:00:00+01:00"),
        _att("a", "t4", "conn", p2, "2026-03-10T10:00:00+01:00", "no_show"),
        _att("a", "t5", "conn", p3, "2026-03-10T10:00:00+01:00"),
        _att("b", "t6", "conn-b", t1_at_b, "2026-03-05T10:00:00+01:00"),
        _att("b", "t7", "conn-b", p3_at_b, "2026-03-31T21:30:00+00:00"),  # 23:30 local: March
        _att("b", "t8", "conn-b", p3_at_b, "2026-03-31T22:30:00+00:00"),  # 00:30 local: April
        _att("a", "t9", "other", p2, "2026-03-17T10:00:00+01:00"),  # not aimed at connection
        _reg("a", "r1", "conn", p2, "2026-02-28T23:30:00+00:00"),  # 00:30 local: March
        _reg("a", "r2", "conn", p3, "2026-03-15T10:00:00+01:00"),
        _reg("a", "r3", "other", p2, "2026-03-15T10:00:00+01:00"),
        _reg("b", "r4", "conn-b", p3_at_b, "2026-04-02T10:00:00+02:00"),
        _cancel("a", "r2", "2026-03-20T10:00:00+01:00"),
        _cancel("a", "r3", "2026-03-21T10:00:00+01:00"),
        _referral("v1", "2026-03-02T10:00:00+01:00"),
        _status("v1", "accepted", "2026-03-03T10:00:00+01:00"),
        _reg("a", "r5", "conn", p5, "2026-03-04T10:00:00+01:00", referral="v1"),
        _att("a", "t10", "conn", p5, "2026-03-16T10:00:00+01:00"),  # 14 days: converted
        _referral("v2", "2026-03-05T10:00:00+01:00"),
        _status("v2", "declined", "2026-03-06T10:00:00+01:00"),
        _referral("v3", "2026-02-25T10:00:00+01:00"),  # made in February
        _referral("v4", "2026-03-06T10:00:00+01:00"),
        _status("v4", "accepted", "2026-03-07T10:00:00+01:00"),
        _reg("a", "r6", "conn", p6, "2026-03-07T10:00:00+01:00", referral="v4"),
        _att("a", "t11", "conn", p6, "2026-05-20T10:00:00+02:00"),  # 75 days: too late
        _att("a", "t12", "conn", p3, "2026-03-10T10:00:00+01:00"),  # t5 reported again: one
        # v5 and v6: one id from two referrers. "a" names gp's with the referrer (converts it);
        # "b" is no receiving side, and a self-acceptance by the referrer does not count.
        _referral("v5", "2026-03-09T10:00:00+01:00"),
        _referral("v5", "2026-03-09T11:00:00+01:00", by="gp2"),
        _status("v5", "accepted", "2026-03-10T10:00:00+01:00", by="gp"),
        _reg("a", "r7", "conn", _p("7b"), "2026-03-11T10:00:00+01:00", "v5", referrer="gp"),
        _att("a", "t13", "conn", _p("7b"), "2026-03-12T10:00:00+01:00"),  # 3 days
        _reg("a", "r8", "conn", _p("8"), "2026-03-11T10:00:00+01:00", "v5"),  # ambiguous at a
        _att("a", "t14", "conn", _p("8"), "2026-03-12T10:00:00+01:00"),
        _reg("b", "r9", "conn-b", _p("9b"), "2026-03-11T10:00:00+01:00", "v5", referrer="gp2"),
        _att("b", "t15", "conn-b", _p("9b"), "2026-03-12T10:00:00+01:00"),  # not the receiver
        _survey("m1", "djg11", lonely11, "2026-03-02T10:00:00+01:00", ref="7"),
        _survey("m2", "djg11", fine11, "2026-03-20T10:00:00+01:00", ref="7"),  # latest of 7
        _survey(
            "m3", "djg6", ["yes", "no", "no", "no", "yes", "yes"], "2026-03-09T10:00:00+01:00", None
        ),
        _survey("m4", "djg11", lonely11, "2026-04-01T10:00:00+02:00", None),
    ]
    figures = expected_figures(writes, "2026-03")
    assert figures["s2"] == {
        "participants_unique": 8,  # T1, a:2, a:3, b:3, a:5, a:7b, a:8, b:9b
        "participants_new": 7,  # not T1, whose first session was in February
        "attendances": 9,  # t5 and t12 are one session of one person
        "no_shows": 1,
        "registrations": 7,  # r1, r2, r5, r6, r7, r8, r9
        "cancellations": 1,  # r2 (r3's activity is not aimed at connection)
    }
    assert figures["s3"] == {
        "referrals": 5,  # v1 v2 v4, v5 of gp and of gp2
        # v1 v4, and gp's v5: its acceptance was its referrer's own, but it converted, and the
        # funnel counts a referral in every stage up to the furthest it reached
        "accepted": 3,
        "declined": 1,
        "converted": 2,  # v1 (14 days), gp's v5 (3 days)
        "days_to_first_attendance": 8.5,
    }
    assert figures["s1"] == {"measurements": 2, "lonely": 1, "severe": 1}
    assert expected_figures(writes, "2026-Q1")["s2"]["participants_new"] == 8
    assert expected_figures(writes, "2026-02")["s3"]["referrals"] == 1
    shown = published(figures, k=2)
    assert shown["s2"]["no_shows"] is None
    assert shown["s2"]["attendances"] == 9
    assert shown["s3"]["days_to_first_attendance"] == 8.5
    assert published(figures, k=3)["s3"]["days_to_first_attendance"] is None  # 2 conversions < k
