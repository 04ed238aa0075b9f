"""A minimal HTTP/1.1 keep-alive client for the load generator.

httpx costs about a millisecond of CPU per request and queues waiting requests in a list that it
scans for every request (quadratic when thousands wait): on a busy two-core machine the load
generator then measures itself. This client only writes a request and reads a
``Content-Length`` answer, over a fixed number of connections; a request waits for a free
connection, and that wait counts in its latency, as it would for any client with that many
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

__all__ = ["Answer", "ConnectionPool"]


class Answer:
    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, head: bytes, body: bytes) -> Answer:
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return Answer(status, await self.reader.readexactly(length) if length else b"")

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    def __init__(self, base_url: str, headers: dict[str, str], size: int = 64) -> None:
        url = urlsplit(base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.size = size
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        self._all: list[_Connection] = []

    async def __aenter__(self) -> ConnectionPool:
        for _ in range(self.size):
            self._idle.put_nowait(None)  # opened on first use
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._all:
            conn.close()

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        conn = _Connection(reader, writer)
        self._all.append(conn)
        return conn

    async def request(self, method: str, path: str, body: bytes = b"") -> Answer:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        conn = await self._idle.get()
        try:
            if conn is None:
                conn = await self._open()
            try:
                answer = await conn.request(head, body)
            except asyncio.IncompleteReadError as exc:
                # The server closes a keep-alive connection that was idle too long; a request
                # sent on it gets no answer at all. Once more on a fresh connection (every
                # write here is idempotent), as HTTP clients do.
                if exc.partial:
                    raise
                with contextlib.suppress(Exception):
                    conn.close()
                conn = await self._open()
                answer = await conn.request(head, body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self._idle.put_nowait(None)  # a fresh connection next time
            raise
        self._idle.put_nowait(conn)
        return answer
