"""Threat: an abusive caller flooding function calls or SSE connects.

A caller that floods function calls for one channel or target client, or opens
SSE connects from one IP or as one client id, must be refused after its
budget, told when to retry, and let back in once the period has passed - on
every instance at once (Redis) and in each process (memory). Spraying keys
must not exhaust memory or create huge Redis keys, and a Redis outage must not
turn into exceptions in the request path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from security.ratelimit import MAX_PLAIN_KEY_CHARS, Decision, MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    # A generous timeout keeps a slow CI machine from failing open mid-contract.
    return RedisRateLimiter(request.getfixturevalue("redis_client"), timeout_seconds=5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections into its backlog but never answers, like a hung Redis."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


async def hit_many(limiter: RateLimiter, key: str, rate: Rate, times: int) -> list[Decision]:
    return [await limiter.hit(key, rate) for _ in range(times)]


# --- Rate parsing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60/minute", Rate(60, 60)),
        ("10/second", Rate(10, 1)),
        ("1000/hour", Rate(1000, 3600)),
        ("5/10s", Rate(5, 10)),
        (" 3 / 2 minutes ", Rate(3, 120)),
        ("1/DAY", Rate(1, 86400)),
        ("4/0.5s", Rate(4, 0.5)),
    ],
)
def test_configured_rate_text_parses(text: str, expected: Rate) -> None:
    assert Rate.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "60", "/minute", "0/minute", "-1/minute", "5/0s", "5/fortnight", "5/10", "a/b", "5/10s x"],
)
def test_misconfigured_rate_is_rejected_instead_of_disabling_the_limit(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


# --- Contract, both backends --------------------------------------------------


async def test_flooding_caller_is_refused_after_count_with_retry_after(limiter: RateLimiter) -> None:
    rate = Rate.parse("5/minute")
    decisions = await hit_many(limiter, "fn:channel:42", rate, 7)

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(d.retry_after_seconds == 0 for d in decisions[:5])
    for refused in decisions[5:]:
        # One slot refills every 12 s; the caller is told roughly that.
        assert 11.0 < refused.retry_after_seconds <= 12.0
        assert refused.remaining == 0


async def test_asking_without_spending_counts_nothing_and_answers_as_a_hit_would(limiter: RateLimiter) -> None:
    rate = Rate.parse("2/minute")
    asked = [await limiter.hit("sse:client:x", rate, spend=False) for _ in range(5)]
    assert all(decision.allowed for decision in asked)
    assert [d.allowed for d in await hit_many(limiter, "sse:client:x", rate, 3)] == [True, True, False]
    refused = await limiter.hit("sse:client:x", rate, spend=False)
    assert not refused.allowed and 29.0 < refused.retry_after_seconds <= 30.0


async def test_a_cost_spends_that_many_hits_all_or_none_and_at_most_the_whole_budget(limiter: RateLimiter) -> None:
    rate = Rate.parse("5/minute")
    three = await limiter.hit("pub:client:a", rate, cost=3)
    assert (three.allowed, three.remaining) == (True, 2)
    refused = await limiter.hit("pub:client:a", rate, cost=3)
    assert not refused.allowed and 11.0 < refused.retry_after_seconds <= 12.0  # one hit short: 12 s
    assert [d.allowed for d in await hit_many(limiter, "pub:client:a", rate, 3)] == [True, True, False]
    whole = await limiter.hit("pub:client:b", rate, cost=100)
    assert (whole.allowed, whole.remaining) == (True, 0)
    assert not (await limiter.hit("pub:client:b", rate)).allowed


async def test_refused_caller_recovers_after_the_period(limiter: RateLimiter) -> None:
    rate = Rate(3, 0.3)
    assert [d.allowed for d in await hit_many(limiter, "sse:ip:10.0.0.1", rate, 4)] == [
        True, True, True, False,
    ]
    refused = await limiter.hit("sse:ip:10.0.0.1", rate)
    assert 0 < refused.retry_after_seconds <= 0.1

    await asyncio.sleep(refused.retry_after_seconds + 0.02)
    assert (await limiter.hit("sse:ip:10.0.0.1", rate)).allowed

    await asyncio.sleep(0.35)
    after_period = await hit_many(limiter, "sse:ip:10.0.0.1", rate, 4)
    assert [d.allowed for d in after_period] == [True, True, True, False]


async def test_flooding_one_key_does_not_refuse_other_keys(limiter: RateLimiter) -> None:
    rate = Rate.parse("2/minute")
    await hit_many(limiter, "fn:client:abuser", rate, 5)

    assert (await limiter.hit("fn:client:abuser", rate)).allowed is False
    assert (await limiter.hit("fn:client:victim", rate)).allowed is True
    # The same id under another limit is a separate budget.
    assert (await limiter.hit("fn:client:abuser", Rate.parse("10/minute"))).allowed is True


# --- Memory backend -----------------------------------------------------------


async def test_memory_retry_after_is_exact_with_an_injected_clock() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    rate = Rate(2, 10)

    assert [d.allowed for d in await hit_many(limiter, "k", rate, 2)] == [True, True]
    refused = await limiter.hit("k", rate)
    assert refused == Decision(False, 5.0, 0)

    clock.advance(4.999)
    assert not (await limiter.hit("k", rate)).allowed
    clock.advance(0.001)
    assert await limiter.hit("k", rate) == Decision(True, 0.0, 0)

    clock.advance(10)
    assert await limiter.hit("k", rate) == Decision(True, 0.0, 1)


async def test_key_spraying_memory_is_pruned_once_keys_expire() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock, prune_interval_seconds=1.0)
    rate = Rate.parse("1/second")

    for i in range(100_000):
        await limiter.hit(f"sse:ip:{i}", rate)
        clock.advance(0.0001)  # 10k keys per second, 10 s in total

    # At most the keys of the last period plus those expired since the last sweep.
    assert len(limiter) <= 20_001


async def test_key_spraying_cannot_grow_memory_past_max_keys() -> None:
    limiter = MemoryRateLimiter(FakeClock(), max_keys=1_000)
    rate = Rate.parse("10/hour")

    for i in range(100_000):
        await limiter.hit(f"fn:client:{i}", rate)

    assert len(limiter) == 1_000


async def test_memory_keeps_short_keys_as_they_are_and_bounds_long_ones() -> None:
    """Short keys skip the hash (a fifth of a hit); long ones are still digested,
    and neither kind can be mistaken for the other or for another rate's key."""
    limiter = MemoryRateLimiter(FakeClock())
    rate, other_rate = Rate(1, 60), Rate(2, 60)
    short, long = "fn:client:visitor-1", "fn:channel:" + "x" * 100_000

    for key in (short, long):
        assert (await limiter.hit(key, rate)).allowed
        assert not (await limiter.hit(key, rate)).allowed
        assert (await limiter.hit(key, other_rate)).allowed
    assert (await limiter.hit(long[:MAX_PLAIN_KEY_CHARS], rate)).allowed

    assert len(limiter) == 5
    assert sum(bucket.endswith(short) for bucket in limiter._tats) == 2  # one per rate, unhashed
    assert max(len(bucket) for bucket in limiter._tats) < 200


