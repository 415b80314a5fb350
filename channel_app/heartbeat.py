"""One loop for the whole process: heartbeat every stream and do broker upkeep.

A single timer replaces a ping task per connection; a heartbeat that finds a
stream's queue full drops that slow client like any other frame would. Broker
upkeep (history expiry, and with Redis the presence refresh that keeps this
instance's clients visible cluster-wide) runs after the heartbeat, so a slow
or unreachable Redis never delays the heartbeat comments.
"""

from __future__ import annotations

import asyncio
import logging

from sse.broker import Broker
from sse.events import HEARTBEAT_FRAME

logger = logging.getLogger("channel_push.heartbeat")


async def heartbeat_forever(broker: Broker, interval_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            broker.registry.deliver_all(HEARTBEAT_FRAME, timed=False)
            await broker.housekeeping()
        except Exception:
            logger.exception("heartbeat round failed")
