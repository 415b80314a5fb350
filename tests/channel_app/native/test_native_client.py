"""NativeApiClient: request shape, error kinds, bounded retries, bounded time."""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import time

import anyio
import httpx
import pytest
from tests.support.fake_channel import BASE_URL, FUNCTIONS_PATH, FakeChannel, ok

from channel_app.native.client import NativeApiClient, NativeApiError

pytestmark = pytest.mark.anyio


async def test_call_puts_method_and_params_with_access_token_header(
    client: NativeApiClient, channel: FakeChannel
) -> None:
    channel.on("getUser", ok({"user": {"id": "u1"}}))

    result = await client.call("getUser", {"channelId": "c1", "userId": "u1"}, access_token="tok-1")

    assert result == {"user": {"id": "u1"}}
    [call] = channel.calls
    assert call.request.method == "PUT"
    assert str(call.request.url) == BASE_URL + FUNCTIONS_PATH
    assert call.body == {"method": "getUser", "params": {"channelId": "c1", "userId": "u1"}}
    assert call.request.headers["x-access-token"] == "tok-1"
    assert call.request.headers["content-type"] == "application/json"


async def test_call_without_token_sends_no_token_header(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("issueToken", ok({"accessToken": "a"}))

    await client.call("issueToken", {"secret": "s"})

    assert "x-access-token" not in channel.calls[0].request.headers


async def test_body_without_result_wrapper_is_returned_as_is(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("issueToken", httpx.Response(200, json={"accessToken": "a", "expiresIn": 1800}))

    assert await client.call("issueToken", {"secret": "s"}) == {"accessToken": "a", "expiresIn": 1800}


async def test_5xx_is_retried_then_succeeds(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.Response(502), httpx.Response(503), ok({"user": {}}))

    assert await client.call("getUser", {}, access_token="t") == {"user": {}}
    assert len(channel.calls) == 3


async def test_5xx_exhausted_is_unavailable(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.Response(500, json={"error": {"message": "boom"}}))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "unavailable"
    assert caught.value.status == 500
    assert "boom" in caught.value.message
    assert len(channel.calls) == 3  # 1 + max_retries


async def test_connection_error_is_retried_then_unavailable(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.ConnectError("refused"))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "unavailable"
    assert len(channel.calls) == 3


async def test_httpx_timeout_is_unavailable(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow"))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "unavailable"
    assert len(channel.calls) == 3


async def test_hanging_channel_gives_unavailable_within_timeout_times_attempts(
    http: httpx.AsyncClient, channel: FakeChannel
) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)
        raise AssertionError("not reached")

    channel.on("getUser", hang)
    client = NativeApiClient(http, base_url=BASE_URL, timeout_seconds=0.1, max_retries=2, backoff_seconds=0.01)

    started = time.monotonic()
    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")
    elapsed = time.monotonic() - started

    assert caught.value.kind == "unavailable"
    assert len(channel.calls) == 3
    assert elapsed < 0.1 * 3 + 0.5  # timeout x attempts + backoff, with slack


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "bad_request"), (401, "unauthorized"), (403, "unauthorized"), (404, "bad_request"),
     (422, "bad_request"), (429, "rate_limited")],
)
async def test_4xx_is_not_retried(client: NativeApiClient, channel: FakeChannel, status: int, kind: str) -> None:
    channel.on("getUser", httpx.Response(status, json={"errors": [{"message": "nope"}]}))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert (caught.value.kind, caught.value.status) == (kind, status)
    assert "nope" in caught.value.message
    assert len(channel.calls) == 1


async def test_non_json_answer_is_protocol_error(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.Response(200, text="<html>gateway</html>"))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "protocol"
    assert len(channel.calls) == 1


@pytest.mark.parametrize("status", [200, 502])
async def test_json_nested_past_the_parser_is_a_protocol_or_unavailable_error_not_a_crash(
    client: NativeApiClient, channel: FakeChannel, status: int
) -> None:
    """An odd answer must end as a NativeApiError (the chat fallback's documented
    CHAT_FALLBACK_FAILED), never escape as RecursionError."""
    channel.on("getUser", *[httpx.Response(status, content=b"[" * 100_000 + b"]" * 100_000)] * 3)

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == ("protocol" if status == 200 else "unavailable")


async def test_a_body_that_fails_to_decode_is_unavailable_not_a_crash(client: NativeApiClient, channel: FakeChannel) -> None:
    def broken_gzip(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"not gzip at all"), headers={"Content-Encoding": "gzip"})

    channel.on("getUser", broken_gzip)

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "unavailable"


