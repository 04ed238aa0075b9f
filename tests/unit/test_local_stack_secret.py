"""The local stack's pseudonym secret (deploy/local/stack.py): generated at random on first use,
kept owner-only in the state directory, the same on every later start, handed only to the
services that pseudonymise, and never printed by ``stack.py env``."""

from __future__ import annotations

import io
import os
import stat
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import pytest

from shared.settings import KNOWN_PLACEHOLDERS, PseudonymSettings
from tests.unit.local_stack import load_stack


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name in list(os.environ):
        if name.startswith("VERBINDING_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VERBINDING_STATE_DIR", str(tmp_path / "state"))
    return load_stack("stack_under_test")


def test_generated_once_random_and_owner_only(stack: ModuleType) -> None:
    cfg = stack.Config.from_env()
    with redirect_stdout(io.StringIO()):
        first = stack.pseudonym_secret(cfg)
        again = stack.pseudonym_secret(cfg)

    assert first == again
    assert len(first) == 64
    assert int(first, 16) > 0
    assert first not in KNOWN_PLACEHOLDERS
    assert stat.S_IMODE(cfg.secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.secret_file.parent.stat().st_mode) == 0o700
    # The settings of the services accept it as a real secret.
    assert PseudonymSettings(pseudonym_secret=first).pseudonym_secret.get_secret_value() == first


def test_another_state_directory_gets_another_secret(
    stack: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redirect_stdout(io.StringIO()):
        one = stack.pseudonym_secret(stack.Config.from_env())
        monkeypatch.setenv("VERBINDING_STATE_DIR", str(tmp_path / "other"))
        two = stack.pseudonym_secret(stack.Config.from_env())

    assert one != two


def test_a_file_others_can_read_is_made_owner_only(stack: ModuleType) -> None:
    cfg = stack.Config.from_env()
    with redirect_stdout(io.StringIO()):
        secret = stack.pseudonym_secret(cfg)
        cfg.secret_file.chmod(0o644)
        out = io.StringIO()
        with redirect_stdout(out):
            assert stack.pseudonym_secret(cfg) == secret

    assert stat.S_IMODE(cfg.secret_file.stat().st_mode) == 0o600
    assert "made owner-only" in out.getvalue()


def test_a_damaged_file_is_refused_not_replaced(stack: ModuleType) -> None:
    """A new secret would silently change every pseudonym: the operator decides."""
    cfg = stack.Config.from_env()
    cfg.secret_file.parent.mkdir(parents=True)
    cfg.secret_file.write_text("too-short\n")

    with pytest.raises(stack.StackError, match="holds no usable secret"):
        stack.pseudonym_secret(cfg)
    assert cfg.secret_file.read_text() == "too-short\n"


def test_only_the_pseudonymising_services_get_it(
    stack: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = stack.Config.from_env()
    with redirect_stdout(io.StringIO()):
        secret = stack.pseudonym_secret(cfg)
        envs = {name: stack.service_env(cfg, name) for name in stack.SERVICES}

    assert envs["registrations"]["VERBINDING_PSEUDONYM_SECRET"] == secret
    assert envs["referrals"]["VERBINDING_PSEUDONYM_SECRET"] == secret
    assert "VERBINDING_PSEUDONYM_SECRET" not in envs["metrics"]
    # One given in the environment wins (the fault suite runs its own).
    monkeypatch.setenv("VERBINDING_PSEUDONYM_SECRET", "given-" + "x" * 40)
    assert stack.service_env(cfg, "referrals")["VERBINDING_PSEUDONYM_SECRET"] == "given-" + "x" * 40


def test_env_never_prints_it(stack: ModuleType) -> None:
    cfg = stack.Config.from_env()
    out = io.StringIO()
    with redirect_stdout(out):
        secret = stack.pseudonym_secret(cfg)
        stack.print_env(cfg)
        stack.print_status(cfg)

    assert secret not in out.getvalue()
    assert str(cfg.secret_file) in out.getvalue()
