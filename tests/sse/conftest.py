"""Fixtures for the broker tests: a running broker on each backend, and a raw Redis client."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.support.brokers import running_broker


@pytest.fixture
async def broker(backend):
    async with running_broker(**backend) as running:
        yield running


@pytest.fixture
async def admin(redis_url):
    """A plain client on the test Redis, to look at (or tamper with) what the broker stored."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
