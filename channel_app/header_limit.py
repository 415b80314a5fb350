"""uvicorn's httptools protocol with a limit on the size of a request's head.

uvicorn sets no limit on the request line and headers under httptools: the
parser buffers a header value of any length, and a client needs no
credentials to send one. Measured against this service: a 16 MB header was
answered 200, ten unfinished 20 MB headers took the server from 67 to 310 MB,
and parsing one held the event loop (every stream) for up to 450 ms. This
protocol counts the bytes received while a request's head is incomplete and,
once they pass MAX_REQUEST_HEAD_BYTES without the head's blank line within
the limit, answers 431 with a JSON error and closes the connection, without
parsing the read that crossed it. Bodies are not counted (MAX_BODY_BYTES covers them).
The count is per read, not per header: a head can still pass the limit by up
to one read (uvloop reads at most 256 KB) when the read that crosses it
starts at a line break, or carries a small complete request ahead of the big
one. What the cap protects, memory and the loop's time, stays bounded; an
exact cap would count bytes in the parser's callbacks (on_url, on_header).

A head must also arrive within HEAD_TIMEOUT_SECONDS of its first byte (of the
connection's opening, for its first request): uvicorn starts no timer until a
response is complete, so a connection that sent nothing, or trickled an
unfinished head, stayed open for good (review reproduction: 200 of them held
200 descriptors and 12.5 MB for over a minute, uncounted by MAX_CONNECTIONS,
which counts streams). Such a connection is closed, with a JSON 408 when part
of a head came. The timer is uvicorn's keep-alive handle, which is idle while
a head is being read: no attribute is added. A head still arriving when the
previous response completes gets uvicorn's keep-alive timeout instead. So
does the rest of the body of a request answered before it all arrived: it
may come until then, and the connection closes if it has not.

The service runs it as part of channel_app/http_protocol.ServiceHttpProtocol.
Behind a proxy with its own header limits this changes nothing.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from channel_app.responses import closing_error_response

MAX_REQUEST_HEAD_BYTES = 64 * 1024  # request line and headers; nginx's default cap is 32 KB
HEAD_TIMEOUT_SECONDS = 10.0  # as BODY_TIMEOUT_SECONDS's default; nginx's client_header_timeout is 60 s


def head_too_large_response() -> bytes:
    message = f"request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes"
    return closing_error_response(b"431 Request Header Fields Too Large", "HEADERS_TOO_LARGE", message)


def head_timeout_response() -> bytes:
    message = f"the request line and headers did not arrive within {HEAD_TIMEOUT_SECONDS:g} seconds"
    return closing_error_response(b"408 Request Timeout", "REQUEST_TIMEOUT", message)


def _head_ends_within(data: bytes, room: int) -> bool:
    """Whether the head's blank line ends within the first `room` bytes of this read.
    A read that starts with the rest of a blank line split across reads counts as
    ending it (at most 3 bytes past the limit)."""
    return data.startswith((b"\n", b"\r\n", b"\n\r\n")) or data.find(b"\r\n\r\n", 0, room) != -1


class HeaderLimitedProtocol(HttpToolsProtocol):
    # One attribute, not three: a 28th instance attribute keeps the instance dict
    # key-shared (about 300 bytes); a 30th turned it into a 1.6 KB dict on every
    # connection (bench: 18.7 -> 20.7 KB per idle stream).
    _head_bytes: int | None = 0  # bytes of the current request's head so far; None once it is complete

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused, or gone
        timer = self.timeout_keep_alive_task  # uvicorn cancels it on every read: deadlines are kept here
        now = self.loop.time()
        answered = self._answered_before_its_body()
        # The rest of an answered request's body (a route that did not read it) may come
        # until the keep-alive deadline its answer set: it could otherwise trickle in
        # forever (review reproduction: a 100 MB Content-Length on /healthz, a byte every 3 s).
        body_deadline = timer.when() if answered and timer is not None else now + HEAD_TIMEOUT_SECONDS
        # A head under way keeps its deadline; a head that starts now gets a new one.
        head_deadline = timer.when() if self._head_bytes and timer is not None else now + HEAD_TIMEOUT_SECONDS
        if self._head_bytes is not None:
            room = MAX_REQUEST_HEAD_BYTES - self._head_bytes
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES and not _head_ends_within(data, room):
                # Refused unparsed, even when this read would complete the head: a
                # whole oversized head can arrive in one read (uvloop reads up to 256 KB).
                self._refuse_head()
                return
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._head_bytes is not None and self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse_head()  # still incomplete after parsing, and past the limit: refused without waiting for more
        elif self.timeout_keep_alive_task is not None:
            pass
        elif self._answered_before_its_body():
            self.timeout_keep_alive_task = self.loop.call_at(body_deadline, self._head_timed_out)
        elif self._head_bytes:
            self.timeout_keep_alive_task = self.loop.call_at(head_deadline, self._head_timed_out)
        elif self._head_bytes == 0 and answered:
            # The answered request's body ended: idle again, as uvicorn leaves a connection after an answer.
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        # Otherwise a request is whole (0: a stream may be running) or reading its body (BODY_TIMEOUT_SECONDS).

    def _answered_before_its_body(self) -> bool:
        return self._head_bytes is None and self.cycle is not None and self.cycle.response_complete

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # what follows on this connection is the next request's head


    def _refuse_head(self) -> None:
        self.transport.write(head_too_large_response())
        self.transport.close()

    def _head_timed_out(self) -> None:
        self.timeout_keep_alive_task = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self.transport.write(head_timeout_response())
        self.transport.close()
