"""write_user_chat_message: exact body, channel token, one retry after a 401."""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest
from tests.support.channel import function_body
from tests.support.fake_channel import APP_SECRET, FakeChannel, FakeClock, ok, token_reply

from channel_app.chat_fallback import ChatFallback, notice_message
from channel_app.errors import FunctionError
from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.messages import write_user_chat_message
from channel_app.native.tokens import TokenManager
from channel_app.protocol import FunctionCall

pytestmark = pytest.mark.anyio

WRITTEN = ok({"message": {"id": "m1"}})


async def test_plain_message_body_matches_the_contract(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("ch-token"))
    channel.on("writeUserChatMessage", WRITTEN)

    await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hello there", request_id="req-1")

    issue, write = channel.calls
    assert issue.body == {"method": "issueToken", "params": {"secret": APP_SECRET, "channelId": "ch-1"}}
    assert write.body == {
        "method": "writeUserChatMessage",
        "params": {
            "channelId": "ch-1",
            "userChatId": "uc-1",
            "dto": {"plainText": "Hello there", "requestId": "req-1"},
        },
    }
    assert write.token == "ch-token"


async def test_link_becomes_a_web_button_and_stays_in_the_text(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("writeUserChatMessage", WRITTEN)

    await write_user_chat_message(
        client, tokens, "ch-1", "uc-1", "Here is your cart.", link="https://shop.example/cart",
        link_label="Open cart", request_id="req-2",
    )

    assert channel.calls_to("writeUserChatMessage")[0].params["dto"] == {
        "plainText": "Here is your cart.\nhttps://shop.example/cart",
        "requestId": "req-2",
        "buttons": [{"title": "Open cart", "action": {"type": "web", "url": "https://shop.example/cart"}}],
    }


async def test_link_already_in_text_is_not_repeated(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("writeUserChatMessage", WRITTEN)

    await write_user_chat_message(client, tokens, "ch-1", "uc-1", "See https://shop.example/a", link="https://shop.example/a")

    dto = channel.calls_to("writeUserChatMessage")[0].params["dto"]
    assert dto["plainText"] == "See https://shop.example/a"
    assert dto["buttons"][0]["title"] == "Open link"
    assert dto["requestId"]  # generated when not given


async def test_401_invalidates_the_token_and_retries_once(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("stale"), token_reply("fresh"))
    channel.on("writeUserChatMessage", httpx.Response(401), WRITTEN)
    await tokens.access_token("ch-1")
    clock.advance(120)  # no longer a token Channel issued moments ago

    await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi")

    writes = channel.calls_to("writeUserChatMessage")
    assert [w.token for w in writes] == ["stale", "fresh"]
    assert writes[0].params == writes[1].params  # same requestId on the retry
    assert len(channel.calls_to("issueToken")) == 2


async def test_second_401_is_raised_without_looping(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("t1"), token_reply("t2"), token_reply("t3"))
    channel.on("writeUserChatMessage", httpx.Response(401))
    await tokens.access_token("ch-1")
    clock.advance(120)

    with pytest.raises(NativeApiError) as caught:
        await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi")

    assert caught.value.kind == "unauthorized"
    assert len(channel.calls_to("writeUserChatMessage")) == 2
    assert len(channel.calls_to("issueToken")) == 2


async def test_403_missing_permission_is_not_retried(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("writeUserChatMessage", httpx.Response(403))

    with pytest.raises(NativeApiError) as caught:
        await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi")

    assert (caught.value.kind, caught.value.status) == ("unauthorized", 403)
    assert len(channel.calls) == 2  # one issue, one write


async def test_refused_button_is_resent_as_text_only(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("writeUserChatMessage", httpx.Response(422, json={"message": "invalid button"}), WRITTEN)

    await write_user_chat_message(
        client, tokens, "ch-1", "uc-1", "Your order", link="https://shop.example/o/1", request_id="req-3"
    )

    first, second = channel.calls_to("writeUserChatMessage")
    assert "buttons" in first.params["dto"]
    assert second.params["dto"] == {"plainText": "Your order\nhttps://shop.example/o/1", "requestId": "req-3"}


async def test_bad_request_without_link_is_raised_after_one_call(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("t"))
    channel.on("writeUserChatMessage", httpx.Response(400))

    with pytest.raises(NativeApiError) as caught:
        await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi")

    assert caught.value.kind == "bad_request"
    assert len(channel.calls_to("writeUserChatMessage")) == 1


@pytest.mark.parametrize("link", ["javascript:alert(1)", "/relative/path", "https://ok.example/a b"])
async def test_unsafe_link_is_refused_before_calling_channel(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel, link: str
) -> None:
    with pytest.raises(ValueError):
        await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi", link=link)

    assert channel.calls == []


async def test_empty_text_is_refused(client: NativeApiClient, tokens: TokenManager, channel: FakeChannel) -> None:
    with pytest.raises(ValueError):
        await write_user_chat_message(client, tokens, "ch-1", "uc-1", "   ")

    assert channel.calls == []


async def test_the_chat_fallback_as_a_whole_answers_by_its_deadline(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    """Each request has its own timeout (1 s here, with two retries), but a function
    call waiting for all of them could hang for many seconds; the fallback is bounded."""

    async def hangs(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(503)

    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", hangs)
    fallback = ChatFallback(client, tokens, deadline_seconds=0.3)
    body = function_body("notify", {"clientId": "away", "message": "hi"}, user={"memberId": "away"})
    call = FunctionCall.model_validate(json.loads(body))
    started = time.monotonic()
    with pytest.raises(FunctionError) as caught:
        await fallback.post(call, "away", notice_message("hi", None))
    assert time.monotonic() - started < 0.9  # one request alone may take 1 s, three 3 s
    assert (caught.value.error_type, caught.value.data["kind"]) == ("CHAT_FALLBACK_FAILED", "unavailable")


async def test_posts_refused_with_fresh_tokens_cool_down_longer_each_time(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    """Review reproduction: with every post answered 401, a fallback every 2 s made two
    issueToken calls each 10-11 s (the first 401 renewed a token issued a moment
    before, and each successful issue reset the cooldown), spending the app's budget
    in 43 s."""
    channel.on("issueToken", *(token_reply(f"t{n}") for n in range(10)))
    channel.on("writeUserChatMessage", httpx.Response(401))
    for _ in range(40):  # a fallback every 2 s for 80 s
        with pytest.raises(NativeApiError):
            await write_user_chat_message(client, tokens, "ch-1", "uc-1", "Hi")
        clock.advance(2)
    # one token at 0 s and one as each cooldown (10, 20, 40 s) ends: at 10, 30 and 70 s
    assert len(channel.calls_to("issueToken")) == 4
