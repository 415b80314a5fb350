"""Calls waiting, on this instance, for a browser's acknowledgement of one event."""

from __future__ import annotations

import asyncio

AckKey = tuple[str, str]  # (client_id, event_id)


class AckWaiters:
    def __init__(self) -> None:
        self._waiting: dict[AckKey, list[asyncio.Future[str | None]]] = {}

    @property
    def count(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    def add(self, key: AckKey) -> asyncio.Future[str | None]:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        return future

    async def until(self, key: AckKey, future: asyncio.Future[str | None], timeout_seconds: float) -> str | None:
        """The outcome, or None at the deadline; the waiter is removed either way."""
        try:
            async with asyncio.timeout(timeout_seconds):
                return await future
        except TimeoutError:
            return None
        finally:
            self._forget(key, future)

    def wake(self, key: AckKey, outcome: str | None) -> bool:
        """Resolve every waiter for `key`; False when nobody was waiting."""
        futures = self._waiting.pop(key, None)
        for future in futures or ():
            if not future.done():
                future.set_result(outcome)
        return bool(futures)

    def release_all(self) -> None:
        for key in list(self._waiting):
            self.wake(key, None)

    def _forget(self, key: AckKey, future: asyncio.Future[str | None]) -> None:
        futures = self._waiting.get(key)
        if futures and future in futures:
            futures.remove(future)
        if futures is not None and not futures:
            del self._waiting[key]
