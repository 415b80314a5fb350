"""The stall sweep: a stream whose write blocks longer than the send timeout is dropped."""

from __future__ import annotations

import asyncio

import pytest

from channel_app.stalls import drop_stalled_writers
from sse.registry import ConnectionRegistry, RegistryLimits

pytestmark = pytest.mark.anyio


async def test_write_blocked_longer_than_the_timeout_drops_that_client_only():
    registry = ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=4))
    async with registry.open("stuck") as stuck, registry.open("reading") as reading:
        writers = [asyncio.create_task(asyncio.sleep(60)) for _ in range(2)]
        stuck.writer, reading.writer = writers
        stuck.writing_since = 100.0
        reading.writing_since = 109.5
        assert drop_stalled_writers(registry, send_timeout=5.0, now=110.0) == 1
        await asyncio.sleep(0)
        assert stuck.close_reason == "slow_client" and writers[0].cancelled()
        assert reading.close_reason is None and not writers[1].done()
        writers[1].cancel()


async def test_idle_streams_are_never_dropped_by_the_sweep():
    registry = ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=4))
    async with registry.open("idle") as idle:
        idle.writer = asyncio.create_task(asyncio.sleep(60))
        assert drop_stalled_writers(registry, send_timeout=5.0, now=1e9) == 0
        assert idle.close_reason is None
        idle.writer.cancel()
