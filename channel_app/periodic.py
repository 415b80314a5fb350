"""A job run every so often for as long as the process serves."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable


async def run_every(seconds: float, job: Callable[[], object], logger: logging.Logger, what: str) -> None:
    """Run `job` every `seconds` until cancelled; a failing run is logged and the next goes ahead."""
    while True:
        await asyncio.sleep(seconds)
        try:
            job()
        except Exception:
            logger.exception("%s failed", what)
