"""Horizontal scale: two instances in one consumer group (the partitions split between them)
give exactly the figures of one instance.

The same topics are consumed twice, concurrently: by group A with one instance into schema X and
by group B with two instances into schema Y. Every figure of several periods and of every
breakdown must be equal.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from services.metrics.domain.answers import BREAKDOWNS
from services.metrics.domain.periods import parse_period
from shared.events import CloudEvent
from shared.kafka import ensure_topics
from shared.timerules import AMSTERDAM
from tests.conftest import KAFKA, RUN_ID, eventually
from tests.integration.test_metrics_scenario import (
    activity,
    attendance,
    cancellation,
    consumers,
    create_metrics_schema,
    drop_schema,
    hexid,
    measurement,
    person,
    publish,
    referral,
    registration,
    service,
    status,
    training,
    wait_applied,
)

pytestmark = pytest.mark.integration

NEIGHBOURHOODS = ("delfgauw", "emerald", "koningshof", "pijnacker-noord", "nootdorp-oost")
AGE_BANDS = ("16-25", "26-64", "65-74", "75+")
ROLES = ("gp", "poh-ggz", "district-nurse", "welfare-coach", "volunteer")
SIGNALS = ("emotional", "social", "practical", "health")


def history(seed: int = 2015) -> list[CloudEvent[Any]]:
    """A year (2015) of activity of three organisations: about 900 events, with updates of
    activity versions, cancellations, referrals that convert or not, trainings, surveys,
    intake/follow-up pairs and redelivered duplicates."""
    rnd = random.Random(seed)
    orgs = [f"scale{RUN_ID}-{name}" for name in ("a", "b", "c")]
    acts = [
        (orgs[0], "koffie", "meeting", True),
        (orgs[0], "eten", "meeting", True),
        (orgs[1], "taal", "learning", True),
        (orgs[1], "pc", "digital", False),
        (orgs[2], "wandel", "sport", True),
        (orgs[2], "buddy", "help", True),
    ]
    people = [
        person(hexid(f"scale-{i}"), rnd.choice(NEIGHBOURHOODS), rnd.choice(AGE_BANDS))
        for i in range(70)
    ]

    def moment() -> datetime:
        day = date(2015, 1, 1) + timedelta(days=rnd.randrange(365))
        return datetime(day.year, day.month, day.day, rnd.randrange(24), 30, tzinfo=AMSTERDAM)

    events: list[CloudEvent[Any]] = []
    for org, act, category, connection in acts:
        if act == "taal":  # first published wrong, corrected by version 2
            events.append(activity(org, act, "culture", False, version=1))
        events.append(activity(org, act, category, connection, version=2))
    for i in range(450):
        org, act, _, _ = rnd.choice(acts)
        when = moment()
        state = "attended" if rnd.random() < 0.8 else "no_show"
        events.append(
            attendance(org, f"s{i}", act, rnd.choice(people), when.isoformat(), when.date(), state)
        )
    registered = []
    for i in range(120):
        org, act, _, _ = rnd.choice(acts)
        who, when = rnd.choice(people), moment()
        events.append(registration(org, f"g{i}", act, who, when.isoformat()))
        registered.append((org, f"g{i}", act, who, when))
    for org, rid, act, who, when in rnd.sample(registered, 30):
        events.append(cancellation(org, rid, act, who, (when + timedelta(days=3)).isoformat()))
    for i in range(60):
        referrer = rnd.choice(orgs)
        org, act, _, _ = rnd.choice(acts)
        who, when = rnd.choice(people), moment()
        rid = f"scale-{RUN_ID}-r{i}"
        events.append(
            referral(
                referrer,
                rid,
                who,
                rnd.choice(ROLES),
                rnd.sample(SIGNALS, rnd.randint(1, 2)),
                when.isoformat(),
                to_org=org,
                to_activity=act,
            )
        )
        outcome = rnd.random()
        if outcome < 0.6:
            events.append(
                status(
                    referrer,
                    rid,
                    who,
                    org,
                    "created",
                    "accepted",
                    (when + timedelta(days=2)).isoformat(),
                )
            )
            reg_at = when + timedelta(days=rnd.randint(1, 20))
            events.append(registration(org, f"rg{i}", act, who, reg_at.isoformat(), rid))
            session = reg_at + timedelta(days=rnd.randint(0, 70))
            events.append(
                attendance(
                    org,
                    f"rs{i}",
                    act,
                    who,
                    session.isoformat(),
                    session.astimezone(AMSTERDAM).date(),
                )
            )
        elif outcome < 0.8:
            events.append(
                status(
                    referrer,
                    rid,
                    who,
                    org,
                    "created",
                    "declined",
                    (when + timedelta(days=1)).isoformat(),
                )
            )
    for i in range(25):
        org = rnd.choice(orgs)
        events.append(
            training(
                org,
                f"t{i}",
                hexid(f"scale-trainee-{i % 18}"),
                rnd.choice(ROLES),
                moment().isoformat(),
            )
        )
    for i in range(90):
        total = rnd.randint(0, 11)
        emotional = min(total, 6, rnd.randint(0, total))
        scores = (total, emotional, total - emotional if total - emotional <= 5 else 5, None)
        who: Any = (
            rnd.choice(people)
            if rnd.random() < 0.7
            else (rnd.choice(NEIGHBOURHOODS), rnd.choice(AGE_BANDS))
        )
        events.append(
            measurement(
                rnd.choice(orgs), f"m{i}", "djg11", "survey", who, moment().isoformat(), scores
            )
        )
    for i, who in enumerate(people[:20]):
        org, when = rnd.choice(orgs), moment()
        before, after = rnd.randint(3, 11), rnd.randint(0, 11)
        cat = "moderately_lonely" if before < 9 else "severely_lonely"
        events.append(
            measurement(
                org, f"i{i}", "djg11", "intake", who, when.isoformat(), (before, None, None, cat)
            )
        )
        later = when + timedelta(days=rnd.randint(30, 120))
        events.append(
            measurement(
                org,
                f"f{i}",
                "djg11",
                "follow_up",
                who,
                later.isoformat(),
                (after, None, None, "not_lonely" if after < 3 else "moderately_lonely"),
            )
        )
    rnd.shuffle(events)  # arrival order is not the order of the moments: late events galore
    return events + rnd.sample(events, 40)  # and redeliveries of the same events


async def test_two_instances_in_one_group_give_the_figures_of_one(pool, topic_prefix):
    await ensure_topics(KAFKA, topic_prefix, partitions=4)
    events = history()
    x, y = await create_metrics_schema(pool), await create_metrics_schema(pool)
    try:
        group = uuid.uuid4().hex[:8]
        async with (
            consumers(pool, x, topic_prefix, f"scale-one-{group}", instances=1) as one,
            consumers(pool, y, topic_prefix, f"scale-two-{group}", instances=2) as two,
        ):
            await publish(events, topic_prefix)
            await wait_applied(pool, x, events)
            await wait_applied(pool, y, events)

            async def duplicates_seen() -> bool:
                return sum(c.duplicates for c in one) == sum(c.duplicates for c in two) == 40

            # A redelivery must not count: both groups recognise all 40 re-sent events.
            await eventually(duplicates_seen, what="40 redeliveries recognised by both groups")
        # The partitions really were split: both instances of group B applied events, and no
        # partition was read by both at once.
        assert all(c.records > 0 for c in two), [c.records for c in two]
        assert not two[0].partitions & two[1].partitions

        one_svc, two_svc = (
            service(pool, x, k=1, control="off"),
            service(pool, y, k=1, control="off"),
        )
        compared = 0
        for label in ("2015-01", "2015-06", "2015-12", "2015-Q2", "2015-Q4", "2015"):
            for by in (None, *BREAKDOWNS):
                a = await one_svc.compute(parse_period(label), by)
                b = await two_svc.compute(parse_period(label), by)
                a.pop("generated_at"), b.pop("generated_at")
                assert a == b, (label, by)
                compared += 1
        year = await one_svc.compute(parse_period("2015"))
        # Not a comparison of two empty answers.
        assert year["freshness"]["events_applied"] == len({e.id for e in events})
        assert year["s2"]["attendances"]["value"] > 250
        assert year["s2"]["participants_unique"]["value"] > 40
        assert year["s3"]["referrals"]["value"] == 60
        assert year["s3"]["converted"]["value"] > 5
        assert year["s1"]["measurements"]["value"] > 40
        assert year["s1"]["referral_outcome"]["pairs"]["value"] > 5
        assert compared == 36
    finally:
        await drop_schema(pool, x)
        await drop_schema(pool, y)
