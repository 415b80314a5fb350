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
from typing import Any, Callable

from channel_app.errors import BROKER_UNCONFIRMED
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

    def partial(self, error_type: str, message: str) -> dict[str, Any]:
        """The error answer of a publish that stopped after some of its events went out."""
        return {"error": {"type": error_type, "message": message, "eventIds": list(self.event_ids)}}

    def before_step(self, sequence: bool, last: bool) -> dict[str, Any]:
        """What a fence's record keeps of the publish so far (see `answer_after`)."""
        return {"eventIds": list(self.event_ids), "queued": self.queued, "sequence": sequence, "last": last}


# The fence for the next event, from what was published before it and whether it is the last.
FenceFor = Callable[[Outcome, bool], Fence | None]


def answer_after(before: dict[str, Any], step: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The answer a fenced event's record stands for once its request is gone:
    `before` from `Outcome.before_step`, `step` the event's own answer
    (`{"delivered", "queued", "eventId"}`). The sequence's end (its last event, or
    one that reached nobody) answers as the request would have; an event with
    more to follow answers as a request Redis stopped answering after it."""
    outcome = Outcome(step["delivered"], before["queued"] or step["queued"], list(before["eventIds"]))
    if step["eventId"] is None:
        return 200, outcome.answer(before["sequence"])
    outcome.event_ids.append(step["eventId"])
    if before["last"]:
        return 200, outcome.answer(before["sequence"])
    return 503, outcome.partial("UNAVAILABLE", BROKER_UNCONFIRMED)


async def publish_sequence(
    sse: SseService,
    target: Target,
    events: list[EventSpec],
    queue_if_offline: bool,
    outcome: Outcome,
    fence_for: FenceFor | None = None,
) -> Outcome:
    """Publishes into `outcome` as it goes, so a caller that catches QueueFull or
    BrokerUnavailable still knows what was published before it. `fence_for`
    gives each event's fence (sse.broker.Fence)."""
    for position, spec in enumerate(events):
        event = Event(spec.event, spec.data)
        fence = None if fence_for is None else fence_for(outcome, position == len(events) - 1)
        if target.client_id is not None:
            delivery = await sse.publish(target.client_id, event, queue_if_offline or bool(outcome.event_ids), fence)
        elif target.topic is not None:
            delivery = await sse.publish_topic(target.topic, event, fence)
        else:
            delivery = await sse.publish_to_all(event, fence)
        outcome.delivered = delivery.delivered
        outcome.queued = outcome.queued or delivery.queued
        if delivery.event_id is None:
            break
        outcome.event_ids.append(delivery.event_id)
    return outcome
