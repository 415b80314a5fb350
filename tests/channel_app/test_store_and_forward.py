"""`queueIfOffline`: an event for a visitor between two pages waits for the next page.

Run against both brokers through the real HTTP endpoints: the answer says
`queued: true` (not a false `delivered`), the next stream of that client gets
the event once, and without the flag an offline client still gets
CLIENT_NOT_CONNECTED and nothing later.
"""

from __future__ import annotations

import re
import time

import anyio
import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.http import call_function, get_json, open_stream
from tests.support.server import run_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(backend):
    with run_server(make_app(rate_limits_enabled=False, **backend)) as running:
        yield running


async def wait_until_offline(base_url: str, client_id: str) -> None:
    deadline = time.monotonic() + 5
    while True:
        result = (await call_function(base_url, "getClientStatus", {"clientId": client_id}))["result"]
        if not result["connected"]:
            return
        assert time.monotonic() < deadline, "client still counted as connected"
        await anyio.sleep(0.05)


async def test_redirect_during_navigation_reaches_the_next_page(server):
    async with open_stream(server.url, "visitor") as (first_page, _):
        pass
    await wait_until_offline(server.url, "visitor")
    answer = await call_function(
        server.url,
        "redirectClient",
        {"clientId": "visitor", "url": "https://shop.example.com/cart", "queueIfOffline": True},
    )
    result = answer["result"]
    assert (result["queued"], result["delivered"]) == (True, 0)
    assert "queued" in result["attributes"]["message"]
    async with open_stream(server.url, "visitor") as (next_page, connected):
        event = await next_page.next_event()
        assert (event.event, event.id, event.data["url"]) == ("redirect", result["eventId"], "https://shop.example.com/cart")
        assert connected.id is None  # its id would pass the queued event's (below)
    async with open_stream(server.url, "visitor") as (page_after, _):
        with pytest.raises(TimeoutError):
            await page_after.next_event(timeout=0.5)


async def test_notify_and_send_event_can_be_queued_too(server):
    notified = await call_function(server.url, "notify", {"clientId": "v", "message": "안녕하세요", "queueIfOffline": True})
    sent = await call_function(server.url, "sendEvent", {"clientId": "v", "action": "open-cart", "payload": {"n": 1}, "queueIfOffline": True})
    assert notified["result"]["queued"] and sent["result"]["queued"]
    async with open_stream(server.url, "v") as (stream, _):
        first, second = await stream.next_event(), await stream.next_event()
    assert (first.event, first.data["message"]) == ("notification", "안녕하세요")
    assert (second.event, second.data["action"], second.data["payload"]) == ("custom", "open-cart", {"n": 1})


async def test_ids_on_a_new_stream_with_queued_events_only_increase(server):
    """Review reproduction: `connected` carried the newest id ahead of the older queued
    events, so ids went down after it and the last queued one repeated it."""
    queued = [
        (await call_function(server.url, "notify", {"clientId": "q1", "message": f"n{n}", "queueIfOffline": True}))["result"]["eventId"]
        for n in range(3)
    ]
    params = {"clientId": "q1", "token": client_token("q1")}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with http.stream("GET", "/sse/connect", params=params) as response:
            received = ""
            async for chunk in response.aiter_text():
                received += chunk
                if "event: replayed" in received:  # the queued events, then the cursor
                    break
    ids = re.findall(r"^id: (.*)$", received, flags=re.MULTILINE)
    assert ids == [*queued, queued[-1]]
    assert received.index("event: connected") < received.index(f"id: {queued[0]}")
    assert received.rindex(f"id: {queued[-1]}") < received.index("event: replayed")


async def test_offline_client_without_queueing_is_not_connected_and_gets_nothing_later(server):
    answer = await call_function(server.url, "notify", {"clientId": "v", "message": "lost"})
    assert answer["error"]["type"] == "CLIENT_NOT_CONNECTED"
    async with open_stream(server.url, "v") as (stream, _):
        with pytest.raises(TimeoutError):
            await stream.next_event(timeout=0.5)


async def test_connected_client_answer_says_not_queued(server):
    async with open_stream(server.url, "v") as (stream, _):
        result = (await call_function(server.url, "notify", {"clientId": "v", "message": "hi", "queueIfOffline": True}))["result"]
        assert (result["delivered"], result["queued"]) == (1, False)
        assert (await stream.next_event()).id == result["eventId"]


async def test_queue_if_offline_must_be_a_boolean(server):
    answer = await call_function(server.url, "notify", {"clientId": "v", "message": "x", "queueIfOffline": "yes"})
    assert answer["error"]["type"] == "INVALID_PARAMS"
    assert "queueIfOffline" in answer["error"]["message"]


async def test_full_queue_is_a_clear_error(backend):
    with run_server(make_app(rate_limits_enabled=False, queue_size=1, **backend)) as server:
        first = await call_function(server.url, "notify", {"clientId": "v", "message": "1", "queueIfOffline": True})
        second = await call_function(server.url, "notify", {"clientId": "v", "message": "2", "queueIfOffline": True})
    assert first["result"]["queued"]
    assert second["error"]["type"] == "QUEUE_FULL"


async def test_queue_if_offline_default_setting_and_explicit_false(backend):
    with run_server(make_app(rate_limits_enabled=False, queue_if_offline_default=True, **backend)) as server:
        by_default = await call_function(server.url, "notify", {"clientId": "v", "message": "kept"})
        refused = await call_function(server.url, "notify", {"clientId": "v", "message": "no", "queueIfOffline": False})
        assert by_default["result"]["queued"]
        assert refused["error"]["type"] == "CLIENT_NOT_CONNECTED"
        status, body = await get_json(server.url, "/readyz")
        assert status == 200
