"""The platform's services, one entry each: what the runtime command line (services/cli.py) and
the deployment need to know about a service. Modules are named, not imported: ``verbinding
partner create`` must not load three web applications to issue a key.

A service's own operator commands (``verbinding metrics rebuild``) live with the service, in the
modules its entry names under ``commands``; each such module has ``register(subparsers)``. A new
module is one more name there. Developer tools add theirs through the entry-point group
``verbinding.commands`` (pyproject.toml), so that the runtime never names a tool.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SERVICES", "Service", "writing_services"]


@dataclass(frozen=True)
class Service:
    name: str  # also its database schema, its role's suffix and its settings' prefix
    bootstrap: str  # the composition root: build_app(settings=None) -> FastAPI
    migrations: str  # the package of its schema's SQL files
    port: int  # the HTTP port of the contract's local defaults
    outbox: bool = False  # publishes through an outbox (`verbinding relay <name>`)
    commands: tuple[str, ...] = ()  # modules with register(subparsers): its operator commands
    # The module that lists the Prometheus series it exposes beyond the shared ones
    # (series() -> families), for the documentation and the alert tests.
    catalogue: str | None = None
    # A module with ``async def prune(conn, schema, before, *, baseline_file)``: how the service
    # applies the platform's retention to data that is not a writing service's records
    # (services/retention.py); the writing services' records are pruned by their ERASABLE tables.
    retention: str | None = None


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "registrations",
            "services.registrations.bootstrap",
            "services.registrations.adapters.migrations",
            8001,
            outbox=True,
        ),
        Service(
            "referrals",
            "services.referrals.bootstrap",
            "services.referrals.adapters.migrations",
            8002,
            outbox=True,
        ),
        Service(
            "metrics",
            "services.metrics.bootstrap",
            "services.metrics.adapters.migrations",
            8003,
            commands=("services.metrics.entrypoints.cli",),
            catalogue="services.metrics.entrypoints.catalogue",
            retention="services.metrics.adapters.retention",
        ),
    )
}


def writing_services() -> list[str]:
    """The services that publish through an outbox (and so have a relay)."""
    return [name for name, s in SERVICES.items() if s.outbox]
