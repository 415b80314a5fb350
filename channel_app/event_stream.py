"""The SSE response: pre-encoded frames from a connection's buffer to the socket.

Why not sse-starlette's `EventSourceResponse`: it starts a task group with
three tasks per stream (writer, disconnect listener, shutdown listener), a
process-wide shutdown watcher, and an anyio cancel scope around every send.
Measured with `python -m bench` at 3,000 streams, replacing it (together
with the deque queue in sse.registry) took RSS per idle connection from 45 to
24 KB and server CPU per delivery from 51 to 29 us. Our frames are already
encoded, heartbeats come from one shared loop and shutdown is driven by our
own lifespan, so this response needs only:

- the request's own task, which writes whatever is queued in one write (a
  frame published while it waits idle is written at once by the publisher,
  `channel_app.immediate_writes`);
- a hook in the request's scope that closes the connection when the server
  finds it gone, which ends the writer: our uvicorn protocol calls it from
  `connection_lost`, and `PushApp`'s send guard when uvicorn did not tell this
  request (`channel_app.server_connection`). Measured against the small task
  per stream that waited on `receive()` for `http.disconnect` instead
  (hold-only runs of 10,000, five alternating pairs): 17.34 -> 16.14 KB per
  connection; CPU per connect within this host's noise. That task is still
  what watches a stream under any other server, or one whose request body is
  still arriving or unread (the task reads and drops it, as before).

A write that blocks longer than SEND_TIMEOUT_SECONDS (the client stopped
reading) is found by one process-wide sweep (`channel_app.stalls`), not by a
timer around every write: the sweep closes the connection as a slow client
and cancels the writer with STALLED_WRITE, and the writer aborts the socket
(`channel_app.socket_abort`: a graceful close would wait forever for a peer
that no longer reads).
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Callable, Iterable, Mapping

from starlette.types import Message, Receive, Scope, Send

from channel_app.http_protocol import reports_lost_connections
from channel_app.immediate_writes import immediate_writer
from channel_app.metrics import Tally
from channel_app.one_write import OneWrite
from channel_app.server_connection import LOST_HOOK, httptools_cycle
from channel_app.socket_abort import abort_socket
from sse.registry import CLIENT_CLOSED, STALLED_WRITE, Connection

BASE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"x-accel-buffering", b"no"),
)


def raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    names = {name for name, _ in extra}
    return [*extra, *(pair for pair in BASE_HEADERS if pair[0] not in names)]


class EventStreamResponse:
    def __init__(
        self,
        connection: Connection,
        opening: Iterable[bytes],
        headers: list[tuple[bytes, bytes]],
        frame_written: Callable[[float], None],
        written_at_publish: Tally,
    ) -> None:
        self._connection = connection
        self._opening = b"".join(opening)
        self._headers = headers
        self._frame_written = frame_written  # metrics: seconds from publish to write, sampled
        self._written_at_publish = written_at_publish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = self._connection
        connection.writer = asyncio.current_task()
        watcher = _watch_for_disconnect(scope, receive, connection)
        try:
            with OneWrite(scope):  # the head and the opening frames: one write, one segment
                await self._write(send, {"type": "http.response.start", "status": 200, "headers": self._headers})
                await self._write(send, {"type": "http.response.body", "body": self._opening, "more_body": True})
            self._opening = b""
            # After the block: the immediate writer keeps the transport it finds.
            connection.write_now = immediate_writer(scope, self._written_at_publish, connection)
            chunk = await connection.next_frames()
            while chunk is not None:
                await self._write(send, {"type": "http.response.body", "body": chunk, "more_body": True})
                if (latency := connection.written(chunk)) is not None:
                    self._frame_written(latency)
                chunk = await connection.next_frames()
            await self._write(send, {"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError as cancelled:
            if STALLED_WRITE not in cancelled.args:
                raise
            # Cancelled as stalled (a full queue, or the sweep, whatever the connection
            # was closed for: slow client, or a drain that found it stuck): end quietly,
            # socket dropped.
            asyncio.current_task().uncancel()
            if abort_socket(scope):
                await asyncio.sleep(0)  # uvicorn hears of the lost connection before we return
        finally:
            connection.writer = None
            connection.write_now = None
            scope.pop(LOST_HOOK, None)
            if watcher is not None:
                watcher.cancel()

    async def _write(self, send: Send, message: Message) -> None:
        connection = self._connection
        connection.writing_since = time.monotonic()
        try:
            await send(message)
        finally:
            connection.writing_since = 0.0


def _watch_for_disconnect(scope: Scope, receive: Receive, connection: Connection) -> asyncio.Task | None:
    """Close `connection` when its client is gone: through the scope hook under our
    uvicorn protocol (no task), else with a task waiting on `receive()`."""
    cycle = httptools_cycle(scope)
    if cycle is None or not reports_lost_connections(cycle) or cycle.more_body or cycle.body:
        return asyncio.get_running_loop().create_task(_close_on_disconnect(receive, connection))
    scope[LOST_HOOK] = partial(connection.close, CLIENT_CLOSED)
    if cycle.disconnected:  # gone before the stream started
        connection.close(CLIENT_CLOSED)
    # As `receive()` does: uvicorn stops reading while a request is pipelined behind
    # this one, and only reading finds the client's close.
    cycle.flow.resume_reading()
    return None


async def _close_on_disconnect(receive: Receive, connection: Connection) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    connection.close(CLIENT_CLOSED)
