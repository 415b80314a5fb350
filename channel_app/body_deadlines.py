"""One sweep for the whole process: end requests whose body does not arrive in time.

uvicorn has no body timeout, so a caller that declares a body and trickles it
(or never sends it) would hold its request open for as long as it likes. A
timer per request did the job at a price: `asyncio.timeout` costs 11 us and
even a bare uvloop `call_at` plus `cancel` 6 us, where a whole function call
is about 200 us of our own work and nearly every body has arrived with its
headers. So each read registers its task and deadline in a dict, and one loop
cancels the reads still registered after their deadline. It runs every
quarter of BODY_TIMEOUT_SECONDS, at most every second, so a late body is
refused (408) between 1x and 1.25x the timeout, or at most a second late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from channel_app.periodic import run_every

logger = logging.getLogger("channel_push.body_deadlines")

MAX_SWEEP_SECONDS = 1.0


class BodyDeadlines:
    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._reading: dict[asyncio.Task, float] = {}
        self._overdue: set[asyncio.Task] = set()

    def begin(self, task: asyncio.Task) -> None:
        self._reading[task] = self._clock() + self.timeout_seconds

    def end(self, task: asyncio.Task) -> None:
        self._reading.pop(task, None)
        self._overdue.discard(task)

    def is_overdue(self, task: asyncio.Task) -> bool:
        """Whether the sweep cancelled this read for being late."""
        return task in self._overdue

    def cancel_overdue(self) -> int:
        now = self._clock()
        late = [task for task, deadline in self._reading.items() if deadline <= now and task not in self._overdue]
        for task in late:
            self._overdue.add(task)
            task.cancel()
        return len(late)

    @property
    def reading(self) -> int:
        return len(self._reading)

    async def sweep_forever(self) -> None:
        await run_every(min(MAX_SWEEP_SECONDS, self.timeout_seconds / 4), self.cancel_overdue, logger, "body deadline sweep")
