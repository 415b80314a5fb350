"""A response's head and first body leave as one socket write (channel_app.one_write).

These drive uvicorn's own request cycle (the httptools protocol's
`RequestResponseCycle`, whose `send` frames HTTP/1.1) over a transport that
records each write, since a real socket would not tell two writes from one.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from channel_app.event_stream import EventStreamResponse
from channel_app.metrics import Tally
from channel_app.responses import JSONBody, error_response
from channel_app.server_connection import remember_server_send
from sse.registry import CLIENT_CLOSED, Connection

pytestmark = pytest.mark.anyio


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return default


def uvicorn_request(method: str = "PUT", keep_alive: bool = True) -> tuple[dict, RequestResponseCycle, RecordingTransport]:
    transport = RecordingTransport()
    scope = {"type": "http", "method": method, "path": "/functions", "http_version": "1.1", "headers": []}
    log = logging.getLogger("test.one_write")
    cycle = RequestResponseCycle(
        scope, transport, FlowControl(transport), log, log, False, [], asyncio.Event(), False, keep_alive, lambda: None
    )
    remember_server_send(scope, cycle.send)  # as PushApp does for every request
    return scope, cycle, transport


async def never_disconnects() -> dict:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def test_a_json_answer_is_one_write_of_head_and_body() -> None:
    scope, cycle, transport = uvicorn_request()

    await JSONBody({"result": {"message": "sent"}})(scope, never_disconnects, cycle.send)

    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 29" in head
    assert body == b'{"result":{"message":"sent"}}'
    assert cycle.transport is transport and cycle.response_complete


async def test_an_answer_that_ends_the_connection_is_written_before_the_close() -> None:
    scope, cycle, transport = uvicorn_request(keep_alive=False)

    await error_response(400, "INVALID_JSON", "the request body is not valid JSON")(scope, never_disconnects, cycle.send)

    assert len(transport.writes) == 1 and transport.writes[0].endswith(b'valid JSON"}}')
    assert transport.closed


async def test_nothing_is_written_for_a_client_gone_before_the_answer_leaves() -> None:
    scope, cycle, transport = uvicorn_request()
    transport.closed = True

    await JSONBody({"result": {}})(scope, never_disconnects, cycle.send)

    assert transport.writes == []


async def test_a_stream_sends_its_head_and_opening_frames_in_one_write_then_frames_as_they_come() -> None:
    scope, cycle, transport = uvicorn_request(method="GET")
    connection = Connection("c1", "visitor", queue_size=4)
    opening = [b"retry: 3000\n\n", b"id: 1-0\nevent: connected\ndata: {}\n\n"]
    stream = EventStreamResponse(connection, opening, [(b"content-type", b"text/event-stream")], lambda _: None, Tally())
    task = asyncio.create_task(stream(scope, never_disconnects, cycle.send))
    while connection.write_now is None:
        await asyncio.sleep(0)

    assert len(transport.writes) == 1
    head, _, first_chunk = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
    assert first_chunk == b"%x\r\n%b\r\n" % (len(b"".join(opening)), b"".join(opening))

    assert connection.offer(b"data: later\n\n")  # written by the publisher, to the socket's own transport
    assert transport.writes[1] == b"d\r\ndata: later\n\n\r\n"
    assert cycle.transport is transport

    connection.close(CLIENT_CLOSED)
    await asyncio.wait_for(task, 5)
