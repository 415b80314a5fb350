"""A call for a visitor with no open page falls back to a message in the chat."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import respx

from tests.support.asgi import asgi_client
from tests.support.channel import function_body, signed_headers
from tests.support.fake_channel import APP_SECRET, BASE_URL, FakeChannel, ok, token_reply

pytestmark = pytest.mark.anyio

NATIVE = {"channel_app_secret": APP_SECRET, "channel_api_base_url": BASE_URL, "channel_api_timeout_seconds": 0.5}


@pytest.fixture
def channel():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield FakeChannel(router)


# The chat's own user is the target: only then does a call fall back to that chat.
AWAY_USER = {"id": "user-1", "memberId": "away"}


async def call(http: httpx.AsyncClient, method: str, input: dict, **context) -> dict:
    body = function_body(method, input, **{"user": AWAY_USER, **context})
    return (await http.put("/functions", content=body, headers=signed_headers(body))).json()


async def test_redirect_for_offline_visitor_posts_the_link_in_the_user_chat(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({"message": {}}))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "redirectClient", {"clientId": "away", "url": "https://shop.example.com/cart"})
    assert answer["result"]["fallback"] == "chat_message"
    assert answer["result"]["delivered"] == 0
    [issue] = channel.calls_to("issueToken")
    assert issue.params == {"secret": APP_SECRET, "channelId": "channel-1"}
    [write] = channel.calls_to("writeUserChatMessage")
    assert write.token == "channel-token"
    assert write.params["channelId"] == "channel-1"
    assert write.params["userChatId"] == "chat-1"
    assert "https://shop.example.com/cart" in write.params["dto"]["plainText"]
    assert write.params["dto"]["plainText"].startswith("요청하신 페이지")


async def test_notify_for_offline_visitor_posts_the_message(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"clientId": "away", "message": "쿠폰이 적용되었습니다", "title": "완료"})
    assert answer["result"]["fallback"] == "chat_message"
    assert channel.calls_to("writeUserChatMessage")[0].params["dto"]["plainText"] == "완료\n쿠폰이 적용되었습니다"


async def test_tokens_are_cached_across_calls(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    async with asgi_client(**NATIVE) as http:
        for _ in range(3):
            await call(http, "notify", {"clientId": "away", "message": "hi"})
    assert len(channel.calls_to("issueToken")) == 1
    assert len(channel.calls_to("writeUserChatMessage")) == 3


async def test_custom_events_never_fall_back(channel):
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "sendEvent", {"clientId": "away", "action": "openCart", "payload": {}})
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"
    assert channel.calls == []


async def test_fallback_can_be_turned_off(channel):
    async with asgi_client(**NATIVE, chat_fallback_enabled=False) as http:
        answer = await call(http, "notify", {"clientId": "away", "message": "hi"})
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"
    assert channel.calls == []


async def test_channel_server_errors_give_a_clear_error_after_bounded_retries(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", httpx.Response(503))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"clientId": "away", "message": "hi"})
    assert answer["error"]["type"] == "CHAT_FALLBACK_FAILED"
    assert answer["error"]["data"]["kind"] == "unavailable"
    assert len(channel.calls_to("writeUserChatMessage")) == 2


async def test_channel_timeouts_never_hang_the_function_call(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", httpx.ReadTimeout("slow"))
    started = time.monotonic()
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"clientId": "away", "message": "hi"})
    assert answer["error"]["type"] == "CHAT_FALLBACK_FAILED"
    assert time.monotonic() - started < 5


async def test_calls_outside_a_user_chat_do_not_fall_back(channel):
    body = b'{"method":"notify","params":{"input":{"clientId":"away","message":"hi"}},"context":{"channel":{"id":"c"}}}'
    async with asgi_client(**NATIVE) as http:
        answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"
    assert channel.calls == []



async def test_the_fallback_takes_the_user_chat_and_language_from_the_context_too(channel):
    """`context` may carry `userChat` and `language` (channel-protocol.md §1); before,
    only `params.chat` and `params.language` were read, so such a call posted nothing
    (or posted in English)."""
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    call_body = {
        "method": "redirectClient",
        "params": {"input": {"clientId": "away", "url": "https://shop.example.com/cart"}},
        "context": {"channel": {"id": "channel-1"}, "userChat": {"id": "chat-9"}, "language": "ja", "user": AWAY_USER},
    }
    body = json.dumps(call_body).encode()
    async with asgi_client(**NATIVE) as http:
        answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
    assert answer["result"]["fallback"] == "chat_message"
    [write] = channel.calls_to("writeUserChatMessage")
    assert write.params["userChatId"] == "chat-9"
    assert write.params["dto"]["plainText"].startswith("ご依頼のページ")


async def test_a_call_without_client_id_falls_back_to_the_chat_of_its_member(channel):
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"message": "hi"})
    assert (answer["result"]["fallback"], answer["result"]["clientId"]) == ("chat_message", "away")


@pytest.mark.parametrize(
    "user",
    [{"id": "user-1", "memberId": "alice"}, {"id": "user-1"}, None],
    ids=["another-member", "anonymous-visitor", "no-user"],
)
async def test_a_call_for_another_client_never_posts_into_this_chat(channel, user):
    """Review reproduction: ALF in Alice's chat called notify for clientId "bob", who
    had no open page, and Bob's message was posted into Alice's chat."""
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"clientId": "bob", "message": "Bob, your refund is approved"}, user=user)
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"
    assert channel.calls == []


async def test_production_without_the_app_secret_says_the_fallback_is_off(caplog):
    """Review reproduction: with CHAT_FALLBACK_ENABLED=true (the default) and no
    CHANNEL_APP_SECRET, production started without a word and never fell back."""
    with caplog.at_level("WARNING", logger="channel_push.startup"):
        async with asgi_client():
            pass
        async with asgi_client(chat_fallback_enabled=False):
            pass
    [warning] = [record.getMessage() for record in caplog.records if record.name == "channel_push.startup"]
    assert "CHANNEL_APP_SECRET is unset" in warning


async def test_posts_refused_even_with_a_fresh_token_do_not_renew_on_every_call(channel):
    """Review reproduction: with every post answered 401, each fallback issued a new
    token and was refused again: ten fallbacks spent the app's whole token budget and
    every other channel's fallback answered rate_limited."""
    channel.on("issueToken", token_reply("t1"), token_reply("t2"), token_reply("t3"))
    channel.on("writeUserChatMessage", httpx.Response(401))
    async with asgi_client(**NATIVE) as http:
        answers = [await call(http, "notify", {"clientId": "away", "message": "hi"}) for _ in range(3)]
    assert [answer["error"]["data"]["kind"] for answer in answers] == ["unauthorized"] * 3
    # The token refused was issued moments before: not renewed at once, nor by the next calls.
    assert len(channel.calls_to("issueToken")) == 1


