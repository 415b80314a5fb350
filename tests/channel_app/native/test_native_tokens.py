"""TokenManager: cache, early refresh, fallback, single flight, app-wide budget."""

from __future__ import annotations

import anyio
import httpx
import pytest
from tests.support.fake_channel import APP_SECRET, FakeChannel, FakeClock, ok, token_reply

from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.tokens import TokenManager

pytestmark = pytest.mark.anyio


async def test_token_is_issued_once_then_served_from_cache(tokens: TokenManager, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("app-1"))

    assert await tokens.access_token(None) == "app-1"
    assert await tokens.access_token(None) == "app-1"

    [call] = channel.calls
    assert call.body == {"method": "issueToken", "params": {"secret": APP_SECRET}}
    assert call.token is None


async def test_channel_tokens_are_cached_per_channel(tokens: TokenManager, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("ch-a"), token_reply("ch-b"), token_reply("app"))

    assert await tokens.access_token("a") == "ch-a"
    assert await tokens.access_token("b") == "ch-b"
    assert await tokens.access_token(None) == "app"
    assert await tokens.access_token("a") == "ch-a"

    assert [c.params for c in channel.calls] == [
        {"secret": APP_SECRET, "channelId": "a"},
        {"secret": APP_SECRET, "channelId": "b"},
        {"secret": APP_SECRET},
    ]


async def test_token_is_refreshed_five_minutes_before_expiry(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("old", refresh="refresh-1", expires_in=1800))
    channel.on("refreshToken", token_reply("new", refresh="refresh-2"))
    await tokens.access_token("c1")

    clock.advance(1800 - 300 - 1)
    assert await tokens.access_token("c1") == "old"
    clock.advance(2)
    assert await tokens.access_token("c1") == "new"

    [refresh] = channel.calls_to("refreshToken")
    assert refresh.body == {"method": "refreshToken", "params": {"refreshToken": "refresh-1"}}
    assert refresh.token is None
    assert len(channel.calls_to("issueToken")) == 1


async def test_refresh_failure_falls_back_to_a_new_issue(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("first"), token_reply("second"))
    channel.on("refreshToken", httpx.Response(400, json={"message": "refresh token expired"}))
    await tokens.access_token("c1")

    clock.advance(1600)

    assert await tokens.access_token("c1") == "second"
    assert [c.method for c in channel.calls] == ["issueToken", "refreshToken", "issueToken"]
    assert channel.calls[-1].params == {"secret": APP_SECRET, "channelId": "c1"}


