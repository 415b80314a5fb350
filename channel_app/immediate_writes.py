"""Writing a frame to an idle stream's socket at publish time.

A stream's writer task takes frames from its connection's queue and sends
them through the ASGI `send` chain. For a stream with nothing queued and no
write in flight, that costs a future, a task wake-up and a resume of the
request's whole chain of suspended coroutines for every frame: in a
broadcast to 10,000 streams, more than half of the server's CPU per delivery
(py-spy under `python -m bench`, see the commit message). So while the
writer waits idle, `Connection.offer` hands the frame to the function made
here, which writes it to the transport at once, framed as uvicorn frames the
other chunks of this response (HTTP/1.1 chunked encoding).

The function refuses, and the frame takes the queue as before, when uvicorn
has paused writing (the transport's buffer is over its high-water mark: the
writer's `send` then waits for room, and the stall sweep watches that wait),
when the client is gone (then it closes the stream's connection first, so
the frame counts as undelivered), or when the write raises. Only uvicorn's httptools protocol is known here; under
any other server, or for a response that is not chunked, there is no
immediate writer and every frame takes the queue.
"""

from __future__ import annotations

from typing import Callable

from starlette.types import Scope

from channel_app.metrics import Tally
from channel_app.server_connection import httptools_cycle
from sse.registry import CLIENT_CLOSED, Connection

ImmediateWriter = Callable[[bytes, bool], bool]  # (frame, counted) -> written


def immediate_writer(scope: Scope, tally: Tally, connection: Connection) -> ImmediateWriter | None:
    """For a response whose headers uvicorn has sent: a function that writes one
    frame now and says whether it did. `counted` frames are added to `tally`.
    Finding the client gone, it closes `connection` before refusing, so the
    frame counts as undelivered even where uvicorn has not reported the loss
    to this request."""
    cycle = httptools_cycle(scope)
    if cycle is None or cycle.chunked_encoding is not True:
        return None
    transport = cycle.transport
    flow = cycle.flow

    def write_now(frame: bytes, counted: bool) -> bool:
        if not frame:
            # As uvicorn's `send` does with an empty body: a zero-length chunk is the
            # end of a chunked body, and must never be written mid-stream.
            return True
        if cycle.disconnected or transport.is_closing():
            connection.close(CLIENT_CLOSED)
            return False
        if flow.write_paused or cycle.response_complete:
            return False
        try:
            transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))
        except (OSError, RuntimeError):  # uvloop raises RuntimeError on a closed handle
            return False
        if counted:
            tally.count += 1
        return True

    return write_now
