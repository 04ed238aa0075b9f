"""The write pipeline (shared/pipeline) with the services' decisions, on in-memory units of
work: exact per-item statuses, a batch that sees its own effects, all-or-nothing, one write for
a whole batch, and the item-by-item fallback when a concurrent writer got there first."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.referrals.domain.decide import Referrals
from services.referrals.service_layer.writes import ReferralWrites
from services.registrations.domain.decide import Registrations
from services.registrations.service_layer.writes import RegistrationWrites
from shared.auth import Principal
from shared.errors import FieldError
from shared.pipeline.pipeline import Pipeline, WriteContention
from shared.pseudonym import Pseudonymiser
from shared.reference import load_reference
from tests.unit.fakes import FakeReferralsUnitOfWork, FakeRegistrationsUnitOfWork

ORG = "buurthuis"
REFERENCE = load_reference()
PSEUDONYMS = Pseudonymiser("unit-test-secret-of-sufficient-length-000")
WRITER = Principal(ORG, "k1", frozenset({"activities", "registrations"}))
VOLUNTEER = Principal(ORG, "k2", frozenset({"attendance"}))


@pytest.fixture
def writes() -> Pipeline[Any, Any, Any]:
    return Pipeline(RegistrationWrites(Registrations(REFERENCE)), PSEUDONYMS)


def activity(activity_id: str = "koffie", title: str = "Koffie") -> dict[str, Any]:
    return {
        "kind": "activity",
        "activity_id": activity_id,
        "body": {
            "title": title,
            "category": "meeting",
            "aimed_at_connection": True,
            "neighbourhood": "delfgauw",
        },
    }


def registration(
    registration_id: str, activity_id: str = "koffie", ref: str = "p"
) -> dict[str, Any]:
    return {
        "kind": "registration",
        "body": {
            "registration_id": registration_id,
            "activity_id": activity_id,
            "participant": {"ref": ref, "neighbourhood": "delfgauw", "age_band": "75+"},
            "registered_at": "2026-03-01T10:00:00+01:00",
        },
    }


def cancellation(registration_id: str) -> dict[str, Any]:
    return {
        "kind": "cancellation",
        "registration_id": registration_id,
        "body": {"cancelled_at": "2026-03-01T11:00:00+01:00"},
    }


async def test_a_batch_sees_its_own_effects_and_is_written_at_once(writes: Any) -> None:
    uow = FakeRegistrationsUnitOfWork()
    results = await writes.batch(
        uow,
        WRITER,
        [
            registration("r0"),  # before the activity exists: 422
            activity(),
            registration("r1"),
            registration("r1"),  # the same again: a replay of the answer just given
            cancellation("r1"),
            activity(title="Koffie!"),  # a second version
        ],
    )

    assert [r.status for r in results] == [422, 201, 201, 200, 201, 200]
    assert results[0].details == [{"field": "body.activity_id", "message": results[0].details[0]["message"]}]  # fmt: skip
    assert results[3].body == results[2].body
    assert (uow.commits, uow.saves) == (1, 1)
    tables = uow.committed
    assert tables.table("activities")[(ORG, "koffie")].version == 2
    assert tables.table("registrations")[(ORG, "r1")].cancelled_at is not None
    assert [e.data.event_name for e in tables.outbox] == [
        "activity.upserted",
        "registration.created",
        "registration.cancelled",
        "activity.upserted",
    ]
    assert sorted(k[1] for k in tables.remembered) == ["cancellation", "registration"]


async def test_validation_and_scope_come_first_with_fields_named_in_the_item(writes: Any) -> None:
    uow = FakeRegistrationsUnitOfWork()
    await writes.batch(uow, WRITER, [activity()])
    results = await writes.batch(
        uow,
        VOLUNTEER,
        [
            {"kind": "registration", "body": {}},
            registration("r1"),  # a volunteer's key may not register
            {**activity(), "body": {**activity()["body"], "category": "poker"}},
            cancellation("r1"),
        ],
    )

    assert [r.status for r in results] == [422, 422, 422, 422]
    assert {d["field"] for d in results[0].details} >= {"body.registration_id", "body.participant"}
    assert results[1].details == [{"field": "kind", "message": "this key lacks the scope `registrations`"}]  # fmt: skip
    assert [d["field"] for d in results[2].details] == ["body.category"]
    assert uow.loads == 2  # the first batch's; nothing valid to load for the second


async def test_all_or_nothing_writes_nothing_when_one_item_is_refused(writes: Any) -> None:
    uow = FakeRegistrationsUnitOfWork()
    results = await writes.batch(
        uow, WRITER, [activity(), registration("r1"), cancellation("nope")], all_or_nothing=True
    )

    assert [r.status for r in results] == [201, 201, 422]  # what each did or would have done
    assert uow.commits == 0
    assert uow.committed.outbox == []
    assert uow.committed.table("activities") == {}


async def test_a_concurrent_writer_sends_the_batch_item_by_item(writes: Any) -> None:
    base = FakeRegistrationsUnitOfWork()
    first = await writes.batch(base, WRITER, [activity(), registration("r1")])
    # Another transaction commits r2 between this batch's load and its write.
    other = FakeRegistrationsUnitOfWork(copy.deepcopy(base.committed))
    (theirs,) = await writes.batch(other, WRITER, [registration("r2", ref="other")])
    uow = FakeRegistrationsUnitOfWork(base.committed)
    uow.conflicts, uow.concurrent = 1, other.committed

    results = await writes.batch(
        uow, WRITER, [registration("r1"), registration("r3"), registration("r2", ref="other")]
    )

    assert uow.saves == 1 + 3  # the batch's one write met r2; then each item on its own
    assert [r.status for r in results] == [200, 201, 200]
    assert (results[0].body, results[2].body) == (first[1].body, theirs.body)
    assert uow.commits == 1
    assert [e.data.registration_id for e in uow.committed.outbox if e.data.event_name == "registration.created"] == ["r1", "r2", "r3"]  # fmt: skip


async def test_a_single_write_raises_its_refusal_and_contention_is_retried_then_given_up(
    writes: Any,
) -> None:
    uow = FakeRegistrationsUnitOfWork()
    item = writes.model.parse(registration("r1"))
    with pytest.raises(FieldError):
        await writes.one(uow, WRITER, item)

    await writes.batch(uow, WRITER, [activity()])
    busy = FakeRegistrationsUnitOfWork(uow.committed)
    busy.conflicts = 10  # every attempt meets another writer
    with pytest.raises(WriteContention):
        await writes.one(busy, WRITER, item)
    assert busy.commits == 0


async def test_referral_changes_in_one_batch_follow_each_other() -> None:
    writes: Any = Pipeline(ReferralWrites(Referrals(REFERENCE, {})), PSEUDONYMS)
    uow = FakeReferralsUnitOfWork(partners={"welzijn"})
    gp = Principal("huisarts", "k", frozenset({"referrals"}))
    welfare = Principal("welzijn", "k", frozenset({"referrals"}))
    made = await writes.batch(
        uow,
        gp,
        [
            {
                "kind": "referral",
                "body": {
                    "referral_id": "ref-1",
                    "participant": {"ref": "p", "neighbourhood": "delfgauw", "age_band": "75+"},
                    "referrer_role": "gp",
                    "signals": ["social"],
                    "referred_to": {"organisation_id": "welzijn", "activity_id": "koffie"},
                    "consent": True,
                    "created_at": "2026-03-01T10:00:00+01:00",
                },
            }
        ],
    )

    def change(value: str, at: str) -> dict[str, Any]:
        return {
            "kind": "referral_status",
            "referral_id": "ref-1",
            "body": {"status": value, "at": at},
        }

    changed = await writes.batch(
        uow,
        welfare,
        [
            change("accepted", "2026-03-01T11:00:00+01:00"),
            change("contacted", "2026-03-01T12:00:00+01:00"),
            change("accepted", "2026-03-01T11:00:00+01:00"),  # a retry of the first
            change("declined", "2026-03-01T13:00:00+01:00"),  # not from `contacted`
            change("withdrawn", "2026-03-01T13:00:00+01:00"),  # the referrer's to make
        ],
    )

    assert [r.status for r in made] == [201]
    assert [r.status for r in changed] == [201, 201, 200, 409, 403]
    referral = uow.committed.table("referrals")[("huisarts", "ref-1")]
    assert (referral.status, referral.status_sequence) == ("contacted", 3)
    assert [e.data.sequence for e in uow.committed.outbox[1:]] == [2, 3]
