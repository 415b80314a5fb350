"""One loop for the whole process: heartbeat every stream and do broker upkeep.

A single timer replaces a ping task per connection; a heartbeat that finds a
stream's queue full drops that slow client like any other frame would.

A round's heartbeats are spread over the interval in slices, HEARTBEAT_STEP_SECONDS
apart, rather than written to every stream at once: one write costs 15-25 us
of CPU here, so 10,000 streams at once held the event loop for about 250 ms
every interval, and every function call arriving meanwhile waited that long
(p99 at 2,000 calls/s was that stall). A round works through the streams open
when it began, each in the slice its id hashes to, so a stream's heartbeats
come one interval apart however many streams open or close around it (slices
by position in the list moved a stream from the start of one round to the end
of the next when the streams ahead of it closed: nearly two intervals of
silence, review reproduction). A stream opened since waits for the next round:
at most two intervals after its opening frames. A round keeps its streams
referenced until it ends, one interval at most after they close.

Broker upkeep (history expiry, and with Redis the presence refresh that keeps
this instance's clients visible cluster-wide) starts after each round as a
task of its own, and a round does not wait for it, so a slow or unreachable
Redis never delays the heartbeat comments (awaited in line, a Redis stall
stretched every interval by REDIS_TIMEOUT_SECONDS: review reproduction, 2 s
heartbeats 3 s apart behind a load balancer timing out idle streams). One
upkeep runs at a time: a round whose previous upkeep is still running skips its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

from sse.broker import Broker
from sse.events import HEARTBEAT_FRAME
from sse.registry import Connection

logger = logging.getLogger("channel_push.heartbeat")

HEARTBEAT_STEP_SECONDS = 0.1


async def heartbeat_forever(broker: Broker, interval_seconds: float, step_seconds: float = HEARTBEAT_STEP_SECONDS) -> None:
    most_steps = max(1, round(interval_seconds / step_seconds))
    loop = asyncio.get_running_loop()
    upkeep: asyncio.Task[None] | None = None
    try:
        while True:
            await _round(broker, loop, interval_seconds, most_steps)
            if upkeep is None or upkeep.done():
                upkeep = asyncio.create_task(_upkeep(broker))
    finally:
        if upkeep is not None:
            # Awaited: once this returns the broker closes, and housekeeping still
            # running would use a closed Redis client (a new connection nobody closes).
            upkeep.cancel()
            await asyncio.wait([upkeep])  # unlike `await upkeep`, a cancel of this loop still reaches it


async def _round(broker: Broker, loop: asyncio.AbstractEventLoop, interval_seconds: float, most_steps: int) -> None:
    """One heartbeat to every stream open now, in slices spread over the interval."""
    started = loop.time()
    for step, due in enumerate(_slices(broker.registry.connections(), most_steps), start=1):
        if not due:
            continue
        await asyncio.sleep(max(0.0, started + interval_seconds * step / most_steps - loop.time()))
        for connection in due:
            try:  # one broken stream must not cost the rest of its slice their heartbeat
                connection.offer(HEARTBEAT_FRAME, timed=False)
            except Exception:
                logger.exception("heartbeat failed for connection %s", connection.id)
    await asyncio.sleep(max(0.0, started + interval_seconds - loop.time()))  # the last slices may be empty


async def _upkeep(broker: Broker) -> None:
    try:
        await broker.housekeeping()
    except Exception:
        logger.exception("broker housekeeping failed")


def _slices(streams: Iterable[Connection], steps: int) -> list[list[Connection]]:
    """`streams` in `steps` slices, each stream in the same slice every round (its id's hash)."""
    slices: list[list[Connection]] = [[] for _ in range(steps)]
    for connection in streams:
        slices[hash(connection.id) % steps].append(connection)
    return slices
