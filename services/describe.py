"""``verbinding describe``: what the running code offers, as one JSON document: each service's
OpenAPI document (from its app; the lifespan, which needs PostgreSQL and Kafka, never runs), the
topics each consumer reads with its group, and every Prometheus series the code can expose with
its label names. The documentation generator (tools/docs.py) and the alert and dashboard tests
read it, so that no tool has to reach into a service's wiring.

Build it from the defaults (no ``VERBINDING_*`` but a throwaway pseudonym secret) for the
committed contract: a developer's settings, say a batch limit, must not leak into it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from services.registry import SERVICES

__all__ = ["consumers", "describe", "exposed_metrics", "openapi"]

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}


def openapi(service: str) -> dict[str, Any]:
    app = importlib.import_module(SERVICES[service].bootstrap).build_app()
    doc: dict[str, Any] = app.openapi()
    return doc


def consumers() -> dict[str, tuple[list[str], str | None]]:
    """Service -> (logical topics it consumes, its consumer group)."""
    out: dict[str, tuple[list[str], str | None]] = {}
    for service in SERVICES:
        module_name = f"services.{service}.entrypoints.consumer"
        if importlib.util.find_spec(module_name) is None:
            continue
        topics = getattr(importlib.import_module(module_name), "CONSUMED_TOPICS", ())
        group = None
        settings = importlib.import_module(f"services.{service}.settings")
        for value in vars(settings).values():
            fields = getattr(value, "model_fields", {})
            if "consumer_group" in fields and value.__module__ == settings.__name__:
                group = fields["consumer_group"].default
        out[service] = ([str(t.value) for t in topics], group)
    return out


def exposed_metrics() -> dict[str, frozenset[str]]:
    """Every series name the services can expose, with its label names.

    Registered metrics (HTTP, outbox, consumer, FastStream's middleware, process) are read from
    the prometheus_client registry after importing the code that defines them; the families a
    collector renders come from the services' catalogues (services/registry.py).
    """
    from prometheus_client import REGISTRY

    rendered: list[Any] = []
    for service in SERVICES.values():
        importlib.import_module(service.bootstrap)  # importing registers its metrics
        if service.catalogue:
            rendered += importlib.import_module(service.catalogue).series()

    found: dict[str, set[str]] = {}

    def add(family: Any, declared: tuple[str, ...]) -> None:
        for suffix in SUFFIXES.get(family.type, ("",)):
            labels = found.setdefault(family.name + suffix, set(declared))
            labels |= {
                k for s in family.samples if s.name == family.name + suffix for k in s.labels
            }
            if suffix == "_bucket":
                labels.add("le")

    # A labelled metric without children yet collects no samples: its label names are declared
    # on the metric object (prometheus_client keeps the registry's collectors in this mapping).
    collectors = getattr(REGISTRY, "_collector_to_names", {})
    for collector in list(collectors):
        for family in collector.collect():
            add(family, tuple(getattr(collector, "_labelnames", ())))
    for family in rendered:
        add(family, ())
    return {name: frozenset(labels) for name, labels in sorted(found.items())}


def describe() -> dict[str, Any]:
    consumed = consumers()
    return {
        "services": {
            name: {
                "port": service.port,
                "outbox": service.outbox,
                "openapi": openapi(name),
                "consumes": consumed.get(name, ([], None))[0],
                "consumer_group": consumed.get(name, ([], None))[1],
            }
            for name, service in SERVICES.items()
        },
        "metrics": {name: sorted(labels) for name, labels in exposed_metrics().items()},
    }
