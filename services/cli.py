"""`verbinding`: the platform's runtime command line: partners and keys, migrations, serving, the
outbox relay, each service's own commands (services/registry.py) and, where installed, the
developer tools' commands (entry-point group ``verbinding.commands``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from importlib.metadata import entry_points
from typing import Any

from services.registry import SERVICES, writing_services

__all__ = ["main"]

COMMAND_PLUGINS = "verbinding.commands"  # entry-point group of the developer tools' commands


def _settings() -> Any:
    from shared.settings import CommonSettings

    return CommonSettings()


async def _partner_create(org_id: str, name: str | None, scopes: list[str]) -> str:
    from shared.auth import create_organisation, issue_key
    from shared.db import apply_migrations, create_pool, migration_files
    from shared.identifiers import organisation_id_problem

    # Before anything is written: an id the events refuse would make every write of it fail.
    problem = organisation_id_problem(org_id)
    if problem:
        raise SystemExit(f"error: {problem}; nothing was created")
    pool = await create_pool(_settings().database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "platform", migration_files("shared.migrations"))
            async with conn.transaction():
                if name is None:  # an extra key for an existing organisation (rotation)
                    if not await conn.fetchval(
                        "SELECT 1 FROM platform.organisations WHERE id = $1", org_id
                    ):
                        raise SystemExit(f"no organisation {org_id!r}; create it first")
                    created = False
                else:
                    created = await create_organisation(conn, org_id, name)
                key = await issue_key(conn, org_id, scopes)
    finally:
        await pool.close()
    print(
        f"organisation {org_id} {'created' if created else 'exists'}; key id {key.key_id}; "
        f"scopes {','.join(sorted(set(scopes)))}"
    )
    print("the key below is shown once; store it in the partner system's secrets")
    print(key.secret)
    return key.secret


async def _platform_pool() -> Any:
    from shared.db import apply_migrations, create_pool, migration_files

    pool = await create_pool(_settings().database_url, max_size=1)
    async with pool.acquire() as conn:
        await apply_migrations(conn, "platform", migration_files("shared.migrations"))
    return pool


async def _partner_register(org_id: str, name: str, joined: date) -> None:
    from shared.partners import PartnerError, register

    pool = await _platform_pool()
    try:
        async with pool.acquire() as conn:
            created = await register(conn, org_id, name, joined)
    except PartnerError as exc:
        raise SystemExit(f"error: {exc}; nothing was changed") from None
    finally:
        await pool.close()
    print(f"partner {org_id} {'registered' if created else 'updated'}; joined {joined}")


async def _partner_leave(org_id: str, on: date) -> None:
    from shared.partners import PartnerError, leave

    pool = await _platform_pool()
    try:
        async with pool.acquire() as conn:
            await leave(conn, org_id, on)
    except PartnerError as exc:
        raise SystemExit(f"error: {exc}; nothing was changed") from None
    finally:
        await pool.close()
    print(f"partner {org_id} left on {on}; it no longer counts from that day")


async def _partner_list() -> None:
    from shared.partners import partners

    pool = await _platform_pool()
    try:
        async with pool.acquire() as conn:
            found = await partners(conn)
    finally:
        await pool.close()
    for p in found:
        left = f"left {p.left_on}" if p.left_on else "current"
        print(f"{p.organisation_id}\t{p.name}\tjoined {p.joined}\t{left}")
    print(f"{len(found)} partners registered, {sum(p.left_on is None for p in found)} current")


def _iso_date(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date YYYY-MM-DD") from None


async def _partner_revoke(key_id: str) -> bool:
    from shared.auth import revoke_key
    from shared.db import create_pool

    pool = await create_pool(_settings().database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            revoked = await revoke_key(conn, key_id)
    finally:
        await pool.close()
    print(f"key {key_id} {'revoked' if revoked else 'was not active'}")
    return revoked


async def _volunteer_key(org_id: str, label: str | None) -> str:
    """A key with the scope `attendance` only, through the same platform function the API's
    `POST /v1/keys` uses."""
    from shared.auth import issue_volunteer_key, organisation_exists
    from shared.db import apply_migrations, create_pool, migration_files

    pool = await create_pool(_settings().database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "platform", migration_files("shared.migrations"))
            async with conn.transaction():
                if not await organisation_exists(conn, org_id):
                    raise SystemExit(f"no organisation {org_id!r}; create it first")
                key = await issue_volunteer_key(conn, org_id, label, None)
    finally:
        await pool.close()
    print(f"volunteer key for {org_id}; key id {key.key_id}; scopes attendance")
    print("the key below is shown once; give it to the volunteer (revoke: partner revoke <id>)")
    print(key.secret)
    return key.secret


async def _keys(org_id: str) -> None:
    from shared.auth import volunteer_keys
    from shared.db import create_pool

    pool = await create_pool(_settings().database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            keys = await volunteer_keys(conn, org_id)
    finally:
        await pool.close()
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id}  {state:<24}  created {k.created_at:%Y-%m-%d}  {k.label or ''}")
    if not keys:
        print(f"no volunteer keys for {org_id}")


async def _migrate(services: Sequence[str]) -> None:
    """As the admin role: a database role per service (docs/privacy.md), each service's schema
    with the grants of its role, and the topics."""
    from shared.db import create_pool, migrate_services
    from shared.db_roles import role_of
    from shared.kafka import ensure_topics
    from shared.settings import AdminSettings

    settings = AdminSettings()
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        await migrate_services(
            pool, {name: SERVICES[name].migrations for name in services}, settings.role_passwords()
        )
        for name in services:
            print(f"schema {name} migrated; role {role_of(name)} granted")
    finally:
        await pool.close()
    await ensure_topics(
        settings.kafka(),
        settings.topic_prefix,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    print("topics ensured")


# Net new container objects between young collections: a 500-item batch holds some 50,000 while
# it is decided (the metrics consumer's threshold, services/metrics/entrypoints/consumer.py).
_GC_YOUNG_THRESHOLD = 50_000


def _collect_for_batches() -> None:
    """Under batch ingestion a fifth of a writing service's CPU went to the cycle collector
    (gc.callbacks, 50,000 writes: 16 full collections of about 60 ms each in the registrations
    service, 1,900 young ones): the batches in flight keep tens of thousands of objects alive
    through the young collections, so they reach the oldest generation, and each full collection
    then walks everything the process built at start-up too (FastAPI's routes, pydantic's
    schemas, the modules). Start-up's objects are moved out of the collector's reach once (they
    live as long as the process), and the young threshold is that of a batch, so that a batch's
    objects are mostly freed before a collection looks at them (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, older, oldest)


