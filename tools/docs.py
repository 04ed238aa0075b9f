"""Generate the committed contract documents from the code, and list the metrics the code exposes.

    python -m tools.docs            write docs/openapi/<service>.json and docs/asyncapi.yaml
    python -m tools.docs --check    exit 1 (naming the files) when a committed file is out of date

OpenAPI comes from each service's FastAPI app, as ``verbinding describe`` (services/describe.py)
prints it. AsyncAPI 3.0 is assembled here from the event contracts
in ``shared/events``: FastStream could render AsyncAPI for its own subscribers, but the platform's
publishers are outbox relays (plain aiokafka producers fed from PostgreSQL) that FastStream never
sees, so it would describe half of the traffic.

:func:`exposed_metrics` is the catalogue of Prometheus series the code can expose (also from
``verbinding describe``); the alert rule and dashboard tests check every query against it, so a
renamed metric breaks them.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import inspect
import io
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

__all__ = ["asyncapi", "described", "documents", "exposed_metrics", "main", "openapi"]

REPO = Path(__file__).resolve().parents[1]
OPENAPI_DIR = REPO / "docs" / "openapi"
ASYNCAPI_FILE = REPO / "docs" / "asyncapi.yaml"
KAFKA_BINDING = "0.5.0"


@functools.cache
def described() -> dict[str, Any]:
    """``verbinding describe`` as the code says now, built from the defaults: a developer's
    VERBINDING_* (say, a batch limit) must not leak into the committed contract. The pseudonym
    secret has no default; describing the apps pseudonymises nothing, so a throwaway one does.
    The runtime's own command line, run as a process of its own: a tool never reaches into a
    service's wiring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERBINDING_")}
    env["VERBINDING_PSEUDONYM_SECRET"] = secrets.token_hex(32)
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "describe"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"verbinding describe failed:\n{result.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def available_services() -> list[str]:
    """Every service of the runtime's registry, in its order."""
    return list(described()["services"])


def openapi(service: str) -> dict[str, Any]:
    doc: dict[str, Any] = described()["services"][service]["openapi"]
    return doc


# ---------------------------------------------------------------------------------- AsyncAPI


def _topic_comments() -> dict[str, str]:
    """The trailing comment of each ``Topic`` member in shared/events/topics.py (its key rule)."""
    from shared.events import topics

    comments: dict[str, str] = {}
    member = None
    source = inspect.getsource(topics)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string.isupper():
            member = tok.string
        elif tok.type == tokenize.COMMENT and member is not None:
            comments[member] = tok.string.lstrip("# ").strip()
        elif tok.type == tokenize.NEWLINE:
            member = None
    return comments


def _render_key(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else ast.unparse(node)
    if isinstance(node, ast.Attribute):
        return f"{_render_key(node.value)}.{node.attr}"
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value)
            if isinstance(part, ast.Constant)
            else "{" + _render_key(part.value) + "}"  # type: ignore[attr-defined]
            for part in node.values
        )
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return ", else ".join(_render_key(v) for v in node.values)
    return ast.unparse(node)


def partition_key_rule(cls: type) -> str:
    """What ``partition_key()`` returns, read from its source: e.g. ``participant.id``."""
    source = textwrap.dedent(inspect.getsource(cls.partition_key))  # type: ignore[attr-defined]
    returns = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Return) and n.value]
    return " / ".join(_render_key(r.value) for r in returns if r.value is not None)


