"""Requests cut by the end of the shutdown grace get the JSON error object.

When SHUTDOWN_GRACE_SECONDS ends, uvicorn cancels every request still running
and answers each one that had not started its response with a plain-text 500,
logging a traceback. The function route answers in Channel's shape itself
(channel_app/functions.py), and so does a publish cut while it publishes
(channel_app/publish_api.py: the events that went out). Any other request of
the ordinary table (a publish or an ack whose body is still arriving, say) gets
503 UNAVAILABLE with Retry-After here, for another instance to take: what such
a request does is harmless to repeat (an ack answers a wait once).
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channel_app.responses import error_response

CUT_MESSAGE = "this instance shut down before the request was answered; retry"


async def answer_if_cut(app: ASGIApp, scope: Scope, receive: Receive, send: Send, draining: Callable[[], bool]) -> None:
    started = False

    def send_on(message: Message) -> Awaitable[None]:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
        return send(message)

    try:
        await app(scope, receive, send_on)
    except asyncio.CancelledError:
        if started or not draining():
            raise
        asyncio.current_task().uncancel()
        await error_response(503, "UNAVAILABLE", CUT_MESSAGE, {"Retry-After": "1"})(scope, receive, send)
