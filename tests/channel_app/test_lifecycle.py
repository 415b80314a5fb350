"""Lifecycle: the drain flag, and the sleep that a drain cuts short."""

from __future__ import annotations

import asyncio

import pytest

from channel_app.lifecycle import Lifecycle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_drain_cuts_the_sleep_short():
    lifecycle = Lifecycle()
    sleeper = asyncio.create_task(lifecycle.sleep_unless_draining(30))
    await asyncio.sleep(0)
    lifecycle.begin_drain()
    assert await asyncio.wait_for(sleeper, 1) is False


async def test_a_cancel_that_arrives_with_the_drain_is_not_lost():
    """The lifespan begins the drain and cancels its loops in one step; a sleep that
    swallowed that cancel (asyncio.wait_for on 3.11) kept its loop, and the process
    that could not bind its port, alive forever."""
    lifecycle = Lifecycle()
    sleeper = asyncio.create_task(lifecycle.sleep_unless_draining(30))
    await asyncio.sleep(0)
    lifecycle.begin_drain()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sleeper, 1)
