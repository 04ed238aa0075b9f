"""The committed OpenAPI and AsyncAPI documents are what the code says now."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.registry import SERVICES
from shared.events import EVENT_TYPES, Topic
from tools import docs

REPO = Path(__file__).resolve().parents[2]


@cache
def _generated() -> dict[Path, str]:
    return docs.documents()


def _asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(docs.ASYNCAPI_FILE.read_text(encoding="utf-8"))
    return doc


def test_the_generator_covers_every_service_of_the_command_line() -> None:
    assert list(SERVICES) == ["registrations", "referrals", "metrics"]
    assert docs.available_services() == [
        name for name in SERVICES if (REPO / "services" / name / "bootstrap.py").exists()
    ]
    expected = {docs.OPENAPI_DIR / f"{name}.json" for name in docs.available_services()}
    assert set(docs.OPENAPI_DIR.glob("*.json")) == expected, (
        "docs/openapi/ holds a file for a service that does not exist, or lacks one; "
        "run `make docs`"
    )


@pytest.mark.parametrize(
    "name",
    [
        "openapi/registrations.json",
        "openapi/referrals.json",
        "openapi/metrics.json",
        "asyncapi.yaml",
    ],
)
def test_committed_document_is_up_to_date(name: str) -> None:
    path = REPO / "docs" / name
    generated = _generated()
    if path not in generated:
        pytest.fail(f"{name}: the generator does not produce it (is the service missing?)")
    assert path.exists(), f"docs/{name} is missing: run `make docs`"
    committed = path.read_text(encoding="utf-8")
    if committed != generated[path]:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    generated[path].splitlines(keepends=True),
                    f"docs/{name} (committed)",
                    f"docs/{name} (from the code)",
                    n=1,
                )
            )[:40]
        )
        pytest.fail(f"docs/{name} is out of date: run `make docs`\n{diff}")


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text("asyncapi: 3.0.0\n", encoding="utf-8")
    monkeypatch.setattr(docs, "documents", lambda: {stale: "asyncapi: 3.0.0\ninfo: {}\n"})
    monkeypatch.setattr(docs, "REPO", tmp_path)
    assert docs.main(["--check"]) == 1
    assert stale.read_text(encoding="utf-8") == "asyncapi: 3.0.0\n"
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0


def test_openapi_documents_are_openapi_3_with_the_common_endpoints() -> None:
    for path, text in _generated().items():
        if path.suffix != ".json":
            continue
        doc = yaml.safe_load(text)
        assert doc["openapi"].startswith("3."), path.name
        for ops in ("/healthz", "/readyz", "/metrics"):
            assert ops in doc["paths"], f"{path.name} lacks {ops}"
        assert any(p.startswith("/v1/") for p in doc["paths"]), path.name


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_references_resolve() -> None:
    doc = _asyncapi()
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict), f"unresolved $ref {ref}"
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]


def test_asyncapi_has_every_topic_and_event_type_with_publisher_and_key() -> None:
    doc = _asyncapi()
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]) == {t.value for t in Topic}
    messages = doc["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(EVENT_TYPES)
    sent = {
        ref["$ref"].rsplit("/", 1)[1]
        for op in doc["operations"].values()
        if op["action"] == "send"
        for ref in op["messages"]
    }
    for cls in EVENT_TYPES.values():
        message = messages[cls.__name__]
        assert cls.__name__ in doc["channels"][cls.topic.value]["messages"]
        assert cls.__name__ in sent, f"no service publishes {cls.__name__}"
        assert "Partition key" in message["bindings"]["kafka"]["key"]["description"]
        payload = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert payload["properties"]["type"]["const"] == cls.event_type()
        assert payload["properties"]["data"]["$ref"].endswith(f"/{cls.__name__}")
        assert set(payload["required"]) >= {"id", "source", "type", "time", "data"}


def test_asyncapi_names_who_publishes_and_who_consumes() -> None:
    operations = _asyncapi()["operations"]
    assert "registrations.send.registrations" in operations
    assert "referrals.send.measurements" in operations
    assert "metrics.send.deadletter" in operations
    received = {
        op["channel"]["$ref"].rsplit("/", 1)[1]
        for op in operations.values()
        if op["action"] == "receive"
    }
    from services.metrics.entrypoints.consumer import CONSUMED_TOPICS

    assert received == {t.value for t in CONSUMED_TOPICS}
