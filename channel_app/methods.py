"""What each Channel function does. Plain async code: no HTTP types here.

Each handler takes its validated input, the verified call and the shared
dependencies, and returns a `result` body or raises `FunctionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Awaitable, Callable

from pydantic import BaseModel

from channel_app.chat_fallback import ChatFallback, ChatMessage, link_message, notice_message
from channel_app.errors import FunctionError
from channel_app.inputs import (
    BroadcastInput,
    ClientStatusInput,
    ClientTarget,
    NotifyInput,
    QueueableTarget,
    RedirectInput,
    SendEventInput,
)
from channel_app.protocol import FunctionCall, result_body
from channel_app.rate_limits import RateLimits
from security.redirects import RedirectPolicy, RedirectRefused
from sse.acks import Acks
from sse.broker import QueueFull
from sse.events import Event
from sse.service import SseService
from sse.timestamps import utc_timestamp


@dataclass(frozen=True)
class MethodDeps:
    sse: SseService
    redirects: RedirectPolicy
    allow_broadcast: bool
    limits: RateLimits
    acks: Acks
    chat: ChatFallback | None = None
    queue_if_offline_default: bool = False


Handler = Callable[[Any, FunctionCall, MethodDeps], Awaitable[dict[str, Any]]]

CUSTOMER_CALL = "a customer's own call (caller.type user) may act only on their own page"


@dataclass(frozen=True)
class MethodSpec:
    input_model: type[BaseModel]
    handler: Handler
    publishes: bool = True  # whether a broker failure may leave an event on its way


async def target_client(args: ClientTarget, call: FunctionCall, deps: MethodDeps) -> str:
    """`input.clientId`, or else the chat user's `memberId` (the site's own user id),
    within that client's rate limit.

    A call whose caller is the customer (`caller.type` "user": a front command, run in
    the customer's own chat) acts on that customer's page only: otherwise anyone
    chatting could push a notification or a redirect to another visitor whose id they
    guessed (review reproduction). The chat fallback holds the same line."""
    client_id = args.client_id or _member_id(call)
    if call.caller_type == "user" and client_id != _own_member_id(call):
        raise FunctionError("UNAUTHORIZED", f"{CUSTOMER_CALL}: clientId must be the chat user's memberId")
    decision = await deps.limits.hit("function_client", client_id)
    if not decision.allowed:
        raise FunctionError(
            "RATE_LIMITED",
            f"too many calls for client {client_id}; retry in {decision.retry_after_seconds:.1f}s",
            {"retryAfterSeconds": round(decision.retry_after_seconds, 3)},
        )
    return client_id


def _member_id(call: FunctionCall) -> str:
    if member := _own_member_id(call):
        return member
    raise FunctionError("INVALID_PARAMS", "clientId: field required (and the chat user has no memberId)")


def _own_member_id(call: FunctionCall) -> str | None:
    # Read as input.clientId is: a blank memberId is none, not client "".
    return ClientTarget(clientId=call.member_id).client_id if call.member_id else None


async def _deliver(
    deps: MethodDeps,
    call: FunctionCall,
    args: QueueableTarget,
    client_id: str,
    event: Event,
    what: str,
    fallback: Callable[[], ChatMessage] | None = None,  # built only when it is posted
    wait_for_ack_ms: int | None = None,
) -> dict[str, Any]:
    queue = deps.queue_if_offline_default if args.queue_if_offline is None else args.queue_if_offline
    try:
        delivery = await deps.sse.publish(client_id, event, queue_if_offline=queue)
    except QueueFull as full:
        raise FunctionError("QUEUE_FULL", f"Client {client_id} is not connected and {full}", {"clientId": client_id}) from None
    if not delivery.delivered and not delivery.queued:
        if fallback is not None and deps.chat is not None and await deps.chat.post(call, client_id, fallback()):
            return result_body(
                f"Client {client_id} is not connected; posted it in the chat instead",
                clientId=client_id,
                delivered=0,
                queued=False,
                fallback="chat_message",
            )
        raise FunctionError("CLIENT_NOT_CONNECTED", f"Client {client_id} is not connected", {"clientId": client_id})
    if delivery.queued:
        message = f"{what} queued for client {client_id}: no open stream now, it waits for the next connection"
    else:
        message = f"{what} sent to client {client_id}"
    fields: dict[str, Any] = {
        "clientId": client_id,
        "delivered": delivery.delivered,
        "queued": delivery.queued,
        "eventId": delivery.event_id,
    }
    if wait_for_ack_ms is not None and delivery.event_id is not None:
        outcome = await deps.acks.wait(client_id, delivery.event_id, wait_for_ack_ms / 1000)
        message += _ack_sentence(outcome, wait_for_ack_ms)
        fields.update(acknowledged=outcome == "done", ackOutcome=outcome or "timeout")
    return result_body(message, **fields)


def _ack_sentence(outcome: str | None, waited_ms: int) -> str:
    if outcome == "done":
        return "; the browser confirmed it acted on it"
    if outcome is None:
        return f"; the browser did not confirm within {waited_ms} ms"
    return f"; the browser did not act on it ({outcome})"


async def redirect_client(args: RedirectInput, call: FunctionCall, deps: MethodDeps) -> dict[str, Any]:
    client_id = await target_client(args, call, deps)
    try:
        url = deps.redirects.check(args.url, call.channel_id)
    except RedirectRefused as refused:
        raise FunctionError("URL_NOT_ALLOWED", f"Redirect refused: {refused.reason}") from None
    event = Event("redirect", {"type": "redirect", "url": url, "timestamp": utc_timestamp()})
    fallback = partial(link_message, url, call.language)
    return await _deliver(deps, call, args, client_id, event, "Redirect command", fallback, args.wait_for_ack)


def _refuse_customer_broadcast(call: FunctionCall) -> None:
    """A customer's own call reaches their own page only (target_client): never a topic's
    subscribers, nor everyone."""
    if call.caller_type == "user":
        raise FunctionError("UNAUTHORIZED", f"{CUSTOMER_CALL}: not a topic, nor every page")


async def _deliver_to_topic(deps: MethodDeps, call: FunctionCall, topic: str, event: Event, what: str) -> dict[str, Any]:
    """`topic` instead of `clientId`: a broadcast to the topic's subscribers, so only
    with ALLOW_BROADCAST; no queue, no ack, no chat fallback; 0 subscribers is an answer."""
    if not deps.allow_broadcast:
        raise FunctionError("METHOD_NOT_ALLOWED", "sending to a topic is a broadcast, disabled on this service (ALLOW_BROADCAST=false)")
    _refuse_customer_broadcast(call)
    decision = await deps.limits.hit("function_client", f"#{topic}")
    if not decision.allowed:
        raise FunctionError(
            "RATE_LIMITED",
            f"too many calls for topic {topic}; retry in {decision.retry_after_seconds:.1f}s",
            {"retryAfterSeconds": round(decision.retry_after_seconds, 3)},
        )
    delivery = await deps.sse.publish_topic(topic, event)  # its data gains `topic` (sse/service.py)
    return result_body(
        f"{what} sent to topic {topic}: {delivery.delivered} connections",
        topic=topic,
        delivered=delivery.delivered,
        queued=False,
        eventId=delivery.event_id,
    )


async def notify(args: NotifyInput, call: FunctionCall, deps: MethodDeps) -> dict[str, Any]:
    event = Event("notification", _notification_data(args.message, args.title, args.level))
    if args.topic is not None:
        return await _deliver_to_topic(deps, call, args.topic, event, "Notification")
    client_id = await target_client(args, call, deps)
    return await _deliver(deps, call, args, client_id, event, "Notification", partial(notice_message, args.message, args.title))


async def send_event(args: SendEventInput, call: FunctionCall, deps: MethodDeps) -> dict[str, Any]:
    data = {"type": "custom", "action": args.action, "payload": args.payload, "timestamp": utc_timestamp()}
    event = Event("custom", data)
    if args.topic is not None:
        return await _deliver_to_topic(deps, call, args.topic, event, f"Event '{args.action}'")
    client_id = await target_client(args, call, deps)
    return await _deliver(deps, call, args, client_id, event, f"Event '{args.action}'", None, args.wait_for_ack)


async def broadcast(args: BroadcastInput, call: FunctionCall, deps: MethodDeps) -> dict[str, Any]:
    if not deps.allow_broadcast:
        raise FunctionError("METHOD_NOT_ALLOWED", "broadcast is disabled on this service (ALLOW_BROADCAST=false)")
    _refuse_customer_broadcast(call)
    delivery = await deps.sse.publish_to_all(Event("notification", _notification_data(args.message, args.title, "info")))
    return result_body(
        f"Notification broadcast to {delivery.delivered} connections",
        delivered=delivery.delivered,
        eventId=delivery.event_id,
    )


async def get_client_status(args: ClientStatusInput, call: FunctionCall, deps: MethodDeps) -> dict[str, Any]:
    client_id = await target_client(args, call, deps)
    connections = await deps.sse.connection_count(client_id)
    state = "connected" if connections else "not connected"
    return result_body(
        f"Client {client_id} is {state}",
        clientId=client_id,
        connected=connections > 0,
        connections=connections,
    )


def _notification_data(message: str, title: str | None, level: str) -> dict[str, Any]:
    return {"type": "notification", "title": title, "message": message, "level": level, "timestamp": utc_timestamp()}


METHODS: dict[str, MethodSpec] = {
    "redirectClient": MethodSpec(RedirectInput, redirect_client),
    "notify": MethodSpec(NotifyInput, notify),
    "sendEvent": MethodSpec(SendEventInput, send_event),
    "broadcast": MethodSpec(BroadcastInput, broadcast),
    "getClientStatus": MethodSpec(ClientStatusInput, get_client_status, publishes=False),
}
