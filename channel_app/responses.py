"""JSON responses (orjson: fast, and UTF-8 text stays unescaped) and the error shape."""

from __future__ import annotations

from typing import Any, Mapping

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from channel_app.one_write import OneWrite

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# no-transform: a proxy or CDN that compresses what passes through it must leave the
# stream as it is (compression buffers it: events arrive late, in bursts).
STREAM_HEADERS = {"Cache-Control": "no-cache, no-store, no-transform", "X-Accel-Buffering": "no"}
NO_STORE = {"Cache-Control": "no-store"}


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with OneWrite(scope):  # head and body in one write (channel_app/one_write.py)
            await super().__call__(scope, receive, send)


def closing_error_response(status_line: bytes, error_type: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response with the JSON error body, for the protocol to
    write itself before it closes the connection (no request reached the app)."""
    body = orjson.dumps({"error": {"type": error_type, "message": message}})
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
        % (status_line, len(body), body)
    )


def error_response(
    status_code: int,
    error_type: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> JSONBody:
    return JSONBody({"error": {"type": error_type, "message": message}}, status_code, headers=headers)
