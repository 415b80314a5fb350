"""Native tokens shared through a real Redis: instances take each other's tokens,
renew one at a time, and spend one app-wide budget (Channel allows 10 per 30 minutes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from redis.asyncio import Redis
from tests.support.fake_channel import APP_SECRET, FakeChannel, FakeClock, token_reply

from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.token_share import RedisTokenShare
from channel_app.native.tokens import TokenManager

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


class Instances:
    """TokenManagers standing for instances: one Redis, one wall clock, local clocks of their own."""

    def __init__(self, redis: Redis, client: NativeApiClient, wall: FakeClock) -> None:
        self._redis, self._client, self.wall = redis, client, wall
        self.clocks: list[FakeClock] = []

    def start(self, budget: int = 10, **options) -> TokenManager:
        local = FakeClock(now=500.0 * (len(self.clocks) + 1))  # monotonic clocks differ between processes
        self.clocks.append(local)
        share = RedisTokenShare(self._redis, timeout_seconds=1.0, wall_clock=self.wall)
        return TokenManager(self._client, APP_SECRET, clock=local, budget=budget, shared=share, wall_clock=self.wall, **options)

    def advance(self, seconds: float) -> None:
        for clock in (self.wall, *self.clocks):
            clock.advance(seconds)


@pytest.fixture
async def instances(redis_url: str, client: NativeApiClient) -> AsyncIterator[Instances]:
    redis = Redis.from_url(redis_url)
    try:
        yield Instances(redis, client, FakeClock(now=1_800_000_000.0))
    finally:
        await redis.aclose()


async def test_a_token_issued_on_one_instance_is_used_by_the_others(instances: Instances, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("ch-1"))
    a, b, c = instances.start(), instances.start(), instances.start()

    assert await a.access_token("c1") == "ch-1"
    assert await b.access_token("c1") == "ch-1"
    assert await c.access_token("c1") == "ch-1"

    assert len(channel.calls) == 1


async def test_one_instance_refreshes_and_the_others_take_its_token(instances: Instances, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("old", refresh="r1"))
    channel.on("refreshToken", token_reply("new", refresh="r2"))
    a, b = instances.start(), instances.start()
    await a.access_token("c1")
    await b.access_token("c1")

    instances.advance(1600)  # both are inside the refresh margin
    assert await a.access_token("c1") == "new"
    assert await b.access_token("c1") == "new"

    [refresh] = channel.calls_to("refreshToken")
    assert refresh.params == {"refreshToken": "r1"}
    assert len(channel.calls) == 2


async def test_instances_renewing_at_once_make_one_call(instances: Instances, channel: FakeChannel) -> None:
    async def slow_issue(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.3)
        return token_reply("only")

    channel.on("issueToken", slow_issue)
    managers = [instances.start() for _ in range(4)]
    got: list[str] = []

    async def fetch(manager: TokenManager) -> None:
        got.append(await manager.access_token("c1"))

    async with anyio.create_task_group() as group:
        for manager in managers:
            group.start_soon(fetch, manager)

    assert got == ["only"] * 4
    assert len(channel.calls) == 1


async def test_the_budget_is_app_wide(instances: Instances, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("t1"), token_reply("t2"), token_reply("t3"))
    a, b = instances.start(budget=2), instances.start(budget=2)
    await a.access_token("c1")
    await b.access_token("c2")

    with pytest.raises(NativeApiError) as spent:
        await a.access_token("c3")
    assert spent.value.kind == "rate_limited"
    assert len(channel.calls) == 2  # refused without asking Channel

    instances.advance(1801)
    assert await a.access_token("c3") == "t3"


async def test_a_token_channel_refused_is_not_taken_from_the_share_again(instances: Instances, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("revoked"), token_reply("fresh"))
    a, b = instances.start(), instances.start()
    await a.access_token("c1")
    assert await b.access_token("c1") == "revoked"

    b.invalidate("c1", "revoked")  # Channel answered 401 to it
    assert await b.access_token("c1") == "fresh"
    a.invalidate("c1", "revoked")
    assert await a.access_token("c1") == "fresh"  # stored by b

    assert len(channel.calls_to("issueToken")) == 2


async def test_without_redis_each_instance_goes_on_alone(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("own"))
    gone = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    share = RedisTokenShare(gone, timeout_seconds=0.2)
    manager = TokenManager(client, APP_SECRET, clock=FakeClock(), shared=share)
    try:
        assert await manager.access_token("c1") == "own"
        assert await manager.access_token("c1") == "own"
    finally:
        await gone.aclose()
    assert len(channel.calls) == 1


async def test_an_instance_waiting_for_anothers_renewal_gets_its_failure_at_once(instances: Instances, channel: FakeChannel) -> None:
    """Review reproduction: while one instance's issueToken failed in 0.3 s, the other
    waited a blind 5 s for a token that never came, then issued its own: 5.5 s for the
    call and two units of the budget for one failure."""
    async def failing_issue(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.3)
        return httpx.Response(500)

    channel.on("issueToken", failing_issue)
    a, b = instances.start(), instances.start()
    outcomes: dict[str, tuple[str, float]] = {}

    async def fetch(name: str, manager: TokenManager) -> None:
        started = anyio.current_time()
        with pytest.raises(NativeApiError) as caught:
            await manager.access_token("c1")
        outcomes[name] = (caught.value.kind, anyio.current_time() - started)

    async with anyio.create_task_group() as group:
        group.start_soon(fetch, "a", a)
        await anyio.sleep(0.05)
        group.start_soon(fetch, "b", b)

    assert {kind for kind, _ in outcomes.values()} == {"unavailable"}
    assert outcomes["b"][1] < 1.5
    assert len(channel.calls_to("issueToken")) == 1
    c = instances.start()  # within the cooldown a third instance does not ask either
    with pytest.raises(NativeApiError):
        await c.access_token("c1")
    assert len(channel.calls_to("issueToken")) == 1


async def test_a_failure_learned_from_another_instance_ends_with_its_cooldown(instances: Instances, channel: FakeChannel) -> None:
    """Review reproduction: an instance that got another's failure from Redis started
    a cooldown of its own on it, and kept failing for up to 20 s although the other
    instance had stored a good token once Channel was back."""
    channel.on("issueToken", httpx.Response(500), token_reply("back"))
    a, b = instances.start(failure_cooldown_seconds=0.3), instances.start(failure_cooldown_seconds=0.3)
    with pytest.raises(NativeApiError):
        await a.access_token("c1")
    with pytest.raises(NativeApiError):
        await b.access_token("c1")  # from the shared failure: Channel is not asked
    assert len(channel.calls_to("issueToken")) == 1
    await anyio.sleep(0.4)  # the shared failure's cooldown ends (Redis time)
    instances.clocks[0].advance(1)  # and a's own (b's clock stands still)
    assert await a.access_token("c1") == "back"
    assert await b.access_token("c1") == "back"
