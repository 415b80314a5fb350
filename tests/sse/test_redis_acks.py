"""RedisAcks: the browser's ack reaches the waiting call whichever instance got it.

Two brokers on one real redis-server stand for two instances; the same
contract as MemoryAcks (tests/sse/test_acks.py) holds across them.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import pytest

from sse.acks import make_acks
from tests.support.apps import make_settings
from tests.support.brokers import running_broker

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@asynccontextmanager
async def two_instances(redis_url: str):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        settings = make_settings(redis_url=redis_url)
        acks_a, acks_b = make_acks(settings, a), make_acks(settings, b)
        try:
            yield acks_a, acks_b
        finally:
            await acks_a.close()
            await acks_b.close()


async def test_ack_on_one_instance_wakes_the_call_waiting_on_another(redis_url):
    async with two_instances(redis_url) as (on_a, on_b):
        assert type(on_a).__name__ == "RedisAcks"
        waiting = asyncio.create_task(on_a.wait("visitor", "1-0", 5))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await on_b.acknowledge("visitor", "1-0", "done")
        assert await waiting == "done"
        assert time.monotonic() - started < 1
        assert on_a.waiting == 0


async def test_ack_that_reached_another_instance_first_still_counts_once(redis_url):
    async with two_instances(redis_url) as (on_a, on_b):
        await on_b.acknowledge("visitor", "1-0", "declined")
        assert await on_a.wait("visitor", "1-0", 1) == "declined"
        assert await on_a.wait("visitor", "1-0", 0.1) is None


async def test_ack_for_another_client_or_event_does_not_count(redis_url):
    async with two_instances(redis_url) as (on_a, on_b):
        waiting = asyncio.create_task(on_a.wait("visitor", "1-0", 0.3))
        await asyncio.sleep(0.05)
        await on_b.acknowledge("intruder", "1-0", "done")
        await on_b.acknowledge("visitor", "1-1", "done")
        assert await waiting is None


async def test_calls_waiting_on_both_instances_all_hear_the_ack(redis_url):
    async with two_instances(redis_url) as (on_a, on_b):
        waits = [asyncio.create_task(acks.wait("visitor", "1-0", 5)) for acks in (on_a, on_a, on_b)]
        await asyncio.sleep(0.05)
        await on_b.acknowledge("visitor", "1-0", "done")
        assert await asyncio.gather(*waits) == ["done", "done", "done"]


async def test_early_ack_is_forgotten_after_its_window(redis_url):
    async with two_instances(redis_url) as (on_a, on_b):
        on_b._remember_ms = 100
        await on_b.acknowledge("visitor", "1-0", "done")
        await asyncio.sleep(0.3)
        assert await on_a.wait("visitor", "1-0", 0.1) is None


async def test_close_releases_every_waiter(redis_url):
    async with two_instances(redis_url) as (on_a, _):
        waiting = asyncio.create_task(on_a.wait("visitor", "1-0", 30))
        await asyncio.sleep(0.05)
        await on_a.close()
        assert await asyncio.wait_for(waiting, 1) is None
        assert await on_a.wait("visitor", "1-1", 30) is None


async def test_without_redis_an_ack_still_reaches_a_waiter_on_the_same_instance(redis_server, redis_url):
    async with running_broker(redis_url=redis_url, redis_timeout_seconds=0.3) as broker:
        acks = make_acks(make_settings(redis_url=redis_url), broker)
        redis_server.stop()
        waiting = asyncio.create_task(acks.wait("visitor", "1-0", 3))
        await asyncio.sleep(0.5)
        await acks.acknowledge("visitor", "1-0", "done")
        assert await waiting == "done"
        await acks.close()
