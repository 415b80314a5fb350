"""Many small Redis calls that arrive together, sent as a few.

Streams that end together (a proxy reload, a network blip: hundreds in one
moment) each have presence to remove. One Redis call each opened a burst of
pool connections whose calls ran past the timeout, and the members they left
behind counted until they expired (review: 861 of 1,000). A `BatchedCalls`
collects the arguments of the calls made in the same moment and sends them in
one script per `batch_size` items; what is added while a batch is on its way
goes in the next, so one sender runs at a time.

`close()` lets the batch on its way finish (each is bounded by the Redis
timeout) and sends nothing after it: the Redis client is closed next, and a
batch sent then would open a new connection nobody closes (the stream's
`leave` may have been cancelled by the end of the shutdown grace, while the
sender it waited for went on).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from sse.broker import BrokerUnavailable

logger = logging.getLogger("channel_push.redis")


class BatchedCalls:
    def __init__(self, send: Callable[[list[str]], Awaitable[object]], item_size: int, batch_size: int, what: str) -> None:
        self._send = send  # one call with the arguments of up to batch_size items
        self._width = item_size * batch_size
        self._item_size = item_size
        self._what = what  # for the log line of a failed batch
        self._queued: list[str] = []
        self._sender: asyncio.Future[None] | None = None
        self._closed = False

    async def add(self, *item: str) -> None:
        """Queue one item and return once it was sent (or failed: never raises)."""
        if self._closed:
            return  # what it would remove expires by itself
        self._queued += item
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_queued())
        await asyncio.shield(self._sender)

    async def _send_queued(self) -> None:
        await asyncio.sleep(0)  # the others arriving in this moment join the first batch
        try:
            while self._queued and not self._closed:
                batch, self._queued = self._queued[: self._width], self._queued[self._width :]
                try:
                    await self._send(batch)
                except BrokerUnavailable as unavailable:
                    logger.warning("%s failed (%s); %d expire within two heartbeats", self._what, unavailable, len(batch) // self._item_size)
        finally:
            self._sender = None

    async def close(self) -> None:
        """Wait for the batch on its way; send no other."""
        self._closed = True
        if self._sender is not None:
            await asyncio.shield(self._sender)
