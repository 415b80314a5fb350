"""Frames written to an idle stream at publish time (channel_app.immediate_writes), against a real uvicorn."""

from __future__ import annotations

import asyncio
import socket

import pytest

from channel_app.immediate_writes import immediate_writer
from channel_app.metrics import Tally
from channel_app.server_connection import SERVER_SEND
from sse.events import HEARTBEAT_FRAME, Event
from sse.registry import Connection
from tests.support.apps import client_token, make_app
from tests.support.http import open_stream
from tests.support.server import run_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


async def in_server_loop(server, coroutine):
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, server.loop))


async def publish_all(services, client_id: str, events: list[Event]) -> None:
    # One coroutine, no await between deliveries that could let the writer run.
    for event in events:
        await services.sse.publish(client_id, event)


async def test_events_for_an_idle_stream_are_written_by_the_publisher_and_arrive_whole_in_order():
    app = make_app()
    with run_server(app) as server:
        services = app.state.services
        async with open_stream(server.url, "visitor") as (reader, _):
            events = [Event("notification", {"message": f"m{n}"}) for n in range(200)]
            await in_server_loop(server, publish_all(services, "visitor", events))
            received = [await reader.next_event() for _ in events]
    assert [event.data["message"] for event in received] == [f"m{n}" for n in range(200)]
    assert services.metrics.written_at_publish.count == 200


async def test_once_uvicorn_pauses_writing_frames_take_the_queue_and_keep_their_order():
    app = make_app(connection_queue_size=1000)
    blob = "x" * 4_000_000  # more than both sockets buffer: uvicorn pauses writing behind it
    with run_server(app) as server:
        services = app.state.services
        async with open_stream(server.url, "visitor") as (reader, _):
            events = [Event("notification", {"message": f"m{n}", "blob": blob if n % 10 == 0 else ""}) for n in range(40)]
            await in_server_loop(server, publish_all(services, "visitor", events))
            received = [await reader.next_event() for _ in events]
    assert [event.data["message"] for event in received] == [f"m{n}" for n in range(40)]
    assert 0 < services.metrics.written_at_publish.count < 40


def test_there_is_no_immediate_writer_without_uvicorns_request_cycle():
    async def plain_send(message) -> None:
        return None

    connection = Connection("c1", "visitor", queue_size=4)
    assert immediate_writer({}, Tally(), connection) is None
    assert immediate_writer({SERVER_SEND: plain_send}, Tally(), connection) is None


def test_an_empty_frame_for_an_idle_stream_writes_nothing_rather_than_ending_its_body():
    """The Redis broker hands whatever arrives on its broadcast channel to every
    stream; a zero-length chunk would be the chunked body's terminator, after
    which every later frame reads as garbage to the browser."""
    app = make_app()
    with run_server(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(5)
            sock.sendall(b"GET /sse/connect?clientId=visitor&token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % client_token("visitor").encode())
            received = _read_until(sock, b"event: connected", b"")
            received = _read_until(sock, b"\n\n\r\n", received)
            registry = app.state.services.broker.registry
            wait_until(lambda: all(connection.pending == 0 for connection in registry.connections()))

            def publish() -> None:
                registry.deliver_all(b"")
                registry.deliver_all(HEARTBEAT_FRAME)

            server.call_in_server_loop(publish)
            after = _read_until(sock, HEARTBEAT_FRAME, b"")
    assert after == b"%x\r\n%s\r\n" % (len(HEARTBEAT_FRAME), HEARTBEAT_FRAME)


def _read_until(sock: socket.socket, marker: bytes, received: bytes) -> bytes:
    while marker not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received
