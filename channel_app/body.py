"""Reading a request body within limits of size and time."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import Message, Receive

from channel_app.body_deadlines import BodyDeadlines


class UnreadableBody(Exception):
    """The body was not read; carries the status and error object to answer with."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


async def read_limited_body(request: Request, limit: int, deadlines: BodyDeadlines) -> bytes:
    """The raw body, refusing early on Content-Length and again while streaming,
    so a lying or absent Content-Length cannot make us buffer more than `limit`.

    The whole body must arrive within `deadlines.timeout_seconds`
    (BODY_TIMEOUT_SECONDS): uvicorn has no body timeout of its own, so a client
    trickling bytes would otherwise hold the request open for as long as it
    likes. The body is read from `receive` directly, as Starlette's
    `Request.stream` would, without its generator: this is every call's path."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    task = asyncio.current_task()
    deadlines.begin(task)
    try:
        return await _receive_body(request.receive, limit)
    except asyncio.CancelledError:
        if not deadlines.is_overdue(task):
            raise
        task.uncancel()
        raise UnreadableBody(
            408, "REQUEST_TIMEOUT", f"the request body did not arrive within {deadlines.timeout_seconds:g}s"
        ) from None
    finally:
        deadlines.end(task)


async def _receive_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    first = _body_of(message)
    if len(first) > limit:
        raise _too_large(limit)
    if not message.get("more_body", False):  # nearly always: the body came with the headers
        return first
    received = bytearray(first)
    while message.get("more_body", False):
        message = await receive()
        received += _body_of(message)
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


def _body_of(message: Message) -> bytes:
    if message["type"] != "http.request":  # http.disconnect
        raise UnreadableBody(400, "BAD_REQUEST", "the request body was not received")
    return message.get("body", b"")


def _too_large(limit: int) -> UnreadableBody:
    return UnreadableBody(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes")
