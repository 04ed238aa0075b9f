"""`verbinding`: the platform's command line (partners and keys, migrations, serving, tools)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

# service name -> (composition root module, schema/migrations package)
SERVICES: dict[str, tuple[str, str]] = {
    "registrations": (
        "services.registrations.bootstrap",
        "services.registrations.adapters.migrations",
    ),
    "referrals": ("services.referrals.bootstrap", "services.referrals.adapters.migrations"),
    "metrics": ("services.metrics.bootstrap", "services.metrics.adapters.migrations"),
}


def _settings() -> Any:
    from shared.settings import CommonSettings

    return CommonSettings()


async def _partner_create(org_id: str, name: str | None, scopes: list[str]) -> str:
    from shared.auth import create_organisation, issue_key
    from shared.db import apply_migrations, create_pool, migration_files

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


async def _migrate(services: Sequence[str]) -> None:
    from shared.db import create_pool, migrate_service
    from shared.kafka import ensure_topics

    settings = _settings()
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        for name in services:
            await migrate_service(pool, name, SERVICES[name][1])
            print(f"schema {name} migrated")
    finally:
        await pool.close()
    await ensure_topics(
        settings.kafka_bootstrap,
        settings.topic_prefix,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    print("topics ensured")


def _serve(name: str, host: str | None, port: int | None) -> None:
    import uvicorn

    from shared.logging import configure_logging

    module = importlib.import_module(SERVICES[name][0])
    app = module.build_app()
    settings = _settings()
    configure_logging(settings.log_level, service=name)
    # Flags win; else VERBINDING_HOST / VERBINDING_PORT; else the service's default port.
    env_port = os.environ.get("VERBINDING_PORT")
    uvicorn.run(
        app,
        host=host or os.environ.get("VERBINDING_HOST", "127.0.0.1"),
        port=port
        or (
            int(env_port)
            if env_port
            else {"registrations": 8001, "referrals": 8002, "metrics": 8003}[name]
        ),
        log_config=None,
        access_log=False,
    )


async def _relay(name: str) -> None:
    from shared.db import create_pool
    from shared.logging import configure_logging
    from shared.outbox import OutboxRelay

    settings = _settings()
    configure_logging(settings.log_level, service=f"{name}-relay")
    pool = await create_pool(settings.database_url, max_size=3)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await OutboxRelay(pool, name, settings.kafka_bootstrap).run(stop)
    finally:
        await pool.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verbinding", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    partner = sub.add_parser("partner", help="partner organisations and their API keys")
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

    migrate = sub.add_parser("migrate", help="create/upgrade the database schemas and Kafka topics")
    migrate.add_argument("services", nargs="*", default=list(SERVICES))

    serve = sub.add_parser("serve", help="run a service over HTTP")
    serve.add_argument("service", choices=list(SERVICES))
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    relay = sub.add_parser("relay", help="run a service's outbox relay on its own")
    relay.add_argument("service", choices=["registrations", "referrals"])

    for extension in _extensions():
        extension.register(sub)
    return parser


def _extensions() -> list[Any]:
    """Sub-commands that live with their code (simulate, rebuild, ...), loaded if present."""
    found = []
    for module in (
        "tools.simulator.cli",
        "services.metrics.entrypoints.cli",
        "tools.disclosure_audit.cli",
    ):
        try:
            found.append(importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "partner":
        if args.partner_command == "create":
            asyncio.run(_partner_create(args.org_id, args.name, _scopes(args.scopes)))
        elif args.partner_command == "key":
            asyncio.run(_partner_create(args.org_id, None, _scopes(args.scopes)))
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
    return int(args.run(args) or 0)


def _scopes(raw: str) -> list[str]:
    return [s.strip() for s in raw.split(",") if s.strip()]


if __name__ == "__main__":
    sys.exit(main())
