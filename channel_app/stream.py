"""`GET /sse/connect`: authenticate a browser and hold its event stream open.

The response is an ASGI callable that holds the broker subscription for
exactly as long as the stream runs, so the connection is unregistered however
the stream ends (client gone, token expired, slow client, shutdown).
"""

from __future__ import annotations

import logging
import math
import time
from typing import AsyncIterator

from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from channel_app.client_auth import MAX_TOKEN_CHARS, last_event_id, presented_token
from channel_app.responses import error_response
from security.tokens import TokenRejected
from sse.broker import BrokerUnavailable, Subscription
from sse.events import Event, encode_frame, encode_retry, utc_timestamp
from sse.names import InvalidName, check_client_id
from sse.registry import ConnectionRefused

logger = logging.getLogger("channel_push.stream")

STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}


async def connect_stream(request: Request) -> ASGIApp:
    services = request.app.state.services
    client_ip = request.client.host if request.client else "-"
    if refusal := await _rate_limited(services, "connect_ip", client_ip):
        return refusal
    try:
        client_id = check_client_id(request.query_params.get("clientId", ""))
    except InvalidName as invalid:
        return error_response(400, "INVALID_CLIENT_ID", str(invalid))
    token = presented_token(request, services.settings.client_token_cookie)
    if not token or len(token) > MAX_TOKEN_CHARS:
        return error_response(401, "UNAUTHORIZED", "a client token is required", {"WWW-Authenticate": "Bearer"})
    try:
        claims = await services.tokens.verify(token)
    except TokenRejected as rejected:
        return error_response(401, "INVALID_TOKEN", rejected.message, {"WWW-Authenticate": "Bearer"})
    if claims.subject != client_id:
        return error_response(403, "FORBIDDEN", "the token was issued for another clientId")
    if refusal := await _rate_limited(services, "connect_client", client_id):
        return refusal
    retry = encode_retry(services.settings.retry_ms)
    if services.lifecycle.draining:
        return EventSourceResponse(iter([retry]), ping=0, headers=STREAM_HEADERS)
    deadline = min(claims.expires_at, time.time() + services.settings.max_stream_seconds)
    return ClientStream(services, client_id, last_event_id(request), deadline)


async def _rate_limited(services, scope: str, key: str) -> ASGIApp | None:
    decision = await services.limits.hit(scope, key)
    if decision.allowed:
        return None
    retry_after = str(max(1, math.ceil(decision.retry_after_seconds)))
    return error_response(429, "RATE_LIMITED", "too many connection attempts", {"Retry-After": retry_after})


class ClientStream:
    def __init__(self, services, client_id: str, resume_from: str | None, deadline: float) -> None:
        self._services = services
        self._client_id = client_id
        self._resume_from = resume_from
        self._deadline = deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self._services.settings
        retry = encode_retry(settings.retry_ms)
        try:
            subscription = self._services.broker.subscribe(self._client_id, self._resume_from)
            async with subscription as active:
                active.connection.close_at(self._deadline, "stream_deadline", retry)
                response = EventSourceResponse(
                    self._frames(active, retry),
                    ping=0,  # heartbeats come from one shared loop, not a task per stream
                    send_timeout=settings.send_timeout_seconds,
                    headers=STREAM_HEADERS,
                )
                await response(scope, receive, send)
        except SendTimeoutError:
            logger.info("client %s dropped: a write blocked for %ss", self._client_id, settings.send_timeout_seconds)
        except BrokerUnavailable:
            # A 503 would make the browser give up for good; an empty stream with a
            # retry hint makes it come back once Redis (and this instance) are ready.
            await EventSourceResponse(iter([retry]), ping=0, headers=STREAM_HEADERS)(scope, receive, send)
        except ConnectionRefused as refused:
            status = 503 if refused.reason == "instance_full" else 429
            retry_after = {"Retry-After": str(max(1, settings.retry_ms // 1000))}
            await error_response(status, refused.reason.upper(), refused.message, retry_after)(scope, receive, send)

    async def _frames(self, subscription: Subscription, retry: bytes) -> AsyncIterator[bytes]:
        connection = subscription.connection
        yield retry + self._connected_frame(subscription)
        for frame in subscription.replay:
            yield frame
        queue = connection.queue
        while (frame := await queue.get()) is not None:
            yield frame

    def _connected_frame(self, subscription: Subscription) -> bytes:
        event = Event(
            "connected",
            {
                "type": "connected",
                "clientId": self._client_id,
                "connectionId": subscription.connection.id,
                "instance": self._services.settings.instance_id,
                "serverTime": utc_timestamp(),
                "heartbeatSeconds": self._services.settings.heartbeat_seconds,
            },
        )
        return encode_frame(subscription.cursor, event.name, event.encode_data())
