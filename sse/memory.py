"""The in-process broker: the default when no REDIS_URL is set.

Same contract as the Redis broker (tests/sse/test_broker_contract.py runs
against both): an event for a connected client is delivered and kept in
history; for a client with no connection it is dropped, or queued when the
caller asked (`queue_if_offline`); a new connection receives its Last-Event-ID
replay (client stream and topics, merged by id) and the queued events, each
once, oldest first. A topic event is delivered to the topic's subscribers and
kept in the topic's history, or dropped when there are none.

A publish here finishes before its caller's await returns, so it can never
run after the caller gave up on it: a `Fence` is accepted and not needed.
"""

from __future__ import annotations

import sys

from sse.broker import Delivery, Fence, Subscription, Totals
from sse.events import Event, parse_event_id
from sse.history import BROADCAST_STREAM, MemoryHistory, topic_stream
from sse.offline_queue import MemoryQueue
from sse.registry import Connection, ConnectionRegistry
from sse.replay import merge_replay, newest_id


class MemoryBroker:
    name = "memory"

    def __init__(self, registry: ConnectionRegistry, history: MemoryHistory, queue: MemoryQueue) -> None:
        self.registry = registry
        self._history = history
        self._queue = queue

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(
        self, client_id: str, event: Event, queue_if_offline: bool = False, fence: Fence | None = None
    ) -> Delivery:
        """Kept in history only when some connection took it. A client whose every
        connection refused it (closing, or dropped as too slow) counts as offline,
        so a reconnect's replay never brings back an event answered as undelivered."""
        attempted = self.registry.connection_count(client_id)
        if not attempted and not queue_if_offline:
            return Delivery(None, 0)
        event_id, frame = self._history.assign(client_id, event)
        delivered = self.registry.deliver(client_id, frame) if attempted else 0
        if delivered:
            self._history.keep(client_id, frame)
            return Delivery(event_id, delivered, attempted - delivered)
        if not queue_if_offline:
            return Delivery(None, 0, attempted)
        self._queue.put(client_id, event_id, frame)
        return Delivery(event_id, 0, attempted, queued=True)

    async def broadcast(self, event: Event, fence: Fence | None = None) -> Delivery:
        attempted = self.registry.connection_total
        event_id, frame = self._history.append(BROADCAST_STREAM, event)
        delivered = self.registry.deliver_all(frame)
        return Delivery(event_id, delivered, attempted - delivered)

    async def publish_topic(self, topic: str, event: Event, fence: Fence | None = None) -> Delivery:
        attempted = self.registry.topic_connection_count(topic)
        if not attempted:
            return Delivery(None, 0)
        event_id, frame = self._history.append(topic_stream(topic), event)
        delivered = self.registry.deliver_topic(topic, frame)
        return Delivery(event_id, delivered, attempted - delivered)

    async def connection_count(self, client_id: str) -> int:
        return self.registry.connection_count(client_id)

    async def totals(self) -> Totals:
        return Totals(self.registry.client_total, self.registry.connection_total)

    async def is_healthy(self) -> bool:
        return True

    def subscribe(self, client_id: str, last_event_id: str | None, topics: tuple[str, ...] = ()) -> MemorySubscription:
        return MemorySubscription(self, client_id, last_event_id, topics)

    def subscription_for(self, connection: Connection, last_event_id: str | None) -> Subscription:
        """The replay and cursor of a connection just registered. Registering, reading
        history and claiming the queue happen with no await in between, so no event
        can fall between the replay and the live queue."""
        client_id = connection.client_id
        streams = [client_id, *(topic_stream(topic) for topic in connection.topics)]
        histories = [self._history.entries_since(key, last_event_id) for key in streams] if last_event_id else []
        replay = merge_replay(*histories, self._queue.claim(client_id))
        head = max((self._history.head(key) for key in streams), key=parse_event_id)
        cursor = newest_id(head, replay)
        return Subscription(connection, [frame for _, frame in replay], cursor)

    async def housekeeping(self) -> None:
        self._history.prune()
        self._queue.prune()


class MemorySubscription:
    """`async with broker.subscribe(...) as subscription:` for the memory broker.

    A plain class around the registry's Registration rather than an
    `@asynccontextmanager` around `registry.open`: every open stream holds one
    for its whole life (sse/registration.py has the measurements)."""

    __slots__ = ("_broker", "_registration", "_last_event_id")

    def __init__(self, broker: MemoryBroker, client_id: str, last_event_id: str | None, topics: tuple[str, ...]) -> None:
        self._broker = broker
        self._registration = broker.registry.open(client_id, topics=topics)
        self._last_event_id = last_event_id

    async def __aenter__(self) -> Subscription:
        connection = await self._registration.__aenter__()
        try:
            return self._broker.subscription_for(connection, self._last_event_id)
        except BaseException:
            await self._registration.__aexit__(*sys.exc_info())
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self._registration.__aexit__(*exc_info)
