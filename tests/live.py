"""The services as real processes (``verbinding serve <name>``) on free ports, for tests that need
real HTTP servers (the fuzzer) or the services' own log output (the privacy scan).

Each process writes its JSON-lines log to a file of the test; :meth:`LiveServices.logs` reads
them back. Processes are stopped with SIGTERM, then SIGKILL, always.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "REPO",
    "VERBINDING",
    "LiveService",
    "LiveServices",
    "cached_kafka_lib",
    "free_port",
    "live_services",
]

REPO = Path(__file__).resolve().parents[1]
VERBINDING = REPO / ".venv" / "bin" / "verbinding"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cached_kafka_lib() -> str | None:
    """The jars the main stack already fetched, so that a private broker needs no Maven run."""
    if os.environ.get("VERBINDING_KAFKA_LIB"):
        return os.environ["VERBINDING_KAFKA_LIB"]
    state = Path(os.environ.get("VERBINDING_STATE_DIR") or REPO / ".local")
    lib = state / "kafka" / "lib"
    return str(lib) if any(lib.glob("kafka_2.13-*.jar")) else None


@dataclass
class LiveService:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class LiveServices:
    services: dict[str, LiveService] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.services[name].url

    def logs(self) -> str:
        return "".join(s.log.read_text(errors="replace") for s in self.services.values())


def _start(name: str, env: Mapping[str, str], log: Path) -> LiveService:
    port = free_port()
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [str(VERBINDING), "serve", name, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
            start_new_session=True,
        )
    return LiveService(name, port, log, proc)


async def _wait_healthy(service: LiveService, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if service.proc.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with {service.proc.returncode} during start-up:\n"
                    + service.log.read_text(errors="replace")[-4000:]
                )
            try:
                if (await client.get(f"{service.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() >= deadline:
                raise RuntimeError(f"{service.name} did not answer /healthz within {timeout:.0f}s")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def live_services(
    names: tuple[str, ...], env: Mapping[str, str], log_dir: Path, timeout: float = 60.0
) -> AsyncIterator[LiveServices]:
    """Start ``names`` with ``env`` (the test database, topic prefix, secret), wait until each
    answers /healthz (bounded), and stop them all afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    live = LiveServices()
    try:
        for name in names:
            live.services[name] = _start(name, env, log_dir / f"{name}.log")
        await asyncio.gather(*(_wait_healthy(s, timeout) for s in live.services.values()))
        yield live
    finally:
        for service in live.services.values():
            service.stop()