async def test_error_field_in_200_answer_is_protocol_error(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.Response(200, json={"error": {"type": "INVALID_PARAMS", "message": "bad id"}}))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "protocol"
    assert "bad id" in caught.value.message


async def test_non_object_result_is_protocol_error(client: NativeApiClient, channel: FakeChannel) -> None:
    channel.on("getUser", httpx.Response(200, json={"result": [1, 2]}))

    with pytest.raises(NativeApiError) as caught:
        await client.call("getUser", {}, access_token="t")

    assert caught.value.kind == "protocol"


async def test_secrets_never_reach_error_messages_or_logs(
    client: NativeApiClient, channel: FakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"message": "bad secret top-secret for token tok-secret"}
    channel.on("issueToken", httpx.Response(503, json=echo), httpx.Response(400, json=echo))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(NativeApiError) as caught:
        await client.call("issueToken", {"secret": "top-secret"}, access_token="tok-secret")

    text = str(caught.value) + repr(caught.value) + caplog.text
    assert "top-secret" not in text
    assert "tok-secret" not in text
    assert "[redacted]" in str(caught.value)


async def test_a_secret_where_the_message_is_cut_short_is_not_half_logged(
    client: NativeApiClient, channel: FakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """Review reproduction: Channel's error text was cut to 300 characters before the
    secrets were blanked out, so a secret across the cut left its first part."""
    secret = "APPSECRET-zzsecret-0123456789abcdef"
    echo = {"error": {"message": "x" * 280 + " bad secret " + secret}}
    channel.on("issueToken", httpx.Response(500, json=echo), httpx.Response(500, json=echo))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(NativeApiError) as caught:
        await client.call("issueToken", {"secret": secret})

    text = str(caught.value) + caplog.text
    assert secret[:8] not in text


async def test_an_oversized_answer_is_refused_as_it_arrives(client: NativeApiClient, channel: FakeChannel) -> None:
    """Review reproduction: a 250 MB answer was read whole and parsed: 11.7 s for a
    call due in 6, 788 MB of memory, and the event loop held for seconds."""
    channel.on("writeUserChatMessage", httpx.Response(200, content=b" " * (2 * 1024 * 1024)))

    with pytest.raises(NativeApiError) as caught:
        await client.call("writeUserChatMessage", {}, access_token="t")

    assert caught.value.kind == "protocol" and "over" in caught.value.message
    assert len(channel.calls_to("writeUserChatMessage")) == 1  # not retried


async def test_backoff_grows_exponentially_with_jitter(http: httpx.AsyncClient) -> None:
    client = NativeApiClient(http, backoff_seconds=0.2)

    for retry, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8)]:
        delays = [client._delay(retry) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


async def test_backoff_is_capped(http: httpx.AsyncClient) -> None:
    client = NativeApiClient(http, backoff_seconds=1.0)

    assert client._delay(20) <= 5.0


async def test_a_connection_never_made_is_known_not_to_have_reached_channel() -> None:
    """Review reproduction: with SYNs dropped (a full accept queue, as behind a
    firewall), the attempt's deadline fired before httpx's connect timeout of the
    same length, so the call counted as reached and spent a unit of the budget."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue: later SYNs go unanswered
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        async with httpx.AsyncClient() as http:
            client = NativeApiClient(http, base_url=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_seconds=0.5, max_retries=0)
            with pytest.raises(NativeApiError) as caught:
                await client.call("issueToken", {"secret": "s"})
        assert (caught.value.kind, caught.value.reached) == ("unavailable", False)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_compressed_answer_is_refused_before_it_is_expanded(client: NativeApiClient, channel: FakeChannel) -> None:
    """Review observation: a 1 MB gzip answer expanding to 1 GB was refused, but only
    after decoding, which took the server from 71 to 204 MB. Calls ask for identity."""
    channel.on("writeUserChatMessage", httpx.Response(200, content=gzip.compress(b" " * 100_000), headers={"content-encoding": "gzip"}))

    with pytest.raises(NativeApiError) as caught:
        await client.call("writeUserChatMessage", {}, access_token="t")

    assert caught.value.kind == "protocol" and "gzip" in caught.value.message
    assert channel.calls_to("writeUserChatMessage")[0].request.headers["accept-encoding"] == "identity"
