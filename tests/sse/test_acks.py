"""MemoryAcks: a waiting call hears the browser's ack, or gives up at its deadline."""

from __future__ import annotations

import asyncio

import pytest

from sse.acks import MemoryAcks

pytestmark = pytest.mark.anyio


async def test_ack_wakes_the_call_waiting_for_that_event():
    acks = MemoryAcks()
    waiting = asyncio.create_task(acks.wait("visitor", "1-0", 5))
    await asyncio.sleep(0)
    await acks.acknowledge("visitor", "1-0", "done")
    assert await waiting == "done"
    assert acks.waiting == 0


async def test_wait_without_ack_returns_none_at_the_deadline():
    acks = MemoryAcks()
    assert await acks.wait("visitor", "1-0", 0.05) is None
    assert acks.waiting == 0


async def test_ack_for_another_client_or_event_does_not_count():
    acks = MemoryAcks()
    waiting = asyncio.create_task(acks.wait("visitor", "1-0", 0.2))
    await asyncio.sleep(0)
    await acks.acknowledge("intruder", "1-0", "done")
    await acks.acknowledge("visitor", "1-1", "done")
    assert await waiting is None


async def test_ack_that_arrives_before_the_wait_still_counts():
    acks = MemoryAcks()
    await acks.acknowledge("visitor", "1-0", "refused")
    assert await acks.wait("visitor", "1-0", 0.05) == "refused"
    assert await acks.wait("visitor", "1-0", 0.05) is None  # claimed once


async def test_early_ack_is_forgotten_after_its_window():
    now = [100.0]
    acks = MemoryAcks(remember_seconds=10, clock=lambda: now[0])
    await acks.acknowledge("visitor", "1-0", "done")
    now[0] += 11
    assert await acks.wait("visitor", "1-0", 0.01) is None


async def test_unclaimed_acks_are_bounded():
    acks = MemoryAcks(remember_max=3)
    for sequence in range(10):
        await acks.acknowledge("visitor", f"1-{sequence}", "done")
    assert await acks.wait("visitor", "1-0", 0.01) is None
    assert await acks.wait("visitor", "1-9", 0.01) == "done"


async def test_two_calls_waiting_on_one_event_both_hear_the_ack():
    acks = MemoryAcks()
    first = asyncio.create_task(acks.wait("visitor", "1-0", 5))
    second = asyncio.create_task(acks.wait("visitor", "1-0", 5))
    await asyncio.sleep(0)
    await acks.acknowledge("visitor", "1-0", "done")
    assert (await first, await second) == ("done", "done")


async def test_close_releases_every_waiter_at_once():
    acks = MemoryAcks()
    waiting = asyncio.create_task(acks.wait("visitor", "1-0", 30))
    await asyncio.sleep(0)
    await acks.close()
    assert await asyncio.wait_for(waiting, 1) is None
    assert await acks.wait("visitor", "1-1", 30) is None
