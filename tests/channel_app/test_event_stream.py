"""GET /sse/connect against a real uvicorn: authentication, framing, lifetime."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from security.tokens import mint_client_token
from sse.events import parse_event_id
from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.http import connected_stream
from tests.support.server import run_server
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio


@pytest.fixture
def server():
    with run_server(make_app(heartbeat_seconds=0.2, max_connections_per_client=2, allow_broadcast=True)) as running:
        yield running


async def status(server) -> dict:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get("/sse/status")).json()


async def notify(server, client_id: str, message: str) -> dict:
    body = function_body("notify", {"clientId": client_id, "message": message})
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.put("/functions", content=body, headers=signed_headers(body))).json()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        mint_client_token("some-other-secret-entirely-0123456789", "visitor", 600),
        mint_client_token("test-client-secret-0123456789abcdef0123456789", "visitor", 60, now=time.time() - 600),
    ],
    ids=["garbage", "wrong-key", "expired"],
)
async def test_bad_or_expired_token_is_401(server, token):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params={"clientId": "visitor", "token": token})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "INVALID_TOKEN"


async def test_missing_token_is_401(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params={"clientId": "visitor"})
    assert response.status_code == 401


async def test_token_for_another_client_is_403(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params={"clientId": "victim", "token": client_token("attacker")})
    assert response.status_code == 403


async def test_invalid_client_id_is_400(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params={"clientId": "a\nb", "token": client_token("a")})
    assert response.status_code == 400


@pytest.mark.parametrize("where", ["query", "header", "cookie"])
async def test_token_is_accepted_from_query_header_or_cookie(server, where):
    token = client_token("visitor")
    params, headers, cookies = {"clientId": "visitor"}, {}, {}
    if where == "query":
        params["token"] = token
    elif where == "header":
        headers["Authorization"] = f"Bearer {token}"
    else:
        cookies["channel_push_token"] = token
    async with httpx.AsyncClient(base_url=server.url, cookies=cookies) as http:
        async with http.stream("GET", "/sse/connect", params=params, headers=headers) as response:
            assert response.status_code == 200
            assert (await SseReader(response).next_event()).event == "connected"


@pytest.mark.parametrize("padding", ["\n", " \r\n"], ids=["newline", "spaces"])
async def test_a_query_token_with_whitespace_around_it_is_the_same_token(server, padding):
    """Review reproduction: a site's token endpoint answered the JWT with a newline
    after it; the widget's /sse/check (header, which fetch trims) said 200 while its
    stream (query) was 401, and it retried forever without asking for a new token."""
    params = {"clientId": "visitor", "token": client_token("visitor") + padding}
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with http.stream("GET", "/sse/connect", params=params) as response:
            assert response.status_code == 200
            assert (await SseReader(response).next_event()).event == "connected"


async def test_stream_headers_first_event_retry_and_heartbeat(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with http.stream("GET", "/sse/connect", params=params) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache, no-store, no-transform"  # no proxy compresses it
            assert response.headers["x-accel-buffering"] == "no"
            assert "content-encoding" not in response.headers
            reader = SseReader(response)
            connected = await reader.next_event()
            assert connected.event == "connected"
            assert connected.id
            assert connected.data["clientId"] == "visitor"
            assert connected.data["connectionId"]
            assert reader.retries == [3000]
            await notify(server, "visitor", "ping")
            await reader.next_event()
            with anyio.fail_after(3):
                while not reader.comments:
                    await notify(server, "visitor", "tick")
                    await reader.next_event()
                    await anyio.sleep(0.1)
            assert "heartbeat" in reader.comments


async def test_disconnect_unregisters_and_status_drops_to_zero(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with connected_stream(http, params) as reader:
            assert (await status(server))["connections"] == 1
    with anyio.fail_after(5):
        while (current := await status(server))["connections"] != 0:
            await anyio.sleep(0.05)
    assert current["connected_clients"] == 0
    assert current["status"] == "ok"
    assert current["instance"] == "test-instance"


async def test_connection_beyond_per_client_cap_gets_429(server):
    token = client_token("visitor")
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": token}
        async with connected_stream(http, params) as first_reader, connected_stream(http, params) as second_reader:
            third = await http.get("/sse/connect", params=params)
            assert third.status_code == 429
            assert third.headers["retry-after"]
            assert third.json()["error"]["type"] == "CLIENT_CONNECTION_LIMIT"


async def test_reconnect_with_last_event_id_replays_missed_events_in_order(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with connected_stream(http, params) as reader:
            await notify(server, "visitor", "one")
            seen = await reader.next_event()
            # Keep a second tab open so the events below are delivered, then resume the first.
            async with connected_stream(http, params) as other_reader:
                await notify(server, "visitor", "two")
                await notify(server, "visitor", "three")
        resumed_params = {**params, "lastEventId": seen.id}
        async with connected_stream(http, resumed_params) as reader:
            missed = [(await reader.next_event()).data["message"] for _ in range(2)]
    assert missed == ["two", "three"]


async def test_a_resumed_streams_connected_id_stays_where_it_resumed_until_the_replay_is_written(server):
    """Review reproduction: `connected` carried the newest replayed id and went out
    ahead of the replay, so a stream cut just after it (before the replay frames)
    reconnected from that id and the whole replay was lost for good."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with connected_stream(http, params):
            first = (await notify(server, "visitor", "one"))["result"]["eventId"]
            await notify(server, "visitor", "two")
        async with http.stream("GET", "/sse/connect", params={**params, "lastEventId": first}) as response:
            reader = SseReader(response)
            connected = await reader.next_event()
            replayed = await reader.next_event()
    assert connected.event == "connected" and connected.id == first
    assert replayed.data["message"] == "two"