async def test_a_member_id_with_spaces_around_it_still_falls_back_to_its_own_chat(channel):
    """Review reproduction: memberId " away " targeted client "away" but the fallback
    compared the untrimmed memberId and refused to post."""
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", ok({}))
    async with asgi_client(**NATIVE) as http:
        answer = await call(http, "notify", {"message": "hi"}, user={"memberId": " away "})
    assert answer["result"]["fallback"] == "chat_message"


async def test_why_channel_refused_a_fallback_is_logged_for_the_operator(channel, caplog):
    """Review reproduction: an app without the writeUserChatMessage permission (Channel
    answers 403) showed only as outcome=CHAT_FALLBACK_FAILED, with nothing saying why."""
    channel.on("issueToken", token_reply("channel-token"))
    channel.on("writeUserChatMessage", httpx.Response(403, json={"message": "permission writeUserChatMessage required"}), ok({}))
    with caplog.at_level("INFO", logger="channel_push.chat_fallback"):
        async with asgi_client(**NATIVE) as http:
            refused = await call(http, "notify", {"clientId": "away", "message": "hi"})
            posted = await call(http, "notify", {"clientId": "away", "message": "hi"})
    assert refused["error"]["type"] == "CHAT_FALLBACK_FAILED" and posted["result"]["fallback"] == "chat_message"
    failed, succeeded = [record for record in caplog.records if record.name == "channel_push.chat_fallback"]
    assert (failed.levelname, failed.getMessage(), failed.fields["status"]) == ("WARNING", "chat fallback failed", 403)
    assert "permission writeUserChatMessage required" in failed.fields["detail"]
    assert "channel-token" not in json.dumps(failed.fields)
    assert (succeeded.getMessage(), succeeded.fields["client_id"]) == ("posted to the user chat", "away")
