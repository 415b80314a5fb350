"""This instance's one pub/sub connection to Redis, kept alive by itself.

It is subscribed to the broadcast channel and to the channel of every client
with a connection on this instance. `add()` returns only once Redis has
confirmed the SUBSCRIBE, so anything published afterwards reaches us.

When the connection fails (Redis restarted, network cut) the listener tries
again with capped exponential backoff, subscribes again to every channel still
wanted, and calls `on_connected` (the broker re-registers presence and replays
what its clients missed) before it hands on any held-back message, so live
frames never overtake the catch-up. redis-py's own silent resubscription is
disabled (no retries on this client) because it would skip that catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from typing import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sse.broker import BrokerUnavailable

logger = logging.getLogger("channel_push.redis")

SUBSCRIBE_BATCH = 500
INITIAL_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 2.0

MessageHandler = Callable[[str, bytes], None]


class PubSubListener:
    def __init__(
        self,
        redis: Redis,
        fixed_channels: list[str],
        on_message: MessageHandler,
        on_connected: Callable[[], Awaitable[None]],
        timeout_seconds: float,
        idle_ping_seconds: float,
    ) -> None:
        self._redis = redis
        self._fixed = fixed_channels
        self._on_message = on_message
        self._on_connected = on_connected
        self._timeout = timeout_seconds
        self._idle_ping = idle_ping_seconds
        self._wanted: set[str] = set()
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._healthy_once = False
        self._outage_logged = False

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-pubsub-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self._timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def add(self, channel: str) -> None:
        """Subscribe and wait for Redis to confirm; BrokerUnavailable if it cannot.
        Returns at once when the channel is already subscribed and confirmed on the
        current connection (topics shared by many local streams)."""
        try:
            await asyncio.wait_for(self._ready.wait(), self._timeout)
            confirmed = asyncio.get_running_loop().create_future()
            async with self._lock:
                if self._pubsub is None:
                    raise BrokerUnavailable("redis pub/sub is reconnecting")
                if self._ready.is_set() and channel in self._wanted and channel not in self._confirmations:
                    return
                self._wanted.add(channel)
                self._confirmations.setdefault(channel, deque()).append(confirmed)
                await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, self._timeout)
        except (RedisError, OSError, TimeoutError) as error:
            raise BrokerUnavailable(f"cannot subscribe: {error!r}") from error

    async def remove(self, channel: str, still_wanted: Callable[[], bool]) -> None:
        """Unsubscribe unless `still_wanted()` says a new connection needs the channel
        again; checked under the same lock as `add`, so the two never cross."""
        async with self._lock:
            if still_wanted():
                return
            self._wanted.discard(channel)
            # Also while reconnecting: the channel may be in the batch just sent, and a
            # stale subscription would make PUBLISH count a receiver that has no client.
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def _run(self) -> None:
        backoff = INITIAL_BACKOFF_SECONDS
        while True:
            try:
                await self._connect_and_listen()
            except (RedisError, OSError, TimeoutError, BrokerUnavailable) as error:
                if self._healthy_once:
                    backoff = INITIAL_BACKOFF_SECONDS
                if not self._outage_logged:
                    logger.warning("redis pub/sub connection lost (%r); reconnecting", error)
                    self._outage_logged = True
            finally:
                self._ready.clear()
                self._fail_confirmations()
                await self._close_pubsub()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _connect_and_listen(self) -> None:
        self._healthy_once = False
        pubsub = self._pubsub = self._redis.pubsub()
        async with self._lock:
            channels = [*self._fixed, *self._wanted]
            for start in range(0, len(channels), SUBSCRIBE_BATCH):
                await pubsub.subscribe(*channels[start : start + SUBSCRIBE_BATCH])
        held_back = await self._await_confirmations(pubsub, len(channels))
        await self._on_connected()
        self._ready.set()
        self._healthy_once = True
        if self._outage_logged:
            logger.warning("redis pub/sub reconnected; %d client channels resubscribed", len(channels) - len(self._fixed))
            self._outage_logged = False
        for channel, data in held_back:
            self._on_message(channel, data)
        await self._listen(pubsub)

    async def _await_confirmations(self, pubsub: PubSub, expected: int) -> list[tuple[str, bytes]]:
        held_back: list[tuple[str, bytes]] = []
        confirmed = 0
        async with asyncio.timeout(max(self._timeout, 5.0)):
            while confirmed < expected:
                message = await pubsub.get_message(timeout=self._timeout)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    confirmed += 1
                elif message["type"] == "message":
                    held_back.append((message["channel"].decode(), message["data"]))
        return held_back

    async def _listen(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self._idle_ping)
            now = loop.time()
            if message is None:
                if now - last_heard > 3 * self._idle_ping:
                    raise TimeoutError("redis pub/sub connection went silent")
                if now - last_heard > self._idle_ping:
                    async with self._lock:
                        await pubsub.ping()
                continue
            last_heard = now
            kind = message["type"]
            if kind == "message":
                self._on_message(message["channel"].decode(), message["data"])
            elif kind == "subscribe":
                self._confirm(message["channel"].decode())

    def _confirm(self, channel: str) -> None:
        waiting = self._confirmations.get(channel)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                break
        if waiting is not None and not waiting:
            del self._confirmations[channel]

    def _fail_confirmations(self) -> None:
        for waiting in self._confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(BrokerUnavailable("redis pub/sub connection lost"))
        self._confirmations.clear()

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
