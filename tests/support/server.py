"""A real uvicorn server on a free loopback port, inside the test process.

Streaming endpoints must be tested over a socket: httpx's ASGITransport
buffers whole bodies, so an endless SSE response would hang there.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import uvicorn
import uvloop
from starlette.applications import Starlette

from channel_app.http_protocol import ServiceHttpProtocol
from channel_app.server import DrainingServer


@dataclass
class RunningServer:
    app: Starlette
    url: str
    server: uvicorn.Server
    loop: asyncio.AbstractEventLoop

    def call_in_server_loop(self, callback, *args) -> None:
        self.loop.call_soon_threadsafe(callback, *args)


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


@contextmanager
def run_server(
    app: Starlette, grace_seconds: float = 2.0, port: int = 0, sock: socket.socket | None = None, upkeep: Sequence[Callable] = ()
) -> Iterator[RunningServer]:
    """`port=0` picks a free one; a fixed port lets a test restart "the same" server.
    `sock` (from `free_socket()`) is a port already held: a port number that was
    free when picked can be taken by another socket before the server binds it."""
    sock = sock if sock is not None else free_socket(port)
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=grace_seconds, lifespan="on", http=ServiceHttpProtocol, ws="none"
    )
    server = DrainingServer(config, app.state.lifecycle, upkeep)
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = uvloop.new_event_loop()  # as in production (channel_app/run.py): uvloop differs from asyncio on closed transports
        loops.append(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))
        loop.close()

    thread = threading.Thread(target=serve, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield RunningServer(app, f"http://{host}:{port}", server, loops[0])
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
