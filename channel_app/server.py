"""Running the app under uvicorn with a drain that starts on the exit signal.

uvicorn waits for open connections to finish before it runs the lifespan
shutdown, and an SSE stream never finishes by itself. So the server tells the
app to drain the moment SIGTERM/SIGINT arrives: every stream ends with a
`retry:` hint and browsers reconnect to another instance. This subclasses our
own server object instead of patching uvicorn process-wide.
"""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn

from channel_app.lifecycle import Lifecycle


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            loop.call_soon_threadsafe(self._lifecycle.begin_drain)
        super().handle_exit(sig, frame)
