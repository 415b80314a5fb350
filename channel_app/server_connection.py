"""Reaching the server's connection behind an ASGI request, which ASGI does not offer.

uvicorn's `send` is a bound method of its request cycle, and the cycle holds
the connection's transport and flow control. `PushApp` keeps the server's own
`send` in the scope of every HTTP request (before any wrapper), so the app can
find the cycle again: to reset a stalled socket (`socket_abort`), to write
frames at publish time (`immediate_writes`), to notice a connection that is
gone when uvicorn does not say so (`lost_connection_guard`) and to be told
of a lost connection without waiting on `receive()` (`report_connection_lost`).
Under another server there is no such cycle and all of these fall back to
plain ASGI.
"""

from __future__ import annotations

from typing import Awaitable

from starlette.types import Message, Scope, Send
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttptoolsCycle

SERVER_SEND = "channel_push.server_send"  # scope key: the server's own `send`, set by PushApp
LOST_HOOK = "channel_push.on_connection_lost"  # scope key: called when the request's connection is found gone


def remember_server_send(scope: Scope, send: Send) -> None:
    scope[SERVER_SEND] = send


def forget_server_send(scope: Scope) -> None:
    """Call once the request is answered. The cycle holds the scope, so while the
    scope holds the cycle's `send` the two form a reference cycle: every request's
    scope, headers and cycle would be left to the cyclic garbage collector instead
    of being freed at once (measured: 11 objects per call, and with 10,000 streams
    held, gen-0 passes of ~100 ms)."""
    scope.pop(SERVER_SEND, None)


def request_cycle(scope: Scope) -> object | None:
    """The object whose method the server's `send` is (uvicorn's RequestResponseCycle), if any."""
    return getattr(scope.get(SERVER_SEND), "__self__", None)


def httptools_cycle(scope: Scope) -> HttptoolsCycle | None:
    """The request's cycle when the server is uvicorn's httptools protocol, the one
    whose transport, flow control and disconnect flags this package relies on."""
    cycle = request_cycle(scope)
    return cycle if isinstance(cycle, HttptoolsCycle) else None


def report_connection_lost(cycle: HttptoolsCycle) -> None:
    """Call the hook a request left in its scope under LOST_HOOK, if any: its
    connection is gone. A stream leaves one instead of keeping a task waiting on
    `receive()` for `http.disconnect` (channel_app/event_stream.py). Called by
    ServiceHttpProtocol.connection_lost for the request uvicorn tells, and by the
    guard below for an older one it does not."""
    hook = cycle.scope.get(LOST_HOOK)
    if hook is not None:
        hook()


def lost_connection_guard(scope: Scope, send: Send) -> Send:
    """`send`, made to notice a connection uvicorn does not report lost.

    uvicorn tells only the newest request on a connection that the connection
    is gone. When a client pipelines another request behind a stream (or a
    slow call) and then leaves, the older request's `receive` never returns
    `http.disconnect`, and under uvloop its next `send` raises on the closed
    transport: a traceback for a client that merely left, and until then a
    stream that counts as open. Before each message the guard does for its
    request what uvicorn's `connection_lost` does for the newest one: it marks
    the request disconnected, so `send` returns quietly and `receive` says
    `http.disconnect`. Under another server `send` is returned as is."""
    cycle = httptools_cycle(scope)
    return send if cycle is None else LostConnectionGuard(cycle, send)


class LostConnectionGuard:
    # A slotted object rather than a closure: a stream holds its send for as long
    # as it lasts, and this is a third of a closure's size per connection.
    __slots__ = ("_cycle", "_send")

    def __init__(self, cycle: HttptoolsCycle, send: Send) -> None:
        self._cycle = cycle
        self._send = send

    def __call__(self, message: Message) -> Awaitable[None]:
        cycle = self._cycle
        if not cycle.disconnected and cycle.transport.is_closing():
            # What uvicorn's connection_lost does for the newest request on a connection.
            cycle.disconnected = True
            cycle.message_event.set()
            report_connection_lost(cycle)
        return self._send(message)