def _serve(name: str, host: str | None, port: int | None) -> None:
    import uvicorn

    from shared.logging import configure_logging

    app = importlib.import_module(SERVICES[name].bootstrap).build_app()
    settings = _settings()
    configure_logging(settings.log_level, service=name)
    if name in writing_services():  # they take batches of 1,000 writes (POST /v1/batch)
        _collect_for_batches()
    # Flags win; else VERBINDING_HOST / VERBINDING_PORT; else the service's default port.
    env_port = os.environ.get("VERBINDING_PORT")
    uvicorn.run(
        app,
        host=host or os.environ.get("VERBINDING_HOST", "127.0.0.1"),
        port=port or (int(env_port) if env_port else SERVICES[name].port),
        log_config=None,
        access_log=False,
    )


async def _relay(name: str) -> None:
    from shared.db import create_pool
    from shared.logging import configure_logging
    from shared.outbox import OutboxRelay
    from shared.settings import AdminSettings

    settings = AdminSettings()
    configure_logging(settings.log_level, service=f"{name}-relay")
    # The relay is part of the service: it connects as the service's role.
    pool = await create_pool(settings.service_database_url(name), max_size=1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await OutboxRelay(pool, name, settings.kafka()).run(stop)
    finally:
        await pool.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verbinding", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    partner = sub.add_parser(
        "partner", help="organisations and their API keys; the coalition's partner registry"
    )
    psub = partner.add_subparsers(dest="partner_command", required=True)
    create = psub.add_parser(
        "create", help="create (or update) an organisation and print a new key"
    )
    create.add_argument("org_id")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes", required=True, help="comma-separated, e.g. activities,registrations"
    )
    key = psub.add_parser("key", help="issue an extra key for an organisation (key rotation)")
    key.add_argument("org_id")
    key.add_argument("--scopes", required=True)
    revoke = psub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    register = psub.add_parser(
        "register",
        help="register a coalition partner (counts in the share of partners with trained staff)",
    )
    register.add_argument("org_id")
    register.add_argument("--name", required=True)
    register.add_argument("--joined", required=True, type=_iso_date, help="YYYY-MM-DD")
    leave = psub.add_parser("leave", help="record that a partner left the coalition")
    leave.add_argument("org_id")
    leave.add_argument(
        "--on", required=True, type=_iso_date, help="YYYY-MM-DD, the first day it is no partner"
    )
    psub.add_parser("list", help="the partner registry")
    volunteer = psub.add_parser(
        "volunteer-key",
        help="issue a key for a volunteer: scope `attendance` only (activities and attendance)",
    )
    volunteer.add_argument("org_id")
    volunteer.add_argument("--label", help="to recognise the key by, e.g. 'tablet buurthuis'")
    keys = psub.add_parser("keys", help="list an organisation's volunteer keys")
    keys.add_argument("org_id")

    migrate = sub.add_parser("migrate", help="create/upgrade the database schemas and Kafka topics")
    migrate.add_argument("services", nargs="*", default=list(SERVICES))

    serve = sub.add_parser("serve", help="run a service over HTTP")
    serve.add_argument("service", choices=list(SERVICES))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    relay = sub.add_parser("relay", help="run a service's outbox relay on its own")
    relay.add_argument("service", choices=writing_services())

    sub.add_parser(
        "describe",
        help="print what the code offers as JSON: OpenAPI per service, consumed topics, metrics",
    )

    for extension in _extensions():
        extension.register(sub)
    return parser


