"""Under our uvicorn protocol an open stream costs one task, its request's own,
and is still closed the moment its client goes (channel_app/event_stream.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket

import anyio
import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.http import connected_stream
from tests.support.server import run_server

pytestmark = pytest.mark.anyio

STREAMS = 5


@pytest.fixture
def server():
    # Heartbeats far apart: a lost stream must be noticed without a write to it.
    with run_server(make_app(heartbeat_seconds=300, max_connections_per_client=STREAMS)) as running:
        yield running


def tasks_in_server_loop(server) -> int:
    counted: concurrent.futures.Future[int] = concurrent.futures.Future()
    server.call_in_server_loop(lambda: counted.set_result(len(asyncio.all_tasks(server.loop))))
    return counted.result(timeout=5)


async def open_connections(server) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/sse/status")).json()["connections"]


async def test_an_open_stream_runs_no_task_besides_its_request(server):
    before = tasks_in_server_loop(server)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http, contextlib.AsyncExitStack() as streams:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        for _ in range(STREAMS):
            await streams.enter_async_context(connected_stream(http, params))
        with_streams = tasks_in_server_loop(server)
    assert with_streams - before == STREAMS


async def test_a_client_that_closes_its_socket_is_unregistered_at_once(server):
    host, port = server.url.removeprefix("http://").split(":")
    request = (
        f"GET /sse/connect?clientId=visitor&token={client_token('visitor')} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(request)
        received = b""
        while b"event: connected" not in received:
            received += client.recv(65536)
        assert await open_connections(server) == 1
    with anyio.fail_after(2):
        while await open_connections(server) != 0:
            await anyio.sleep(0.02)
