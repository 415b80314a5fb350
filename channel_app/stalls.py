"""One sweep for the whole process: drop streams whose writes block too long.

A client that stops reading fills its socket buffer; the write to its stream
then waits for room that never comes. Rather than a timer around every write
(measurable per delivery, see channel_app/event_stream.py), each write marks
the connection with its start time and this loop, every half timeout, ends
the streams whose current write is older than SEND_TIMEOUT_SECONDS. A stuck
write is therefore dropped between 1x and 1.5x the timeout. While the instance
drains, a stream gets DRAIN_SEND_TIMEOUT_SECONDS to take its retry hint: one
client that stopped reading would otherwise hold the exit to the grace limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

from channel_app.lifecycle import Lifecycle
from sse.registry import ConnectionRegistry

logger = logging.getLogger("channel_push.stalls")
DRAIN_SEND_TIMEOUT_SECONDS = 1.0


def drop_stalled_writers(registry: ConnectionRegistry, send_timeout: float, now: float) -> int:
    dropped = 0
    for connection in registry.connections():
        started = connection.writing_since
        if started and now - started > send_timeout and connection.writer is not None:
            connection.close("slow_client")  # a write blocked too long: same as a full queue
            connection.stop_stalled_writer()
            dropped += 1
    return dropped


async def sweep_stalled_writers_forever(registry: ConnectionRegistry, send_timeout: float, lifecycle: Lifecycle) -> None:
    while True:
        if lifecycle.draining:
            timeout = min(send_timeout, DRAIN_SEND_TIMEOUT_SECONDS)
            await asyncio.sleep(timeout / 2)
        else:
            timeout = send_timeout
            await lifecycle.sleep_unless_draining(timeout / 2)
        try:
            if dropped := drop_stalled_writers(registry, timeout, time.monotonic()):
                logger.info("dropped %d clients whose streams accepted nothing for %ss", dropped, timeout)
        except Exception:
            logger.exception("stall sweep failed")
