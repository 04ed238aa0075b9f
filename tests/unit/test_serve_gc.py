"""`verbinding serve` of a writing service tunes the cycle collector for batches (issue 13): a
fifth of such a service's CPU under batch ingestion went to full collections that walked every
object made at start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services import cli


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_leave_the_collectors_reach(collector: None) -> None:
    made_at_start_up = [{"route": i} for i in range(1000)]
    cli._collect_for_batches()
    assert gc.get_freeze_count() >= len(made_at_start_up)
    young, older, oldest = gc.get_threshold()
    assert young == cli._GC_YOUNG_THRESHOLD
    assert (older, oldest) == gc.get_threshold()[1:]


@pytest.mark.parametrize(
    ("service", "tuned"), [("registrations", True), ("referrals", True), ("metrics", False)]
)
def test_only_the_writing_services_are_tuned(
    service: str, tuned: bool, monkeypatch: pytest.MonkeyPatch, collector: None
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "_collect_for_batches", lambda: calls.append(service))

    class Bootstrap:
        @staticmethod
        def build_app() -> object:
            return object()

    import uvicorn

    import shared.logging

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(shared.logging, "configure_logging", lambda *a, **k: None)
    real_import = cli.importlib.import_module
    bootstrap = cli.SERVICES[service].bootstrap
    monkeypatch.setattr(
        cli.importlib,
        "import_module",
        lambda name, *a, **k: Bootstrap if name == bootstrap else real_import(name, *a, **k),
    )
    cli._serve(service, "127.0.0.1", 1)
    assert calls == ([service] if tuned else [])
