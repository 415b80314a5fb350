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
- once the heap, less what the open streams hold (BLOCKS_PER_OPEN_STREAM
  each), holds THAW_GROWTH times what the last collection left the same way
  and has stopped growing (by less than QUIET_GROWTH between two checks,
  CHECK_EVERY_TICKS apart), or MAX_THAW_DELAY_SECONDS after it reached that
  size, everything is unfrozen, collected once and frozen again: that frees
  any reference cycle that did form.

Leaving the open streams' share out is what keeps a connection storm from
causing a full collection. Streams are not garbage, yet 10,000 of them
quadruple the heap, and the collection that growth used to trigger paused
the server for 1.0-1.3 s to find about 33 unreachable objects (bench, three
runs). A stream is counted at a little less than it measures, so a heap of
streams never passes for garbage while garbage still shows.

The heap's size is read as `sys.getallocatedblocks()`, the small-object
allocator's live blocks, which it keeps per pool: reading it visits each pool
header once, 1.5 ms for a 560 MB heap. The number of frozen objects is not
read: `gc.get_freeze_count()` walks the permanent generation, every object in
it (80 ms for 740,000 objects in-process, about 280 ms in the bench's loaded
server by py-spy), and no request is served while it runs; this policy's
first form did that every ten seconds. The heap measures what a thaw bounds
anyway: memory.

Frozen objects that die by reference counting are freed at once, as always, so
with streams coming and going the heap stays put and no full collection runs
at all. What can still grow it is streams that hold more than they are counted
at (for instance with many topics each), or cycles (the few paths known to
make them: an ops viewer leaving the status stream, a Redis 7 server refusing
redis-py's handshake extras on a new connection). Memory stays bounded: the
heap, garbage included, stays below twice what the last collection left
(besides the streams) plus the open streams' share plus at most a minute of
growth. A thaw is one full collection, a pause of about 1.5 us per tracked
object on the bench host (2.3 s with 15,000 streams open, 1.4 million
objects). Waiting for growth to stop keeps it out of the middle of a storm,
should one grow the heap past the line: one thaw after the last stream, where
thawing at each doubling paused three times (0.5, 1.1 and 2.3 s) in the
middle of 15,000 connects and CPython's own rule collects fully at every
25 %. Every thaw logs what it freed, the heap's blocks besides the streams
after it and its pause, as a warning: every stream waited that long. In
Redis mode a pause longer than REDIS_TIMEOUT_SECONDS fails the commands in
flight (calls answer UNAVAILABLE, connects get a retry hint): at that scale,
give the timeout room.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Callable

from channel_app.periodic import run_every

logger = logging.getLogger("channel_push.garbage")

FREEZE_SECONDS = 1.0
YOUNG_THRESHOLD = 500_000  # CPython's default is 700; a second of connection storm tracks about 160,000
OLDER_THRESHOLD = 20  # default 10
THAW_GROWTH = 2.0
MIN_THAW_BLOCKS = 800_000  # start-up leaves about 400,000; the bench server with 10,000 streams, 1.9 million
# An open stream holds about 143 blocks in the test server and, by the last ratio
# measured between the two (147 against 155), about 135 in the bench server;
# tests/channel_app/test_garbage.py checks that a stream still holds at least this.
BLOCKS_PER_OPEN_STREAM = 128
CHECK_EVERY_TICKS = 10  # "stopped growing": by less than QUIET_GROWTH between two checks
QUIET_GROWTH = 0.02
MAX_THAW_DELAY_SECONDS = 60.0


def settle_garbage_collector() -> None:
    """Collect once, freeze what survived (the imports and the app) and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)


class GarbagePolicy:
    def __init__(
        self,
        growth: float = THAW_GROWTH,
        heap_blocks: Callable[[], int] = sys.getallocatedblocks,
        clock: Callable[[], float] = time.monotonic,
        open_streams: Callable[[], int] = lambda: 0,
    ) -> None:
        self._growth = growth
        self._heap_blocks = heap_blocks
        self._clock = clock
        self._open_streams = open_streams
        self._thaw_at = self._thaw_line(self._unexplained_blocks())
        self._ticks = 0
        self._previous_blocks: int | None = None
        self._due_since: float | None = None

    async def run_forever(self) -> None:
        await run_every(FREEZE_SECONDS, self.tick, logger, "garbage collector upkeep")

    def tick(self) -> None:
        """Freeze what is new; every CHECK_EVERY_TICKS, thaw once the heap has grown
        enough and stopped growing."""
        gc.freeze()
        self._ticks += 1
        if self._ticks % CHECK_EVERY_TICKS:
            return
        blocks, now = self._unexplained_blocks(), self._clock()
        previous, self._previous_blocks = self._previous_blocks, blocks
        if blocks < self._thaw_at:
            self._due_since = None
            return
        if self._due_since is None:
            self._due_since = now
        still_growing = previous is None or blocks > previous * (1 + QUIET_GROWTH)
        if still_growing and now - self._due_since < MAX_THAW_DELAY_SECONDS:
            return  # streams are still pouring in: pause once they have, not in the middle
        started = time.perf_counter()
        freed = self.thaw()
        pause = time.perf_counter() - started
        left = self._unexplained_blocks()
        self._thaw_at = self._thaw_line(left)
        self._due_since = None
        logger.warning(  # rare (after the heap has doubled), and every stream waited this long
            "garbage collector thawed",
            extra={"fields": {"unreachable_freed": freed, "heap_blocks_besides_streams": left, "pause_ms": round(pause * 1000, 1)}},
        )

    @staticmethod
    def thaw() -> int:
        """One full collection of everything, frozen or not; the number of unreachable objects found."""
        gc.unfreeze()
        try:
            return gc.collect()
        finally:
            gc.freeze()

    def _unexplained_blocks(self) -> int:
        """The heap's blocks less the open streams' expected share."""
        return max(0, self._heap_blocks() - self._open_streams() * BLOCKS_PER_OPEN_STREAM)

    def _thaw_line(self, blocks_left: int) -> int:
        """The heap size at which the next thaw is due, given what a collection left."""
        return max(MIN_THAW_BLOCKS, int(blocks_left * self._growth))
