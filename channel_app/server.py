"""Running the app under uvicorn with a drain that starts on the exit signal.

uvicorn waits for open connections to finish before it runs the lifespan
shutdown, and an SSE stream never finishes by itself. So the server tells the
app to drain the moment SIGTERM/SIGINT arrives: every stream ends with a
`retry:` hint and browsers reconnect to another instance. This subclasses our
own server object instead of patching uvicorn process-wide.

`upkeep` jobs (the garbage policy's ticks) run on the server's loop for as
long as it serves, and are cancelled when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType
from typing import Awaitable, Callable, Sequence

import uvicorn

from channel_app.lifecycle import Lifecycle


class DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, lifecycle: Lifecycle, upkeep: Sequence[Callable[[], Awaitable[None]]] = ()
    ) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._upkeep = tuple(upkeep)

    async def main_loop(self) -> None:
        jobs = [asyncio.create_task(job()) for job in self._upkeep]
        try:
            await super().main_loop()
        finally:
            for job in jobs:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.call_soon_threadsafe(self._lifecycle.begin_drain)
        super().handle_exit(sig, frame)
