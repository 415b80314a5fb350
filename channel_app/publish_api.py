"""`POST /api/publish`: the site's own backend sends events to a client, a topic or everyone.

This is our own API, not Channel's, so HTTP status codes carry the outcome:

| Situation | HTTP | error.type |
|---|---|---|
| published (or nobody to receive it: `delivered: 0`) | 200 | - |
| neither PUBLISH_API_KEYS nor PUBLISH_JWT_SCOPE configured | 404 | NOT_FOUND |
| no / wrong credential | 401 | UNAUTHORIZED, INVALID_TOKEN |
| token without the publish scope | 403 | FORBIDDEN |
| body over MAX_BODY_BYTES | 413 | PAYLOAD_TOO_LARGE |
| not JSON / invalid fields | 400 | INVALID_JSON / INVALID_REQUEST, URL_NOT_ALLOWED |
| rate limit (per publisher, per target client) | 429 | RATE_LIMITED (+ Retry-After) |
| the client's offline queue is full | 429 | QUEUE_FULL (+ the eventIds published before) |
| same `id`, different body / still being answered | 409 | IDEMPOTENCY_CONFLICT / IN_PROGRESS |
| Redis unreachable | 503 | UNAVAILABLE |

Order as for function calls: authenticate (headers only) and rate-limit the
publisher before reading the body. A `redirect` event must carry a `url`
that passes the same allow-list as `redirectClient` (REDIRECT_ALLOWED_HOSTS):
the widget navigates on it. Every request is counted once in
`channel_push_publish_api_calls_total{target, outcome}` and logged once
(never the body or the credential).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request

from channel_app.body import UnreadableBody, read_limited_body
from channel_app.errors import CUT_MID_PUBLISH, broker_failure
from channel_app.idempotency import body_digest, record_key
from channel_app.inputs import describe_validation_error
from channel_app.publish_auth import PublishAuthFailed, authenticate_publisher, publish_enabled
from channel_app.publish_request import PublishRequest
from channel_app.publishing import FenceFor, Outcome, publish_sequence
from channel_app.responses import JSONBody
from security.redirects import RedirectRefused
from sse.broker import BrokerUnavailable, Fence, PublishFenced, QueueFull

logger = logging.getLogger("channel_push.publish")


class Refused(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers
        self.body = {"error": {"type": error_type, "message": message, **extra}}


async def publish_endpoint(request: Request) -> JSONBody:
    services = request.app.state.services
    started = time.perf_counter()
    target, publisher = "none", None
    try:
        if not publish_enabled(services):
            raise Refused(404, "NOT_FOUND", "the publish API is not enabled (PUBLISH_API_KEYS / PUBLISH_JWT_SCOPE)")
        publisher = (await authenticate_publisher(services, request)).name
        await _within_limit(services, "publish_key", publisher, "too many publish requests")
        body = await _body(request, services)
        publish = _parse(body)
        target = publish.target.kind
        _check_redirects(services, publish)
        status, answer, headers = await _answer_once(services, publisher, publish, body)
    except PublishAuthFailed as failed:
        status, answer, headers = failed.status, {"error": {"type": failed.error_type, "message": failed.message}}, failed.headers
    except Refused as refused:
        status, answer, headers = refused.status, refused.body, refused.headers
    except asyncio.CancelledError:
        # Cut by the end of the shutdown grace before publishing (its body still arriving,
        # or its id's claim waiting on Redis): channel_app/shutdown_cut.py answers it,
        # and it is logged and counted here like every other publish request.
        if services.lifecycle.draining:
            _record(services, publisher, target, "UNAVAILABLE", 503, started)
        raise
    _record(services, publisher, target, answer["error"]["type"] if "error" in answer else "ok", status, started)
    return JSONBody(answer, status, headers=headers)


def _record(services, publisher: str | None, target: str, outcome: str, status: int, started: float) -> None:
    seconds = time.perf_counter() - started
    services.metrics.publish_called(target, outcome, seconds)
    fields = {"publisher": publisher, "target": target, "outcome": outcome, "http_status": status, "duration_ms": round(seconds * 1000, 2)}
    logger.info("publish", extra={"fields": fields})


async def _within_limit(services, scope: str, key: str, message: str, cost: int = 1) -> None:
    decision = await services.limits.hit(scope, key, cost)
    if not decision.allowed:
        retry = round(decision.retry_after_seconds, 3)
        headers = {"Retry-After": decision.retry_after_header}
        raise Refused(429, "RATE_LIMITED", f"{message}; retry in {retry:.1f}s", headers, retryAfterSeconds=retry)


async def _body(request: Request, services) -> bytes:
    try:
        return await read_limited_body(request, services.settings.max_body_bytes, services.body_deadlines)
    except UnreadableBody as unread:
        raise Refused(unread.status, unread.error_type, unread.message) from None


def _parse(body: bytes) -> PublishRequest:
    try:
        return PublishRequest.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError:
        raise Refused(400, "INVALID_JSON", "the request body is not valid JSON") from None
    except ValidationError as error:
        raise Refused(400, "INVALID_REQUEST", describe_validation_error(error)) from None


def _check_redirects(services, publish: PublishRequest) -> None:
    for position, spec in enumerate(publish.sequence()):
        if spec.event != "redirect":
            continue
        url = spec.data.get("url") if isinstance(spec.data, dict) else None
        try:
            spec.data["url"] = services.method_deps.redirects.check(url)
        except (RedirectRefused, TypeError) as refused:
            reason = getattr(refused, "reason", "a redirect event needs data.url")
            raise Refused(400, "URL_NOT_ALLOWED", f"event {position}: redirect refused: {reason}") from None


async def _answer_once(services, publisher: str, publish: PublishRequest, body: bytes) -> tuple[int, dict, dict | None]:
    """Publish, or with an `id` seen before, answer what the first request got."""
    if publish.id is None:
        status, answer = await _publish_within_limit(services, publish)
        return status, answer, None
    store, key, digest = services.idempotency, record_key(publisher, publish.id), body_digest(body)
    attempt = secrets.token_hex(8)
    try:
        earlier = await store.claim(key, digest, attempt)
    except BrokerUnavailable:
        raise Refused(503, "UNAVAILABLE", "the shared broker (Redis) is unreachable; nothing was published, retry shortly") from None
    if earlier is not None:
        if earlier.body_digest != digest:
            raise Refused(409, "IDEMPOTENCY_CONFLICT", "this id was already used for a different request")
        if earlier.status is None:
            raise Refused(409, "IN_PROGRESS", "a request with this id is still being answered; retry shortly")
        return earlier.status, earlier.answer or {}, {"Idempotent-Replayed": "true"}
    sequence = publish.events is not None

    def fence_for(outcome: Outcome, last: bool) -> Fence | None:
        return store.fence(key, digest, attempt, outcome.before_step(sequence, last))

    try:
        status, answer = await _publish_within_limit(services, publish, fence_for)
    except BaseException:
        # Refused, an unexpected failure answered with a 500, or the request cancelled:
        # no answer was recorded, so the id is let go for a retry rather than held
        # IN_PROGRESS; what a fenced publish sent stays as its answer (channel_app/idempotency.py).
        await _release(services, key, digest, attempt)
        raise
    if status == 503:
        # Redis (the only broker that answers 503) stopped answering after part of a
        # sequence: the fenced record of the last event that went out is the answer, and
        # may know one more than this request does.
        await _release(services, key, digest, attempt)
        return status, answer, None
    try:
        await store.complete(key, digest, status, answer)
    except BrokerUnavailable:
        logger.warning("publish: could not record the answer for an idempotent request")
    return status, answer, None


async def _publish_within_limit(services, publish: PublishRequest, fence_for: FenceFor | None = None) -> tuple[int, dict[str, Any]]:
    """The client's event limit counts events sent, so it is checked here and not
    for a replay: a retry answered from the idempotency record sends nothing, and a
    429 would tell a backend whose event went out that it did not. A sequence spends
    one hit per event (a sequence longer than the limit, the whole budget)."""
    if publish.target.client_id is not None:
        events = len(publish.events) if publish.events is not None else 1
        await _within_limit(services, "function_client", publish.target.client_id, "too many events for this client", events)
    return await _publish(services, publish, fence_for)


async def _release(services, key: str, digest: str, attempt: str) -> None:
    store = services.idempotency
    if services.lifecycle.draining:
        # Cut by the end of the shutdown grace: the answer goes out now, not after a
        # release the Redis that made the publish slow may never confirm (review
        # reproduction: the cut was cut again there and answered as if nothing went out).
        store.release_soon(key, digest, attempt)
        return
    try:
        await store.release(key, digest, attempt)
    except BrokerUnavailable:
        pass  # tried again in the background (channel_app/idempotency.py); else its reservation expires


async def _publish(services, publish: PublishRequest, fence_for: FenceFor | None = None) -> tuple[int, dict[str, Any]]:
    """(status, body). Refused (503) only when nothing was published; a failure
    after part of a sequence was published is an answer, so it is recorded."""
    sequence = publish.events is not None
    queue = services.settings.queue_if_offline_default if publish.queue_if_offline is None else publish.queue_if_offline
    outcome = Outcome()
    try:
        await publish_sequence(services.sse, publish.target, publish.sequence(), queue, outcome, fence_for)
    except QueueFull as full:
        message = f"the client is not connected and {full}"
        if not outcome.event_ids:
            # Nothing went out: refused, so the id is freed for a retry once the queue drains.
            raise Refused(429, "QUEUE_FULL", message, eventIds=[]) from None
        return 429, outcome.partial("QUEUE_FULL", message)
    except asyncio.CancelledError:
        # Cut by the end of the shutdown grace midway: answered like a sequence Redis
        # stopped, naming what went out (channel_app/shutdown_cut.py would say nothing did).
        if not services.lifecycle.draining:
            raise
        asyncio.current_task().uncancel()
        if outcome.event_ids:
            return 503, outcome.partial("UNAVAILABLE", CUT_MID_PUBLISH)
        raise Refused(503, "UNAVAILABLE", CUT_MID_PUBLISH, {"Retry-After": "1"}, eventIds=[]) from None
    except (BrokerUnavailable, PublishFenced) as failed:
        if outcome.event_ids:
            return 503, outcome.partial("UNAVAILABLE", broker_failure(failed, part_sent=True))
        if isinstance(failed, PublishFenced):
            raise Refused(503, "UNAVAILABLE", "this request's hold on its id lapsed before it could publish; nothing was published, retry") from None
        raise Refused(503, "UNAVAILABLE", broker_failure(failed)) from None
    return 200, outcome.answer(sequence)
