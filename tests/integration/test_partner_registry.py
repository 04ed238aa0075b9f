"""The operator's commands for organisations and the coalition's partner registry, run as the
operator runs them (``verbinding partner ...`` in a subprocess) on the session's database."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from tests.live import VERBINDING

pytestmark = pytest.mark.integration


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(VERBINDING),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "org_id",
    [
        pytest.param("Welzijn PN", id="space"),
        pytest.param("welzijn/pn", id="slash"),
        pytest.param("wélzijn", id="accent"),
        pytest.param("x" * 65, id="too-long"),
    ],
)
async def test_an_organisation_id_the_events_refuse_is_refused_at_creation(
    test_env: dict[str, str], pool: Any, org_id: str
) -> None:
    """Such an organisation used to be created with a key, and then got a 500 on every write:
    its events cannot be built (`source` and `organisation_id` have a pattern)."""
    code, out, err = await cli(
        test_env, "partner", "create", org_id, "--name", "Welzijn", "--scopes", "activities"
    )

    assert code != 0, out
    assert "letters, digits" in err, err
    assert "nothing was created" in err, err
    assert "vb_" not in out  # no key was printed
    assert await pool.fetchval("SELECT count(*) FROM platform.organisations WHERE id = $1", org_id) == 0  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM platform.api_keys WHERE organisation_id = $1", org_id) == 0  # fmt: skip


async def test_every_organisation_id_accepted_at_creation_can_write(
    test_env: dict[str, str], registrations: Any
) -> None:
    org_id = f"Org_{uuid.uuid4().hex[:6]}.pn-{'x' * 40}"  # the edges of the pattern: 55 chars
    code, out, err = await cli(
        test_env, "partner", "create", org_id, "--name", "Edge", "--scopes", "activities"
    )
    assert code == 0, err
    key = out.strip().splitlines()[-1]

    put = await registrations.put(
        "/v1/activities/koor",
        headers={"Authorization": f"Bearer {key}"},
        json={"title": "Koor", "category": "culture", "aimed_at_connection": True, "neighbourhood": "delfgauw"},
    )  # fmt: skip

    assert put.status_code == 201, put.text


async def test_partners_are_registered_leave_and_are_listed(
    test_env: dict[str, str], pool: Any
) -> None:
    org = f"partner-{uuid.uuid4().hex[:8]}"

    code, out, err = await cli(
        test_env, "partner", "register", org, "--name", "Buurtkoor", "--joined", "2024-01-15"
    )
    assert code == 0, err
    assert out.strip() == f"partner {org} registered; joined 2024-01-15"

    code, _, err = await cli(test_env, "partner", "leave", org, "--on", "2024-01-15")
    assert code != 0
    assert "can only leave after" in err

    code, out, err = await cli(test_env, "partner", "leave", org, "--on", "2025-07-01")
    assert code == 0, err
    row = await pool.fetchrow(
        "SELECT name, joined::text, left_on::text FROM platform.partners WHERE organisation_id = $1",
        org,
    )
    assert dict(row) == {"name": "Buurtkoor", "joined": "2024-01-15", "left_on": "2025-07-01"}

    code, out, err = await cli(test_env, "partner", "list")
    assert code == 0, err
    assert f"{org}\tBuurtkoor\tjoined 2024-01-15\tleft 2025-07-01" in out.splitlines()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["register", "bad id", "--name", "X", "--joined", "2024-01-01"], id="bad-id"),
        pytest.param(["register", "ok-id", "--name", "X", "--joined", "2024-13-01"], id="bad-date"),
        pytest.param(
            ["leave", f"never-{uuid.uuid4().hex[:6]}", "--on", "2024-02-01"], id="unknown"
        ),
    ],
)
async def test_bad_registry_commands_say_why_and_change_nothing(
    test_env: dict[str, str], pool: Any, args: list[str]
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM platform.partners")

    code, _, err = await cli(test_env, "partner", *args)

    assert code != 0
    assert err.strip(), "the operator is told why"
    assert await pool.fetchval("SELECT count(*) FROM platform.partners") == before
