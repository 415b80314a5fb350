"""`GET /sse/check`: what `GET /sse/connect` would answer right now, without opening a stream.

A browser's EventSource gives up on any non-200 answer without saying which
one it was. The widget then asks here, with the same clientId and token, and
learns whether to fetch a fresh token (401), stop (400, 403) or back off
(429, 503, with Retry-After). Answering from here rather than probing
`/sse/connect` itself means a probe never takes one of the client's connection
slots, nor a hit of its connect rate limits: those are asked, not spent.
`HEAD /sse/connect` answers the same way (channel_app/stream.py).
"""

from __future__ import annotations

from typing import Mapping

from starlette.requests import Request

from channel_app.client_auth import ClientAuthFailed, authenticate_client, check_stream_origin, presented_token
from channel_app.responses import JSONBody, NO_STORE, error_response
from channel_app.topic_request import authorize_topics, requested_topics
from security.ratelimit import Decision
from sse.broker import BrokerUnavailable
from sse.names import InvalidName, check_client_id


async def check_stream(request: Request) -> JSONBody:
    refusal, client_id = await stream_admission(request)
    return refusal or JSONBody({"ok": True, "clientId": client_id}, headers=NO_STORE)


async def stream_admission(request: Request, retry_stream: bool = False) -> tuple[JSONBody | None, str]:
    """The refusal `GET /sse/connect` would answer now (None: it would open), and the
    clientId asked for. Also what `HEAD /sse/connect` answers, with `retry_stream`:
    None where GET answers 200 with a stream that only says when to retry (draining,
    or Redis unreachable), which /sse/check names for the widget."""
    services = request.app.state.services
    settings = services.settings
    client_id = ""
    # In the order GET /sse/connect asks (channel_app/stream.py), so both name the same problem.
    client_ip = request.client.host if request.client else "-"
    if refusal := await _over_connect_limit(services, "connect_ip", client_ip):
        return refusal, client_id
    try:
        check_stream_origin(request, settings.cors_allowed_origins)
        client_id = check_client_id(request.query_params.get("clientId", ""))
        topics = requested_topics(request, settings.max_topics_per_connection)
        claims = await authenticate_client(services, client_id, presented_token(request, settings.client_token_cookie, settings.cors_allowed_origins))
        authorize_topics(claims, topics)
    except InvalidName as invalid:
        return error_response(400, "INVALID_CLIENT_ID", str(invalid)), client_id
    except ClientAuthFailed as failed:
        return failed.response, client_id
    if refusal := await _over_connect_limit(services, "connect_client", client_id):
        return refusal, client_id
    retry_after = {"Retry-After": str(max(1, settings.retry_ms // 1000)), **NO_STORE}
    registry = services.broker.registry
    if services.lifecycle.draining:
        if retry_stream:
            return None, client_id
        return error_response(503, "DRAINING", "this instance is shutting down; retry shortly", retry_after), client_id
    if registry.connection_total >= settings.max_connections:
        message = "this instance holds its maximum number of connections"
        return error_response(503, "INSTANCE_FULL", message, retry_after), client_id
    try:
        # Cluster-wide under Redis, as the cap itself (sse/redis.py, JOIN).
        open_now = await services.broker.connection_count(client_id)
    except BrokerUnavailable:
        if retry_stream:
            return None, client_id
        return error_response(503, "UNAVAILABLE", "the shared broker (Redis) is unreachable; retry shortly", retry_after), client_id
    if open_now >= settings.max_connections_per_client:
        message = f"clientId already has {settings.max_connections_per_client} open connections"
        return error_response(429, "CLIENT_CONNECTION_LIMIT", message, retry_after), client_id
    return None, client_id


async def _over_connect_limit(services, scope: str, key: str) -> JSONBody | None:
    """The 429 a connect would get from this limit now; asked, not spent."""
    decision = await services.limits.would_allow(scope, key)
    return None if decision.allowed else too_many_connects(decision, NO_STORE)


def too_many_connects(decision: Decision, headers: Mapping[str, str] | None = None) -> JSONBody:
    """The 429 of a connect over a rate limit (also what /sse/check answers for one)."""
    return error_response(429, "RATE_LIMITED", "too many connection attempts", {"Retry-After": decision.retry_after_header, **(headers or {})})