async def test_a_refresh_refused_with_an_error_object_falls_back_to_a_new_issue(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    """Review reproduction: Channel refusing a refresh with HTTP 200 and an error object
    (kind protocol) was taken for an outage: the dead refresh token was tried again and
    again and every chat fallback failed until the process restarted."""
    channel.on("issueToken", token_reply("first"), token_reply("second"))
    channel.on("refreshToken", httpx.Response(200, json={"error": {"type": "UNAUTHORIZED", "message": "refresh token expired"}}))
    await tokens.access_token("c1")
    clock.advance(1600)

    assert await tokens.access_token("c1") == "second"
    assert [c.method for c in channel.calls] == ["issueToken", "refreshToken", "issueToken"]


async def test_refresh_without_new_refresh_token_keeps_the_old_one(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("t1", refresh="r1"))
    channel.on("refreshToken", ok({"accessToken": "t2", "expiresIn": 1800}), ok({"accessToken": "t3", "expiresIn": 1800}))
    await tokens.access_token(None)

    clock.advance(1600)
    assert await tokens.access_token(None) == "t2"
    clock.advance(1600)
    assert await tokens.access_token(None) == "t3"

    assert [c.params for c in channel.calls_to("refreshToken")] == [{"refreshToken": "r1"}] * 2


async def test_failed_renewal_serves_the_unexpired_token_then_retries_after_cooldown(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    down = httpx.Response(503)
    channel.on("issueToken", token_reply("old"))
    channel.on("refreshToken", down, token_reply("new"))
    await tokens.access_token(None)
    clock.advance(1600)  # inside the refresh margin, not expired

    assert await tokens.access_token(None) == "old"
    calls_after_failure = len(channel.calls)
    # Token requests are not retried by the client: each one counts against Channel's
    # 10 per 30 minutes. A failing Channel (not a refused refresh token) is not asked
    # to issue either: the failed renewal cost one refresh.
    assert calls_after_failure == 2
    assert await tokens.access_token(None) == "old"  # cooldown: no new attempt
    assert len(channel.calls) == calls_after_failure

    clock.advance(31)
    assert await tokens.access_token(None) == "new"


async def test_a_token_endpoint_outage_before_expiry_spends_few_of_the_budget(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    """Review reproduction: renewals failing with 503 were retried every 30 s, each as a
    refresh and an issue, so the budget of 10 was spent in about two minutes and the
    fallback stayed off for the rest of the 30-minute window once Channel was back."""
    down = httpx.Response(503)
    channel.on("issueToken", token_reply("old", expires_in=1800), *[down] * 20)
    channel.on("refreshToken", *[down] * 20)
    await tokens.access_token(None)
    expires = clock() + 1800
    clock.advance(1500)  # renewals begin 300 s before expiry
    while clock() < expires - 1:
        assert await tokens.access_token(None) == "old"
        clock.advance(5)
    assert len(channel.calls_to("issueToken")) == 1  # a failing Channel is not asked to issue
    assert len(channel.calls_to("refreshToken")) <= 5  # 30, 60, 120 s apart...
    assert tokens.remaining_budget() >= 4


async def test_failed_renewal_of_an_expired_token_raises(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("old"), httpx.Response(400))
    channel.on("refreshToken", httpx.Response(400))
    await tokens.access_token(None)
    clock.advance(1800)

    with pytest.raises(NativeApiError) as caught:
        await tokens.access_token(None)
    assert caught.value.kind == "bad_request"


async def test_100_concurrent_callers_share_one_issue_call(tokens: TokenManager, channel: FakeChannel) -> None:
    async def slow_issue(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.05)
        return token_reply("shared")

    channel.on("issueToken", slow_issue)
    results: list[str] = []

    async def caller() -> None:
        results.append(await tokens.access_token("c1"))

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(caller)

    assert results == ["shared"] * 100
    assert len(channel.calls_to("issueToken")) == 1


async def test_concurrent_callers_share_one_failure(tokens: TokenManager, channel: FakeChannel) -> None:
    async def slow_refusal(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.05)
        return httpx.Response(401)

    channel.on("issueToken", slow_refusal)
    kinds: list[str] = []

    async def caller() -> None:
        try:
            await tokens.access_token(None)
        except NativeApiError as exc:
            kinds.append(exc.kind)

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(caller)

    assert kinds == ["unauthorized"] * 100
    assert len(channel.calls) == 1


async def test_budget_of_10_per_30_minutes_is_enforced_without_calling_channel(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("t"))
    for channel_id in range(10):
        await tokens.access_token(str(channel_id))
        clock.advance(60)

    with pytest.raises(NativeApiError) as caught:
        await tokens.access_token("eleventh")
    assert caught.value.kind == "rate_limited"
    assert len(channel.calls) == 10
    assert tokens.remaining_budget() == 0

    clock.advance(1800 - 600)  # the first call (t=0) leaves the window
    assert await tokens.access_token("eleventh") == "t"
    assert len(channel.calls) == 11


async def test_budget_counts_refresh_and_issue_together(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("refreshToken", httpx.Response(400))
    await tokens.access_token(None)  # 1 issue
    for _ in range(4):
        tokens.invalidate(None)
        await tokens.access_token(None)  # 4 more issues: 5 spent
    clock.advance(1600)  # due for renewal: a refresh (refused) then an issue
    await tokens.access_token(None)

    assert [c.method for c in channel.calls[-2:]] == ["refreshToken", "issueToken"]
    assert tokens.remaining_budget() == 3  # 10 - 7 spent within the window


async def test_invalidate_forgets_the_token(tokens: TokenManager, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("t1"), token_reply("t2"))
    assert await tokens.access_token("c1") == "t1"

    tokens.invalidate("c1")

    assert await tokens.access_token("c1") == "t2"


async def test_late_invalidate_of_an_old_token_keeps_the_new_one(tokens: TokenManager, channel: FakeChannel) -> None:
    channel.on("issueToken", token_reply("t1"), token_reply("t2"))
    await tokens.access_token("c1")
    tokens.invalidate("c1", "t1")
    assert await tokens.access_token("c1") == "t2"

    tokens.invalidate("c1", "t1")  # a second 401 for the old token arrives late

    assert await tokens.access_token("c1") == "t2"
    assert len(channel.calls) == 2


async def test_short_lived_token_is_renewed_at_half_life(
    tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("short", expires_in=60))
    channel.on("refreshToken", token_reply("next", expires_in=60))
    await tokens.access_token(None)

    clock.advance(29)
    assert await tokens.access_token(None) == "short"
    clock.advance(2)
    assert await tokens.access_token(None) == "next"


@pytest.mark.parametrize(
    "answer",
    [{"refreshToken": "r", "expiresIn": 1800}, {"accessToken": "a", "refreshToken": "r"},
     {"accessToken": "a", "expiresIn": 0}, {"accessToken": "a", "expiresIn": True},
     # Review reproductions: cached, these failed every call for 30 minutes (INTERNAL_ERROR
     # with a traceback, or two failed requests each): they go in a header.
     {"accessToken": "tökén", "expiresIn": 1800}, {"accessToken": "a\r\nx-injected: 1", "expiresIn": 1800},
     {"accessToken": "a b", "expiresIn": 1800}],
)
async def test_malformed_issue_answer_is_a_protocol_error(
    tokens: TokenManager, channel: FakeChannel, answer: dict[str, object]
) -> None:
    channel.on("issueToken", ok(answer))

    with pytest.raises(NativeApiError) as caught:
        await tokens.access_token(None)
    assert caught.value.kind == "protocol"


async def test_secret_is_not_in_repr(client: NativeApiClient, clock: FakeClock) -> None:
    manager = TokenManager(client, APP_SECRET, clock=clock)

    assert APP_SECRET not in repr(manager)


async def test_cancelled_renewal_releases_its_waiters(tokens: TokenManager, channel: FakeChannel) -> None:
    started = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await anyio.sleep(30)
        raise AssertionError("not reached")

    channel.on("issueToken", hang)
    outcome: list[str] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await tokens.access_token(None)

    async def waiter() -> None:
        try:
            await tokens.access_token(None)
        except NativeApiError as exc:
            outcome.append(exc.kind)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(leader)
            await started.wait()
            group.start_soon(waiter)
            await anyio.sleep(0.01)
            leader_scope.cancel()

    assert outcome == ["unavailable"]
    assert len(channel.calls) == 1


async def test_token_calls_that_never_reached_channel_give_their_budget_back(client: NativeApiClient, clock: FakeClock, channel: FakeChannel) -> None:
    """Review reproduction: with Channel unreachable (connection refused), ten fallbacks
    spent the whole budget without one request reaching Channel, and once it was back
    every channel's fallback answered rate_limited for 30 minutes."""
    manager = TokenManager(client, APP_SECRET, clock=clock, budget=2)
    channel.on("issueToken", httpx.ConnectError("refused"), httpx.ConnectError("refused"), httpx.ConnectError("refused"), token_reply("back"))
    for _ in range(3):
        with pytest.raises(NativeApiError) as caught:
            await manager.access_token("c1")
        assert caught.value.kind == "unavailable"
        clock.advance(11)  # past the failure cooldown
    assert manager.remaining_budget() == 2
    assert await manager.access_token("c1") == "back"


async def test_a_failed_renewal_is_answered_again_for_a_moment_without_asking_channel(tokens: TokenManager, clock: FakeClock, channel: FakeChannel) -> None:
    """Each fallback of a burst during an outage used to spend a unit of the budget on
    its own issueToken (10 per 30 minutes for the whole app)."""
    channel.on("issueToken", httpx.Response(500), token_reply("recovered"))
    for _ in range(5):
        with pytest.raises(NativeApiError) as caught:
            await tokens.access_token("c1")
        assert caught.value.kind == "unavailable"
    assert len(channel.calls_to("issueToken")) == 1
    clock.advance(11)
    assert await tokens.access_token("c1") == "recovered"


async def test_channels_own_429_on_a_token_call_is_cooled_down_too(tokens: TokenManager, channel: FakeChannel) -> None:
    """Review reproduction: a 429 from Channel was taken for this side's own budget
    count and never cooled down, so ten fallbacks made ten issueToken calls."""
    channel.on("issueToken", httpx.Response(429))
    for _ in range(5):
        with pytest.raises(NativeApiError) as caught:
            await tokens.access_token("c1")
        assert caught.value.kind == "rate_limited"
    assert len(channel.calls_to("issueToken")) == 1


async def test_a_slow_renewal_does_not_hold_up_a_token_that_still_works(tokens: TokenManager, clock: FakeClock, channel: FakeChannel) -> None:
    """Review reproduction: with Channel's token calls hanging, a refresh and then an
    issue took the fallback's whole deadline: every call failed although the cached
    token was good for minutes more, and each started its own renewal (8 token calls
    in 9 s)."""
    async def hangs(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(500)

    channel.on("issueToken", token_reply("still-good"), hangs)
    channel.on("refreshToken", hangs)
    await tokens.access_token("c1")
    clock.advance(1600)  # inside the refresh margin, 200 s before it expires
    for _ in range(3):
        with anyio.fail_after(2):
            assert await tokens.access_token("c1") == "still-good"
    assert len(channel.calls_to("refreshToken")) == 1  # one renewal, still under way
    await tokens.close()


async def test_failures_in_a_row_are_cooled_down_for_longer_each_time(tokens: TokenManager, clock: FakeClock, channel: FakeChannel) -> None:
    channel.on("issueToken", httpx.Response(500))
    for wait in (10, 20, 40):
        with pytest.raises(NativeApiError):
            await tokens.access_token("c1")
        clock.advance(wait - 1)
        with pytest.raises(NativeApiError):
            await tokens.access_token("c1")  # still cooling down: Channel is not asked
        clock.advance(1.5)
    assert len(channel.calls_to("issueToken")) == 3
