"""`GET /sse/connect`: authenticate a browser and hold its event stream open.

The response is an ASGI callable that holds the broker subscription for
exactly as long as the stream runs, so the connection is unregistered however
the stream ends (client gone, token expired, max lifetime, slow client,
shutdown); each of those is a close reason the metrics and logs report.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from channel_app.client_auth import ClientAuthFailed, authenticate_client, check_stream_origin, last_event_id, presented_token
from channel_app.event_stream import EventStreamResponse, raw_headers
from channel_app.responses import STREAM_HEADERS, error_response
from channel_app.server_connection import httptools_cycle
from channel_app.stream_check import stream_admission, too_many_connects
from channel_app.topic_request import authorize_topics, requested_topics
from sse.broker import BROKER_UNAVAILABLE, BrokerUnavailable, Subscription
from sse.events import Event, encode_frame, encode_retry, encode_unidentified_frame, is_future_id
from sse.names import InvalidName, check_client_id
from sse.registry import ConnectionRefused
from sse.timestamps import utc_timestamp

logger = logging.getLogger("channel_push.stream")

RAW_STREAM_HEADERS = raw_headers(STREAM_HEADERS)
LIFETIME_JITTER = 0.1  # a stream lasts between 90 % and all of MAX_STREAM_SECONDS
PLANNED_END_RETRY_MS = 250  # the `retry:` hint that ends a stream at its maximum lifetime
REPLAYED_DATA = b'{"type":"replayed"}'  # after a replay: its id is the newest the stream has reached


async def connect_stream(request: Request) -> ASGIApp:
    if request.method == "HEAD":
        # Headers only, as GET would answer them now: a stream answering HEAD would
        # never complete and would hold a slot, so nothing is opened, nor spent.
        refusal, _ = await stream_admission(request, retry_stream=True)
        return refusal or Response(b"", media_type="text/event-stream", headers=STREAM_HEADERS)
    services = request.app.state.services
    refused = services.metrics.connect_refused
    client_ip = request.client.host if request.client else "-"
    if refusal := await _rate_limited(services, "connect_ip", client_ip):
        refused("rate_limited")
        return refusal
    try:
        check_stream_origin(request, services.settings.cors_allowed_origins)
        client_id = check_client_id(request.query_params.get("clientId", ""))
        topics = requested_topics(request, services.settings.max_topics_per_connection)
        token = presented_token(request, services.settings.client_token_cookie, services.settings.cors_allowed_origins)
        claims = await authenticate_client(services, client_id, token)
        authorize_topics(claims, topics)
    except InvalidName as invalid:
        refused("invalid_client_id")
        return error_response(400, "INVALID_CLIENT_ID", str(invalid))
    except ClientAuthFailed as failed:
        refused(failed.reason)
        return failed.response
    if refusal := await _rate_limited(services, "connect_client", client_id):
        refused("rate_limited")
        return refusal
    retry = encode_retry(services.settings.retry_ms)
    if services.lifecycle.draining:
        refused("draining")
        return Response(retry, media_type="text/event-stream", headers=STREAM_HEADERS)
    # Jittered, so streams opened together (every visitor after a restart) do not
    # all end, and reconnect, in the same instant MAX_STREAM_SECONDS later.
    lifetime_ends = time.time() + services.settings.max_stream_seconds * random.uniform(1 - LIFETIME_JITTER, 1)
    if claims.expires_at <= lifetime_ends:
        deadline, reason = claims.expires_at, "token_expired"
    else:
        deadline, reason = lifetime_ends, "max_lifetime"
    return ClientStream(services, client_id, last_event_id(request), deadline, reason, topics)


async def _rate_limited(services, scope: str, key: str) -> ASGIApp | None:
    decision = await services.limits.hit(scope, key)
    return None if decision.allowed else too_many_connects(decision)


class ClientStream:
    def __init__(
        self, services, client_id: str, resume_from: str | None, deadline: float, deadline_reason: str, topics: tuple[str, ...] = ()
    ) -> None:
        self._services = services
        self._client_id = client_id
        self._topics = topics
        self._resume_from = resume_from
        self._deadline = deadline
        self._deadline_reason = deadline_reason

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self._services.settings
        retry = encode_retry(settings.retry_ms)
        # A planned end is no failure: the browser comes straight back, so the visitor is
        # unreachable for a moment, not RETRY_MS (calls meanwhile answer CLIENT_NOT_CONNECTED).
        planned = self._deadline_reason == "max_lifetime"
        farewell = encode_retry(min(settings.retry_ms, PLANNED_END_RETRY_MS)) if planned else retry
        try:
            subscription = self._services.broker.subscribe(self._client_id, self._resume_from, self._topics)
            async with subscription as active:
                active.connection.close_at(self._deadline, self._deadline_reason, farewell)
                # Heartbeats come from one shared loop, not a task per stream.
                opening = [retry + self._connected_frame(active), *active.replay]
                if active.replay:
                    opening.append(encode_frame(active.cursor, "replayed", REPLAYED_DATA))
                metrics = self._services.metrics
                response = EventStreamResponse(
                    active.connection, opening, RAW_STREAM_HEADERS, metrics.frame_written, metrics.written_at_publish
                )
                await response(scope, receive, send)
        except BrokerUnavailable:
            # A 503 would make the browser give up for good; an empty stream with a
            # retry hint makes it come back once Redis (and this instance) are ready.
            self._services.metrics.connect_refused(BROKER_UNAVAILABLE)
            await Response(retry, media_type="text/event-stream", headers=STREAM_HEADERS)(scope, receive, send)
        except ConnectionRefused as refused:
            self._services.metrics.connect_refused(refused.reason)
            status = 503 if refused.reason == "instance_full" else 429
            retry_after = {"Retry-After": str(max(1, settings.retry_ms // 1000))}
            await error_response(status, refused.reason.upper(), refused.message, retry_after)(scope, receive, send)
        except asyncio.CancelledError:
            cycle = httptools_cycle(scope)
            if not self._services.lifecycle.draining or cycle is None or (cycle.response_started and not cycle.response_complete):
                raise
            # Cut by the end of the shutdown grace while joining (a stalled Redis) or while
            # leaving after its stream ended: no application error, one line per stream
            # in uvicorn's log otherwise. A stream not yet started is told to come back.
            asyncio.current_task().uncancel()
            if not cycle.response_started:
                await Response(retry, media_type="text/event-stream", headers=STREAM_HEADERS)(scope, receive, send)

    def _connected_frame(self, subscription: Subscription) -> bytes:
        event = Event(
            "connected",
            {
                "type": "connected",
                "clientId": self._client_id,
                "topics": list(self._topics),
                "connectionId": subscription.connection.id,
                "instance": self._services.settings.instance_id,
                "serverTime": utc_timestamp(),
                "heartbeatSeconds": self._services.settings.heartbeat_seconds,
            },
        )
        # The browser takes this id as its Last-Event-ID at once, and ids on a stream only
        # increase, so it must not pass the replay behind it. Resuming, it stays where the
        # browser resumed from: a stream cut before the replay is written resumes from
        # there again, where the newest replayed id would have skipped the replay for good.
        # New, with queued events to hand over (older than the newest id), it has no id.
        # Either way a `replayed` event carrying the cursor follows the replay: the browser
        # (and the widget, which sees only dispatched events) takes its id as Last-Event-ID.
        # An id the browser resumed from that is newer than any here (a clock step, Redis
        # state lost) is not echoed: the stream's ids would go down after it.
        resume_from = self._resume_from
        if resume_from and not is_future_id(resume_from):
            return encode_frame(resume_from, event.name, event.encode_data())
        if subscription.replay:
            return encode_unidentified_frame(event.name, event.encode_data())
        return encode_frame(subscription.cursor, event.name, event.encode_data())
