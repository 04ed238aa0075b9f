"""`verbinding erase` and `verbinding retention run`: the platform's personal-data lifecycle
commands for an administrator (docs/privacy.md "Erasure", "Retention")."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import sys
import uuid
from typing import Any

from services.registry import SERVICES, writing_services

__all__ = ["register"]


def register(sub: Any) -> None:
    erase = sub.add_parser(
        "erase",
        help="erase a person on request (AVG art. 17) from every writing service; the metrics "
        "service follows through the `erasures` topic",
    )
    erase.add_argument("organisation", help="the organisation that holds the reference")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--ref",
        help="the organisation's reference for the person; `-` reads it from standard input "
        "(keeps it out of the shell history)",
    )
    who.add_argument("--resident-token", help="the resident token (`-`: standard input)")
    who.add_argument(
        "--person-ref",
        help="the organisation's reference for a trained professional or volunteer, as sent "
        "with their trainings (`-`: standard input)",
    )
    erase.add_argument("--erasure-id", help="an id for this erasure (default: a new uuid)")
    erase.add_argument("--by", default=getpass.getuser(), help="who asks (recorded; default: you)")
    erase.set_defaults(run=_run_erase)

    retention = sub.add_parser("retention", help="retention of personal data")
    rsub = retention.add_subparsers(dest="retention_command", required=True)
    run = rsub.add_parser(
        "run", help="delete what is older than its retention period (VERBINDING_RETENTION_*)"
    )
    run.set_defaults(run=_run_retention)


def _value(raw: str | None) -> str | None:
    if raw == "-":
        return sys.stdin.readline().strip()
    return raw


def _run_erase(args: argparse.Namespace) -> int:
    return asyncio.run(_erase(args))


async def _erase(args: argparse.Namespace) -> int:
    from shared.db import create_pool
    from shared.erasure import ErasureRequest
    from shared.pseudonym import Pseudonymiser
    from shared.settings import AdminSettings, PseudonymSettings

    settings = AdminSettings()
    secret = PseudonymSettings().pseudonym_secret.get_secret_value()  # type: ignore[call-arg]
    request = ErasureRequest(
        erasure_id=args.erasure_id or f"admin-{uuid.uuid4()}",
        ref=_value(args.ref),
        resident_token=_value(args.resident_token),
        person_ref=_value(args.person_ref),
    )
    pseudonymiser = Pseudonymiser(secret)
    answers = {}
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        for name in writing_services():
            eraser = importlib.import_module(SERVICES[name].bootstrap).eraser(
                pseudonymiser, settings.topic_prefix
            )
            async with pool.acquire() as conn:
                answers[name] = await eraser(
                    _Connection(conn), args.organisation, request, f"admin:{args.by}"
                )
    finally:
        await pool.close()
    # The relays publish the erasure events from the outboxes (a running service's relay polls).
    print(json.dumps(answers, indent=2))
    return 0


class _Connection:
    """The operator's connection where a service's eraser expects a unit of work."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.after_commit = None


def _run_retention(args: argparse.Namespace) -> int:
    return asyncio.run(_retention())


async def _retention() -> int:
    from services.retention import RetentionSettings, run_retention

    report = await run_retention(RetentionSettings())
    print(json.dumps(report, indent=2))
    return 0
