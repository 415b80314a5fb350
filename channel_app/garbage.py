"""The cyclic garbage collector, kept off the objects that live long (process-wide; `serve` runs it).

Reference counting frees nearly all of this server's garbage at once: a
stream, a function call or a refused request leaves no reference cycle
behind (tests/channel_app/test_garbage.py holds a real server to that). The
cyclic collector still walks every tracked object it has not seen die, and
each open stream keeps about 91 of them alive for as long as it lasts. With
CPython's generations the young and older collections walked them again and
again while streams opened: a fifth of a connection storm's CPU (bench, three
runs each, 12,000 streams: 1,289-1,588 connects/s with the collector as it
was, 1,713-1,957 with this policy, 1,645-1,826 with no collector at all), and
older collections paused the whole server for 0.7 s at a time.

So:
- at start-up everything is collected once and frozen (`gc.freeze` moves
  every tracked object to the permanent generation, which collections never
  walk; it is a constant-time list splice);
- every FREEZE_SECONDS whatever has been tracked since is frozen too, unwalked,
  and the young threshold is far above what a second of traffic allocates, so
  a collection between two freezes is rare;
- every GC_THAW_SECONDS everything is unfrozen, collected once and frozen
  again: that frees any reference cycle that did form.

The price: a cycle waits up to GC_THAW_SECONDS to be freed, and each thaw is
one full collection, a pause of about 1.2 us per tracked object on the bench
host: 1.75 s with 15,000 streams open (1.46 million objects), which is why
the default is an hour. Every thaw logs what it freed, how many objects it
froze again and its pause; in the bench each freed nothing. A frozen object
that dies by reference counting is freed at once, as always.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Callable

logger = logging.getLogger("channel_push.garbage")

FREEZE_SECONDS = 1.0
YOUNG_THRESHOLD = 500_000  # CPython's default is 700; a second of connection storm tracks about 160,000
OLDER_THRESHOLD = 20  # default 10


def settle_garbage_collector() -> None:
    """Collect once, freeze what survived (the imports and the app) and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)


class GarbagePolicy:
    def __init__(self, thaw_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._thaw_seconds = thaw_seconds
        self._clock = clock
        self._next_thaw = clock() + thaw_seconds

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(FREEZE_SECONDS)
            try:
                self.tick()
            except Exception:
                logger.exception("garbage collector upkeep failed")

    def tick(self) -> None:
        """Freeze what is new; thaw and collect everything when a thaw is due."""
        if self._clock() < self._next_thaw:
            gc.freeze()
            return
        started = time.perf_counter()
        freed = self.thaw()
        self._next_thaw = self._clock() + self._thaw_seconds
        logger.info(
            "garbage collector thawed",
            extra={"fields": {
                "unreachable_freed": freed, "frozen": gc.get_freeze_count(),
                "pause_ms": round((time.perf_counter() - started) * 1000, 1),
            }},
        )

    @staticmethod
    def thaw() -> int:
        """One full collection of everything, frozen or not; the number of unreachable objects found."""
        gc.unfreeze()
        try:
            return gc.collect()
        finally:
            gc.freeze()
