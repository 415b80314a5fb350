"""Signed Channel function calls over keep-alive HTTP/1.1 connections.

One `CallConnection` carries one call at a time (no pipelining), like an HTTP
client with a connection pool; the harness opens several in parallel. The
send time of a call is taken just before its bytes are written.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from bench.processes import REDIRECT_HOST
from security.signature import sign

CHANNEL_CONTEXT = {"channel": {"id": "bench-channel"}, "caller": {"type": "app", "id": "alf"}}


class CallFailed(Exception):
    pass


class CallFactory:
    """Whole HTTP requests for `redirectClient` and `broadcast`, signed as Channel signs them."""

    def __init__(self, host: str, port: int, signing_key: bytes | None) -> None:
        self._prefix = f"PUT /functions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
        self._key = signing_key

    def redirect(self, client_id: str, seq: int) -> bytes:
        return self._request("redirectClient", {"clientId": client_id, "url": redirect_url(seq)})

    def broadcast(self, seq: int) -> bytes:
        return self._request("broadcast", {"message": f"Sale starts now seq={seq}", "title": "bench"})

    def _request(self, method: str, inputs: dict) -> bytes:
        body = call_body(method, inputs)
        signature = b"X-Signature: %s\r\n" % sign(body, self._key).encode() if self._key else b""
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (self._prefix, signature, len(body), body)


def call_body(method: str, inputs: dict) -> bytes:
    return orjson.dumps(
        {
            "method": method,
            "params": {"chat": {"type": "userChat", "id": "bench-chat"}, "input": inputs, "language": "ko"},
            "context": CHANNEL_CONTEXT,
        }
    )


def redirect_url(seq: int) -> str:
    return f"https://{REDIRECT_HOST}/products/{seq % 1000}?seq={seq}"


class CallConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def call(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send one request; the future gives (status, body)."""
        assert self._waiter is None and self.transport is not None, "one call at a time"
        self._waiter = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).lower()
        length_at = head.find(b"content-length:")
        if length_at < 0:
            self._finish(CallFailed("response without content-length"))
            return
        length = int(head[length_at + 15 :].split(b"\r\n", 1)[0])
        if len(self._buffer) < end + 4 + length:
            return
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        status = int(self._buffer[9:12])
        del self._buffer[: end + 4 + length]
        self._finish((status, body))

    def _finish(self, outcome: tuple[int, bytes] | Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(CallFailed(f"connection lost: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_callers(host: str, port: int, count: int) -> list[CallConnection]:
    loop = asyncio.get_running_loop()
    opened = await asyncio.gather(*(loop.create_connection(CallConnection, host, port) for _ in range(count)))
    return [protocol for _, protocol in opened]


def accepted(status: int, body: bytes) -> bool:
    """HTTP 200 with a `result` (not a function-level `error`)."""
    return status == 200 and body.startswith(b'{"result"')
