"""`GET /sse/check`: what `GET /sse/connect` would answer right now, without opening a stream.

A browser's EventSource gives up on any non-200 answer without saying which
one it was. The widget then asks here, with the same clientId and token, and
learns whether to fetch a fresh token (401), stop (400, 403) or back off
(429, 503, with Retry-After). Answering from here rather than probing
`/sse/connect` itself means a probe never takes one of the client's connection
slots, nor a hit of its connect rate limits: those are asked, not spent.
"""

from __future__ import annotations

from starlette.requests import Request

from channel_app.client_auth import ClientAuthFailed, authenticate_client, presented_token
from channel_app.responses import JSONBody, NO_STORE, error_response
from channel_app.stream import too_many_connects
from channel_app.topic_request import authorize_topics, requested_topics
from sse.broker import BrokerUnavailable
from sse.names import InvalidName, check_client_id


async def check_stream(request: Request) -> JSONBody:
    services = request.app.state.services
    settings = services.settings
    try:
        client_id = check_client_id(request.query_params.get("clientId", ""))
        topics = requested_topics(request, settings.max_topics_per_connection)
        claims = await authenticate_client(services, client_id, presented_token(request, settings.client_token_cookie, settings.cors_allowed_origins))
        authorize_topics(claims, topics)
    except InvalidName as invalid:
        return error_response(400, "INVALID_CLIENT_ID", str(invalid))
    except ClientAuthFailed as failed:
        return failed.response
    client_ip = request.client.host if request.client else "-"
    for scope, key in (("connect_ip", client_ip), ("connect_client", client_id)):
        decision = await services.limits.would_allow(scope, key)
        if not decision.allowed:
            return too_many_connects(decision, NO_STORE)
    retry_after = {"Retry-After": str(max(1, settings.retry_ms // 1000)), **NO_STORE}
    registry = services.broker.registry
    if services.lifecycle.draining:
        return error_response(503, "DRAINING", "this instance is shutting down; retry shortly", retry_after)
    if registry.connection_total >= settings.max_connections:
        message = "this instance holds its maximum number of connections"
        return error_response(503, "INSTANCE_FULL", message, retry_after)
    try:
        # Cluster-wide under Redis, as the cap itself (sse/redis.py, JOIN).
        open_now = await services.broker.connection_count(client_id)
    except BrokerUnavailable:
        return error_response(503, "UNAVAILABLE", "the shared broker (Redis) is unreachable; retry shortly", retry_after)
    if open_now >= settings.max_connections_per_client:
        message = f"clientId already has {settings.max_connections_per_client} open connections"
        return error_response(429, "CLIENT_CONNECTION_LIMIT", message, retry_after)
    return JSONBody({"ok": True, "clientId": client_id}, headers=NO_STORE)