def _constructed_names(package: str) -> set[str]:
    """Names called anywhere in a package: which event types and helpers a service constructs."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return set()
    names: set[str] = set()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    if isinstance(func, ast.Name):
                        names.add(func.id)
                    elif isinstance(func, ast.Attribute):
                        names.add(func.attr)
    return names


def _publishers(event_classes: list[type]) -> dict[str, list[str]]:
    """Event class name -> services that publish it (they construct it; dead letters: they
    construct the dead-letter sink; erasures: they construct an eraser)."""
    out: dict[str, list[str]] = {cls.__name__: [] for cls in event_classes}
    for service in available_services():
        called = _constructed_names(f"services.{service}")
        for cls in event_classes:
            if (
                cls.__name__ in called
                or (cls.__name__ == "DeadLettered" and "KafkaDeadLetterSink" in called)
                # shared/erasure.py builds the erasure events of a service that erases
                or (cls.__name__ == "PersonErased" and "Eraser" in called)
            ):
                out[cls.__name__].append(service)
    return out


def _consumers() -> dict[str, tuple[list[str], str | None]]:
    """Service -> (logical topics it consumes, its consumer group)."""
    return {
        name: (service["consumes"], service["consumer_group"])
        for name, service in described()["services"].items()
        if service["consumes"]
    }


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _paragraphs(text: str | None) -> str:
    """A module docstring as Markdown: reST literals become backticks, paragraphs one line."""
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", textwrap.dedent(text or "").strip())
    text = text.replace("``", "`")
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def asyncapi() -> dict[str, Any]:
    from shared import outbox
    from shared.events import EVENT_TYPES, CloudEvent, Topic, envelope
    from shared.settings import CommonSettings

    classes = list(EVENT_TYPES.values())
    _, top = models_json_schema(
        [(CloudEvent[cls], "validation") for cls in classes],  # type: ignore[valid-type]
        ref_template="#/components/schemas/{model}",
    )
    raw_defs: dict[str, Any] = top["$defs"]
    renames = {f"CloudEvent_{cls.__name__}_": f"{cls.__name__}Event" for cls in classes}
    text = json.dumps(raw_defs)
    for old, new in renames.items():
        text = text.replace(f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"')
    defs = {renames.get(k, k): v for k, v in json.loads(text).items()}
    for cls in classes:
        envelope_schema = defs[f"{cls.__name__}Event"]
        envelope_schema["title"] = f"{cls.__name__} in its CloudEvents envelope"
        envelope_schema["properties"]["type"] = {
            "type": "string",
            "const": cls.event_type(),
            "description": "`nl.verbinding.<name>.v<major>`; an unknown major version is "
            "dead-lettered, never guessed at.",
        }
    schemas = dict(sorted(defs.items()))

    comments = _topic_comments()
    publishers = _publishers(classes)
    consumers = _consumers()
    fields = CommonSettings.model_fields
    messages: dict[str, Any] = {}
    for cls in classes:
        messages[cls.__name__] = {
            "name": cls.event_type(),
            "title": cls.__name__,
            "summary": _first_line(cls.__doc__),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}Event"},
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"Partition key: `{partition_key_rule(cls)}`.",
                    },
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in Topic:
        on_topic = [cls for cls in classes if cls.topic is topic]
        if on_topic:  # the key rule as the code applies it, not as a comment says
            description = "Partition key: " + "; ".join(
                f"`{partition_key_rule(cls)}` for {cls.__name__}" for cls in on_topic
            )
            description += ". Events with the same key stay in order."
        else:
            note = comments.get(topic.name, "")
            description = (f"{note[0].upper()}{note[1:]}. " if note else "") + (
                "No event type of the platform is published here yet."
            )
        channels[topic.value] = {
            "address": "{prefix}" + topic.value,
            "title": topic.value,
            "description": description,
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": {
                cls.__name__: {"$ref": f"#/components/messages/{cls.__name__}"} for cls in on_topic
            },
            "bindings": {
                "kafka": {
                    "partitions": fields["topic_partitions"].default,
                    "replicas": fields["topic_replication"].default,
                    "bindingVersion": KAFKA_BINDING,
                }
            },
        }
        senders: dict[str, list[type]] = {}
        for cls in on_topic:
            for service in publishers[cls.__name__]:
                senders.setdefault(service, []).append(cls)
        for service, sent in senders.items():
            how = (
                "Dead letters of the service's consumer: what could not be decoded or applied, "
                "with the reason and the original bytes."
                if topic is Topic.DEADLETTER
                else "Published by the service's outbox relay: the event is written in the same "
                "PostgreSQL transaction as the state change and published at least once with an "
                "idempotent producer (acks=all); consumers deduplicate on `id`."
            )
            operations[f"{service}.send.{topic.value}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{topic.value}"},
                "title": f"The {service} service publishes to {topic.value}",
                "description": how,
                "messages": [
                    {"$ref": f"#/channels/{topic.value}/messages/{cls.__name__}"} for cls in sent
                ],
                "tags": [{"name": service}],
            }
        for service, (consumed, group) in consumers.items():
            if topic.value not in consumed:
                continue
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic.value}"},
                "title": f"The {service} service consumes {topic.value}",
                "description": "Applied in batches; the ids of applied events are stored in the "
                "same transaction as the state they change, so a redelivered event is skipped. "
                "What cannot be decoded or applied goes to `deadletter`.",
                "messages": [
                    {"$ref": f"#/channels/{topic.value}/messages/{cls.__name__}"}
                    for cls in on_topic
                ],
                "tags": [{"name": service}],
            }
            if group:
                operation["bindings"] = {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [group]},
                        "bindingVersion": KAFKA_BINDING,
                    }
                }
            operations[f"{service}.receive.{topic.value}"] = operation

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Verbinding events",
            "version": "1.0.0",
            "description": "\n\n".join([_paragraphs(envelope.__doc__), _paragraphs(outbox.__doc__)])
            + "\n\nGenerated by `make docs` (tools/docs.py) from shared/events; do not edit.",
            "tags": [{"name": name} for name in available_services()],
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The platform's Kafka cluster.",
                "variables": {
                    "bootstrap": {
                        "default": fields["kafka_bootstrap"].default,
                        "description": "`VERBINDING_KAFKA_BOOTSTRAP`.",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "prefix": {
                    "default": fields["topic_prefix"].default,
                    "description": "`VERBINDING_TOPIC_PREFIX`: "
                    + (fields["topic_prefix"].description or ""),
                }
            },
            "messages": messages,
            "schemas": schemas,
        },
    }


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so that descriptions read as written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(doc: dict[str, Any]) -> str:
    header = "# Generated by `make docs` (tools/docs.py) from the code; do not edit by hand.\n"
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def documents() -> dict[Path, str]:
    """Every generated file and its content, as the code says now."""
    out = {
        OPENAPI_DIR / f"{service}.json": render_json(openapi(service))
        for service in available_services()
    }
    out[ASYNCAPI_FILE] = render_yaml(asyncapi())
    return out


# ---------------------------------------------------------------------------- metric catalogue


def exposed_metrics() -> dict[str, frozenset[str]]:
    """Every series name the services can expose, with its label names (``verbinding
    describe``); the alert rule and dashboard tests check every query against it."""
    return {name: frozenset(labels) for name, labels in described()["metrics"].items()}


# ---------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="fail when a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, content in documents().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run `make docs`", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
