"""Thousands of EventSource clients in one load process, on raw asyncio protocols.

A client is one `asyncio.Protocol` (no StreamReader/Writer, no task), so
15,000 of them cost little CPU and memory on the load side. Each records the
arrival time of every `seq=<n>` marker it sees in its stream; the caller puts
that marker into the redirect URL or broadcast message, so sending and arrival
are matched on the same monotonic clock in the same process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from urllib.parse import quote

from bench.processes import SITE_ORIGIN

SEQ_MARKER = re.compile(rb"seq=(\d+)")
LOOPBACK_SOURCES = 16  # client sockets bind to 127.0.0.1-16 in turn; see source_address()


def source_address(host: str, index: int, sources: int = LOOPBACK_SOURCES) -> tuple[str, int] | None:
    """The local address client `index` binds before connecting to `host`.

    Every stream is a socket from 127.0.0.1 to the one server port. Linux's connect()
    picks a free ephemeral port by scanning from a hashed offset, even ports first:
    past about 14,000 connections from one address to one destination the even half
    is used up and each connect() scans it all, in the kernel, in the load process.
    At 15,000 clients that left the load process at 100 % of its core in system time
    for the last 1.5-2.5 s of the hold while the server idled (sampled from /proc).
    Spread over 16 loopback addresses, each has under 1,000 ports in use. Off
    loopback, or with one source, the kernel's choice stands (None)."""
    if host != "127.0.0.1" or sources <= 1:
        return None
    return f"127.0.0.{1 + index % sources}", 0


class ArrivalLog:
    """seq -> arrival times (one per receiving connection)."""

    def __init__(self) -> None:
        self.times: defaultdict[int, list[float]] = defaultdict(list)
        self._watches: dict[int, tuple[int, asyncio.Future]] = {}

    def record(self, seq: int, at: float) -> None:
        arrived = self.times[seq]
        arrived.append(at)
        if self._watches and seq in self._watches:
            expected, waiter = self._watches[seq]
            if len(arrived) >= expected and not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, seq: int, expected: int, timeout: float) -> None:
        """Until `expected` copies of `seq` arrived, or the timeout passed."""
        if self.count(seq) >= expected:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._watches[seq] = (expected, waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            del self._watches[seq]

    def count(self, seq: int) -> int:
        return len(self.times.get(seq, ()))


class SseClient(asyncio.Protocol):
    __slots__ = ("client_id", "_request", "_arrivals", "_headers_done", "_pending", "ready", "transport", "closed")

    def __init__(self, client_id: str, request: bytes, arrivals: ArrivalLog, ready: asyncio.Future) -> None:
        self.client_id = client_id
        self._request = request
        self._arrivals = arrivals
        self._headers_done = False
        self._pending = b""
        self.ready = ready  # result: HTTP status (200 = streaming); exception on connection loss
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        data = self._pending + data if self._pending else data
        if not self._headers_done:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._pending = data
                return
            self._headers_done = True
            status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0
            if not self.ready.done():
                self.ready.set_result(status)
            data = data[end + 4 :]
        # A marker never spans a line, so only the unfinished last line is kept.
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        if cut and b"seq=" in data:
            for match in SEQ_MARKER.finditer(data, 0, cut):
                self._arrivals.record(int(match.group(1)), now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the response"))

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


def stream_request(host: str, port: int, client_id: str, token: str) -> bytes:
    return (
        f"GET /sse/connect?clientId={quote(client_id)}&token={token} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n"
        f"Origin: {SITE_ORIGIN}\r\n\r\n"
    ).encode()


class ClientFleet:
    """The connected clients of one run, by index (client id `c<index>`)."""

    def __init__(self, host: str, port: int, arrivals: ArrivalLog, sources: int = LOOPBACK_SOURCES) -> None:
        self.host = host
        self.sources = sources
        self.port = port
        self.arrivals = arrivals
        self.clients: list[SseClient] = []
        self.failures = 0
        self.failure_reasons: defaultdict[str, int] = defaultdict(int)
        self.connect_seconds: list[float] = []  # per opened stream: from its TCP connect to its response head

    @property
    def open_clients(self) -> list[SseClient]:
        return [client for client in self.clients if not client.closed]

    async def connect(self, tokens: list[tuple[str, str]], concurrency: int, timeout: float = 30.0) -> float:
        """Open one stream per (client_id, token); returns the wall time taken."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)

        async def open_one(index: int, client_id: str, token: str) -> None:
            async with gate:
                began = time.perf_counter()
                ready = loop.create_future()
                request = stream_request(self.host, self.port, client_id, token)
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(lambda: SseClient(client_id, request, self.arrivals, ready), self.host, self.port,
                                               local_addr=source_address(self.host, index, self.sources)),
                        timeout,
                    )
                    status = await asyncio.wait_for(ready, timeout)
                except (OSError, asyncio.TimeoutError) as error:
                    self._fail(type(error).__name__)
                    return
                if status != 200:
                    self._fail(f"HTTP {status}")
                    client.abort()
                    return
                self.connect_seconds.append(time.perf_counter() - began)
                self.clients.append(client)

        started = time.perf_counter()
        await asyncio.gather(*(open_one(index, client_id, token) for index, (client_id, token) in enumerate(tokens)))
        return time.perf_counter() - started

    def _fail(self, reason: str) -> None:
        self.failures += 1
        self.failure_reasons[reason] += 1

    def close_all(self) -> None:
        for client in self.clients:
            client.abort()
        self.clients.clear()
