"""Store-and-forward in memory: events waiting for an offline client's next connection.

An event is queued only when the caller asked for it (`queueIfOffline`) and
no connection exists. It waits at most `ttl_seconds`; at most `size` wait per
client, and one more is refused (QueueFull) rather than silently pushing out
an event whose caller was already told `queued: true`. The first connection
that opens claims the whole queue. `sse/redis_scripts.py` implements the same
rules in Redis.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from sse.broker import QueueFull, QueuePolicy
from sse.replay import IdentifiedFrame


class MemoryQueue:
    def __init__(self, policy: QueuePolicy, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._waiting: dict[str, deque[tuple[float, str, bytes]]] = {}

    def put(self, client_id: str, event_id: str, frame: bytes) -> None:
        now = self._clock()
        waiting = self._waiting.setdefault(client_id, deque())
        while waiting and waiting[0][0] < now:
            waiting.popleft()
        if len(waiting) >= self._policy.size:
            raise QueueFull(f"{self._policy.size} events already wait for client {client_id}")
        waiting.append((now + self._policy.ttl_seconds, event_id, frame))

    def claim(self, client_id: str) -> list[IdentifiedFrame]:
        waiting = self._waiting.pop(client_id, None)
        if not waiting:
            return []
        now = self._clock()
        return [(event_id, frame) for expires_at, event_id, frame in waiting if expires_at >= now]

    def prune(self) -> None:
        now = self._clock()
        for client_id, waiting in list(self._waiting.items()):
            while waiting and waiting[0][0] < now:
                waiting.popleft()
            if not waiting:
                del self._waiting[client_id]
