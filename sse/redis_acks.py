"""Acknowledgements shared through Redis: the ack may reach any instance, the
waiting call may sit on any other (the contract is in sse/acks.py).

`acknowledge()` stores `cp:ack:<client>:<event>` = outcome for
`remember_seconds` and PUBLISHes it on `cp:acks`, in one transaction. Every
instance's pub/sub listener (sse/redis_listener.py) hears the channel and
wakes its local waiters. `wait()` registers its local waiter first, then
claims the stored key (GETDEL), so an ack that came before the wait still
counts and one that comes during it is not missed.

With Redis unreachable an ack still wakes waiters on the instance that
received it, and a waiter still hears those; nothing raises.
"""

from __future__ import annotations

import contextlib
import time

from redis.asyncio import Redis

from sse.ack_waiters import AckWaiters
from sse.acks import ACK_OUTCOMES
from sse.broker import BrokerUnavailable
from sse.redis_calls import guarded
from sse.redis_scripts import RedisKeys


class RedisAcks:
    def __init__(self, redis: Redis, keys: RedisKeys, timeout_seconds: float, remember_seconds: float = 10.0) -> None:
        self._redis = redis
        self._keys = keys
        self._timeout = timeout_seconds
        self._remember_ms = int(remember_seconds * 1000)
        self._waiters = AckWaiters()
        self._closed = False

    @property
    def waiting(self) -> int:
        return self._waiters.count

    async def acknowledge(self, client_id: str, event_id: str, outcome: str) -> None:
        message = f"{client_id} {event_id} {outcome}"
        try:
            async with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.set(self._keys.ack(client_id, event_id), outcome, px=self._remember_ms)
                pipeline.publish(self._keys.acks_channel, message)
                await guarded(pipeline.execute(), self._timeout)
        except BrokerUnavailable:
            self._waiters.wake((client_id, event_id), outcome)

    def heard(self, message: bytes) -> None:
        """A message from `cp:acks`, handed over by the broker's listener."""
        client_id, _, rest = message.decode(errors="replace").partition(" ")
        event_id, _, outcome = rest.partition(" ")
        if outcome in ACK_OUTCOMES:
            self._waiters.wake((client_id, event_id), outcome)

    async def wait(self, client_id: str, event_id: str, timeout_seconds: float) -> str | None:
        if self._closed:
            return None
        key = (client_id, event_id)
        future = self._waiters.add(key)
        started = time.monotonic()
        with contextlib.suppress(BrokerUnavailable):
            claim = self._redis.getdel(self._keys.ack(client_id, event_id))
            early = await guarded(claim, min(self._timeout, timeout_seconds))
            if early is not None and not future.done():
                future.set_result(early.decode())
        return await self._waiters.until(key, future, max(0.0, timeout_seconds - (time.monotonic() - started)))

    async def close(self) -> None:
        self._closed = True
        self._waiters.release_all()
