"""Key rotation without downtime, with the operator's own commands: ``verbinding partner key``
issues a second key that works at once, ``verbinding partner revoke`` retires the old one while
the partner keeps writing with the new key; not one of those writes fails, and the old key is
refused from the moment the command returned."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from typing import Any

import pytest

from tests.live import VERBINDING

pytestmark = pytest.mark.integration


async def cli(env: dict[str, str], *args: str, timeout: float = 60) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        str(VERBINDING),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, (args, out.decode(), err.decode())
    return out.decode().strip().splitlines()


def attendance(activity_id: str) -> dict[str, Any]:
    return {
        "attendance_id": f"att-{uuid.uuid4().hex[:10]}",
        "activity_id": activity_id,
        "participant": {"ref": "p-rot", "neighbourhood": "delfgauw", "age_band": "75+"},
        "session_start": "2025-03-04T10:00:00+01:00",
        "status": "attended",
    }


async def test_a_new_key_works_at_once_and_the_old_one_is_revoked_without_downtime(
    registrations, make_partner, test_env
):
    old = await make_partner(scopes="activities,registrations")
    activity_id = f"act-{uuid.uuid4().hex[:8]}"
    put = await registrations.put(
        f"/v1/activities/{activity_id}",
        headers=old.headers,
        json={"title": "Koor", "category": "culture", "aimed_at_connection": True, "neighbourhood": "delfgauw"},
    )  # fmt: skip
    assert put.status_code == 201, put.text

    issued = await cli(test_env, "partner", "key", old.organisation_id, "--scopes", "registrations")
    new_key = issued[-1]  # the contract: the key is the last line
    assert re.fullmatch(r"vb_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", new_key), issued
    new = {"Authorization": f"Bearer {new_key}"}
    first = await registrations.post("/v1/attendance", headers=new, json=attendance(activity_id))
    assert first.status_code == 201, first.text  # at once, no restart, no cache to wait for

    statuses: list[int] = []
    stop = asyncio.Event()

    async def partner_keeps_writing() -> None:
        while not stop.is_set():
            r = await registrations.post(
                "/v1/attendance", headers=new, json=attendance(activity_id)
            )
            statuses.append(r.status_code)
            await asyncio.sleep(0)

    writer = asyncio.create_task(partner_keeps_writing())
    try:
        while len(statuses) < 20:
            await asyncio.sleep(0.01)
        before_revoke = await registrations.post("/v1/attendance", headers=old.headers, json=attendance(activity_id))  # fmt: skip
        revoked = await cli(test_env, "partner", "revoke", old.key_id)
        after_revoke = await registrations.post("/v1/attendance", headers=old.headers, json=attendance(activity_id))  # fmt: skip
        written_at_revoke = len(statuses)
        while len(statuses) < written_at_revoke + 20:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await writer

    assert before_revoke.status_code == 201, before_revoke.text
    assert revoked == [f"key {old.key_id} revoked"]
    assert after_revoke.status_code == 401, after_revoke.text
    assert after_revoke.json()["error"] == "unauthorized"
    assert set(statuses) == {201}, f"the new key failed during rotation: {sorted(set(statuses))}"
    assert len(statuses) >= 40
    # Revoking again changes nothing and says so (exit status 1: the key was not active).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "partner", "revoke", old.key_id,
        env={**os.environ, **test_env}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 1
    assert out.decode().strip() == f"key {old.key_id} was not active"
