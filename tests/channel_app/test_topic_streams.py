"""Streams with topics (`/sse/connect?topics=...`), and notify/sendEvent to a topic."""

from __future__ import annotations

import httpx
import pytest

from security.topic_access import TopicAccess
from tests.support.apps import client_token, make_app
from tests.support.http import call_function, open_stream
from tests.support.server import run_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server():
    with run_server(make_app(allow_broadcast=True, max_topics_per_connection=3)) as running:
        yield running


async def attempt(server, path: str, topics: str, claim: list[str] | None) -> httpx.Response:
    params = {"clientId": "visitor", "token": client_token("visitor", topics=claim or ()), "topics": topics}
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        async with http.stream("GET", path, params=params) as response:
            await response.aread() if response.status_code != 200 else None
            return response


@pytest.mark.parametrize("path", ["/sse/connect", "/sse/check"])
@pytest.mark.parametrize(
    "topics, claim",
    [("promo", ["promo"]), ("orders:42,orders:eu:7", ["orders:*"]), ("promo,orders:1", ["orders:*", "promo"]), ("a", ["*"])],
)
async def test_topics_the_token_allows_are_accepted(server, path, topics, claim):
    assert (await attempt(server, path, topics, claim)).status_code == 200


@pytest.mark.parametrize("path", ["/sse/connect", "/sse/check"])
@pytest.mark.parametrize(
    "topics, claim",
    [("promo", None), ("promo", ["promo2"]), ("promotion", ["promo"]), ("orders", ["orders:*"]), ("orders:1,admin", ["orders:*"])],
)
async def test_topics_the_token_does_not_allow_are_403(server, path, topics, claim):
    response = await attempt(server, path, topics, claim)
    assert (response.status_code, response.json()["error"]["type"]) == (403, "TOPIC_NOT_ALLOWED")


@pytest.mark.parametrize("path", ["/sse/connect", "/sse/check"])
@pytest.mark.parametrize("topics", ["bad topic", "promo\r\nevent: x", "*", "x" * 65, "-lead"])
async def test_invalid_topic_names_are_400(server, path, topics):
    response = await attempt(server, path, topics, ["*"])
    assert (response.status_code, response.json()["error"]["type"]) == (400, "INVALID_TOPIC")


async def test_more_topics_than_allowed_per_stream_is_400(server):
    response = await attempt(server, "/sse/connect", "a,b,c,d", ["*"])
    assert (response.status_code, response.json()["error"]["type"]) == (400, "TOO_MANY_TOPICS")
    assert (await attempt(server, "/sse/check", "a,b,c,a,b", ["*"])).status_code == 200  # repeats count once


async def test_connected_event_names_the_topics(server):
    async with open_stream(server.url, "visitor", topics=("promo", "orders")) as (_, connected):
        assert connected.data["topics"] == ["promo", "orders"]


async def test_notify_and_send_event_reach_a_topics_subscribers(server):
    async with open_stream(server.url, "alice", topics=("promo",)) as (alice, _), open_stream(server.url, "bob") as (bob, _):
        notified = (await call_function(server.url, "notify", {"topic": "promo", "message": "20% off"}))["result"]
        assert (notified["topic"], notified["delivered"], notified["queued"]) == ("promo", 1, False)
        event = await alice.next_event()
        assert (event.id, event.event, event.data["message"]) == (notified["eventId"], "notification", "20% off")
        sent = (await call_function(server.url, "sendEvent", {"topic": "promo", "action": "refresh", "payload": {"x": 1}}))["result"]
        event = await alice.next_event()
        assert (event.id, event.data["action"], event.data["payload"]) == (sent["eventId"], "refresh", {"x": 1})
        marker = (await call_function(server.url, "notify", {"clientId": "bob", "message": "only bob"}))["result"]
        assert (await bob.next_event()).id == marker["eventId"]
    nobody = (await call_function(server.url, "notify", {"topic": "promo", "message": "anyone?"}))["result"]
    assert (nobody["delivered"], nobody["eventId"]) == (0, None)


@pytest.mark.parametrize(
    "method, extra",
    [
        ("notify", {"clientId": "alice", "message": "m"}),
        ("notify", {"queueIfOffline": True, "message": "m"}),
        ("sendEvent", {"waitForAck": 1000, "action": "a"}),
        ("sendEvent", {"waitForAck": 0, "action": "a"}),  # review reproduction: 0 == False passed as absent
        ("notify", {"topic": "bad topic", "message": "m"}),
    ],
)
async def test_topic_calls_with_client_only_options_or_bad_names_are_invalid(server, method, extra):
    answer = await call_function(server.url, method, {"topic": "promo", **extra} if "topic" not in extra else extra)
    assert answer["error"]["type"] == "INVALID_PARAMS", answer


async def test_topic_calls_need_allow_broadcast():
    with run_server(make_app()) as closed:
        answer = await call_function(closed.url, "notify", {"topic": "promo", "message": "m"})
        assert answer["error"]["type"] == "METHOD_NOT_ALLOWED"
        answer = await call_function(closed.url, "sendEvent", {"topic": "promo", "action": "a"})
        assert answer["error"]["type"] == "METHOD_NOT_ALLOWED"


def test_topic_claim_matches_exact_names_and_prefixes_only():
    access = TopicAccess.from_claim(["promo", "orders:*", 7, "", None])
    assert access.allows("promo") and access.allows("orders:1") and access.allows("orders:")
    assert not access.allows("promo:1") and not access.allows("orders") and not access.allows("7")
    assert access.refused(["promo", "x", "orders:2", "y"]) == ["x", "y"]
    assert TopicAccess.from_claim([]).refused(["promo"]) == ["promo"]