async def test_key_spraying_does_not_evict_a_caller_that_keeps_flooding() -> None:
    limiter = MemoryRateLimiter(FakeClock(), max_keys=100)
    rate = Rate.parse("3/hour")
    await hit_many(limiter, "fn:channel:abuser", rate, 3)

    for i in range(10_000):
        await limiter.hit(f"fn:channel:spray-{i}", rate)
        assert not (await limiter.hit("fn:channel:abuser", rate)).allowed


# --- Redis backend ------------------------------------------------------------


@pytest.mark.redis
async def test_two_instances_flooding_one_key_get_exactly_the_budget(redis_url: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        # Fail closed with a generous timeout: an overloaded test machine must
        # not turn slow hits into fail-open allowances that look like a race.
        limiters = [
            RedisRateLimiter(client, fail_open=False, timeout_seconds=30) for client in (first, second)
        ]
        rate = Rate.parse("50/minute")
        decisions = await asyncio.gather(
            *(limiters[i % 2].hit("fn:channel:shared", rate) for i in range(200))
        )
    finally:
        await first.aclose()
        await second.aclose()

    assert sum(d.allowed for d in decisions) == 50
    assert all(d.retry_after_seconds > 0 for d in decisions if not d.allowed)


@pytest.mark.redis
async def test_huge_caller_supplied_key_does_not_create_a_huge_redis_key(
    redis_client: Redis,
) -> None:
    limiter = RedisRateLimiter(redis_client, prefix="cp:rl:")
    await limiter.hit("x" * 1_000_000, Rate.parse("5/minute"))

    keys = await redis_client.keys("*")
    assert len(keys) == 1
    assert keys[0].startswith(b"cp:rl:") and len(keys[0]) == len("cp:rl:") + 32
    assert 0 < await redis_client.pttl(keys[0]) <= 12_000


@pytest.mark.parametrize(("fail_open", "allowed"), [(True, True), (False, False)])
async def test_unreachable_redis_does_not_raise_into_the_request_path(
    closed_port: int, fail_open: bool, allowed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=1)
    try:
        limiter = RedisRateLimiter(client, fail_open=fail_open, timeout_seconds=0.2)
        with caplog.at_level(logging.WARNING, logger="security.ratelimit_redis"):
            decisions = await hit_many(limiter, "sse:client:c1", Rate.parse("1/minute"), 3)
    finally:
        await client.aclose()

    assert [d.allowed for d in decisions] == [allowed] * 3
    assert all((d.retry_after_seconds > 0) is not allowed for d in decisions)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per hit"


@pytest.mark.parametrize("fail_open", [True, False])
async def test_hung_redis_cannot_stall_callers_past_the_timeout(hung_port: int, fail_open: bool) -> None:
    client = Redis(host="127.0.0.1", port=hung_port)  # no socket timeouts of its own
    try:
        limiter = RedisRateLimiter(client, fail_open=fail_open, timeout_seconds=0.2)
        started = time.monotonic()
        decision = await limiter.hit("fn:channel:1", Rate.parse("1/minute"))
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()

    assert decision.allowed is fail_open
    assert elapsed < 1.0


@pytest.mark.redis
@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_restart_mid_traffic_degrades_then_limits_again(
    redis_server, redis_client: Redis, fail_open: bool
) -> None:
    limiter = RedisRateLimiter(redis_client, fail_open=fail_open, timeout_seconds=1)
    rate = Rate.parse("2/minute")
    assert [d.allowed for d in await hit_many(limiter, "k", rate, 3)] == [True, True, False]

    redis_server.stop()
    try:
        during_outage = await limiter.hit("k", rate)
    finally:
        redis_server.start()
    assert during_outage.allowed is fail_open

    # Restarted without persistence: the script cache is empty and so is the
    # budget; the limiter must reload the script and limit again.
    assert [d.allowed for d in await hit_many(limiter, "k", rate, 3)] == [True, True, False]
