"""The stack under test: started with deploy/local/stack.py (``make up`` semantics, honouring
every ``VERBINDING_*`` port and the state dir), and stopped again where the benchmark started it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["REPO", "Stack"]

REPO = Path(__file__).resolve().parents[2]
STACK_PY = REPO / "deploy" / "local" / "stack.py"
VENV_BIN = REPO / ".venv" / "bin"


def _stack_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verbinding_local_stack", STACK_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@dataclass
class Stack:
    keep: bool = False
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.m = _stack_module()
        self.cfg: Any = self.m.Config.from_env()

    # ---------------------------------------------------------------------------- addresses
    @property
    def env(self) -> dict[str, str]:
        """What a process talking to this stack needs (as ``stack.py env`` prints it)."""
        return dict(self.cfg.env())

    @property
    def bootstrap(self) -> str:
        return str(self.cfg.bootstrap)

    @property
    def dsn(self) -> str:
        return str(self.cfg.dsn)

    @property
    def pseudonym_secret(self) -> str:
        """The secret the stack's services pseudonymise with (the environment's, else the
        stack's generated one), so that pre-filled events carry the same pseudonyms."""
        return os.environ.get("VERBINDING_PSEUDONYM_SECRET") or str(
            self.m.pseudonym_secret(self.cfg)
        )

    @property
    def state(self) -> Path:
        return Path(self.cfg.state)

    @property
    def kafka_lib(self) -> Path:
        return Path(self.cfg.kafka_lib)

    def url(self, service: str) -> str:
        return str(self.cfg.service_url(service))

    def service_pids(self) -> dict[str, int]:
        pids = {}
        for name in self.m.SERVICES:
            pid = self.m.service_pid(self.cfg, name)
            if pid is not None:
                pids[name] = pid
        return pids

    def postmaster_pid(self) -> int | None:
        if self.cfg.external_dsn:
            return None
        pid = self.m.pg_postmaster_pid(self.cfg)
        return int(pid) if pid is not None else None

    # ---------------------------------------------------------------------------- lifecycle
    def _running(self) -> set[str]:
        return {row[0] for row in self.m.status_rows(self.cfg) if row[1] in ("running", "external")}

    def _stack(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, str(STACK_PY), *args],
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"deploy/local/stack.py {' '.join(args)} failed ({result.returncode})"
            )

    def up(self) -> None:
        """``make up``: Kafka, PostgreSQL, migrations and topics, the three services."""
        before = self._running()
        self._stack("up")
        migrate = subprocess.run(
            [str(VENV_BIN / "verbinding"), "migrate"],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"verbinding migrate failed:\n{migrate.stdout}{migrate.stderr}")
        self._stack("up", "--services")
        self.started = [c for c in ("kafka", "postgresql", *self.m.SERVICES) if c not in before]

    def down(self) -> None:
        """Stop what :meth:`up` started (nothing that was running before), unless ``keep``."""
        if self.keep or not self.started:
            return
        for name in self.m.SERVICES:
            if name in self.started:
                self._stack("service-stop", name)
        if "kafka" in self.started:
            self._stack("kafka-stop")
        if "postgresql" in self.started:
            self._stack("pg-stop")
