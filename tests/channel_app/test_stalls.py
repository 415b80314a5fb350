"""The stall sweep: a stream whose write blocks longer than the send timeout is dropped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from channel_app.stalls import drop_stalled_writers
from sse.events import Event
from sse.registry import ConnectionRegistry, RegistryLimits
from tests.support.apps import client_token, make_app
from tests.support.server import run_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


async def test_write_blocked_longer_than_the_timeout_drops_that_client_only():
    registry = ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=4))
    async with registry.open("stuck") as stuck, registry.open("reading") as reading:
        writers = [asyncio.create_task(asyncio.sleep(60)) for _ in range(2)]
        stuck.writer, reading.writer = writers
        stuck.writing_since = 100.0
        reading.writing_since = 109.5
        assert drop_stalled_writers(registry, send_timeout=5.0, now=110.0) == 1
        await asyncio.sleep(0)
        assert stuck.close_reason == "slow_client" and writers[0].cancelled()
        assert reading.close_reason is None and not writers[1].done()
        writers[1].cancel()


async def test_idle_streams_are_never_dropped_by_the_sweep():
    registry = ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=4))
    async with registry.open("idle") as idle:
        idle.writer = asyncio.create_task(asyncio.sleep(60))
        assert drop_stalled_writers(registry, send_timeout=5.0, now=1e9) == 0
        assert idle.close_reason is None
        idle.writer.cancel()


def test_a_client_that_stopped_reading_loses_its_socket_not_just_its_registration():
    """A hostile or broken client that never reads: dropping it from the registry is not
    enough, since a graceful close waits for the peer to read what is queued. The socket
    (a file descriptor and megabytes of kernel buffer each) stayed open until the client
    left, outside every connection cap."""
    _stall_clients_and_see_them_dropped(make_app(send_timeout_seconds=1, max_connections_per_client=5), clients=3, blobs=30, within=10)


def _stalled_stream(port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = f"GET /sse/connect?clientId={client_id}&token={client_token(client_id)} HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request.encode())
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    return sock  # and never read again


def _server_sockets(port: int) -> int:
    """Sockets whose local end is the server's port, other than the listener and TIME_WAIT."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state = int(fields[1].rsplit(":", 1)[1], 16), fields[3]
            if local_port == port and state not in ("0A", "06"):
                count += 1
    return count


def test_a_client_dropped_for_a_full_queue_is_gone_at_once_not_at_the_send_timeout():
    """Its writer was left blocked until the stall sweep: for up to SEND_TIMEOUT_SECONDS
    (here 60 s) the dropped client still counted in getClientStatus and the tab cap."""
    _stall_clients_and_see_them_dropped(make_app(send_timeout_seconds=60, connection_queue_size=4), clients=1, blobs=12, within=5)


def test_a_client_dropped_for_a_full_queue_while_its_writer_was_idle_is_gone_at_once():
    """Review reproduction: the publisher's own write filled the socket while the writer
    waited idle, the frames after it in the same turn of the loop filled the queue, and
    the idle writer was not stopped: it blocked in its last write until the sweep."""
    app = make_app(send_timeout_seconds=60, connection_queue_size=4)
    with run_server(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stalled = _stalled_stream(port, "slow")
        try:
            wait_until(lambda: _server_sockets(port) == 1)
            services = app.state.services

            async def blob_then_small_ones() -> None:  # no await gives the writer a turn in between
                await services.sse.publish("slow", Event("notification", {"blob": "x" * 4_000_000}))
                for n in range(10):
                    await services.sse.publish("slow", Event("notification", {"n": n}))

            asyncio.run_coroutine_threadsafe(blob_then_small_ones(), server.loop).result(timeout=10)
            wait_until(lambda: services.broker.registry.connection_total == 0, timeout=5)
            wait_until(lambda: _server_sockets(port) == 0, timeout=5)
        finally:
            stalled.close()


def _stall_clients_and_see_them_dropped(app, clients: int, blobs: int, within: float) -> None:
    """`clients` streams of one clientId that never read, then `blobs` 1 MB events to it:
    all are unregistered within `within` seconds, and their sockets gone soon after."""
    with run_server(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stalled = [_stalled_stream(port, "slow") for _ in range(clients)]
        try:
            wait_until(lambda: _server_sockets(port) == clients)
            services = app.state.services
            blob = Event("notification", {"blob": "x" * 1_000_000})
            for _ in range(blobs):
                asyncio.run_coroutine_threadsafe(services.sse.publish("slow", blob), server.loop).result(timeout=10)
            wait_until(lambda: services.broker.registry.connection_total == 0, timeout=within)
            wait_until(lambda: _server_sockets(port) == 0, timeout=5)
        finally:
            for client in stalled:
                client.close()
