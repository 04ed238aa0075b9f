"""The local stack's readiness check (deploy/local/stack.py ``port_open``): a port in the
kernel's ephemeral range can accept a connect with nothing listening, when the client's own
port happens to be that port (TCP connects the socket to itself). That is not a server."""

from __future__ import annotations

import socket
from types import ModuleType
from typing import Any

import pytest

from tests.unit.local_stack import load_stack


@pytest.fixture
def stack() -> ModuleType:
    return load_stack("stack_ports_under_test")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _self_connected(port: int) -> socket.socket:
    """A TCP socket connected to itself on ``port`` (bound to it, then connected to it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.connect(("127.0.0.1", port))
    assert sock.getsockname() == sock.getpeername()
    return sock


def test_a_socket_connected_to_itself_is_not_a_listening_server(
    stack: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    connected = _self_connected(port)

    def create_connection(address: Any, timeout: float | None = None) -> socket.socket:
        assert address == ("127.0.0.1", port)
        return connected

    monkeypatch.setattr(stack.socket, "create_connection", create_connection)
    assert stack.port_open(port) is False


def test_a_listening_server_is(stack: ModuleType) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert stack.port_open(server.getsockname()[1]) is True
    assert stack.port_open(_free_port()) is False
