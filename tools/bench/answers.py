"""CPU per answer of a read's serialisation, as FastAPI does it with the route's response field.

    python -m tools.bench.answers

The reads' answer models are documentation only (shared.http.documented): the routes are
annotated ``-> Any`` so that FastAPI serialises the view's dict as before, without validating
it. This compares, on a referral record and on an indicators answer with a breakdown of 12
cells, the field before (``-> dict[str, Any]``), after (``-> Any``) and the two options not
taken (``response_model=None``: FastAPI's jsonable_encoder; ``response_model=`` the model:
validation on every answer, and a 500 for an answer that does not fit). Rounds alternate; the
median of five is printed, in microseconds of process CPU time.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi.routing import serialize_response
from fastapi.utils import create_model_field
from pydantic import BaseModel

from services.metrics.domain import answers
from services.metrics.domain.disclosure.decisions import Decisions
from services.metrics.entrypoints.answers import IndicatorsAnswer
from services.referrals.entrypoints.answers import ReferralRecord

__all__ = ["main"]

AT = "2025-01-01T00:00:00+00:00"


def indicators_answer() -> dict[str, Any]:
    """An answer of ``/v1/indicators?by=neighbourhood`` of the real shape (every figure hidden)."""
    empty = Decisions(k=10, year=2025, figures={}, baselines={})
    out: dict[str, Any] = {
        "period": "2025",
        "period_kind": "year",
        "from": "2025-01-01",
        "to": "2025-12-31",
        "by": "neighbourhood",
        "k": 10,
        "generated_at": AT,
        "released_at": AT,
        "freshness": {"newest_event_at": AT, "events_applied": 123456},
        "baseline_year": 2024,
        **answers.sections(empty, "2025", {}),
        "breakdown": [
            answers.empty_cell("neighbourhood", f"wijk-{i}", 10, 2025) for i in range(12)
        ],
        "reasons": answers.reasons(10),
    }
    out["s3"]["referrals_overdue"] = {"value": None, "suppressed": True, "reason": "primary"}
    IndicatorsAnswer.model_validate(out)
    return out


def referral_record() -> dict[str, Any]:
    out: dict[str, Any] = {
        "referral_id": "r1",
        "organisation_id": "org-a",
        "referrer_role": "gp",
        "signals": ["emotional", "social"],
        "referred_to": {"service": "buddy-programme"},
        "receiving_organisation_id": "org-b",
        "created_at": AT,
        "status": "contacted",
        "status_changed_at": AT,
        "allowed_next": ["closed", "withdrawn"],
        "first_attendance_on": None,
        "history": [
            {
                "status": status,
                "previous_status": None,
                "at": AT,
                "changed_by": "org-b",
                "outcome": None,
                "event_id": "0b7c3a52-8452-42ce-8d14-9e3ed5d14900",
            }
            for status in ("created", "accepted", "contacted")
        ],
    }
    ReferralRecord.model_validate(out)
    return out


async def _cpu(field: Any, body: dict[str, Any], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await serialize_response(field=field, response_content=body, is_coroutine=True)
    return (time.process_time() - start) / n * 1e6


async def _run() -> None:
    cases: list[tuple[str, dict[str, Any], type[BaseModel], int]] = [
        ("referral", referral_record(), ReferralRecord, 20000),
        ("indicators", indicators_answer(), IndicatorsAnswer, 1000),
    ]
    for name, body, model, n in cases:
        fields: dict[str, Any] = {
            "before: -> dict[str, Any]": create_model_field(
                "r", dict[str, Any], mode="serialization"
            ),
            "after: -> Any": create_model_field("r", Any, mode="serialization"),
            "not taken: response_model=None": None,
            "not taken: response_model=Model": create_model_field("r", model, mode="serialization"),
        }
        before = await serialize_response(
            field=fields["before: -> dict[str, Any]"], response_content=body
        )
        after = await serialize_response(field=fields["after: -> Any"], response_content=body)
        assert json.dumps(before) == json.dumps(after), "the answer must not change"
        times: dict[str, list[float]] = {k: [] for k in fields}
        for _ in range(5):
            for k, field in fields.items():
                times[k].append(await _cpu(field, body, n))
        print(f"{name}: {len(json.dumps(body))} bytes of JSON")
        for k, v in times.items():
            v.sort()
            print(f"  {k:34s} median {v[2]:8.1f} us (min {v[0]:.1f}, max {v[-1]:.1f})")


def main() -> None:
    asyncio.run(_run())


if __name__ == "__main__":
    main()
