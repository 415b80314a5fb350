"""uvicorn's httptools protocol with a limit on the size of a request's head.

uvicorn sets no limit on the request line and headers under httptools: the
parser buffers a header value of any length, and a client needs no
credentials to send one. Measured against this service: a 16 MB header was
answered 200, ten unfinished 20 MB headers took the server from 67 to 310 MB,
and parsing one held the event loop (every stream) for up to 450 ms. This
protocol counts the bytes received while a request's head is incomplete and,
past MAX_REQUEST_HEAD_BYTES, answers 431 with a JSON error and closes the
connection. Bodies are not counted (MAX_BODY_BYTES covers them).

Run it with `uvicorn.Config(http=HeaderLimitedProtocol)` (channel_app/run.py).
Behind a proxy with its own header limits this changes nothing.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_REQUEST_HEAD_BYTES = 64 * 1024  # request line and headers; nginx's default cap is 32 KB


def head_too_large_response() -> bytes:
    body = orjson.dumps(
        {"error": {"type": "HEADERS_TOO_LARGE", "message": f"request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes"}}
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


class HeaderLimitedProtocol(HttpToolsProtocol):
    # One attribute, not three: a 28th instance attribute keeps the instance dict
    # key-shared (about 300 bytes); a 30th turned it into a 1.6 KB dict on every
    # connection (bench: 18.7 -> 20.7 KB per idle stream).
    _head_bytes: int | None = 0  # bytes of the current request's head so far; None once it is complete

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused, or gone
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        # Judged after parsing: a read that completes the head may carry the body too.
        if self._head_bytes is not None and self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0  # what follows on this connection is the next request's head

    def _refuse_head(self) -> None:
        self.transport.write(head_too_large_response())
        self.transport.close()
