"""Polling until a condition holds, for tests that cannot be told when it does."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

import anyio


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await anyio.sleep(interval)
    return result


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """The same for synchronous tests (the browser tests drive Playwright's sync API)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
