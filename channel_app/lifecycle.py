"""Process lifecycle: when the instance started and whether it is draining.

Draining starts on SIGTERM (see server.py), before uvicorn waits for open
connections, so every stream can end promptly with a retry hint and its
browser reconnects to another instance.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable


class Lifecycle:
    def __init__(self) -> None:
        self.started_at = time.time()
        self.draining = False
        self._on_drain: list[Callable[[], object]] = []
        self._drained = asyncio.Event()

    @property
    def uptime_seconds(self) -> float:
        return time.time() - self.started_at

    def on_drain(self, callback: Callable[[], object]) -> None:
        self._on_drain.append(callback)

    def begin_drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        self._drained.set()
        for callback in self._on_drain:
            callback()

    async def sleep_unless_draining(self, seconds: float) -> bool:
        """Wait `seconds`, or less when a drain begins; True while not draining.

        asyncio.wait, not wait_for: on Python 3.11 wait_for drops a cancellation that
        arrives as the drain sets the event, and the lifespan's `await` of a loop it
        just cancelled would then wait forever (seen when the port was taken)."""
        if not self.draining:
            drained = asyncio.ensure_future(self._drained.wait())
            try:
                await asyncio.wait({drained}, timeout=seconds)
            finally:
                drained.cancel()
        return not self.draining
