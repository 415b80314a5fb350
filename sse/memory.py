"""The in-process broker: the default when no REDIS_URL is set."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from sse.broker import Delivery, Subscription, Totals
from sse.events import Event
from sse.history import BROADCAST_STREAM, MemoryHistory
from sse.registry import ConnectionRegistry


class MemoryBroker:
    name = "memory"

    def __init__(self, registry: ConnectionRegistry, history: MemoryHistory) -> None:
        self.registry = registry
        self._history = history

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, client_id: str, event: Event) -> Delivery:
        attempted = self.registry.connection_count(client_id)
        if not attempted:
            return Delivery(None, 0)
        event_id, frame = self._history.append(client_id, event)
        delivered = self.registry.deliver(client_id, frame)
        return Delivery(event_id, delivered, attempted - delivered)

    async def broadcast(self, event: Event) -> Delivery:
        attempted = self.registry.connection_total
        event_id, frame = self._history.append(BROADCAST_STREAM, event)
        delivered = self.registry.deliver_all(frame)
        return Delivery(event_id, delivered, attempted - delivered)

    async def connection_count(self, client_id: str) -> int:
        return self.registry.connection_count(client_id)

    async def totals(self) -> Totals:
        return Totals(self.registry.client_total, self.registry.connection_total)

    async def is_healthy(self) -> bool:
        return True

    @asynccontextmanager
    async def subscribe(self, client_id: str, last_event_id: str | None) -> AsyncIterator[Subscription]:
        # Registering and reading history happen with no await in between, so
        # no event can fall between the replay and the live queue.
        async with self.registry.open(client_id) as connection:
            replay = self._history.since(client_id, last_event_id) if last_event_id else []
            yield Subscription(connection, replay, self._history.head(client_id))

    def housekeeping(self) -> None:
        self._history.prune()
