"""Publishing one event or an ordered sequence to a client, a topic or everyone.

Plain async code over SseService; the HTTP side is channel_app/publish_api.py.

A sequence (e.g. text chunks ending in `complete`, or `error`/`timeout`) is
published one event after the other, each awaited, so its ids increase in
sequence order and every receiving connection gets the events in that order;
a browser that reconnects mid-sequence with Last-Event-ID replays the rest,
in order (history and queue are merged by id).

For a clientId target, the first event follows `queue_if_offline`; once it was
delivered or queued, the rest of the sequence is queued too whenever the
client has no open stream at that moment (it is between two connections), so
a sequence that has begun is never cut in the middle by a reconnect. An event
that reaches nobody and is not queued (client not connected, topic without
subscribers) ends the sequence: the rest would make no sense without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channel_app.publish_request import EventSpec, Target
from sse.broker import Fence
from sse.events import Event
from sse.service import SseService


@dataclass
class Outcome:
    delivered: int = 0  # connections reached by the last event published
    queued: bool = False  # some event waits for the client's next connection
    event_ids: list[str] = field(default_factory=list)

    def answer(self, sequence: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "delivered": self.delivered,
            "queued": self.queued,
            "eventId": self.event_ids[-1] if self.event_ids else None,
        }
        if sequence:
            body["eventIds"] = list(self.event_ids)
        return body


async def publish_sequence(
    sse: SseService,
    target: Target,
    events: list[EventSpec],
    queue_if_offline: bool,
    outcome: Outcome,
    fence: Fence | None = None,
) -> Outcome:
    """Publishes into `outcome` as it goes, so a caller that catches QueueFull or
    BrokerUnavailable still knows what was published before it. A `fence`
    (sse.broker.Fence) is for a single event: its record holds one answer."""
    if fence is not None and len(events) != 1:
        raise ValueError("a fence covers a single event")
    for spec in events:
        event = Event(spec.event, spec.data)
        if target.client_id is not None:
            delivery = await sse.publish(target.client_id, event, queue_if_offline or bool(outcome.event_ids), fence)
        elif target.topic is not None:
            delivery = await sse.publish_topic(target.topic, _marked_with_topic(event, target.topic), fence)
        else:
            delivery = await sse.publish_to_all(event, fence)
        outcome.delivered = delivery.delivered
        outcome.queued = outcome.queued or delivery.queued
        if delivery.event_id is None:
            break
        outcome.event_ids.append(delivery.event_id)
    return outcome


def _marked_with_topic(event: Event, topic: str) -> Event:
    """Object data gains `topic` (unless it has one), as topic sends from function calls
    carry it: the widget acts on a topic event without acknowledging it, since no call
    waits for it, and a large topic would otherwise answer every event with an ack each."""
    if isinstance(event.data, dict) and "topic" not in event.data:
        return Event(event.name, {**event.data, "topic": topic})
    return event
