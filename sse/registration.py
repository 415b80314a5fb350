"""`async with registry.open(client_id) as connection:` as a plain class.

Every open stream holds one of these for its whole life, inside its broker
subscription (sse/memory.py's `MemorySubscription`, or the Redis broker's
`subscribe`). As an `@asynccontextmanager`
each level kept a suspended async generator, its frame and the wrapper
object: about 440 bytes per level and 1.7 us more per enter and exit than a
class (tracemalloc over 10,000 held tasks). The registry keeps the rules
(`enter`, `leave`); this only remembers what to leave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sse.registry import Connection, ConnectionRegistry


class Registration:
    __slots__ = ("_registry", "_client_id", "_topics", "_on_last", "_on_last_topic", "_connection")

    def __init__(
        self,
        registry: ConnectionRegistry,
        client_id: str,
        topics: tuple[str, ...],
        on_last: Callable[[str], object] | None,
        on_last_topic: Callable[[str], object] | None,
    ) -> None:
        self._registry = registry
        self._client_id = client_id
        self._topics = topics
        self._on_last = on_last
        self._on_last_topic = on_last_topic
        self._connection: Connection | None = None

    async def __aenter__(self) -> Connection:
        self._connection = self._registry.enter(self._client_id, self._topics)
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._registry.leave(connection, self._on_last, self._on_last_topic)
