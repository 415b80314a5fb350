"""Acknowledgements: the browser confirms it acted on an event, a waiting call hears it.

A function call with `waitForAck` publishes its event, then waits on
`(clientId, eventId)` until the browser's `POST /sse/ack` arrives or the
deadline passes. Acks are keyed by client *and* event id because event ids
are only unique within one client's stream.

The contract (`Acks`) is what a cross-instance implementation must honour:

- `acknowledge()` may run on any instance, `wait()` on another. The ack
  endpoint only ever calls `acknowledge()`; it never looks for a waiter
  itself, so it neither knows nor reveals whether anybody was waiting.
- An ack that arrives *before* `wait()` starts still counts if it is recent:
  with a shared backend, publishing can return after the browser has already
  acted. `MemoryAcks` remembers unclaimed acks for `remember_seconds`.
- `wait()` returns the outcome, or None at the deadline or on `close()`.

With REDIS_URL, `make_acks()` returns `RedisAcks` (sse/redis_acks.py), which
honours the same contract across instances.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Protocol

from sse.ack_waiters import AckKey, AckWaiters

if TYPE_CHECKING:
    from config.settings import Settings

ACK_OUTCOMES = ("done", "refused", "declined", "failed")
"""done: the browser acted; refused: the widget refused it (e.g. a non-http(s)
URL); declined: the site's own handler declined; failed: the handler threw."""


class Acks(Protocol):
    async def acknowledge(self, client_id: str, event_id: str, outcome: str) -> None: ...

    async def wait(self, client_id: str, event_id: str, timeout_seconds: float) -> str | None: ...

    async def close(self) -> None:
        """Release every waiter (it returns None); later waits return None at once."""


class MemoryAcks:
    def __init__(
        self,
        remember_seconds: float = 10.0,
        remember_max: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remember_seconds = remember_seconds
        self._remember_max = remember_max
        self._clock = clock
        self._waiters = AckWaiters()
        self._unclaimed: OrderedDict[AckKey, tuple[str, float]] = OrderedDict()
        self._closed = False

    @property
    def waiting(self) -> int:
        return self._waiters.count

    async def acknowledge(self, client_id: str, event_id: str, outcome: str) -> None:
        key = (client_id, event_id)
        if not self._waiters.wake(key, outcome):
            self._remember(key, outcome)

    async def wait(self, client_id: str, event_id: str, timeout_seconds: float) -> str | None:
        key = (client_id, event_id)
        early = self._claim(key)
        if early is not None or self._closed:
            return early
        return await self._waiters.until(key, self._waiters.add(key), timeout_seconds)

    async def close(self) -> None:
        self._closed = True
        self._waiters.release_all()
        self._unclaimed.clear()

    def _remember(self, key: AckKey, outcome: str) -> None:
        now = self._clock()
        self._unclaimed[key] = (outcome, now + self._remember_seconds)
        self._unclaimed.move_to_end(key)
        while self._unclaimed:
            oldest_key, (_, expires_at) = next(iter(self._unclaimed.items()))
            if expires_at > now and len(self._unclaimed) <= self._remember_max:
                break
            del self._unclaimed[oldest_key]

    def _claim(self, key: AckKey) -> str | None:
        remembered = self._unclaimed.pop(key, None)
        if remembered is None:
            return None
        outcome, expires_at = remembered
        return outcome if expires_at > self._clock() else None


def make_acks(settings: Settings, broker: object | None = None) -> Acks:
    """Shared through the Redis broker when there is one, else in this process."""
    shared = getattr(broker, "shared_acks", None)
    return shared() if settings.redis_url and shared is not None else MemoryAcks()