async def test_a_last_event_id_newer_than_any_here_is_not_echoed(server):
    """Review reproduction: `lastEventId=9999999999999-5` came back as the connected id,
    and the next event's id was lower: the stream's ids went down."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "future", "token": client_token("future"), "lastEventId": "9999999999999-5"}
        async with http.stream("GET", "/sse/connect", params=params) as response:
            reader = SseReader(response)
            connected = await reader.next_event()
            sent = (await notify(server, "future", "after"))["result"]["eventId"]
            arrived = await reader.next_event()
    assert connected.id != "9999999999999-5"
    assert arrived.id == sent and (connected.id is None or parse_event_id(connected.id) <= parse_event_id(sent))


async def test_resuming_from_a_broadcast_keeps_its_id_on_connected(server):
    """Review reproduction: broadcasts are not in history, so a resume from one was taken
    for an id newer than any here and `connected` carried an older id."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with connected_stream(http, params):
            await notify(server, "visitor", "one")
            body = function_body("broadcast", {"message": "all"})
            last = (await http.put("/functions", content=body, headers=signed_headers(body))).json()["result"]["eventId"]
        async with http.stream("GET", "/sse/connect", params={**params, "lastEventId": last}) as response:
            connected = await SseReader(response).next_event()
    assert connected.id == last


async def test_stream_ends_with_retry_hint_when_token_expires(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor", ttl_seconds=1.5)}
        started = time.monotonic()
        async with http.stream("GET", "/sse/connect", params=params) as response:
            reader = SseReader(response)
            await reader.until_end(timeout=5)
    assert time.monotonic() - started < 4
    assert reader.retries[-1] == 3000


async def test_drain_ends_every_stream_with_retry_hint(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with connected_stream(http, params) as reader:
            server.call_in_server_loop(server.app.state.lifecycle.begin_drain)
            await reader.until_end(timeout=3)
            assert len(reader.retries) == 2
        assert (await http.get("/readyz")).status_code == 503


async def test_token_expired_but_within_leeway_is_401_instead_of_a_stream_that_ends_at_once(server):
    token = mint_client_token("test-client-secret-0123456789abcdef0123456789", "visitor", 60, now=time.time() - 65)
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/sse/connect", params={"clientId": "visitor", "token": token})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "INVALID_TOKEN"
