"""The publish API's id store, in memory and on a real Redis: a reservation is short,
an answer is kept for the whole retention."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from channel_app.idempotency import PENDING_SECONDS, MemoryIdempotency, RedisIdempotency

pytestmark = pytest.mark.anyio

RETENTION = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_reservation_whose_request_died_unanswered_lapses_long_before_the_retention():
    """A request that dies between reserving its id and answering (process killed,
    release lost to a Redis stall) used to lock retries out for the whole retention."""
    clock = Clock()
    store = MemoryIdempotency(RETENTION, clock=clock)
    assert await store.claim("k", "digest") is None
    clock.now += PENDING_SECONDS - 1
    assert (await store.claim("k", "digest")).status is None  # still in progress
    clock.now += 2
    assert await store.claim("k", "digest") is None  # reserved afresh


async def test_an_answer_is_kept_for_the_whole_retention():
    clock = Clock()
    store = MemoryIdempotency(RETENTION, clock=clock)
    await store.claim("k", "digest")
    await store.complete("k", "digest", 200, {"delivered": 1})
    clock.now += RETENTION - 1
    assert (await store.claim("k", "digest")).answer == {"delivered": 1}


@pytest.mark.redis
async def test_on_redis_a_reservation_expires_after_pending_seconds_and_an_answer_after_the_retention(redis_url):
    redis = Redis.from_url(redis_url)
    try:
        store = RedisIdempotency(redis, RETENTION, timeout_seconds=2)
        assert await store.claim("k", "digest") is None
        assert 0 < await redis.pttl("cp:publish-id:k") <= PENDING_SECONDS * 1000
        await store.complete("k", "digest", 200, {"delivered": 1})
        assert PENDING_SECONDS * 1000 < await redis.pttl("cp:publish-id:k") <= RETENTION * 1000
    finally:
        await redis.aclose()