def _extensions() -> list[Any]:
    """The services' own commands (``metrics rebuild``), then the commands of whatever
    registered itself in the entry-point group (the developer tools: ``simulate``, ...)."""
    found = [
        importlib.import_module(module)
        for service in SERVICES.values()
        for module in service.commands
    ]
    # The platform's personal-data commands (erase, retention) span the services.
    found.append(importlib.import_module("services.privacy_cli"))
    found += [plugin.load() for plugin in entry_points(group=COMMAND_PLUGINS)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "partner":
        if args.partner_command == "create":
            asyncio.run(_partner_create(args.org_id, args.name, _scopes(args.scopes)))
        elif args.partner_command == "key":
            asyncio.run(_partner_create(args.org_id, None, _scopes(args.scopes)))
        elif args.partner_command == "register":
            asyncio.run(_partner_register(args.org_id, args.name, args.joined))
        elif args.partner_command == "leave":
            asyncio.run(_partner_leave(args.org_id, args.on))
        elif args.partner_command == "list":
            asyncio.run(_partner_list())
        elif args.partner_command == "volunteer-key":
            asyncio.run(_volunteer_key(args.org_id, args.label))
        elif args.partner_command == "keys":
            asyncio.run(_keys(args.org_id))
        else:
            return 0 if asyncio.run(_partner_revoke(args.key_id)) else 1
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(args.services))
        return 0
    if args.command == "serve":
        _serve(args.service, args.host, args.port)
        return 0
    if args.command == "relay":
        asyncio.run(_relay(args.service))
        return 0
    if args.command == "describe":
        from services.describe import describe

        sys.stdout.write(json.dumps(describe()) + "\n")
        return 0
    return int(args.run(args) or 0)


def _scopes(raw: str) -> list[str]:
    return [s.strip() for s in raw.split(",") if s.strip()]


if __name__ == "__main__":
    sys.exit(main())
