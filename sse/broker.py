"""The broker contract, and the choice between the two brokers.

A broker delivers events to the connections of a client, or to every
connection subscribed to a topic, wherever they are open, answers presence
questions, and replays history to reconnecting clients: one Last-Event-ID
covers the client stream and every topic of a connection, because event ids
come from one sequence per broker (sse/history.py). `MemoryBroker` serves one process; `RedisBroker` lets many instances
share one Redis. Both are tested against the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncContextManager, NamedTuple, Protocol

from sse.events import Event
from sse.registry import Connection, ConnectionObserver, ConnectionRegistry, RegistryLimits

if TYPE_CHECKING:
    from config.settings import Settings


class Delivery(NamedTuple):
    """What a publish reached. A named tuple: one is made per call (a frozen dataclass's __init__ costs four times as much)."""

    event_id: str | None  # None when nothing was published (nobody to receive it)
    delivered: int  # connections that accepted the event, cluster-wide
    dropped: int = 0  # connections that could not take it (slow clients, dropped for it); as far as known
    queued: bool = False  # nobody received it yet: it waits for the client's next connection


@dataclass(frozen=True)
class Totals:
    clients: int
    connections: int


@dataclass(frozen=True)
class Subscription:
    connection: Connection
    replay: list[bytes]  # frames the client missed, oldest first
    cursor: str  # id of the newest event of the connection's streams (client and topics) at subscribe time


class Fence(NamedTuple):
    """Makes a publish conditional, for retry-safe publishing (channel_app/idempotency.py).

    The broker publishes only while `key` holds a value that starts with
    `holder` (the publishing request's hold on it), and in the same atomic step
    replaces it with `record` followed by the answer's JSON and `}`
    (`{"delivered", "queued", "eventId"}`), kept `lifetime_ms`. So a publish that
    takes effect after its caller stopped waiting (a slow Redis) still leaves its
    answer for the retry, and one that runs after the caller let go of the key
    publishes nothing. A `record` that starts with `holder` keeps the hold, for
    the next event of a sequence. Only a broker whose publish can outlive its
    caller's wait needs it: the memory broker ignores it."""

    key: str
    holder: bytes
    record: bytes
    lifetime_ms: int


class PublishFenced(Exception):
    """The fence's key no longer held its pending value: nothing was published."""


class BrokerUnavailable(Exception):
    """The shared backend cannot be reached (or did not answer in time): no
    delivery can be confirmed."""


class BrokerRefusedWrite(BrokerUnavailable):
    """The backend answered, and refused the write (Redis out of memory under
    `noeviction`): nothing was done, so the answer can say so."""


BROKER_UNAVAILABLE = "broker_unavailable"  # why a stream that could not subscribe ended, and its refusal


class QueueFull(Exception):
    """The client's store-and-forward queue is full; the event was not kept."""


@dataclass(frozen=True)
class QueuePolicy:
    """Store-and-forward: how long and how many events wait for an offline client."""

    ttl_seconds: float
    size: int


class Broker(Protocol):
    name: str
    registry: ConnectionRegistry

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(
        self, client_id: str, event: Event, queue_if_offline: bool = False, fence: Fence | None = None
    ) -> Delivery:
        """Deliver to the client's connections. With no connection anywhere the event
        is neither sent nor kept, so a later reconnect cannot act on a call that
        was already answered CLIENT_NOT_CONNECTED; unless `queue_if_offline`, when
        it waits (queued=True) for the client's next connection. Raises QueueFull,
        BrokerUnavailable, and PublishFenced with a `fence` that no longer holds."""

    async def broadcast(self, event: Event, fence: Fence | None = None) -> Delivery: ...

    async def publish_topic(self, topic: str, event: Event, fence: Fence | None = None) -> Delivery:
        """Deliver to every connection subscribed to `topic`, cluster-wide, and keep
        it in the topic's history. With no subscriber anywhere nothing is sent or
        kept (Delivery(None, 0)); topics have no store-and-forward queue."""

    async def connection_count(self, client_id: str) -> int: ...

    async def totals(self) -> Totals: ...

    async def is_healthy(self) -> bool: ...

    def subscribe(
        self, client_id: str, last_event_id: str | None, topics: tuple[str, ...] = ()
    ) -> AsyncContextManager[Subscription]:
        """Register a connection for its client and `topics` (distinct, valid names).
        Its replay holds, oldest first and each once, the events after
        `last_event_id` still in the history of the client's stream and of each
        topic, and the events queued for the client; live events follow in its
        queue, none of them repeated."""

    async def housekeeping(self) -> None:
        """Periodic upkeep (expiring history, refreshing presence); called by the
        heartbeat loop every HEARTBEAT_SECONDS. Never raises for an unreachable backend."""


def make_broker(settings: Settings, observer: ConnectionObserver | None = None) -> Broker:
    registry = ConnectionRegistry(
        RegistryLimits(
            per_client=settings.max_connections_per_client,
            total=settings.max_connections,
            queue_size=settings.connection_queue_size,
        ),
        observer,
    )
    if settings.redis_url:
        from sse.redis import RedisBroker

        return RedisBroker(settings, registry)
    from sse.history import MemoryHistory
    from sse.memory import MemoryBroker
    from sse.offline_queue import MemoryQueue

    return MemoryBroker(
        registry,
        MemoryHistory(settings.history_size, settings.history_ttl_seconds),
        MemoryQueue(QueuePolicy(settings.queue_ttl_seconds, settings.queue_size)),
    )
