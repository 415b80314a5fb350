"""uvicorn's httptools protocol as this service runs it (`uvicorn.Config(http=ServiceHttpProtocol)`).

On top of the request-head cap (channel_app/header_limit.py) it releases
requests still queued behind the current one when the connection is lost.
uvicorn never starts them then, but each keeps the protocol through its
`on_response` callback while the protocol's pipeline keeps them: a reference
cycle per such connection, which only the cyclic collector could free. Under
our garbage policy (channel_app/garbage.py) that waited for the next thaw,
and a client pipelining hundreds of requests per connection and closing grew
memory by 179 MB over 1,000 connections (review reproduction).

It also tells the request it was serving that the connection is gone
(`server_connection.report_connection_lost`): an open stream is closed then,
without a task of its own waiting on `receive()` for `http.disconnect`. That
is the request running, not only the newest: uvicorn keeps no reference to a
request once another is pipelined behind it, so the pipelined one carries it
in its scope (REQUEST_AHEAD). Before, a stream with a request pipelined behind
it stayed registered until its next heartbeat found the socket closed. Behind
a stream, reading goes on for up to MAX_READ_BEHIND_STREAM pipelined requests
(uvicorn stops reading at the first), or the close would go unseen.

A request the parser refuses (an unknown method, a bad Content-Length or
chunk size, Content-Length with Transfer-Encoding) gets the service's JSON
error object, where uvicorn answers in plain text. So do three the parser lets
through: a request asking for a protocol upgrade (`_asks_upgrade`), an HTTP
version other than 1.0 and 1.1 (`HTTP/2.0` over HTTP/1, or HTTP/0.9's bare
request line), and an HTTP/1.1 request without `Host`, or any with two, which
RFC 9112 3.2 says a server must refuse with 400.
Pipelined behind requests not yet answered, that 400 waits for their answers
and follows them in order (uvicorn wrote it at once and closed, so a call
ahead of it, its event already sent, lost its answer); what arrives after it
is dropped unparsed.

No instance attributes are added (see header_limit.py on why that matters).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from channel_app.header_limit import HeaderLimitedProtocol
from channel_app.responses import closing_error_response
from channel_app.server_connection import LOST_HOOK, report_connection_lost


class NotHttp11(Exception):
    pass


REQUEST_AHEAD = "channel_push.request_ahead"  # scope key of a pipelined request: the request running ahead of it
MAX_READ_BEHIND_STREAM = 4  # pipelined requests behind a stream while reading goes on


def _no_response_callback() -> None:
    pass


class ServiceHttpProtocol(HeaderLimitedProtocol):
    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        hosts = sum(1 for name, _ in self.headers if name == b"host")
        if version not in ("1.1", "1.0") or hosts > 1 or (version == "1.1" and not hosts) or _asks_upgrade(self.headers):
            raise NotHttp11(version)  # the parser raises it on as HttpParserError: uvicorn calls send_400_response
        running = self.cycle
        super().on_headers_complete()
        if running is not None and not running.response_complete and self.pipeline and self.pipeline[0][0] is self.cycle:
            self.cycle.scope[REQUEST_AHEAD] = running  # type: ignore[typeddict-unknown-key]
            stream = self.pipeline[-1][0].scope.get(REQUEST_AHEAD)  # the request ahead of the oldest pipelined one
            if stream is not None and LOST_HOOK in stream.scope and len(self.pipeline) <= MAX_READ_BEHIND_STREAM:
                # uvicorn stops reading when a request is pipelined; behind a stream that
                # would hide the client's close until a heartbeat write failed (review
                # reproduction: 15-38 s registered). A few requests' worth keeps reading.
                self.flow.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        current = self.cycle
        running = self.pipeline[-1][0].scope.get(REQUEST_AHEAD) if self.pipeline else None
        super().connection_lost(exc)
        for cycle, _app in self.pipeline:
            cycle.on_response = _no_response_callback
        self.pipeline.clear()
        if current is not None and current.disconnected:
            report_connection_lost(current)
        if running is not None and not running.response_complete:
            running.disconnected = True  # as uvicorn marks the newest: send returns quietly, receive says disconnect
            running.message_event.set()
            report_connection_lost(running)

    def data_received(self, data: bytes) -> None:
        if _refusal_waiting(self.cycle):
            return
        super().data_received(data)


    def send_400_response(self, msg: str) -> None:
        refused = self.cycle
        if refused is not None and refused.more_body and self.pipeline and self.pipeline[0][0] is refused:
            # A pipelined request refused for its body (a bad chunk size): it never runs,
            # and its 400 follows the requests ahead of it, the newest of which becomes
            # the connection's latest request again.
            self.pipeline.popleft()
            refused.on_response = _no_response_callback
            self.cycle = refused.scope.get(REQUEST_AHEAD)
        last_ahead = self.cycle  # the newest request parsed whole: every other one ahead is answered before it
        reason = UPGRADE_REFUSED if _asks_upgrade(self.headers) else NOT_HTTP11
        if last_ahead is None or last_ahead.response_complete or last_ahead.more_body:
            _refuse(self.transport, reason)  # nothing ahead, or this is the running request whose body was arriving
        elif not _refusal_waiting(last_ahead):
            self._head_bytes = None  # no head timer: the refused head is not coming
            last_ahead.on_response = partial(_refuse_after, last_ahead, last_ahead.on_response, reason)


NOT_HTTP11 = "the request is not valid HTTP/1.1"
UPGRADE_REFUSED = "this service speaks HTTP/1.1 only: send the request without Upgrade (no WebSocket, no h2c)"


def _asks_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request asks for another protocol (`Connection: upgrade` with `Upgrade`).
    The parser would hand everything after its head to that protocol, which this service
    does not have: a signed call's body was dropped and it was answered 401 (review
    reproduction: `curl --http2` on http sends `Upgrade: h2c`). So it is refused, saying why."""
    if not any(name == b"upgrade" for name, _ in headers):
        return False
    return any(name == b"connection" and b"upgrade" in value.lower() for name, value in headers)


def _refuse(transport, reason: str = NOT_HTTP11) -> None:
    transport.write(closing_error_response(b"400 Bad Request", "BAD_REQUEST", reason))
    transport.close()


def _refuse_after(cycle, on_response: Callable[[], None], reason: str = NOT_HTTP11) -> None:
    on_response()
    # The cycle's transport: its answer may still be held there (channel_app/one_write.py).
    if cycle.keep_alive and not cycle.transport.is_closing():  # else the request ahead asked to close
        _refuse(cycle.transport, reason)


def _refusal_waiting(cycle: object) -> bool:
    on_response = getattr(cycle, "on_response", None)
    return isinstance(on_response, partial) and on_response.func is _refuse_after


def reports_lost_connections(cycle: object) -> bool:
    """Whether `cycle` (uvicorn's request cycle) belongs to this protocol, which calls
    `report_connection_lost` for it when its connection is gone."""
    return isinstance(getattr(getattr(cycle, "on_response", None), "__self__", None), ServiceHttpProtocol)
