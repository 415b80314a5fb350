"""Reading a request body within limits of size and time."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

class UnreadableBody(Exception):
    """The body was not read; carries the status and error object to answer with."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


async def read_limited_body(request: Request, limit: int, timeout_seconds: float) -> bytes:
    """The raw body, refusing early on Content-Length and again while streaming,
    so a lying or absent Content-Length cannot make us buffer more than `limit`.

    The whole body must arrive within `timeout_seconds` (BODY_TIMEOUT_SECONDS):
    uvicorn has no body timeout of its own, so a client trickling bytes would
    otherwise hold the request open for as long as it likes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = bytearray()
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                received += chunk
                if len(received) > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise UnreadableBody(408, "REQUEST_TIMEOUT", f"the request body did not arrive within {timeout_seconds:g}s") from None
    except ClientDisconnect:
        raise UnreadableBody(400, "BAD_REQUEST", "the request body was not received") from None
    return bytes(received)


def _too_large(limit: int) -> UnreadableBody:
    return UnreadableBody(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes")
