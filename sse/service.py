"""The in-process API other Python modules use to reach browsers.

Mirrors the reference design's NestJS `SseService` (`sendToClient`,
`broadcast`, `isClientConnected`), plus topics (`send_to_topic`)::

    service: SseService = request.app.state.services.sse
    reached = await service.send_to_client("user-42", Event("notification", {...}))
"""

from __future__ import annotations

from typing import Protocol

from sse.broker import Broker, Delivery, Fence
from sse.events import Event
from sse.names import check_client_id, check_topic


class PublishObserver(Protocol):
    def published(self, event_name: str, delivery: Delivery) -> None:
        """After every publish or broadcast; keep it cheap (a few counters)."""


class SseService:
    def __init__(self, broker: Broker, observer: PublishObserver | None = None) -> None:
        self._broker = broker
        self._observer = observer

    async def publish(
        self, client_id: str, event: Event, queue_if_offline: bool = False, fence: Fence | None = None
    ) -> Delivery:
        """Delivery details; with `queue_if_offline` an unconnected client's event
        waits for its next connection (`queued`). Raises QueueFull, BrokerUnavailable
        (and PublishFenced: see sse.broker.Fence)."""
        return self._observed(event, await self._broker.publish(client_id, event, queue_if_offline, fence))

    # The convenience methods check their ids (InvalidName), so a typo does not pass for
    # "nobody connected"; `publish` and `publish_topic` take ids the app checked already.
    async def send_to_client(self, client_id: str, event: Event) -> int:
        """Connections reached, cluster-wide; 0 when the client is not connected."""
        return (await self.publish(check_client_id(client_id), event)).delivered

    async def publish_to_all(self, event: Event, fence: Fence | None = None) -> Delivery:
        """Every connection; object data gains `"broadcast": true` (see `_marked`)."""
        return self._observed(event, await self._broker.broadcast(_marked(event, "broadcast", True), fence))

    async def publish_topic(self, topic: str, event: Event, fence: Fence | None = None) -> Delivery:
        """Every connection subscribed to `topic`, cluster-wide; Delivery(None, 0) when none.
        Object data gains `topic` (see `_marked`)."""
        return self._observed(event, await self._broker.publish_topic(topic, _marked(event, "topic", topic), fence))

    async def send_to_topic(self, topic: str, event: Event) -> int:
        return (await self.publish_topic(check_topic(topic), event)).delivered

    async def broadcast(self, event: Event) -> int:
        return (await self.publish_to_all(event)).delivered

    async def is_client_connected(self, client_id: str) -> bool:
        return await self._broker.connection_count(check_client_id(client_id)) > 0

    async def connection_count(self, client_id: str) -> int:
        return await self._broker.connection_count(check_client_id(client_id))

    def _observed(self, event: Event, delivery: Delivery) -> Delivery:
        if self._observer is not None:
            self._observer.published(event.name, delivery)
        return delivery


def _marked(event: Event, field: str, value: object) -> Event:
    """Object data gains `field` (unless it has one that is not null or empty: a page's own
    `false` stays, and its event, marked by the page, is not acknowledged either). The
    widget acts on an event sent to many without acknowledging it, since no call waits
    for it: a topic or broadcast reaching thousands of tabs would otherwise answer with
    an ack each (review reproduction: events sent from Python were acknowledged by every tab)."""
    if isinstance(event.data, dict) and event.data.get(field) in (None, ""):
        return Event(event.name, {**event.data, field: value})
    return event

